/* The process backend's floor child (bench/floor_proc.c): the least a
 * process can do to answer its parent. A static program with no libc: map
 * the shared page at fd 3, then answer every futex wake with one, until
 * told to stop. No spinning: the floor is the sleeping round trip. */
#include <asm/unistd.h>
#include <linux/futex.h>
#include <linux/mman.h>
#include <stdint.h>

#include "bench/floor_proc.h"
#include "host/process/syscall.h"


void floor_child_main(void);
void floor_child_main(void)
{
	long r = sys6(__NR_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0);
	if (r < 0)
		sys6(__NR_exit_group, 1, 0, 0, 0, 0, 0);
	struct floor_page *pg = (struct floor_page *)r;
	uint32_t seen = 0;
	for (;;) {
		__atomic_add_fetch(&pg->to_parent, 1, __ATOMIC_SEQ_CST);
		sys6(__NR_futex, (long)&pg->to_parent, FUTEX_WAKE, 1, 0, 0, 0);
		while (__atomic_load_n(&pg->to_child, __ATOMIC_SEQ_CST) == seen)
			sys6(__NR_futex, (long)&pg->to_child, FUTEX_WAIT, seen, 0, 0, 0);
		seen = __atomic_load_n(&pg->to_child, __ATOMIC_SEQ_CST);
		if (pg->quit)
			sys6(__NR_exit_group, 0, 0, 0, 0, 0, 0);
	}
}

__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "	xor %ebp, %ebp\n"
        "	and $-16, %rsp\n"
        "	call floor_child_main\n"
        "	ud2\n");
