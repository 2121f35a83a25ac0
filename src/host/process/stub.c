/* The process backend's stub: a static program with no libc that the host
 * starts in a child process of its own (process.c). It maps guest memory at
 * guest addresses as the mailbox says, arranges that writes are tracked,
 * installs its signal handlers and a seccomp filter, then runs guest code
 * and turns every way the guest can leave (a call of the exit entry, `out`,
 * a CPU exception, a system call, the host's kick) into a report in the
 * mailbox. Compiled with -mgeneral-regs-only: nothing here touches the
 * guest's x87/SSE registers except FXSAVE and FXRSTOR.
 *
 * The seccomp filter goes in while the process is a spare. From then on
 * system calls come only from this program's code (seccomp checks the
 * instruction pointer): from the setup code, which lives in pages of its
 * own that are unmapped before the guest's first instruction, anything;
 * from the rest only futex (wait and wake), sched_yield, rt_sigreturn,
 * exit_group and what the host's file mappings need. Everything else
 * traps. */
#include "host/process/stub.h"

#include <asm/prctl.h>
#include <asm/sigcontext.h>
#include <asm/siginfo.h>
#include <asm/signal.h>
#include <asm/unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/ioctl.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/uio.h>
#include <linux/userfaultfd.h>
#include <stdbool.h>

#include "host/process/syscall.h"

#define AT_HWCAP2           26
#define HWCAP2_FSGSBASE     2
#define CLOSE_RANGE_UNSHARE 2

/* The kernel's recvmsg structures (libc's are not available here). */
struct k_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	unsigned long msg_iovlen;
	void *msg_control;
	unsigned long msg_controllen;
	unsigned msg_flags;
};
struct k_cmsg_fd {
	unsigned long len;
	int level, type;
	int fd;
	int pad;
};
#define K_SOL_SOCKET       1
#define K_SCM_RIGHTS       1
#define K_MSG_CMSG_CLOEXEC 0x40000000

struct k_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};

struct k_ucontext {
	unsigned long uc_flags;
	void *uc_link;
	stack_t uc_stack;
	struct sigcontext uc_mcontext;
	unsigned long uc_sigmask;
};

static __attribute__((noreturn)) void die(int code)
{
	for (;;)
		sys6(__NR_exit_group, code, 0, 0, 0, 0, 0);
}

/* gcc may call these for struct copies. */
void *memcpy(void *dst, const void *src, unsigned long n);
void *memset(void *dst, int c, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}
void *memset(void *dst, int c, unsigned long n)
{
	unsigned char *d = dst;
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

/* ---- State shared with stub_x86_64.S ----
 * Hidden: everything is addressed rip-relative (the stub lives above 4 GiB),
 * and hidden symbols need no GOT. */
#pragma GCC visibility push(hidden)
extern char mote_stub_text_start[], mote_stub_text_end[];
extern char mote_stub_setup_start[], mote_stub_setup_end[]; /* stub.ld */
long mote_stub_drop_setup(unsigned long addr, unsigned long len);

/* Code that runs once per sandbox, before any guest code, and makes system
 * calls the guest must never reach (stub.ld, mote_stub_drop_setup). Never
 * inlined into the code that stays. */
#define SETUP_CODE __attribute__((noinline, section(".text.mote_stub_setup")))
extern struct mote_mailbox mote_mailbox;
void mote_stub_exit(void);     /* the guest's exit entry */
void mote_stub_restorer(void); /* rt_sigreturn */
__attribute__((noreturn)) void mote_stub_enter_guest(void);
void mote_stub_main(unsigned long *sp);
void mote_stub_direct_exit(uint32_t port);

#pragma GCC visibility pop

#define mb (&mote_mailbox)

uint32_t mote_stub_have_fsgsbase; /* read by stub_x86_64.S */
static uint32_t seen_to_stub;
static bool cpuid_faulting;
static uint8_t altstack[32768] __attribute__((aligned(16)));

static bool setup_mapped = true; /* until mote_stub_drop_setup */
static long highest_fd = MOTE_STUB_FD_MAILBOX; /* open below the socket */

static bool in_stub(uint64_t rip)
{
	uint64_t lo =
	    setup_mapped ? (uint64_t)mote_stub_setup_start : (uint64_t)mote_stub_text_start;
	return rip >= lo && rip < (uint64_t)mote_stub_text_end;
}

/* ---- The mailbox protocol ---- */
/* Rounds a new spare spins before it sleeps: ~0.2 ms on the machines
 * measured (a round is a pause, every 16th a sched_yield). */
#define MOTE_STUB_SPARE_SPIN 4000

/* Round `i` of a spin-wait: a pause, and every 16th round sched_yield,
 * since the host may be waiting for this very CPU. */
static void spin_round(int i)
{
	if (i % 16 == 15)
		sys3(__NR_sched_yield, 0, 0, 0);
	else
		__builtin_ia32_pause();
}

static uint32_t do_map_command(uint32_t cmd);
static uint32_t do_reset(void);

/* The CPU this runs on, read as the vDSO's getcpu does without RDPID:
 * Linux puts it in the limit of a per-CPU GDT entry. The host moves a
 * stub that keeps sharing its CPU (process.c, keep_apart). */
#define LINUX_CPUNODE_SELECTOR (15 * 8 + 3)
static uint32_t current_cpu(void)
{
	uint32_t limit = 0;
	uint8_t ok;
	__asm__ volatile("lsl %[sel], %[limit]\n\tsetz %[ok]"
	                 : [limit] "=r"(limit), [ok] "=q"(ok)
	                 : [sel] "r"((uint32_t)LINUX_CPUNODE_SELECTOR)
	                 : "cc");
	return ok ? limit & 0xfff : UINT32_MAX;
}

static void report(uint32_t what)
{
	__atomic_store_n(&mb->stub_cpu, current_cpu(), __ATOMIC_RELAXED);
	__atomic_store_n(&mb->report, what, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mb->to_host, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&mb->host_sleeping, __ATOMIC_SEQ_CST))
		sys6(__NR_futex, (long)&mb->to_host, FUTEX_WAKE, 1, 0, 0, 0);
}

/* Wait for the host's next command after reporting `what`, doing the
 * mapping commands that come meanwhile. */
static void wait_for_host(uint32_t what)
{
again:;
	/* Spin a little first after an exit (a host call, a full log, the end
	 * of a call: the host often answers at once, and sleeping costs a wake
	 * on both sides, across CPUs tens of microseconds inside a VM). Before
	 * the host protects pages again under a spinning stub (after a
	 * snapshot or a write of its own), whose CPU a TLB flush would then
	 * interrupt, it parks it (`park`); a restore's RESET it sends to the
	 * stub itself. A page fault is often the guest's first touch of lazy
	 * heap memory, which the host answers at once too. */
	bool page_fault = what == MOTE_STUB_FAULT && mb->vector == 14; /* lazy memory */
	int spin = what == MOTE_STUB_EXIT || what == MOTE_STUB_RESET_DONE || page_fault ? 2000
	           : what == MOTE_STUB_READY                                            ? 4000
	                                                                                : 0;
	for (int i = 0; i < spin && !__atomic_load_n(&mb->park, __ATOMIC_RELAXED); i++) {
		if (__atomic_load_n(&mb->to_stub, __ATOMIC_ACQUIRE) != seen_to_stub)
			goto woken;
		spin_round(i);
	}
	for (;;) {
		__atomic_store_n(&mb->stub_sleeping, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&mb->to_stub, __ATOMIC_SEQ_CST) != seen_to_stub)
			break;
		sys6(__NR_futex, (long)&mb->to_stub, FUTEX_WAIT, seen_to_stub, 0, 0, 0);
	}
	__atomic_store_n(&mb->stub_sleeping, 0, __ATOMIC_RELAXED);
woken:
	seen_to_stub = __atomic_load_n(&mb->to_stub, __ATOMIC_ACQUIRE);
	uint32_t cmd = __atomic_load_n(&mb->cmd, __ATOMIC_RELAXED);
	/* The host writes SETUP right after PREPARE's wake. A spare that read
	 * PREPARE's count late (preempted between that read and the read of
	 * `cmd`) took SETUP under PREPARE's count, and SETUP's own wake
	 * arrives here: the same command again, not a RUN. Obeyed, it ran the
	 * guest before the host had set its registers (at rip 0). */
	if (cmd == MOTE_STUB_CMD_SETUP || cmd == MOTE_STUB_CMD_PREPARE)
		goto again;
	if (cmd == MOTE_STUB_CMD_MAP || cmd == MOTE_STUB_CMD_UNMAP || cmd == MOTE_STUB_CMD_RESET) {
		what = cmd == MOTE_STUB_CMD_RESET ? do_reset() : do_map_command(cmd);
		report(what);
		goto again;
	}
}

static void report_and_wait(uint32_t what)
{
	report(what);
	wait_for_host(what);
}

static bool window_range(uint64_t addr, uint64_t len)
{
	return addr >= MOTE_MAP_BASE && len && len <= MOTE_MAP_LIMIT - MOTE_MAP_BASE &&
	       addr <= MOTE_MAP_LIMIT - len;
}

/* Receive up to `max` descriptors sent in one message on the socket;
 * returns how many, or < 0. */
static long receive_fds(int *fds, int max)
{
	char byte;
	struct iovec iov = {&byte, 1};
	struct {
		unsigned long len;
		int level, type;
		int fds[MOTE_STUB_MAX_FDS];
	} ctl = {0};
	struct k_msghdr msg = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	long n = sys3(__NR_recvmsg, MOTE_STUB_FD_SOCKET, &msg, K_MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (msg.msg_controllen < 16 || ctl.level != K_SOL_SOCKET || ctl.type != K_SCM_RIGHTS ||
	    ctl.len < 16)
		return 0;
	long got = (long)(ctl.len - 16) / (long)sizeof(int);
	if (got > max)
		got = max;
	for (long i = 0; i < got; i++)
		fds[i] = ctl.fds[i];
	return got;
}

/* A host file mapping: its descriptor comes over the socket. */
static uint32_t do_map_command(uint32_t cmd)
{
	struct mote_stub_map m = mb->map;
	long r = -22;
	if (cmd == MOTE_STUB_CMD_UNMAP) {
		if (window_range(m.addr, m.len))
			r = sys3(__NR_munmap, m.addr, m.len, 0);
		mb->error_code = (uint64_t)r;
		return MOTE_STUB_MAPPED;
	}
	char byte;
	struct iovec iov = {&byte, 1};
	struct k_cmsg_fd ctl = {0};
	struct k_msghdr msg = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	long n = sys3(__NR_recvmsg, MOTE_STUB_FD_SOCKET, &msg, K_MSG_CMSG_CLOEXEC);
	if (n < 0) {
		r = n;
	} else if (msg.msg_controllen < 20 || ctl.level != K_SOL_SOCKET ||
	           ctl.type != K_SCM_RIGHTS || ctl.len != 20) {
		r = -9; /* EBADF: no descriptor came */
	} else {
		if (window_range(m.addr, m.len)) {
			r = sys6(__NR_mmap, (long)m.addr, (long)m.len, m.prot,
			         (m.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, ctl.fd,
			         (long)m.offset);
			r = r == (long)m.addr ? 0 : r;
		}
		sys3(__NR_close, ctl.fd, 0, 0);
	}
	mb->error_code = (uint64_t)r;
	return MOTE_STUB_MAPPED;
}

static bool guest_range(uint64_t addr, uint64_t len);
static uint32_t reset_capacity; /* ranges the mailbox holds (setup) */

/* A restore (process.c, proc_reset): the pages the guest made its own go,
 * and read from what backs them again. */
static uint32_t do_reset(void)
{
	const struct mote_stub_range *r =
	    (const struct mote_stub_range *)(MOTE_STUB_MAILBOX + MOTE_STUB_MAILBOX_HEADER);
	uint32_t n = mb->nresets < reset_capacity ? mb->nresets : reset_capacity;
	long err = 0;
	for (uint32_t i = 0; i < n && !err; i++) {
		uint64_t addr = r[i].addr, len = r[i].len;
		err = guest_range(addr, len)
		          ? sys3(__NR_madvise, (long)addr, (long)len, MADV_DONTNEED)
		          : -22;
	}
	mb->error_code = (uint64_t)err;
	return MOTE_STUB_RESET_DONE;
}

/* An all-zero FXSAVE area stands for the reset state (backend.h). */
static void fix_fpu_area(uint8_t *fx)
{
	for (int i = 0; i < 512; i++)
		if (fx[i])
			return;
	fx[0] = 0x7f; /* FCW 0x37f */
	fx[1] = 0x03;
	fx[24] = 0x80; /* MXCSR 0x1f80 */
	fx[25] = 0x1f;
}

/* Called by stub_x86_64.S on the stub's stack after the exit entry saved
 * the guest's registers into the mailbox. */
void mote_stub_direct_exit(uint32_t port)
{
	mb->port = port;
	report_and_wait(MOTE_STUB_EXIT);
	fix_fpu_area(mb->cpu.fxsave);
}

/* ---- Signals: faults, `out`, system calls, kicks ---- */
static void save_context(const struct sigcontext *mc)
{
	struct mote_cpu_state *c = &mb->cpu;
	const uint64_t gpr[16] = {mc->rax, mc->rcx, mc->rdx, mc->rbx, mc->rsp, mc->rbp,
	                          mc->rsi, mc->rdi, mc->r8,  mc->r9,  mc->r10, mc->r11,
	                          mc->r12, mc->r13, mc->r14, mc->r15};
	for (int i = 0; i < 16; i++)
		c->gpr[i] = gpr[i];
	c->rip = mc->rip;
	c->rflags = mc->eflags & MOTE_RFLAGS_GUEST;
	if (mote_stub_have_fsgsbase) {
		__asm__ volatile("rdfsbase %0" : "=r"(c->fs_base));
		__asm__ volatile("rdgsbase %0" : "=r"(c->gs_base));
	}
	if (mc->fpstate)
		memcpy(c->fxsave, (const void *)mc->fpstate, 512);
	else
		memset(c->fxsave, 0, 512);
}

static void load_context(struct sigcontext *mc)
{
	const struct mote_cpu_state *c = &mb->cpu;
	__u64 *gpr[16] = {&mc->rax, &mc->rcx, &mc->rdx, &mc->rbx, &mc->rsp, &mc->rbp,
	                  &mc->rsi, &mc->rdi, &mc->r8,  &mc->r9,  &mc->r10, &mc->r11,
	                  &mc->r12, &mc->r13, &mc->r14, &mc->r15};
	for (int i = 0; i < 16; i++)
		*gpr[i] = c->gpr[i];
	mc->rip = c->rip;
	mc->eflags = (mc->eflags & ~MOTE_RFLAGS_GUEST) | (c->rflags & MOTE_RFLAGS_GUEST);
	if (mote_stub_have_fsgsbase) {
		__asm__ volatile("wrfsbase %0" : : "r"(c->fs_base));
		__asm__ volatile("wrgsbase %0" : : "r"(c->gs_base));
	}
	if (mc->fpstate) {
		uint8_t *fp = (uint8_t *)mc->fpstate;
		memcpy(fp, c->fxsave, 512);
		/* In an XSAVE frame, mark x87 and SSE as in use, or sigreturn
		 * would load their init state instead. */
		uint32_t magic;
		memcpy(&magic, fp + 464, 4);
		if (magic == FP_XSTATE_MAGIC1) {
			uint64_t bv;
			memcpy(&bv, fp + 512, 8);
			bv |= 3;
			memcpy(fp + 512, &bv, 8);
		}
	}
}

/* CPUID with faulting on: answer from the host's table (what the KVM
 * backend's guests see), zeros for anything else. */
static void emulate_cpuid(struct sigcontext *mc)
{
	uint32_t leaf = (uint32_t)mc->rax, sub = (uint32_t)mc->rcx;
	uint32_t n = mb->ncpuid < MOTE_STUB_MAX_CPUID ? mb->ncpuid : MOTE_STUB_MAX_CPUID;
	mc->rax = mc->rbx = mc->rcx = mc->rdx = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct mote_stub_cpuid *e = &mb->cpuid[i];
		if (e->leaf == leaf && (e->subleaf == sub || e->subleaf == 0xffffffffu)) {
			mc->rax = e->eax;
			mc->rbx = e->ebx;
			mc->rcx = e->ecx;
			mc->rdx = e->edx;
			break;
		}
	}
	mc->rip += 2;
}

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
	struct sigcontext *mc = &((struct k_ucontext *)ucv)->uc_mcontext;
	uint32_t what = MOTE_STUB_FAULT;
	if (sig == MOTE_STUB_KICK_SIGNAL) {
		if (in_stub(mc->rip))
			return; /* an exit is under way: it reports */
		what = MOTE_STUB_INTERRUPTED;
	} else if (in_stub(mc->rip)) {
		die(128 + sig); /* the stub itself failed: the host sees it die */
	} else if (sig == SIGSYS) {
		/* A system call the filter refused. Reported as the exception
		 * the same instruction raises under the KVM backend: `syscall`
		 * #UD (EFER.SCE is clear), `int $0x80` #GP (no such gate). */
		uint64_t at = (uint64_t)si->si_call_addr - 2;
		mc->rip = at;
		mb->addr = 0;
		if (si->si_arch == AUDIT_ARCH_X86_64) {
			mb->vector = 6;
			mb->error_code = 0;
		} else {
			mb->vector = 13;
			mb->error_code = 0x80 * 8 + 2;
		}
	} else {
		const uint8_t *code = (const uint8_t *)mc->rip;
		mb->vector = (uint32_t)mc->trapno;
		mb->error_code = mc->err;
		mb->addr = mc->cr2;
		/* Port I/O is what KVM would have seen as an I/O exit: out and in
		 * with an immediate port (e6 e7, e4 e5) or the port in %dx (ee
		 * ef, ec ed). */
		bool gp = sig == SIGSEGV && mc->trapno == 13;
		if (gp && (code[0] & 0xfc) == 0xe4) {
			what = code[0] & 2 ? MOTE_STUB_EXIT : MOTE_STUB_IN;
			mb->port = code[1];
			mc->rip += 2;
		} else if (gp && (code[0] & 0xfc) == 0xec) {
			what = code[0] & 2 ? MOTE_STUB_EXIT : MOTE_STUB_IN;
			mb->port = (uint16_t)mc->rdx;
			mc->rip += 1;
		} else if (sig == SIGSEGV && mc->trapno == 13 && cpuid_faulting &&
		           code[0] == 0x0f && code[1] == 0xa2) {
			emulate_cpuid(mc);
			return;
		}
	}
	save_context(mc);
	report_and_wait(what);
	fix_fpu_area(mb->cpu.fxsave);
	load_context(mc);
}

/* ---- Setup ---- */
/* Tell the spawner this spare is done starting (or failed to). */
static void spare_ready(void)
{
	__atomic_store_n(&mb->spare_ready, 1, __ATOMIC_RELEASE);
	sys6(__NR_futex, (long)&mb->spare_ready, FUTEX_WAKE, 1, 0, 0, 0);
}

static __attribute__((noreturn)) void setup_failed(const char *what, long err)
{
	int i = 0;
	for (; what[i] && i < (int)sizeof(mb->detail) - 1; i++)
		mb->detail[i] = what[i];
	mb->detail[i] = 0;
	mb->error_code = (uint64_t)-err;
	__atomic_store_n(&mb->report, MOTE_STUB_SETUP_FAILED, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mb->to_host, 1, __ATOMIC_SEQ_CST);
	sys6(__NR_futex, (long)&mb->to_host, FUTEX_WAKE, 1, 0, 0, 0);
	spare_ready();
	die(1);
}

static bool guest_range(uint64_t addr, uint64_t len)
{
	return addr >= MOTE_SYSTEM_BASE && len <= MOTE_MAP_LIMIT && addr <= MOTE_MAP_LIMIT - len;
}

static SETUP_CODE void map_guest_memory(const int *fds, long nfds)
{
	const struct mote_stub_map *m =
	    (const struct mote_stub_map *)((const uint8_t *)mb + mb->maps_offset);
	for (uint32_t i = 0; i < mb->nmaps; i++) {
		if (!guest_range(m[i].addr, m[i].len) || m[i].fd >= nfds)
			setup_failed("mapping outside guest memory", -22);
		/* Ranges never overlap, and nothing else is below the stub. */
		long flags =
		    (m[i].shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE | MAP_NORESERVE;
		long fd = -1;
		if (m[i].fd < 0)
			flags |= MAP_ANONYMOUS;
		else
			fd = fds[m[i].fd];
		long r = sys6(__NR_mmap, (long)m[i].addr, (long)m[i].len, m[i].prot, flags, fd,
		              (long)m[i].offset);
		if (r != (long)m[i].addr)
			setup_failed("mmap of guest memory", r);
	}
}

/* Guest writes are tracked by the kernel: userfaultfd write protection in
 * asynchronous mode (Linux 6.7) marks a page written on its first write
 * without a fault reaching anyone, and the host reads and re-arms the marks
 * with PAGEMAP_SCAN on /proc/PID/pagemap. On older kernels the host uses
 * soft-dirty bits instead (process.c) and the stub does nothing. Either way
 * the guest cannot undo the marks: it has no system calls. */
static long uffd = -1; /* the filter keeps the guest from closing it */
static long uffd_error;

/* Made while a spare waits, registered once guest memory is mapped. A
 * kernel without the asynchronous mode leaves uffd at -1 and the error for
 * a setup that asks for it. */
static void open_uffd(void)
{
	long fd = sys3(__NR_userfaultfd, 02000000 /* O_CLOEXEC */ | UFFD_USER_MODE_ONLY, 0, 0);
	if (fd < 0) {
		uffd_error = fd;
		return;
	}
	struct uffdio_api api = {.api = UFFD_API,
	                         .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
	                                     UFFD_FEATURE_SIGBUS};
	long r = sys3(__NR_ioctl, fd, UFFDIO_API, &api);
	if (!r) {
		r = sys3(__NR_dup3, fd, MOTE_STUB_FD_UFFD, 02000000);
		if (r == MOTE_STUB_FD_UFFD)
			uffd = MOTE_STUB_FD_UFFD;
		else if (r >= 0)
			r = -9; /* EBADF */
	}
	sys3(__NR_close, fd, 0, 0);
	uffd_error = uffd < 0 ? r : 0;
}

static SETUP_CODE void register_range(uint64_t lo, uint64_t hi, uint64_t mode)
{
	struct uffdio_register reg = {.range = {.start = lo, .len = hi - lo}, .mode = mode};
	long r = sys3(__NR_ioctl, uffd, UFFDIO_REGISTER, &reg);
	if (r)
		setup_failed("UFFDIO_REGISTER", r);
}

/* A lazy range: its anonymous mappings are registered for missing pages
 * only, so the guest's first touch of one raises SIGBUS (the host then
 * registers that part for write tracking: "opens" it, process.c) and the
 * host's scans skip the rest without walking it. Mappings from files are
 * tracked at once (a missing-page registration cannot cover them). Runs of
 * one kind are registered in one call. */
static SETUP_CODE void register_lazy(uint64_t lo, uint64_t hi)
{
	const struct mote_stub_map *m =
	    (const struct mote_stub_map *)((const uint8_t *)mb + mb->maps_offset);
	uint64_t run_lo = 0, run_hi = 0, run_mode = 0;
	for (uint32_t i = 0; i <= mb->nmaps; i++) {
		uint64_t a = 0, b = 0, mode = 0;
		if (i < mb->nmaps) {
			a = m[i].addr > lo ? m[i].addr : lo;
			b = m[i].addr + m[i].len < hi ? m[i].addr + m[i].len : hi;
			if (a >= b)
				continue;
			mode = mote_stub_map_is_lazy(&m[i]) ? UFFDIO_REGISTER_MODE_MISSING
			                                    : UFFDIO_REGISTER_MODE_WP;
			if (run_hi == a && mode == run_mode) {
				run_hi = b;
				continue;
			}
		}
		if (run_hi > run_lo)
			register_range(run_lo, run_hi, run_mode);
		run_lo = a;
		run_hi = b;
		run_mode = mode;
	}
}

static SETUP_CODE void track_writes(void)
{
	if (uffd < 0)
		setup_failed("userfaultfd (write-protect, asynchronous)", uffd_error);
	uint32_t n = mb->ntracked < 8 ? mb->ntracked : 8;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t lo = mb->tracked[i][0], hi = mb->tracked[i][1];
		if (hi <= lo || !guest_range(lo, hi - lo))
			setup_failed("tracked range outside guest memory", -22);
		if (mb->tracked_lazy & (1u << i)) {
			register_lazy(lo, hi);
			continue;
		}
		register_range(lo, hi, UFFDIO_REGISTER_MODE_WP);
		/* Private memory needs no initial protection: pages not yet in
		 * the page tables cost nothing to scan, and a page the guest
		 * wrote is anonymous, which is how the host tells it from one
		 * it only read. Shared memory (the call buffers) is small and
		 * protected now, page by page. */
		if (!(mb->tracked_shared & (1u << i)))
			continue;
		struct uffdio_writeprotect wp = {.range = {.start = lo, .len = hi - lo},
		                                 .mode = UFFDIO_WRITEPROTECT_MODE_WP};
		long r = sys3(__NR_ioctl, uffd, UFFDIO_WRITEPROTECT, &wp);
		if (r)
			setup_failed("UFFDIO_WRITEPROTECT", r);
	}
	mb->features |= MOTE_STUB_HAVE_UFFD_WP;
	/* The descriptor stays open: closing it would end the tracking. */
}

static void install_signals(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_flags = 0, .ss_size = sizeof(altstack)};
	long r = sys3(__NR_sigaltstack, &ss, 0, 0);
	if (r)
		setup_failed("sigaltstack", r);
	static const int sigs[] = {
	    SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, MOTE_STUB_KICK_SIGNAL};
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct k_sigaction sa = {.handler = (void *)on_signal,
		                         .flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER,
		                         .restorer = (void *)mote_stub_restorer,
		                         .mask = ~0ul};
		r = sys6(__NR_rt_sigaction, sigs[i], (long)&sa, 0, sizeof(sa.mask), 0, 0);
		if (r)
			setup_failed("rt_sigaction", r);
	}
}

/* After this, system calls come only from the stub's code: anything from
 * the setup code, only futex (wait, wake), sched_yield, rt_sigreturn,
 * exit_group and the file mappings' calls from the rest; anything else
 * raises SIGSYS. seccomp sees the address after the `syscall` instruction,
 * so the setup code's calls are those in (setup_start, setup_end]: after
 * mote_stub_drop_setup no instruction can make one. */
static void install_filter(void)
{
	uint64_t setup = (uint64_t)mote_stub_setup_start, lo = (uint64_t)mote_stub_text_start,
	         hi = (uint64_t)mote_stub_text_end;
	if (setup >> 32 != (hi - 1) >> 32 || lo != (uint64_t)mote_stub_setup_end)
		setup_failed("stub code layout (stub.ld)", -22);
#define LD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define TRAP      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP)
#define ALLOW     BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]) + 4)
	struct sock_filter f[] = {
	    LD(arch),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    TRAP,
	    /* instruction_pointer: high word, then low word. */
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	             offsetof(struct seccomp_data, instruction_pointer) + 4),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(lo >> 32), 1, 0),
	    TRAP,
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
	    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)setup, 1, 0),
	    TRAP,
	    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)lo, 1, 0),
	    ALLOW, /* the setup code */
	    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)hi, 0, 1),
	    TRAP,
	    LD(nr),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sched_yield, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 6, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 13, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_recvmsg, 18, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close, 21, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_futex, 25, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 29, 0),
	    TRAP,
	    /* mmap: inside the file-mapping window (its high word is
	     * 0x10: [64 GiB, 68 GiB)), shorter than 4 GiB, MAP_FIXED. */
	    ARG_HI(0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(MOTE_MAP_BASE >> 32), 0, 5),
	    ARG_HI(1),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
	    ARG_LO(3),
	    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_FIXED, 0, 1),
	    ALLOW,
	    TRAP,
	    /* munmap: the same range rules. */
	    ARG_HI(0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(MOTE_MAP_BASE >> 32), 0, 3),
	    ARG_HI(1),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
	    ALLOW,
	    TRAP,
	    /* recvmsg: from the socket only. */
	    ARG_LO(0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MOTE_STUB_FD_SOCKET, 0, 1),
	    ALLOW,
	    TRAP,
	    /* close: a received file, never the userfaultfd (which would end
	     * the tracking of writes) or the socket. */
	    ARG_LO(0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)uffd, 1, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MOTE_STUB_FD_SOCKET, 0, 1),
	    TRAP,
	    ALLOW,
	    /* futex: FUTEX_WAIT or FUTEX_WAKE only (args[1], low word). */
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FUTEX_WAIT, 1, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FUTEX_WAKE, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    TRAP,
	    /* madvise: MADV_DONTNEED only, below the top of the mapping
	     * window, shorter than 4 GiB (restores: a guest that calls it
	     * drops its own pages, which then read as what backs them). */
	    ARG_HI(0),
	    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)((MOTE_MAP_LIMIT - 1) >> 32), 5, 0),
	    ARG_HI(1),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
	    ARG_LO(2),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_DONTNEED, 0, 1),
	    ALLOW,
	    TRAP,
	};
#undef LD
#undef TRAP
#undef ALLOW
#undef ARG_LO
#undef ARG_HI
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	long r = sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
	if (r)
		setup_failed("seccomp", r);
}

static unsigned long auxv_get(unsigned long *sp, unsigned long type)
{
	unsigned long argc = sp[0];
	unsigned long *p = sp + 1 + argc + 1; /* envp */
	while (*p)
		p++;
	for (p++; p[0]; p += 2)
		if (p[0] == type)
			return p[1];
	return 0;
}

/* Once per sandbox: map guest memory as the mailbox says, close what it
 * was mapped from, arrange write tracking. */
static SETUP_CODE void set_up_sandbox(void)
{
	uint64_t size = mb->size;
	if (size > MOTE_STUB_MAILBOX_SPARE) {
		long r = sys6(__NR_mmap, MOTE_STUB_MAILBOX, (long)size, PROT_READ | PROT_WRITE,
		              MAP_SHARED | MAP_FIXED, MOTE_STUB_FD_MAILBOX, 0);
		if (r != (long)MOTE_STUB_MAILBOX)
			die(4);
	}
	if (mb->maps_offset < sizeof(*mb) || mb->maps_offset > size ||
	    (uint64_t)mb->nmaps * sizeof(struct mote_stub_map) >
	        size - mb->maps_offset)
		setup_failed("mailbox: mapping table outside the mailbox", -22);
	if (mb->nfds > MOTE_STUB_MAX_FDS)
		setup_failed("too many files", -22);
	reset_capacity =
	    (uint32_t)((size - MOTE_STUB_MAILBOX_HEADER) / sizeof(struct mote_stub_range));
	int fds[MOTE_STUB_MAX_FDS];
	long got = mb->nfds ? receive_fds(fds, (int)mb->nfds) : 0;
	if (got != (long)mb->nfds)
		setup_failed("receiving the files of guest memory", got < 0 ? got : -9);
	for (long i = 0; i < got; i++)
		if (fds[i] > highest_fd)
			highest_fd = fds[i];
	map_guest_memory(fds, got);
	if (mb->flags & MOTE_STUB_WANT_UFFD_WP)
		track_writes();
}

/* The rest of the setup, done after READY while the host finishes its own
 * part of the start (~20 us of the stub's work off a cold start's path),
 * and before any guest instruction. It cannot report a failure any more:
 * the stub dies, and the host finds it gone at the first call. */
static SETUP_CODE void finish_setup(void)
{
	/* Only the mailbox mapping, the socket, the userfaultfd and guest
	 * memory are needed from here. A spare has nothing open but the
	 * mailbox's descriptor below the socket, and received files take the
	 * lowest free numbers: closing up to the highest of them closes
	 * everything there is (up to the socket, the kernel walked ~1000
	 * slots, ~10 us). */
	if (sys3(__NR_close_range, 0, highest_fd, 0))
		die(7);
	/* The image's pages into the page tables in one call rather than a
	 * fault each on the first call (reads only: a write would make them
	 * count as written). */
	uint64_t plo = mb->prefault[0], phi = mb->prefault[1];
	if (phi > plo && guest_range(plo, phi - plo))
		sys3(__NR_madvise, plo, phi - plo, 22 /* MADV_POPULATE_READ */);
}

/* From stub_x86_64.S's _start, on the stack the kernel gave. */
void mote_stub_main(unsigned long *sp)
{
	/* The mask survives exec, and the host spawns with all blocked. */
	unsigned long none = 0;
	sys6(__NR_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, sizeof(none), 0, 0);
	sys3(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL, 0);
	/* Named for ps and top rather than after the descriptor it was
	 * executed from ("5"). */
	sys3(__NR_prctl, PR_SET_NAME, (long)"mote-stub", 0);
	long r = sys6(__NR_mmap, MOTE_STUB_MAILBOX, MOTE_STUB_MAILBOX_SPARE, PROT_READ | PROT_WRITE,
	              MAP_SHARED | MAP_FIXED_NOREPLACE, MOTE_STUB_FD_MAILBOX, 0);
	if (r != (long)MOTE_STUB_MAILBOX)
		die(2);
	/* The parent died before PR_SET_PDEATHSIG took hold. */
	if (sys3(__NR_getppid, 0, 0, 0) != mb->host_pid)
		die(3);
	/* All that does not depend on the sandbox, done while a spare: the
	 * socket out of the way, every other descriptor but the mailbox's
	 * closed (standard input and output too), ... */
	if (sys3(__NR_dup3, MOTE_STUB_FD_SPAWN_SOCKET, MOTE_STUB_FD_SOCKET,
	         02000000 /* O_CLOEXEC */) != MOTE_STUB_FD_SOCKET)
		die(6);
	sys3(__NR_close_range, 0, MOTE_STUB_FD_MAILBOX - 1, 0);
	sys3(__NR_close_range, MOTE_STUB_FD_MAILBOX + 1, MOTE_STUB_FD_SOCKET - 1, 0);
	sys3(__NR_close_range, MOTE_STUB_FD_SOCKET + 1, ~0u, 0);
	/* Defence in depth where unprivileged user namespaces are allowed:
	 * no user, IPC, host name or cgroup view shared with the host. (No
	 * network namespace: it costs ~0.4 ms, and no socket can be made.) */
	if (sys3(__NR_unshare, CLONE_NEWUSER, 0, 0) == 0 &&
	    sys3(__NR_unshare, CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP, 0, 0) == 0)
		mb->features |= MOTE_STUB_HAVE_NAMESPACES;
	open_uffd();
	if (auxv_get(sp, AT_HWCAP2) & HWCAP2_FSGSBASE) {
		mote_stub_have_fsgsbase = 1;
		mb->features |= MOTE_STUB_HAVE_FSGSBASE;
	}
	if (sys3(__NR_arch_prctl, ARCH_SET_CPUID, 0, 0) == 0) {
		cpuid_faulting = true;
		mb->features |= MOTE_STUB_HAVE_CPUID_FAULT;
	}
	install_signals();
	struct rlimit no_core = {0, 0};
	sys3(__NR_setrlimit, RLIMIT_CORE, &no_core, 0);
	r = sys3(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0);
	if (r)
		setup_failed("PR_SET_NO_NEW_PRIVS", r);
	/* ... and the seccomp filter, whose compilation costs ~20 us. */
	install_filter();

	/* A spare waits here until a sandbox needs it. It spins for a while
	 * first: the host makes spares when sandboxes are freed, and the
	 * next start often follows (a sleeping one takes 30-50 us to wake
	 * inside a VM). Told a setup is coming, it spins rather than sleeps. */
	spare_ready();
	seen_to_stub = 0;
	uint32_t cmd = 0;
	for (int spin = MOTE_STUB_SPARE_SPIN; cmd != MOTE_STUB_CMD_SETUP;) {
		for (;;) {
			if (__atomic_load_n(&mb->to_stub, __ATOMIC_ACQUIRE) != seen_to_stub)
				break;
			if (spin > 0) {
				spin_round(--spin);
				continue;
			}
			__atomic_store_n(&mb->stub_sleeping, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&mb->to_stub, __ATOMIC_SEQ_CST) != seen_to_stub)
				break;
			sys6(__NR_futex, (long)&mb->to_stub, FUTEX_WAIT, seen_to_stub, 0, 0, 0);
		}
		__atomic_store_n(&mb->stub_sleeping, 0, __ATOMIC_RELAXED);
		seen_to_stub = __atomic_load_n(&mb->to_stub, __ATOMIC_ACQUIRE);
		cmd = __atomic_load_n(&mb->cmd, __ATOMIC_ACQUIRE);
		if (cmd == MOTE_STUB_CMD_PREPARE)
			spin = 100000;
		else if (cmd != MOTE_STUB_CMD_SETUP)
			die(5);
	}
	set_up_sandbox();
	mb->exit_entry = (uint64_t)mote_stub_exit;
	report(MOTE_STUB_READY);
	finish_setup();
	if (mote_stub_drop_setup((unsigned long)mote_stub_setup_start,
	                         (unsigned long)(mote_stub_setup_end - mote_stub_setup_start)))
		die(8);
	setup_mapped = false;
	wait_for_host(MOTE_STUB_READY);
	fix_fpu_area(mb->cpu.fxsave);
	mote_stub_enter_guest();
}
