/* The process backend's floors: a futex round trip between two processes
 * through shared memory (floor-proc-exit) and posix_spawn of a minimal
 * static program until its first round trip with us (floor-proc-coldstart).
 * The program (floor_proc_child.c) is embedded and run from a memfd, as the
 * backend runs its stub. */
#include "bench/floor_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/floor.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl mote_floor_child\n"
        "mote_floor_child:\n"
        ".incbin \"" MOTE_FLOOR_CHILD "\"\n"
        ".globl mote_floor_child_end\n"
        "mote_floor_child_end:\n"
        ".previous\n");
extern const unsigned char mote_floor_child[], mote_floor_child_end[];

struct floor_proc {
	int exe, page_fd;
	struct floor_page *pg;
	pid_t pid;
	uint32_t seen;
};

static long futex(uint32_t *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static int exe_fd(void)
{
	static int fd = -1;
	if (fd >= 0)
		return fd;
	int f = memfd_create("mote-floor", MFD_CLOEXEC | 0x10u /* MFD_EXEC */);
	if (f < 0)
		f = memfd_create("mote-floor", MFD_CLOEXEC);
	size_t len = (size_t)(mote_floor_child_end - mote_floor_child);
	if (f < 0 || write(f, mote_floor_child, len) != (ssize_t)len) {
		if (f >= 0)
			close(f);
		return -1;
	}
	fd = f;
	return fd;
}

/* Wait until the child bumped to_parent past `seen`. */
static void wait_child(struct floor_proc *p)
{
	while (__atomic_load_n(&p->pg->to_parent, __ATOMIC_SEQ_CST) == p->seen)
		futex(&p->pg->to_parent, FUTEX_WAIT, p->seen);
	p->seen = __atomic_load_n(&p->pg->to_parent, __ATOMIC_SEQ_CST);
}

static int start(struct floor_proc *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	int exe = exe_fd();
	p->page_fd = memfd_create("mote-floor-page", MFD_CLOEXEC);
	if (exe < 0 || p->page_fd < 0 || ftruncate(p->page_fd, 4096) < 0)
		return -1;
	p->pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, p->page_fd, 0);
	if (p->pg == MAP_FAILED)
		return -1;
	/* Out of the way first: a dup2 to 3 must not close a source at 3. */
	int page_hi = fcntl(p->page_fd, F_DUPFD_CLOEXEC, 64);
	int exe_hi = fcntl(exe, F_DUPFD_CLOEXEC, 64);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, page_hi, 3);
	posix_spawn_file_actions_adddup2(&fa, exe_hi, 4);
	posix_spawn_file_actions_addclosefrom_np(&fa, 5);
	char *argv[] = {"mote-floor", NULL}, *envp[] = {NULL};
	int rc = page_hi < 0 || exe_hi < 0
	             ? -1
	             : posix_spawn(&p->pid, "/proc/self/fd/4", &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (page_hi >= 0)
		close(page_hi);
	if (exe_hi >= 0)
		close(exe_hi);
	if (rc) {
		p->pid = -1;
		return -1;
	}
	wait_child(p);
	return 0;
}

static void stop(struct floor_proc *p)
{
	if (p->pid > 0) {
		p->pg->quit = 1;
		__atomic_add_fetch(&p->pg->to_child, 1, __ATOMIC_SEQ_CST);
		futex(&p->pg->to_child, FUTEX_WAKE, 1);
		waitpid(p->pid, NULL, 0);
	}
	if (p->pg && p->pg != MAP_FAILED)
		munmap(p->pg, 4096);
	if (p->page_fd > 0)
		close(p->page_fd);
}

int bench_floor_proc_coldstart(double *us)
{
	struct floor_proc p;
	double t0 = bench_now_us();
	int rc = start(&p);
	*us = bench_now_us() - t0;
	stop(&p);
	return rc;
}

int bench_floor_proc_exit(int iterations, double *us_per_exit)
{
	struct floor_proc p;
	int rc = start(&p);
	if (!rc) {
		double t0 = bench_now_us();
		for (int i = 0; i < iterations; i++) {
			__atomic_add_fetch(&p.pg->to_child, 1, __ATOMIC_SEQ_CST);
			futex(&p.pg->to_child, FUTEX_WAKE, 1);
			wait_child(&p);
		}
		*us_per_exit = (bench_now_us() - t0) / iterations;
	}
	stop(&p);
	return rc;
}
