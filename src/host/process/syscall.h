/* A raw x86-64 Linux system call, for the programs that run without libc:
 * the process backend's stub and the benchmark's floor child. */
#ifndef MOTE_HOST_PROCESS_SYSCALL_H
#define MOTE_HOST_PROCESS_SYSCALL_H

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
	                 : "=a"(ret)
	                 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
	                 : "rcx", "r11", "memory");
	return ret;
}
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)

#endif
