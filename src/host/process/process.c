/* The process backend: guest code runs in a child process of its own, the
 * stub (stub.c), whose address space holds guest memory at guest addresses
 * and nothing of the host. The host talks to it through the mailbox
 * (stub.h) and reads and writes its memory with process_vm_readv/writev;
 * the guest's writes are tracked by the kernel (userfaultfd write
 * protection, read back with PAGEMAP_SCAN). docs/architecture.md,
 * "The process backend", has the threat model.
 *
 * Guest memory here: the child maps the pieces the core built sb->mem from
 * (an image memfd or anonymous zeros, then file pieces) privately, with the
 * guest's page permissions, so pages it never writes stay shared in the
 * page cache. Only the boot-info page and the call buffers (input, output,
 * log) are shared with the host, through a memfd both map. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host/internal.h"
#include "host/process/stub.h"

/* The stub program, embedded (mk/60-process.mk). */
__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl mote_stub_elf\n"
        ".hidden mote_stub_elf\n"
        "mote_stub_elf:\n"
        ".incbin \"" MOTE_STUB_ELF "\"\n"
        ".globl mote_stub_elf_end\n"
        ".hidden mote_stub_elf_end\n"
        "mote_stub_elf_end:\n"
        ".previous\n");
extern const unsigned char mote_stub_elf[], mote_stub_elf_end[];

/* PAGEMAP_SCAN (Linux 6.7; Debian 12's headers predate it). */
struct pm_page_region {
	uint64_t start, end, categories;
};
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN          _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN       (1 << 1)
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

#define MAX_TRACKED 8
/* Most pages a sandbox leaves unprotected because every call writes them
 * (write_back). */
#define HOT_MAX 16

/* Lazily opened heap memory (see open_chunks): the unit it opens, and the
 * most one fault opens (a fault opens as much as is open already, up to
 * this: a heap that grows by 256 MiB costs 9 faults, not 128, and scans
 * walk at most about twice what the guest touched). */
#define LAZY_CHUNK    (2ull << 20)
#define LAZY_GROW_MAX (32ull << 20)

struct lazy_run {
	uint64_t lo, hi;
};

struct proc_sandbox {
	pid_t pid;
	int pidfd;
	int pagemap_fd;
	int mailbox_fd;
	int sock; /* our end of the socket that carries mapped files */
	struct mote_mailbox *mb;
	size_t mb_size;
	int shared_fd; /* boot-info page + call buffers */
	uint8_t *shared;
	uint64_t shared_size;
	uint32_t seen_to_host;
	bool dead;
	int exit_code, exit_status;    /* waitid's si_code and si_status */
	volatile sig_atomic_t waiting; /* the host waits for a report */
	volatile sig_atomic_t kicked;
	clockid_t cpu_clock;              /* the child's CPU time */
	uint64_t cpu_at_report;           /* its value when the last report came */
	uint64_t tracked[MAX_TRACKED][2]; /* guest RAM whose writes are tracked */
	unsigned ntracked;
	uint32_t tracked_shared; /* bit i: tracked[i] is the shared window */
	/* The heap's anonymous memory, opened for write tracking a chunk at a
	 * time as the guest first touches it (open_chunks). */
	int uffd;              /* the stub's userfaultfd; -1: not lazy */
	struct lazy_run *lazy; /* anonymous runs of the heap, by address */
	size_t nlazy;
	uint64_t *opened; /* bit c: chunk c (LAZY_CHUNK bytes) is open */
	uint64_t nopened; /* chunks open */
	/* Without PAGEMAP_SCAN (Linux before 6.7): soft-dirty bits. */
	bool soft_dirty;
	int clear_refs_fd;
	bool scanned;      /* no guest code ran since the last scan */
	uint64_t *pending; /* written pages seen by a scan, not yet reported */
	uint64_t *pending_summary;
	uint64_t *seen_summary; /* of sb->dirty_log, the pages a host write's scan saw */
	/* The two ways a restore puts pages back (proc_reset): what each
	 * cost lately, per page plus a fixed share, and how often each ran. */
	uint64_t put_cost[2];
	unsigned put_runs[2], restores;
	/* Restores that write pages back leave the pages every call writes
	 * unprotected (write_back): the pages the last two wrote back, and
	 * those the last one left unprotected. */
	struct page_list {
		uint64_t *page; /* ascending */
		size_t n, cap;
	} written_back[3]; /* [2]: scratch */
	uint64_t hot[HOT_MAX];
	unsigned nhot;
	uint8_t *hot_buf; /* HOT_MAX pages, to compare */
	/* Reports in a row that came from the host's own CPU, how many make
	 * the host move the stub, and the moves made (keep_apart). */
	unsigned together, apart_after, moves;
};

static struct proc_sandbox *ps(struct mote_sandbox *sb)
{
	return sb->be_data;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The stub program and the spawner thread ----
 * PR_SET_PDEATHSIG fires when the thread that spawned the child exits, not
 * the process, so children are spawned by one library thread that lives as
 * long as the process, with every signal blocked. */
static int stub_fd = -1;
static char stub_init_error[256];
static pthread_once_t stub_once = PTHREAD_ONCE_INIT;

/* Spare stubs: started ahead of need by the spawner thread, each waiting
 * for its setup, so a sandbox start does not wait for posix_spawn and exec
 * (most of a process start). When they are made matters as much: a spawn
 * running beside a start takes the CPU the new stub needs (on these 2-CPU
 * VMs the stub's setup waited ~200 us behind it), and waking a process on
 * an idle CPU inside a VM costs tens of microseconds. So the pool is
 * refilled when a sandbox is freed, and the free waits for it; only a
 * start that takes the last spare has the spawner refill in the
 * background, so that a burst of starts without frees keeps going. */
#define SPARES 2

/* A spare comes with its mailbox mapped and the memfd of its shared
 * window made: neither then costs a start anything. (Its page map is still
 * opened by the start: opened at spawn, the soft-dirty path failed its
 * restore tests on Linux 6.1; the cause is not known.) */
struct spare {
	pid_t pid;
	int pidfd, mailbox_fd, sock, shared_fd;
	int uffd;                /* the stub's userfaultfd, -1 if the kernel lacks it */
	struct mote_mailbox *mb; /* MOTE_STUB_MAILBOX_SPARE bytes */
};

static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawn_cond = PTHREAD_COND_INITIALIZER;
static struct spare spares[SPARES];
static int nspares;
static int spawn_errno; /* the spawner's last failure, 0 after a success */
static unsigned spare_waiters;
static bool refill;             /* fill the pool up to SPARES */
static unsigned spawn_attempts; /* spawns tried so far */

static int spawn_spare(struct spare *sp);

static void *spawner(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&spawn_lock);
	for (;;) {
		while (nspares == SPARES || !(refill || spare_waiters) ||
		       (spawn_errno && !spare_waiters))
			pthread_cond_wait(&spawn_cond, &spawn_lock);
		pthread_mutex_unlock(&spawn_lock);
		struct spare sp;
		int e = spawn_spare(&sp);
		pthread_mutex_lock(&spawn_lock);
		spawn_errno = e;
		spawn_attempts++;
		if (!e && (spares[nspares++] = sp, nspares == SPARES))
			refill = false;
		pthread_cond_broadcast(&spawn_cond);
	}
	return NULL;
}

/* Fill the pool and wait until it is full (or the spawner fails, or a
 * second passes: a free never hangs on it). */
static void refill_spares(void)
{
	if (stub_fd < 0)
		return; /* the spawner never started */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&spawn_lock);
	if (nspares < SPARES) {
		refill = true;
		pthread_cond_broadcast(&spawn_cond);
	}
	while (nspares < SPARES && !spawn_errno &&
	       pthread_cond_timedwait(&spawn_cond, &spawn_lock, &until) == 0)
		;
	pthread_mutex_unlock(&spawn_lock);
}

void mote__backend_quiesce(void)
{
	refill_spares();
}

static bool duplicate_setup_wake;

void mote__process_duplicate_setup_wake(bool on)
{
	__atomic_store_n(&duplicate_setup_wake, on, __ATOMIC_RELAXED);
}

static bool eager_heap;

void mote__process_eager_heap(bool on)
{
	__atomic_store_n(&eager_heap, on, __ATOMIC_RELAXED);
}

int mote__process_pid(const mote_sandbox *sb)
{
	return sb->be == &mote_process_backend ? ((struct proc_sandbox *)sb->be_data)->pid : -1;
}

unsigned mote__process_moves(const mote_sandbox *sb)
{
	return sb->be == &mote_process_backend ? ((struct proc_sandbox *)sb->be_data)->moves : 0;
}

static int forced_way = -1;

void mote__process_force_restore_way(int way)
{
	__atomic_store_n(&forced_way, way, __ATOMIC_RELAXED);
}

unsigned mote__process_hot_pages(const mote_sandbox *sb)
{
	return sb->be == &mote_process_backend ? ((struct proc_sandbox *)sb->be_data)->nhot : 0;
}

unsigned mote__process_restores(const mote_sandbox *sb, int way)
{
	return sb->be == &mote_process_backend ? ((struct proc_sandbox *)sb->be_data)->put_runs[way]
	                                       : 0;
}

/* A ready stub for a new sandbox, waiting for the spawner if the pool is
 * empty (and for at least one fresh attempt if the last one failed). 0 or
 * an errno. */
static int take_spare(struct spare *out)
{
	pthread_mutex_lock(&spawn_lock);
	int e = 0;
	if (!nspares) {
		unsigned attempt = spawn_attempts;
		spare_waiters++;
		pthread_cond_broadcast(&spawn_cond);
		while (!nspares && !(spawn_attempts != attempt && (e = spawn_errno)))
			pthread_cond_wait(&spawn_cond, &spawn_lock);
		spare_waiters--;
	}
	if (!e) {
		*out = spares[--nspares];
		if (!nspares) {
			refill = true;
			pthread_cond_broadcast(&spawn_cond);
		}
	}
	pthread_mutex_unlock(&spawn_lock);
	return e;
}

static void stub_init_once(void)
{
	size_t len = (size_t)(mote_stub_elf_end - mote_stub_elf);
	/* MFD_EXEC (0x10): newer kernels warn or refuse exec without it. */
	int fd = memfd_create("mote-stub", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x10u);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("mote-stub", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(stub_init_error, sizeof(stub_init_error), "memfd_create: %s",
		         strerror(errno));
		return;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, mote_stub_elf + done, len - done);
		if (n <= 0) {
			snprintf(stub_init_error, sizeof(stub_init_error),
			         "cannot write the stub program: %s", strerror(errno));
			close(fd);
			return;
		}
		done += (size_t)n;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	stub_fd = fd; /* before the spawner starts: it uses it at once */
	refill = true;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* Stubs may run where the process's main thread may (taskset
	 * applies), not only where the thread that started the first sandbox
	 * is pinned: a server with a worker pinned to each CPU would put
	 * every stub on one. */
	pthread_attr_t attr;
	cpu_set_t cpus;
	pthread_attr_init(&attr);
	if (!sched_getaffinity(getpid(), sizeof(cpus), &cpus))
		pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	pthread_t t;
	int rc = pthread_create(&t, &attr, spawner, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(stub_init_error, sizeof(stub_init_error),
		         "cannot start the spawner thread: %s", strerror(rc));
		stub_fd = -1;
		close(fd);
		return;
	}
	pthread_detach(t);
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *timeout);

/* Until the new stub has done what it does as a spare (its filter is the
 * longest part), or failed, or died, or a second has passed: a start that
 * takes it then finds it spinning, ready at once, rather than ~70 us from
 * it. Whatever happened, the start that takes it finds out. */
static void wait_spare_ready(const struct spare *sp)
{
	for (int i = 0; i < 100 && !__atomic_load_n(&sp->mb->spare_ready, __ATOMIC_ACQUIRE); i++) {
		struct timespec tick = {0, 10 * 1000 * 1000};
		futex(&sp->mb->spare_ready, FUTEX_WAIT, 0, &tick);
		siginfo_t si = {0};
		if (waitid((idtype_t)P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG | WNOWAIT) ||
		    si.si_pid)
			break; /* gone */
	}
}

/* On the spawner thread: a stub with its mailbox and socket, waiting for
 * its setup. 0 or an errno. */
static int spawn_spare(struct spare *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->pidfd = sp->mailbox_fd = sp->sock = sp->shared_fd = sp->uffd = -1;
	int pair[2] = {-1, -1}, high[3] = {-1, -1, -1}, e = 0;
	sp->mailbox_fd = memfd_create("mote-mailbox", MFD_CLOEXEC);
	sp->shared_fd = memfd_create("mote-shared", MFD_CLOEXEC);
	if (sp->mailbox_fd < 0 || sp->shared_fd < 0 ||
	    ftruncate(sp->mailbox_fd, MOTE_STUB_MAILBOX_SPARE) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		goto fail;
	sp->mb = mmap(NULL, MOTE_STUB_MAILBOX_SPARE, PROT_READ | PROT_WRITE, MAP_SHARED,
	              sp->mailbox_fd, 0);
	if (sp->mb == MAP_FAILED) {
		sp->mb = NULL;
		goto fail;
	}
	sp->mb->host_pid = (uint32_t)getpid();
	sp->sock = pair[0];
	/* Out of the way first: a dup2 to 3 must not close a source at 3. */
	int srcs[3] = {sp->mailbox_fd, pair[1], stub_fd};
	for (int i = 0; i < 3; i++)
		if ((high[i] = fcntl(srcs[i], F_DUPFD_CLOEXEC, 256)) < 0)
			goto fail;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, high[0], MOTE_STUB_FD_MAILBOX);
	posix_spawn_file_actions_adddup2(&fa, high[1], MOTE_STUB_FD_SPAWN_SOCKET);
	posix_spawn_file_actions_adddup2(&fa, high[2], MOTE_STUB_FD_SPAWN_EXE);
	posix_spawn_file_actions_addclosefrom_np(&fa, MOTE_STUB_FD_SPAWN_EXE + 1);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", MOTE_STUB_FD_SPAWN_EXE);
	char *argv[] = {"mote-stub", NULL}, *envp[] = {NULL};
	e = posix_spawn(&sp->pid, path, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (e)
		goto out;
	sp->pidfd = (int)syscall(SYS_pidfd_open, sp->pid, 0);
	if (sp->pidfd < 0) {
		e = errno;
		kill(sp->pid, SIGKILL);
		waitpid(sp->pid, NULL, __WALL);
	} else {
		wait_spare_ready(sp);
		/* A copy of the stub's userfaultfd, with which the host opens
		 * heap memory later (a failure only makes the heap eager). */
		if (__atomic_load_n(&sp->mb->spare_ready, __ATOMIC_ACQUIRE))
			sp->uffd = (int)syscall(SYS_pidfd_getfd, sp->pidfd, MOTE_STUB_FD_UFFD, 0);
	}
	goto out;
fail:
	e = errno ? errno : EIO;
out:
	for (int i = 0; i < 3; i++)
		if (high[i] >= 0)
			close(high[i]);
	if (pair[1] >= 0)
		close(pair[1]);
	if (e) {
		if (sp->mb)
			munmap(sp->mb, MOTE_STUB_MAILBOX_SPARE);
		if (sp->mailbox_fd >= 0)
			close(sp->mailbox_fd);
		if (sp->shared_fd >= 0)
			close(sp->shared_fd);
		if (pair[0] >= 0)
			close(pair[0]);
	}
	return e;
}

/* The CPUID answers the stub gives (cpuid.c decides what a guest sees),
 * asked once per process: CPUID is slow inside a VM. */
static struct mote_stub_cpuid cpuid_table[MOTE_STUB_MAX_CPUID];
static uint32_t cpuid_count;
static pthread_once_t cpuid_once = PTHREAD_ONCE_INIT;

static uint32_t fill_cpuid(struct mote_stub_cpuid *out, uint32_t max);
static void cpuid_init(void)
{
	cpuid_count = fill_cpuid(cpuid_table, MOTE_STUB_MAX_CPUID);
}

static uint32_t guest_cpuid(struct mote_stub_cpuid *out, uint32_t max)
{
	pthread_once(&cpuid_once, cpuid_init);
	uint32_t n = cpuid_count < max ? cpuid_count : max;
	memcpy(out, cpuid_table, n * sizeof(*out));
	return n;
}

static uint32_t fill_cpuid(struct mote_stub_cpuid *out, uint32_t max)
{
	static const uint32_t leaves[] = {0,          0x80000000, 0x80000001, 0x80000002,
	                                  0x80000003, 0x80000004, 0x80000008};
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]) && n < max; i++) {
		uint32_t r[4];
		__cpuid_count(leaves[i], 0, r[0], r[1], r[2], r[3]);
		if (!mote_cpuid_filter(leaves[i], r))
			continue;
		out[n++] = (struct mote_stub_cpuid){leaves[i], 0xffffffffu, r[0], r[1], r[2], r[3]};
	}
	return n;
}

/* ---- Waiting for the stub ---- */
static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
}

static void wake_stub(struct proc_sandbox *p)
{
	__atomic_store_n(&p->mb->park, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->mb->to_stub, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&p->mb->stub_sleeping, __ATOMIC_SEQ_CST))
		futex(&p->mb->to_stub, FUTEX_WAKE, 1, NULL);
}

static bool child_alive(struct proc_sandbox *p)
{
	if (p->dead)
		return false;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) <
	        0 ||
	    si.si_pid != 0) {
		p->dead = true;
		p->exit_code = si.si_code;
		p->exit_status = si.si_status;
		return false;
	}
	return true;
}

static uint64_t child_cpu_ns(struct proc_sandbox *p)
{
	struct timespec ts;
	if (clock_gettime(p->cpu_clock, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Round `i` of a spin-wait: a pause, and every 16th round sched_yield,
 * since the stub often runs on this very CPU (waking an idle vCPU costs
 * tens of microseconds inside a VM, so the scheduler keeps both here). */
static void spin_round(int i)
{
	if (i % 16 == 15)
		sched_yield();
	else
		__builtin_ia32_pause();
}

/* Host and stub on one CPU hand every report over through a switch of
 * address spaces, which is costly inside a VM: a restore took ~42 us so
 * instead of ~19 on two vCPUs. The scheduler keeps such a pair
 * together while both keep running, so after a run of reports from this
 * very CPU the stub is moved: its affinity set without this CPU, then back
 * (a stub spinning after its report moves at once, and stays). Backs off
 * where that does not help (a stub that may use this CPU alone). */
#define APART_AFTER     4
#define APART_AFTER_MAX 65536
static void keep_apart(struct proc_sandbox *p)
{
	uint32_t stub_cpu = __atomic_load_n(&p->mb->stub_cpu, __ATOMIC_RELAXED);
	int here = sched_getcpu();
	if (here < 0 || stub_cpu != (uint32_t)here) {
		p->together = 0;
		p->apart_after = APART_AFTER;
		return;
	}
	if (++p->together < p->apart_after)
		return;
	p->together = 0;
	if (p->apart_after < APART_AFTER_MAX)
		p->apart_after *= 2;
	cpu_set_t mask, elsewhere;
	if (here >= CPU_SETSIZE || sched_getaffinity(p->pid, sizeof(mask), &mask))
		return;
	elsewhere = mask;
	CPU_CLR(here, &elsewhere);
	if (CPU_COUNT(&elsewhere) && !sched_setaffinity(p->pid, sizeof(elsewhere), &elsewhere)) {
		sched_setaffinity(p->pid, sizeof(mask), &mask);
		p->moves++;
	}
}

/* Wait for the stub's next report, spinning `spin` rounds before sleeping.
 * 1: a report; 0: the child died. */
static int wait_report_spin(struct proc_sandbox *p, int spin)
{
	uint64_t kick_at = 0;
	for (int i = 0; i < spin; i++) {
		if (__atomic_load_n(&p->mb->to_host, __ATOMIC_ACQUIRE) != p->seen_to_host)
			goto got;
		spin_round(i);
	}
	p->waiting = 1;
	for (;;) {
		__atomic_store_n(&p->mb->host_sleeping, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&p->mb->to_host, __ATOMIC_SEQ_CST) != p->seen_to_host)
			break;
		if (p->kicked && !kick_at) {
			kick_at = now_ns();
			kill(p->pid, MOTE_STUB_KICK_SIGNAL);
		}
		/* A guest that blocked the kick signal (it can, with a forged
		 * rt_sigreturn) is killed after a grace period. */
		if (kick_at && now_ns() - kick_at > 200000000u)
			kill(p->pid, SIGKILL);
		struct timespec t = {0, 20 * 1000 * 1000};
		long r = futex(&p->mb->to_host, FUTEX_WAIT, p->seen_to_host, &t);
		if (r < 0 && (errno == ETIMEDOUT || errno == EINTR) && !child_alive(p)) {
			p->waiting = 0;
			__atomic_store_n(&p->mb->host_sleeping, 0, __ATOMIC_RELAXED);
			return 0;
		}
	}
	p->waiting = 0;
	__atomic_store_n(&p->mb->host_sleeping, 0, __ATOMIC_RELAXED);
got:
	p->seen_to_host = __atomic_load_n(&p->mb->to_host, __ATOMIC_ACQUIRE);
	keep_apart(p);
	return 1;
}

static int wait_report(struct proc_sandbox *p)
{
	return wait_report_spin(p, 4000);
}

/* ---- Creation ---- */
struct setup {
	struct mote_stub_map *maps;
	size_t n, cap;
	int fds[MOTE_STUB_MAX_FDS];
	int nfds;
};

static int add_map(struct setup *s, uint64_t addr, uint64_t len, int fd, uint64_t offset,
                   uint32_t prot, bool shared)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct mote_stub_map *m = mote_realloc(s->maps, cap * sizeof(*m));
		if (!m)
			return -MOTE_ENOMEM;
		s->maps = m;
		s->cap = cap;
	}
	int idx = -1;
	if (fd >= 0) {
		for (int i = 0; i < s->nfds && idx < 0; i++)
			if (s->fds[i] == fd)
				idx = i;
		if (idx < 0) {
			if (s->nfds == MOTE_STUB_MAX_FDS)
				return -MOTE_ENOMEM;
			idx = s->nfds;
			s->fds[s->nfds++] = fd;
		}
	}
	s->maps[s->n++] = (struct mote_stub_map){addr, len, offset, idx, prot, shared, 0};
	return 0;
}

static uint32_t prot_of(uint64_t pte)
{
	if (!(pte & MOTE_PTE_PRESENT) || !(pte & MOTE_PTE_USER))
		return PROT_NONE;
	uint32_t prot = PROT_READ;
	if (pte & MOTE_PTE_WRITE)
		prot |= PROT_WRITE;
	if (!(pte & MOTE_PTE_NX))
		prot |= PROT_EXEC;
	return prot;
}

/* The guest ranges the host shares with the child through one memfd: the
 * boot-info page at its offset 0, the call buffers (input, output, log)
 * after it. */
struct window {
	uint64_t lo, hi, offset;
};

static void shared_windows(const struct mote_sandbox *sb, struct window w[2])
{
	const struct mote_layout *l = &sb->layout;
	w[0] = (struct window){MOTE_BOOTINFO_ADDR, MOTE_BOOTINFO_ADDR + MOTE_PAGE_SIZE, 0};
	w[1] = (struct window){l->in_buf, l->log_buf + l->log_size, MOTE_PAGE_SIZE};
}

/* Where the content of a guest range comes from: a piece of guest memory
 * or the shared window. */
struct source {
	uint64_t lo, hi, offset;
	int fd; /* -1: zeros */
	bool shared;
};

/* The source that holds `a`, later ones winning; NULL: zeros. */
static const struct source *source_at(const struct source *src, size_t n, uint64_t a)
{
	for (size_t i = n; i-- > 0;)
		if (src[i].lo <= a && a < src[i].hi)
			return &src[i];
	return NULL;
}

/* The first address after `a` and before `limit` where a source begins or
 * ends. */
static uint64_t next_cut(const struct source *src, size_t n, uint64_t a, uint64_t limit)
{
	for (size_t i = 0; i < n; i++) {
		if (src[i].lo > a && src[i].lo < limit)
			limit = src[i].lo;
		if (src[i].hi > a && src[i].hi < limit)
			limit = src[i].hi;
	}
	return limit;
}

/* Map [lo, hi) from `src` with `prot`, extending the previous mapping where
 * it continues it. */
static int add_range(struct setup *s, uint64_t lo, uint64_t hi, const struct source *src,
                     uint32_t prot)
{
	int fd = src ? src->fd : -1;
	uint64_t offset = fd >= 0 ? src->offset + (lo - src->lo) : 0;
	bool shared = src && src->shared;
	if (s->n) {
		struct mote_stub_map *m = &s->maps[s->n - 1];
		bool same_file =
		    m->fd < 0 ? fd < 0
		              : fd >= 0 && s->fds[m->fd] == fd && m->offset + m->len == offset;
		if (m->addr + m->len == lo && m->prot == prot && m->shared == shared && same_file) {
			m->len += hi - lo;
			return 0;
		}
	}
	return add_map(s, lo, hi - lo, fd, offset, prot, shared);
}

/* The child's address space as the stub maps it: each range the guest may
 * touch mapped with its final rights (from the page tables layout.c wrote)
 * from the source that holds it, one mmap per range, none overlapping.
 * What the guest may not touch stays unmapped: a reservation of all guest
 * memory under the ranges made each of their mmaps split it, and cost half
 * the stub's setup (35 against 19 us for a small guest's 11 ranges). The
 * stub maps without replacing anything (MAP_FIXED_NOREPLACE), and after
 * setup its filter lets no mmap land outside the file-mapping window. */
static int plan_address_space(struct mote_sandbox *sb, struct proc_sandbox *p, struct setup *s)
{
	size_t n = 0;
	struct source *src = mote_malloc((sb->npieces + 2) * sizeof(*src));
	if (!src)
		return -MOTE_ENOMEM;
	for (size_t i = 0; i < sb->npieces; i++) {
		const struct mote_mem_piece *pc = &sb->pieces[i];
		src[n++] = (struct source){pc->gpa, pc->gpa + pc->size, pc->offset, pc->fd, false};
	}
	struct window w[2];
	shared_windows(sb, w);
	for (int i = 0; i < 2; i++)
		src[n++] = (struct source){w[i].lo, w[i].hi, w[i].offset, p->shared_fd, true};
	/* Nothing lives below MOTE_SYSTEM_BASE (mmap_min_addr). */
	int rc = 0;
	uint64_t run_lo = MOTE_SYSTEM_BASE, span;
	uint32_t run_prot = prot_of(mote_layout_leaf_run(sb->mem, sb->mem_size, run_lo, &span));
	for (uint64_t a = run_lo + span; !rc; a += span) {
		uint32_t prot = a < sb->mem_size
		                    ? prot_of(mote_layout_leaf_run(sb->mem, sb->mem_size, a, &span))
		                    : ~0u;
		if (prot == run_prot)
			continue;
		if (a > sb->mem_size)
			a = sb->mem_size;
		for (uint64_t x = run_lo; !rc && run_prot != PROT_NONE && x < a;) {
			uint64_t cut = next_cut(src, n, x, a);
			rc = add_range(s, x, cut, source_at(src, n, x), run_prot);
			x = cut;
		}
		if (a >= sb->mem_size)
			break;
		run_lo = a;
		run_prot = prot;
	}
	mote_free(src);
	return rc;
}

/* Copy guest [gpa, gpa + len), now mapped from the shared memfd, from the
 * pieces with content (the rest is zeros, which a new memfd is). */
static int fill_shared(struct mote_sandbox *sb, uint64_t gpa, uint64_t len)
{
	/* From the pieces' files into the shared mapping, not through the
	 * host's old view: pages read there would be in the host's page
	 * tables when the shared mapping replaced them, and unmapping them
	 * costs a TLB flush on every CPU the host runs on (inside a VM, an
	 * interprocessor interrupt each). */
	for (size_t i = 0; i < sb->npieces; i++) {
		const struct mote_mem_piece *pc = &sb->pieces[i];
		uint64_t lo = pc->gpa > gpa ? pc->gpa : gpa;
		uint64_t hi = pc->gpa + pc->size < gpa + len ? pc->gpa + pc->size : gpa + len;
		if (pc->fd < 0 || lo >= hi)
			continue;
		for (uint64_t at = lo; at < hi;) {
			ssize_t n = pread(pc->fd, sb->mem + at, hi - at,
			                  (off_t)(pc->offset + (at - pc->gpa)));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				break; /* past the file's end: the rest stays zero */
			at += (uint64_t)n;
		}
	}
	return 0;
}

/* The boot-info page and the call buffers move to a memfd both sides map,
 * keeping their content: sized before the stub maps it, mapped and filled
 * here while the stub sets up. */
static int size_window(struct mote_sandbox *sb, struct proc_sandbox *p)
{
	struct window w[2];
	shared_windows(sb, w);
	p->shared_size = w[1].offset + (w[1].hi - w[1].lo);
	if (ftruncate(p->shared_fd, (off_t)p->shared_size) < 0)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot size the shared memory: %s",
		                         strerror(errno));
	return 0;
}

static int share_window(struct mote_sandbox *sb, struct proc_sandbox *p)
{
	struct window w[2];
	shared_windows(sb, w);
	for (int i = 0; i < 2; i++) {
		uint64_t len = w[i].hi - w[i].lo;
		if (mmap(sb->mem + w[i].lo, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		         p->shared_fd, (off_t)w[i].offset) == MAP_FAILED)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map shared memory: %s",
			                         strerror(errno));
		if (fill_shared(sb, w[i].lo, len))
			return mote_sandbox_fail(sb, -MOTE_EIO, "cannot fill shared memory: %s",
			                         strerror(errno));
	}
	return 0;
}

static bool shared_page(const struct mote_sandbox *sb, uint64_t gpa, uint64_t len)
{
	struct window w[2];
	shared_windows(sb, w);
	return (gpa >= w[0].lo && gpa + len <= w[0].hi) || (gpa >= w[1].lo && gpa + len <= w[1].hi);
}

/* Writes are tracked where the guest may write: its data segments, the
 * stack, the output and log buffers and the heap. */
static void plan_tracking(struct mote_sandbox *sb, struct proc_sandbox *p)
{
	const struct mote_layout *l = &sb->layout;
	p->ntracked = 0;
	uint64_t start = 0;
	bool in_run = false;
	/* The image's writable pages, a run at a time. */
	for (uint64_t a = MOTE_IMAGE_BASE; a <= l->image_end; a += MOTE_PAGE_SIZE) {
		bool w = a < l->image_end &&
		         (mote_layout_leaf_pte(sb->mem, sb->mem_size, a) & MOTE_PTE_WRITE);
		if (w && !in_run) {
			start = a;
			in_run = true;
		} else if (!w && in_run) {
			if (p->ntracked < MAX_TRACKED - 2)
				p->tracked[p->ntracked++][0] = start,
				p->tracked[p->ntracked - 1][1] = a;
			in_run = false;
		}
	}
	p->tracked[p->ntracked][0] = l->stack_base;
	p->tracked[p->ntracked++][1] = l->in_buf;
	p->tracked_shared = 1u << p->ntracked;
	p->tracked[p->ntracked][0] = l->out_buf;
	p->tracked[p->ntracked++][1] = l->log_buf + l->log_size;
	if (l->heap_base < l->mem_size) {
		p->tracked[p->ntracked][0] = l->heap_base;
		p->tracked[p->ntracked++][1] = l->mem_size;
	}
}

static bool in_lazy_heap(const struct mote_layout *l, const struct mote_stub_map *m)
{
	return mote_stub_map_is_lazy(m) && m->addr + m->len > l->heap_base;
}

/* The heap's anonymous memory (the guest's fresh pages) is opened
 * lazily: registered for missing pages only, it costs the host's scans
 * nothing until the guest touches it, and the kernel cannot let the guest
 * populate a page there without a SIGBUS that reports it (the filter leaves
 * no system call that changes the registration). So a scan, and a restore,
 * costs what the guest touched, not what it could: the kernel's page-table
 * walk over untouched memory was most of what a restore's cost grew by
 * with guest memory (~25 ns per 2 MiB, ~3 us at 256 MiB). Soft-dirty bits,
 * and a stub whose userfaultfd the host could not get, track the whole
 * heap from the start. */
static int plan_lazy(struct mote_sandbox *sb, struct proc_sandbox *p, const struct setup *s)
{
	const struct mote_layout *l = &sb->layout;
	if (p->soft_dirty || p->uffd < 0 || __atomic_load_n(&eager_heap, __ATOMIC_RELAXED) ||
	    l->heap_base >= l->mem_size || p->tracked[p->ntracked - 1][0] != l->heap_base)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += in_lazy_heap(l, &s->maps[i]);
	if (!n)
		return 0;
	size_t words = (l->mem_size / LAZY_CHUNK + 64) / 64;
	p->lazy = mote_malloc(n * sizeof(*p->lazy));
	p->opened = mote_calloc(words, sizeof(uint64_t));
	if (!p->lazy || !p->opened)
		return -MOTE_ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		const struct mote_stub_map *m = &s->maps[i];
		if (in_lazy_heap(l, m))
			p->lazy[p->nlazy++] = (struct lazy_run){
			    m->addr > l->heap_base ? m->addr : l->heap_base, m->addr + m->len};
	}
	return 0;
}

/* The first lazy run that ends after `a`. */
static size_t lazy_run_after(const struct proc_sandbox *p, uint64_t a)
{
	size_t lo = 0, hi = p->nlazy;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->lazy[mid].hi <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Is guest page `gpa` lazy memory the guest has not touched? */
static bool unopened(const struct proc_sandbox *p, uint64_t gpa)
{
	if (!p->lazy)
		return false;
	size_t i = lazy_run_after(p, gpa);
	if (i == p->nlazy || p->lazy[i].lo > gpa)
		return false; /* (runs lie in guest memory, which the bitmap covers) */
	return !(p->opened[gpa / LAZY_CHUNK / 64] & (1ull << (gpa / LAZY_CHUNK % 64)));
}

/* Open the chunks of lazy memory in [lo, hi) for write tracking: the
 * guest touched them (or the host is about to write there). */
static int open_chunks(struct mote_sandbox *sb, struct proc_sandbox *p, uint64_t lo, uint64_t hi)
{
	if (hi > sb->layout.mem_size)
		hi = sb->layout.mem_size;
	if (!p->lazy || hi <= lo)
		return 0;
	for (uint64_t c = lo / LAZY_CHUNK; c <= (hi - 1) / LAZY_CHUNK; c++) {
		uint64_t *word = &p->opened[c / 64], bit = 1ull << (c % 64);
		if (*word & bit)
			continue;
		uint64_t clo = c * LAZY_CHUNK, chi = clo + LAZY_CHUNK;
		for (size_t i = lazy_run_after(p, clo); i < p->nlazy && p->lazy[i].lo < chi; i++) {
			uint64_t a = p->lazy[i].lo > clo ? p->lazy[i].lo : clo;
			uint64_t b = p->lazy[i].hi < chi ? p->lazy[i].hi : chi;
			/* Over a missing-page registration, this one replaces it. */
			struct uffdio_register reg = {.range = {.start = a, .len = b - a},
			                              .mode = UFFDIO_REGISTER_MODE_WP};
			if (ioctl(p->uffd, UFFDIO_REGISTER, &reg))
				return mote_sandbox_fail(
				    sb, -MOTE_EBACKEND,
				    "cannot track writes to guest memory at 0x%llx: "
				    "UFFDIO_REGISTER: %s",
				    (unsigned long long)a, strerror(errno));
		}
		*word |= bit;
		p->nopened++;
	}
	return 0;
}

static int fail_setup(struct mote_sandbox *sb, struct proc_sandbox *p)
{
	char detail[sizeof(p->mb->detail)];
	memcpy(detail, p->mb->detail, sizeof(detail));
	detail[sizeof(detail) - 1] = 0;
	int err = (int)p->mb->error_code;
	if (strstr(detail, "userfaultfd") || strstr(detail, "UFFDIO"))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "process backend: %s failed: %s (tracking guest writes "
		                         "this way needs Linux 6.7 or later; "
		                         "MOTE_PROCESS_TRACKING=soft-dirty uses soft-dirty bits)",
		                         detail, strerror(err));
	if (strstr(detail, "seccomp") || strstr(detail, "NO_NEW_PRIVS"))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "process backend: %s failed: %s (seccomp unavailable?)",
		                         detail, strerror(err));
	return mote_sandbox_fail(sb, -MOTE_EBACKEND, "process backend: stub setup: %s: %s", detail,
	                         strerror(err));
}

/* Send `n` descriptors in one message on the socket. */
static int send_fds(int sock, const int *fds, int n)
{
	char byte = 0;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * MOTE_STUB_MAX_FDS)];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = ctl.buf,
	                     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int clear_soft_dirty(struct mote_sandbox *sb, struct proc_sandbox *p);

static int proc_create(struct mote_sandbox *sb, uint64_t core_end)
{
	(void)core_end;
	pthread_once(&stub_once, stub_init_once);
	if (stub_fd < 0)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "process backend: %s",
		                         stub_init_error);
	struct proc_sandbox *p = mote_calloc(1, sizeof(*p));
	if (!p)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	p->pidfd = p->pagemap_fd = p->mailbox_fd = p->shared_fd = p->sock = p->uffd = -1;
	p->clear_refs_fd = -1;
	p->apart_after = APART_AFTER;
	sb->be_data = p;
	p->soft_dirty = mote_process_tracking() == MOTE_TRACK_SOFT_DIRTY;
	p->pending = mote_calloc(sb->bitmap_words + 2 * sb->summary_words, sizeof(uint64_t));
	if (!p->pending)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	p->pending_summary = p->pending + sb->bitmap_words;
	p->seen_summary = p->pending_summary + sb->summary_words;
	/* Take a spare and tell it a setup is coming: waking a sleeping
	 * process costs up to tens of microseconds inside a VM, which then
	 * overlaps the work below. */
	struct spare sp;
	int e = take_spare(&sp);
	if (e)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "process backend: cannot start the stub process: %s",
		                         strerror(e));
	p->pid = sp.pid;
	p->pidfd = sp.pidfd;
	p->mailbox_fd = sp.mailbox_fd;
	p->sock = sp.sock;
	p->shared_fd = sp.shared_fd;
	p->uffd = sp.uffd;
	p->mb = sp.mb;
	p->mb_size = MOTE_STUB_MAILBOX_SPARE;
	p->mb->cmd = MOTE_STUB_CMD_PREPARE;
	__atomic_add_fetch(&p->mb->to_stub, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&p->mb->stub_sleeping, __ATOMIC_SEQ_CST))
		futex(&p->mb->to_stub, FUTEX_WAKE, 1, NULL);
	int rc = size_window(sb, p);
	if (rc)
		return rc;

	struct setup s = {0};
	rc = plan_address_space(sb, p, &s);
	if (rc) {
		mote_free(s.maps);
		return mote_sandbox_fail(sb, rc, "out of memory");
	}

	size_t need = MOTE_STUB_MAILBOX_HEADER + s.n * sizeof(struct mote_stub_map);
	need = (need + MOTE_PAGE_SIZE - 1) & ~(size_t)(MOTE_PAGE_SIZE - 1);
	if (need > p->mb_size) {
		struct mote_mailbox *bigger = MAP_FAILED;
		if (ftruncate(p->mailbox_fd, (off_t)need) == 0)
			bigger =
			    mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, p->mailbox_fd, 0);
		if (bigger == MAP_FAILED) {
			mote_free(s.maps);
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot size the mailbox: %s",
			                         strerror(errno));
		}
		munmap(p->mb, p->mb_size);
		p->mb = bigger;
		p->mb_size = need;
	}
	struct mote_mailbox *mb = p->mb;
	mb->size = p->mb_size;
	mb->maps_offset = MOTE_STUB_MAILBOX_HEADER;
	mb->nmaps = (uint32_t)s.n;
	memcpy((uint8_t *)mb + MOTE_STUB_MAILBOX_HEADER, s.maps, s.n * sizeof(s.maps[0]));
	plan_tracking(sb, p);
	rc = plan_lazy(sb, p, &s);
	mote_free(s.maps);
	if (rc)
		return mote_sandbox_fail(sb, rc, "out of memory");
	mb->flags = MOTE_STUB_WANT_CPUID_FAULT | (p->soft_dirty ? 0 : MOTE_STUB_WANT_UFFD_WP);
	mb->ntracked = p->ntracked;
	mb->tracked_shared = p->tracked_shared;
	mb->tracked_lazy = p->lazy ? 1u << (p->ntracked - 1) : 0;
	memcpy(mb->tracked, p->tracked, sizeof(mb->tracked));
	mb->ncpuid = guest_cpuid(mb->cpuid, MOTE_STUB_MAX_CPUID);
	mb->prefault[0] = MOTE_IMAGE_BASE;
	mb->prefault[1] = sb->layout.image_end;
	mb->nfds = (uint32_t)s.nfds;
	if (s.nfds && send_fds(p->sock, s.fds, s.nfds))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot send guest memory: %s",
		                         strerror(errno));
	mb->cmd = MOTE_STUB_CMD_SETUP;
	wake_stub(p);
	p->seen_to_host = 0;
	rc = share_window(sb, p);
	if (rc)
		return rc;
	/* The stub's setup takes ~30 us: worth spinning through. */
	if (!wait_report_spin(p, 40000))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "process backend: the stub process died during setup "
		                         "(status %d)",
		                         p->exit_status);
	if (mb->report == MOTE_STUB_SETUP_FAILED)
		return fail_setup(sb, p);
	if (mb->report != MOTE_STUB_READY) {
		/* A stub that ran the guest (a repeated SETUP did: see stub.c):
		 * say where. */
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "process backend: unexpected report %u during setup "
		                         "(vector %u, address 0x%llx, rip 0x%llx, reports %u)",
		                         mb->report, mb->vector, (unsigned long long)mb->addr,
		                         (unsigned long long)mb->cpu.rip, mb->to_host);
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)p->pid);
	p->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->pagemap_fd < 0)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot open %s: %s", path,
		                         strerror(errno));
	if (p->soft_dirty) {
		snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)p->pid);
		p->clear_refs_fd = open(path, O_WRONLY | O_CLOEXEC);
		if (p->clear_refs_fd < 0)
			return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot open %s: %s", path,
			                         strerror(errno));
		rc = clear_soft_dirty(sb, p);
		if (rc)
			return rc;
	}
	if (__atomic_load_n(&duplicate_setup_wake, __ATOMIC_RELAXED)) {
		/* `cmd` is still SETUP. Wait until the stub either takes it for
		 * a new command (and reports what the guest did) or waits on. */
		uint32_t reports = __atomic_load_n(&mb->to_host, __ATOMIC_ACQUIRE);
		wake_stub(p);
		for (int i = 0;
		     i < 1000000 && __atomic_load_n(&mb->to_host, __ATOMIC_ACQUIRE) == reports &&
		     !__atomic_load_n(&mb->stub_sleeping, __ATOMIC_ACQUIRE);
		     i++)
			spin_round(i);
	}
	/* From here the stub's word is guest-controlled: remember what setup
	 * said now. */
	sb->exit_entry = mb->exit_entry;
	if (clock_getcpuclockid(p->pid, &p->cpu_clock))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "clock_getcpuclockid: %s",
		                         strerror(errno));
	p->cpu_at_report = child_cpu_ns(p);
	return 0;
}

static void proc_destroy(struct mote_sandbox *sb)
{
	struct proc_sandbox *p = ps(sb);
	if (!p)
		return;
	if (p->pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | __WALL);
		close(p->pidfd);
	}
	if (p->pagemap_fd >= 0)
		close(p->pagemap_fd);
	if (p->clear_refs_fd >= 0)
		close(p->clear_refs_fd);
	if (p->uffd >= 0)
		close(p->uffd);
	mote_free(p->lazy);
	mote_free(p->opened);
	mote_free(p->pending);
	for (int i = 0; i < 3; i++)
		mote_free(p->written_back[i].page);
	mote_free(p->hot_buf);
	if (p->mb)
		munmap(p->mb, p->mb_size);
	if (p->mailbox_fd >= 0)
		close(p->mailbox_fd);
	if (p->shared_fd >= 0)
		close(p->shared_fd);
	if (p->sock >= 0)
		close(p->sock);
	mote_free(p);
	sb->be_data = NULL;
	refill_spares();
}

/* ---- Running ---- */
/* The guest can write the mailbox: it can post a report and run on. A
 * parked stub uses no CPU, so time spent since the last report means the
 * report was forged; the guest is stopped for good. */
#define PARKED_CPU_SLACK_NS 5000000u

/* The stub's scheduler state from /proc/PID/stat: 'S' when it sleeps. */
static char stub_state(const struct proc_sandbox *p)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Did the guest run on after its last report? Some clocks are coarse (a
 * VM without a stable TSC charges CPU time in whole ticks) or step back,
 * so past the slack the stub must also be awake: a parked one goes to
 * sleep within its spin, a forging guest never does. */
static bool ran_on_after_report(struct proc_sandbox *p)
{
	uint64_t cpu = p->dead ? 0 : child_cpu_ns(p);
	if (cpu <= p->cpu_at_report || cpu - p->cpu_at_report <= PARKED_CPU_SLACK_NS)
		return false;
	for (int i = 0; i < 50; i++) {
		if (stub_state(p) == 'S') {
			p->cpu_at_report = child_cpu_ns(p);
			return false;
		}
		usleep(1000);
	}
	return true;
}

static int proc_run(struct mote_sandbox *sb, struct mote_event *ev)
{
	struct proc_sandbox *p = ps(sb);
again:
	memset(ev, 0, sizeof(*ev));
	if (ran_on_after_report(p)) {
		kill(p->pid, SIGKILL);
		child_alive(p);
		p->dead = true;
		ev->kind = MOTE_EVENT_UNEXPECTED;
		snprintf(ev->detail, sizeof(ev->detail),
		         "the guest ran on after reporting to the host (a forged report)");
		return 0;
	}
	if (p->kicked) {
		ev->kind = MOTE_EVENT_INTERRUPTED;
		return 0;
	}
	if (p->dead)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "the sandbox's process is gone (status %d)",
		                         p->exit_status);
	p->mb->cmd = MOTE_STUB_CMD_RUN;
	p->scanned = false;
	wake_stub(p);
	if (!wait_report(p)) {
		if (p->kicked) {
			ev->kind = MOTE_EVENT_INTERRUPTED;
			return 0;
		}
		ev->kind = MOTE_EVENT_UNEXPECTED;
		snprintf(ev->detail, sizeof(ev->detail), "the guest's process died (%s %d)",
		         p->exit_code == CLD_EXITED ? "exit status" : "signal", p->exit_status);
		return 0;
	}
	p->cpu_at_report = child_cpu_ns(p);
	/* Copied once: the guest can change the mailbox under us. */
	struct mote_mailbox r;
	memcpy(&r, p->mb, offsetof(struct mote_mailbox, exit_entry));
	ev->rip = r.cpu.rip;
	ev->rsp = r.cpu.gpr[4];
	ev->rflags = r.cpu.rflags & MOTE_RFLAGS_GUEST;
	switch (r.report) {
	case MOTE_STUB_EXIT:
		ev->kind = MOTE_EVENT_EXIT;
		ev->port = (uint16_t)r.port;
		/* KVM's exception stubs exit to these ports: a guest that uses
		 * them itself is reported alike. */
		if (r.port >= MOTE_PORT_EXC_BASE && r.port < MOTE_PORT_EXC_BASE + 32) {
			ev->kind = MOTE_EVENT_EXCEPTION;
			ev->vector = (uint8_t)(r.port - MOTE_PORT_EXC_BASE);
		}
		return 0;
	case MOTE_STUB_IN:
		ev->kind = MOTE_EVENT_UNEXPECTED;
		snprintf(ev->detail, sizeof(ev->detail), "IN from port 0x%x", r.port & 0xffff);
		return 0;
	case MOTE_STUB_INTERRUPTED:
		ev->kind = MOTE_EVENT_INTERRUPTED;
		return 0;
	case MOTE_STUB_FAULT:
		/* The guest's first touch of lazy memory: open its chunk and
		 * run the instruction again (a fault there once it is open is
		 * the guest's). */
		if (r.vector == 14 && unopened(p, r.addr & ~(uint64_t)(MOTE_PAGE_SIZE - 1))) {
			uint64_t lo = r.addr & ~(LAZY_CHUNK - 1), grow = p->nopened * LAZY_CHUNK;
			grow = grow < LAZY_CHUNK      ? LAZY_CHUNK
			       : grow > LAZY_GROW_MAX ? LAZY_GROW_MAX
			                              : grow;
			int rc = open_chunks(sb, p, lo, lo + grow);
			if (rc)
				return rc;
			goto again;
		}
		ev->kind = MOTE_EVENT_EXCEPTION;
		ev->vector = (uint8_t)(r.vector < 32 ? r.vector : 31);
		ev->error_code = r.error_code;
		ev->has_error_code =
		    ev->vector == 8 || (ev->vector >= 10 && ev->vector <= 14) || ev->vector == 17;
		ev->addr = r.addr;
		ev->write = (r.error_code & 2) != 0;
		/* Where KVM's page tables map a page but no memory backs it
		 * (the file-mapping window), KVM sees an MMIO access. */
		if (ev->vector == 14 && r.addr >= MOTE_MAP_BASE && r.addr < MOTE_MAP_LIMIT &&
		    !(r.error_code & 0x10))
			ev->kind = MOTE_EVENT_NO_MEMORY;
		return 0;
	default:
		ev->kind = MOTE_EVENT_UNEXPECTED;
		snprintf(ev->detail, sizeof(ev->detail), "stub report %u", r.report);
		return 0;
	}
}

static void proc_kick(struct mote_sandbox *sb)
{
	struct proc_sandbox *p = ps(sb);
	if (!p)
		return;
	p->kicked = 1;
	if (p->waiting && p->pid > 0)
		kill(p->pid, MOTE_STUB_KICK_SIGNAL);
}

static void proc_clear_kick(struct mote_sandbox *sb)
{
	ps(sb)->kicked = 0;
}

/* The stub's state is always "exit completed". */
static int proc_settle(struct mote_sandbox *sb)
{
	(void)sb;
	return 0;
}

static int proc_get_state(struct mote_sandbox *sb, struct mote_cpu_state *st)
{
	*st = ps(sb)->mb->cpu;
	st->rflags &= MOTE_RFLAGS_GUEST;
	return 0;
}

static int proc_set_state(struct mote_sandbox *sb, const struct mote_cpu_state *st)
{
	ps(sb)->mb->cpu = *st;
	return 0;
}

/* ---- Memory ---- */
/* PAGE_IS_* (Linux 6.7). */
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_FILE    (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)

/* What a scanned range holds, which decides what a written page is. */
enum range_kind {
	RANGE_SHARED, /* the shared window: any page without write protection */
	RANGE_FILE,   /* private, mapped from a file: an anonymous page that is
	               * not the zero page (one only read stays the file's) */
	RANGE_ZEROS,  /* private, anonymous zeros: any page that is not the zero
	               * page (a read maps that); no file-or-anonymous test */
};

/* The pages of [lo, hi) written since the last scan, which protects them
 * again unless `rearm` is false (a restore writes them all back, and its
 * writes protect them: one round of protection, and of the TLB flush that
 * goes with it, instead of two). Pages not in memory at all (never
 * touched) are skipped without a walk of their page tables, which do not
 * exist; every present one is visited. The file-or-anonymous test costs a
 * page lookup per present entry (half the scan's time in a profile), so it
 * is asked only where the range is a file's: restores leave the heap pages
 * they zeroed present, in anonymous memory. */
static int scan_range(struct mote_sandbox *sb, struct proc_sandbox *p, uint64_t lo, uint64_t hi,
                      enum range_kind kind, bool rearm, uint64_t *bitmap, uint64_t *summary)
{
	uint32_t not_these = kind == RANGE_FILE    ? PAGE_IS_FILE | PAGE_IS_PFNZERO
	                     : kind == RANGE_ZEROS ? PAGE_IS_PFNZERO
	                                           : 0;
	/* Anonymous memory may be lazy memory the guest never touched,
	 * registered for missing pages only: not write-tracked, so the scan
	 * skips it whole instead of walking its page tables. (Nothing else is
	 * ever untracked, which the other kinds still check.) */
	uint64_t tracked_only = kind == RANGE_ZEROS ? PAGE_IS_WPALLOWED : 0;
	uint64_t check = kind == RANGE_ZEROS && p->lazy ? 0 : PM_SCAN_CHECK_WPASYNC;
	struct pm_page_region v[256];
	uint64_t start = lo;
	while (start < hi) {
		struct pm_scan_arg a = {
		    .size = sizeof(a),
		    .flags = rearm ? PM_SCAN_WP_MATCHING | check : 0,
		    .start = start,
		    .end = hi,
		    .vec = (uint64_t)(uintptr_t)v,
		    .vec_len = sizeof(v) / sizeof(v[0]),
		    .category_inverted = not_these,
		    .category_mask = PAGE_IS_WRITTEN | tracked_only | not_these,
		    .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		    .return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(p->pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0)
			return mote_sandbox_fail(sb, -MOTE_EBACKEND, "PAGEMAP_SCAN: %s",
			                         strerror(errno));
		for (long i = 0; i < n; i++) {
			uint64_t s = v[i].start, e = v[i].end;
			if (s < lo || e > hi || s >= e)
				continue;
			mote_bitmap_set_noted(bitmap, summary, s / MOTE_PAGE_SIZE,
			                      (e - s) / MOTE_PAGE_SIZE);
		}
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return 0;
}

/* ---- Soft-dirty bits (kernels before 6.7) ----
 * Every page's pagemap entry is read, so a scan costs time in proportion
 * to the size of guest memory, not to the pages written; clearing the bits
 * (clear_refs) write-protects the whole process again. */
#define PM_SOFT_DIRTY (1ull << 55)
#define PM_FILE       (1ull << 61)
#define PM_SWAPPED    (1ull << 62)
#define PM_PRESENT    (1ull << 63)

static int clear_soft_dirty(struct mote_sandbox *sb, struct proc_sandbox *p)
{
	if (pwrite(p->clear_refs_fd, "4", 1, 0) != 1)
		return mote_sandbox_fail(
		    sb, -MOTE_EBACKEND,
		    "cannot clear the soft-dirty bits of the guest's process: %s", strerror(errno));
	return 0;
}

/* As scan_range: in private memory a written page is one the guest made
 * its own (anonymous, not the zero page, which is never soft-dirty). */
static int scan_soft_dirty(struct mote_sandbox *sb, struct proc_sandbox *p, uint64_t lo,
                           uint64_t hi, bool shared, uint64_t *bitmap, uint64_t *summary)
{
	uint64_t entries[1024];
	for (uint64_t page = lo / MOTE_PAGE_SIZE, end = hi / MOTE_PAGE_SIZE; page < end;) {
		uint64_t want = end - page < 1024 ? end - page : 1024;
		ssize_t n = pread(p->pagemap_fd, entries, want * sizeof(uint64_t),
		                  (off_t)(page * sizeof(uint64_t)));
		if (n <= 0 || n % sizeof(uint64_t))
			return mote_sandbox_fail(sb, -MOTE_EBACKEND,
			                         "cannot read the guest's page map: %s",
			                         strerror(n < 0 ? errno : EIO));
		for (uint64_t i = 0; i < (uint64_t)n / sizeof(uint64_t); i++) {
			uint64_t e = entries[i];
			if (!(e & PM_SOFT_DIRTY))
				continue;
			bool written =
			    shared ? (e & (PM_PRESENT | PM_SWAPPED)) != 0
			           : (e & PM_SWAPPED) || ((e & PM_PRESENT) && !(e & PM_FILE));
			if (written)
				mote_bitmap_set_noted(bitmap, summary, page + i, 1);
		}
		page += (uint64_t)n / sizeof(uint64_t);
	}
	return 0;
}

/* Whether guest [a, ...) is a file's, and where that may change. */
static bool file_at(const struct mote_sandbox *sb, uint64_t a, uint64_t *next)
{
	const struct mote_mem_piece *winner = NULL;
	for (size_t i = 0; i < sb->npieces; i++) {
		const struct mote_mem_piece *pc = &sb->pieces[i];
		uint64_t end = pc->gpa + pc->size;
		if (pc->gpa <= a && a < end)
			winner = pc; /* later pieces lie over earlier ones */
		if (pc->gpa > a && pc->gpa < *next)
			*next = pc->gpa;
		if (end > a && end < *next)
			*next = end;
	}
	return winner && winner->fd >= 0;
}

/* A private range, scanned a run of file or anonymous memory at a time. */
static int scan_private(struct mote_sandbox *sb, struct proc_sandbox *p, uint64_t lo, uint64_t hi,
                        bool rearm, uint64_t *bitmap, uint64_t *summary)
{
	for (uint64_t a = lo; a < hi;) {
		uint64_t end = hi;
		bool file = file_at(sb, a, &end);
		for (uint64_t b = end; b < hi; b = end) {
			end = hi;
			if (file_at(sb, b, &end) != file) {
				end = b;
				break;
			}
		}
		int rc = scan_range(sb, p, a, end, file ? RANGE_FILE : RANGE_ZEROS, rearm, bitmap,
		                    summary);
		if (rc)
			return rc;
		a = end;
	}
	return 0;
}

/* Every tracked page written since the last scan into `bitmap` (and its
 * words into `summary`, if any); with `rearm`, the marks cleared too. */
static int scan_all(struct mote_sandbox *sb, struct proc_sandbox *p, bool rearm, uint64_t *bitmap,
                    uint64_t *summary)
{
	for (unsigned i = 0; i < p->ntracked; i++) {
		uint64_t lo = p->tracked[i][0], hi = p->tracked[i][1];
		bool shared = p->tracked_shared & (1u << i);
		int rc = p->soft_dirty ? scan_soft_dirty(sb, p, lo, hi, shared, bitmap, summary)
		         : shared ? scan_range(sb, p, lo, hi, RANGE_SHARED, rearm, bitmap, summary)
		                  : scan_private(sb, p, lo, hi, rearm, bitmap, summary);
		if (rc)
			return rc;
	}
	/* Soft-dirty bits are cleared all at once; without `rearm` the
	 * caller's writes clear them (proc_write). */
	return p->soft_dirty && rearm ? clear_soft_dirty(sb, p) : 0;
}

/* Before changing the stub's page tables (write protection, writes): a
 * stub still spinning after its report keeps its address space live on its
 * CPU, and every TLB flush then interrupts that CPU. Asked to park, it
 * stops spinning and sleeps; the wait for that is bounded, and not waiting
 * long enough costs only time. */
static void park_stub(struct proc_sandbox *p)
{
	if (p->dead || __atomic_load_n(&p->mb->stub_sleeping, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&p->mb->park, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 4000 && !__atomic_load_n(&p->mb->stub_sleeping, __ATOMIC_ACQUIRE); i++)
		spin_round(i);
}

/* The words of `from` that its summary notes, ORed into `to` (noted in
 * `to_summary`); `from` and its summary are left all zeros. */
static void move_noted(uint64_t *to, uint64_t *to_summary, uint64_t *from, uint64_t *from_summary,
                       size_t summary_words)
{
	for (size_t w = 0; mote_summary_next(from_summary, summary_words, &w); w++) {
		if (from[w]) {
			to[w] |= from[w];
			from[w] = 0;
			if (to_summary)
				mote_summary_note(to_summary, w);
		}
	}
	memset(from_summary, 0, summary_words * sizeof(uint64_t));
}

static int proc_dirty_pages(struct mote_sandbox *sb, uint64_t *bitmap, bool written_back,
                            uint64_t *summary)
{
	struct proc_sandbox *p = ps(sb);
	if (p->dead)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "the sandbox's process is gone");
	/* Only a scan that protects pages again changes the page tables. */
	if (!written_back || p->soft_dirty)
		park_stub(p);
	int rc = scan_all(sb, p, !written_back, bitmap, summary);
	if (rc)
		return rc;
	move_noted(bitmap, summary, p->pending, p->pending_summary, sb->summary_words);
	if (p->soft_dirty)
		p->scanned = true;
	return 0;
}

static bool tracked_page(const struct proc_sandbox *p, uint64_t gpa)
{
	for (unsigned i = 0; i < p->ntracked; i++)
		if (gpa >= p->tracked[i][0] && gpa < p->tracked[i][1])
			return true;
	return false;
}

/* Where a page of guest memory lives: the shared window is the host's own
 * mapping; what the guest can write is in the child; what it cannot write
 * is in the child exactly as in the host's view of the same pieces. */
enum where { IN_CHILD, SHARED, HOST_VIEW, UNOPENED };

static enum where where_is(struct mote_sandbox *sb, uint64_t gpa)
{
	if (tracked_page(ps(sb), gpa))
		return unopened(ps(sb), gpa) ? UNOPENED : IN_CHILD;
	return shared_page(sb, gpa, 1) ? SHARED : HOST_VIEW;
}

static int copy_run(struct mote_sandbox *sb, enum where w, uint64_t gpa, uint8_t *buf, uint64_t len,
                    bool write)
{
	static const uint8_t zero_page[4096];
	if (w == UNOPENED) {
		/* Reads only (writes open it first): zeros, never touched. */
		if (buf)
			memset(buf, 0, len);
		return 0;
	}
	if (w == SHARED || (w == HOST_VIEW && !write)) {
		if (!write)
			memcpy(buf, sb->mem + gpa, len);
		else if (buf)
			memcpy(sb->mem + gpa, buf, len);
		else
			memset(sb->mem + gpa, 0, len);
		return 0;
	}
	if (w == HOST_VIEW) {
		/* Unchanged is fine; other content needs a new process. */
		for (uint64_t o = 0; o < len; o += MOTE_PAGE_SIZE)
			if (memcmp(sb->mem + gpa + o, buf ? buf + o : zero_page, MOTE_PAGE_SIZE))
				return mote_sandbox_fail(
				    sb, -MOTE_ENOTSUP,
				    "cannot change guest page 0x%llx, which the "
				    "guest cannot write, in a running process",
				    (unsigned long long)(gpa + o));
		return 0;
	}
	for (uint64_t done = 0; done < len;) {
		uint64_t chunk = len - done;
		const void *src = buf ? buf + done : zero_page;
		if (!buf && chunk > sizeof(zero_page))
			chunk = sizeof(zero_page);
		struct iovec local = {(void *)src, chunk};
		struct iovec remote = {(void *)(uintptr_t)(gpa + done), chunk};
		ssize_t r = write ? process_vm_writev(ps(sb)->pid, &local, 1, &remote, 1, 0)
		                  : process_vm_readv(ps(sb)->pid, &local, 1, &remote, 1, 0);
		if (r <= 0)
			return mote_sandbox_fail(
			    sb, -MOTE_EBACKEND, "cannot %s guest memory at 0x%llx: %s",
			    write ? "write" : "read", (unsigned long long)(gpa + done),
			    strerror(r < 0 ? errno : EIO));
		done += (uint64_t)r;
	}
	return 0;
}

/* Runs in the child go to the kernel in batches: one process_vm_readv or
 * process_vm_writev for up to BATCH of them (each call costs a permission
 * check and a page-table walk setup, ~10 us here). */
#define BATCH 256

struct vm_batch {
	struct iovec local[BATCH], remote[BATCH];
	int n;
	uint64_t bytes;
};

static int flush_batch(struct mote_sandbox *sb, struct vm_batch *b, bool write)
{
	if (!b->n)
		return 0;
	ssize_t r = write ? process_vm_writev(ps(sb)->pid, b->local, (unsigned long)b->n, b->remote,
	                                      (unsigned long)b->n, 0)
	                  : process_vm_readv(ps(sb)->pid, b->local, (unsigned long)b->n, b->remote,
	                                     (unsigned long)b->n, 0);
	int rc = 0;
	if (r != (ssize_t)b->bytes) {
		/* Partial: redo run by run, to name the address that fails. */
		for (int i = 0; !rc && i < b->n; i++)
			rc = copy_run(sb, IN_CHILD, (uint64_t)(uintptr_t)b->remote[i].iov_base,
			              b->local[i].iov_base, b->local[i].iov_len, write);
	}
	b->n = 0;
	b->bytes = 0;
	return rc;
}

static int vm_copy(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n, bool write)
{
	static uint8_t zero_page[4096];
	struct vm_batch *b = mote_malloc(sizeof(*b));
	if (!b)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	b->n = 0;
	b->bytes = 0;
	int rc = 0;
	/* Lazy memory the host writes must be tracked like the guest's. */
	for (size_t i = 0; !rc && write && i < n; i++)
		rc = open_chunks(sb, ps(sb), v[i].gpa, v[i].gpa + v[i].len);
	for (size_t i = 0; !rc && i < n; i++) {
		uint64_t gpa = v[i].gpa, end = v[i].gpa + v[i].len;
		uint8_t *buf = v[i].buf;
		while (!rc && gpa < end) {
			/* A run of pages that live in the same place. */
			enum where w = where_is(sb, gpa);
			uint64_t run = (gpa | (MOTE_PAGE_SIZE - 1)) + 1;
			while (run < end && where_is(sb, run) == w && (buf || run - gpa < 4096))
				run += MOTE_PAGE_SIZE;
			if (run > end)
				run = end;
			uint8_t *src = buf ? buf + (gpa - v[i].gpa) : NULL;
			if (w == IN_CHILD) {
				if (b->n == BATCH)
					rc = flush_batch(sb, b, write);
				b->local[b->n] = (struct iovec){src ? src : zero_page, run - gpa};
				b->remote[b->n] = (struct iovec){(void *)(uintptr_t)gpa, run - gpa};
				b->n++;
				b->bytes += run - gpa;
			} else {
				rc = copy_run(sb, w, gpa, src, run - gpa, write);
			}
			gpa = run;
		}
	}
	if (!rc)
		rc = flush_batch(sb, b, write);
	mote_free(b);
	return rc;
}

static int proc_read(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	return vm_copy(sb, v, n, false);
}

/* Through /proc/PID/mem, which may write pages the child maps read-only
 * (as ptrace does): the child gets a private copy of each page written. */
static int proc_poke(struct mote_sandbox *sb, uint64_t gpa, const void *buf, size_t len)
{
	int rc = open_chunks(sb, ps(sb), gpa, gpa + len);
	if (rc)
		return rc;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)ps(sb)->pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot open %s: %s", path,
		                         strerror(errno));
	ssize_t n = pwrite(fd, buf, len, (off_t)gpa);
	int e = errno;
	close(fd);
	if (n != (ssize_t)len)
		return mote_sandbox_fail(
		    sb, -MOTE_EBACKEND, "cannot write guest memory at 0x%llx: %s",
		    (unsigned long long)gpa, n < 0 ? strerror(e) : "short write");
	return 0;
}

#define CLUSTER_GAP (64 * 1024)

static bool in_page_list(const struct page_list *l, uint64_t page)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->page[mid] == page)
			return true;
		if (l->page[mid] < page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool is_hot(const struct proc_sandbox *p, uint64_t page)
{
	for (unsigned i = 0; i < p->nhot; i++)
		if (p->hot[i] == page)
			return true;
	return false;
}

/* Guest RAM whose writes are tracked in the child's private memory. */
static bool private_tracked(const struct proc_sandbox *p, uint64_t gpa)
{
	for (unsigned i = 0; i < p->ntracked; i++)
		if (!(p->tracked_shared & (1u << i)) && gpa >= p->tracked[i][0] &&
		    gpa < p->tracked[i][1])
			return true;
	return false;
}

/* The pages of `v` a restore that writes them back leaves unprotected:
 * the stack's and the runtime's pages that every call writes again, whose
 * protection would cost a TLB flush and a fault a page each call for
 * nothing. A page joins when the last two such restores wrote it back too
 * and stays while its content keeps differing from what is written back
 * (compared first: an unprotected page is reported at every scan, written
 * or not). At most HOT_MAX pages. Updates the history; 0 or an error. */
static int choose_hot(struct mote_sandbox *sb, struct proc_sandbox *p,
                      const struct mote_mem_copy *v, size_t n, uint64_t *hot, unsigned *nhot)
{
	static const uint8_t zero_page[MOTE_PAGE_SIZE];
	struct page_list *cur = &p->written_back[2];
	struct mote_mem_copy reads[HOT_MAX];
	const uint8_t *want[HOT_MAX];
	size_t nreads = 0;
	*nhot = 0;
	cur->n = 0;
	if (!p->hot_buf && !(p->hot_buf = mote_malloc(HOT_MAX * MOTE_PAGE_SIZE)))
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		for (uint64_t a = v[i].gpa; a < v[i].gpa + v[i].len; a += MOTE_PAGE_SIZE) {
			uint64_t page = a / MOTE_PAGE_SIZE;
			if (cur->n == cur->cap) {
				size_t cap = cur->cap ? cur->cap * 2 : 64;
				uint64_t *grown = mote_realloc(cur->page, cap * sizeof(uint64_t));
				if (!grown)
					return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
				cur->page = grown;
				cur->cap = cap;
			}
			cur->page[cur->n++] = page;
			if (!private_tracked(p, a))
				continue;
			const uint8_t *src = v[i].buf ? v[i].buf + (a - v[i].gpa) : zero_page;
			if (is_hot(p, page)) {
				reads[nreads] = (struct mote_mem_copy){
				    a, p->hot_buf + nreads * MOTE_PAGE_SIZE, MOTE_PAGE_SIZE};
				want[nreads++] = src;
			} else if (*nhot + nreads < HOT_MAX &&
			           in_page_list(&p->written_back[0], page) &&
			           in_page_list(&p->written_back[1], page)) {
				hot[(*nhot)++] = page;
			}
		}
	}
	struct page_list oldest = p->written_back[1];
	p->written_back[1] = p->written_back[0];
	p->written_back[0] = *cur;
	*cur = oldest;
	int rc = nreads ? vm_copy(sb, reads, nreads, false) : 0;
	for (size_t r = 0; !rc && r < nreads; r++)
		if (memcmp(reads[r].buf, want[r], MOTE_PAGE_SIZE) && *nhot < HOT_MAX)
			hot[(*nhot)++] = reads[r].gpa / MOTE_PAGE_SIZE;
	return rc;
}

/* The host's own writes into the child (restores, a debugger's) count as
 * written pages too; protect them again at once, or every later scan would
 * report them and every restore copy them once more. A restore leaves the
 * pages every call writes unprotected (choose_hot); the shared window
 * stays unprotected, as drop_pages leaves it. */
static int write_back(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n,
                      bool restore)
{
	struct proc_sandbox *p = ps(sb);
	park_stub(p);
	if (p->soft_dirty) {
		/* Clearing the bits is all or nothing: keep what the guest
		 * wrote since the last scan first. */
		int rc = p->scanned ? 0 : scan_all(sb, p, false, p->pending, p->pending_summary);
		if (!rc)
			p->scanned = true;
		if (!rc)
			rc = vm_copy(sb, v, n, true);
		return rc ? rc : clear_soft_dirty(sb, p);
	}
	uint64_t hot[HOT_MAX];
	unsigned nhot = 0;
	int rc = restore ? choose_hot(sb, p, v, n, hot, &nhot) : 0;
	if (!rc)
		rc = vm_copy(sb, v, n, true);
	if (rc)
		return rc;
	memcpy(p->hot, hot, sizeof(hot));
	p->nhot = nhot;
	/* Protected a cluster of nearby runs at a time: one scan over the
	 * hull of runs far apart (a heap's first and last pages) would walk
	 * every page in memory between them. Hot pages split runs. What the
	 * scans see goes to `seen` (all zeros between host writes). */
	uint64_t *seen = sb->dirty_log;
	for (unsigned t = 0; !rc && t < p->ntracked; t++) {
		if (p->tracked_shared & (1u << t))
			continue;
		uint64_t lo = 0, hi = 0, tlo = p->tracked[t][0], thi = p->tracked[t][1];
		for (size_t i = 0; !rc && i <= n; i++) {
			uint64_t s0 = i < n ? v[i].gpa & ~(MOTE_PAGE_SIZE - 1) : 0;
			uint64_t end = i < n ? v[i].gpa + v[i].len : 0;
			s0 = s0 < tlo ? tlo : s0;
			end = end > thi ? thi : end;
			/* Each piece of the run between hot pages, then (i == n)
			 * the last cluster. */
			while (!rc && (s0 < end || i == n)) {
				uint64_t e0 = end;
				if (i < n) {
					while (s0 < end && is_hot(p, s0 / MOTE_PAGE_SIZE))
						s0 += MOTE_PAGE_SIZE;
					for (e0 = s0; e0 < end && !is_hot(p, e0 / MOTE_PAGE_SIZE);)
						e0 += MOTE_PAGE_SIZE;
					e0 = e0 > end ? end : e0;
					if (s0 >= e0)
						break;
					if (hi && s0 >= lo && s0 <= hi + CLUSTER_GAP) {
						hi = e0 > hi ? e0 : hi;
						s0 = e0;
						continue;
					}
				}
				if (hi)
					rc = scan_private(sb, p, lo, hi, true, seen,
					                  p->seen_summary);
				lo = s0;
				hi = e0;
				s0 = e0;
				if (i == n)
					break;
			}
		}
	}
	/* What the guest wrote beside these runs, and no scan reported yet,
	 * the next scan reports. */
	for (size_t i = 0; i < n; i++) {
		uint64_t first = v[i].gpa / MOTE_PAGE_SIZE;
		uint64_t last = (v[i].gpa + v[i].len - 1) / MOTE_PAGE_SIZE;
		if (v[i].len)
			mote_bitmap_clear_range(seen, first, last - first + 1);
	}
	move_noted(p->pending, p->pending_summary, seen, p->seen_summary, sb->summary_words);
	return rc;
}

static int proc_write(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	return write_back(sb, v, n, false);
}

/* The stub drops `n` ranges of guest memory (mailbox, after the header). */
static int reset_command(struct mote_sandbox *sb, struct proc_sandbox *p, uint32_t n)
{
	p->mb->nresets = n;
	p->mb->cmd = MOTE_STUB_CMD_RESET;
	p->scanned = false;
	wake_stub(p);
	if (!wait_report(p))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "cannot restore: the sandbox's process died");
	p->cpu_at_report = child_cpu_ns(p);
	uint32_t report = p->mb->report;
	long err = (long)p->mb->error_code;
	if (report != MOTE_STUB_RESET_DONE)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot restore: unexpected report %u",
		                         report);
	if (err)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot restore: madvise: %s",
		                         strerror(err < 0 && err > -4096 ? (int)-err : EIO));
	return 0;
}

/* Drop the pages the guest made its own, in the stub, so that they read
 * from the snapshot's file again (zeros where it stored none). Nothing is
 * written into the child and nothing protected again from outside: no TLB
 * flush interrupts the CPU the stub last ran on, and the stub need not be
 * parked. Dropped pages count as written only once written again. The
 * shared window's content the host writes itself, and leaves its pages
 * unprotected: they are reported at every restore from then on, a few
 * pages of call buffers that a memcpy puts back for less than an madvise
 * would drop them (~2.5 us each). */
static int drop_pages(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	struct proc_sandbox *p = ps(sb);
	if (p->dead)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "the sandbox's process is gone");
	struct window shared[2];
	shared_windows(sb, shared);
	struct mote_stub_range *r =
	    (struct mote_stub_range *)((uint8_t *)p->mb + MOTE_STUB_MAILBOX_HEADER);
	size_t cap = (p->mb_size - MOTE_STUB_MAILBOX_HEADER) / sizeof(*r), k = 0;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t lo = v[i].gpa, hi = v[i].gpa + v[i].len;
		while (lo < hi && !rc) {
			/* The next piece that is all shared or all private. */
			uint64_t end = hi;
			int in = -1;
			for (int w = 0; w < 2; w++) {
				if (lo >= shared[w].lo && lo < shared[w].hi)
					in = w;
				else if (shared[w].lo > lo && shared[w].lo < end)
					end = shared[w].lo;
			}
			if (in >= 0) {
				end = end < shared[in].hi ? end : shared[in].hi;
				const uint8_t *src = v[i].buf;
				if (src)
					memcpy(sb->mem + lo, src + (lo - v[i].gpa), end - lo);
				else
					memset(sb->mem + lo, 0, end - lo);
			} else if (k && r[k - 1].addr + r[k - 1].len == lo) {
				r[k - 1].len += end - lo;
			} else {
				if (k == cap) {
					rc = reset_command(sb, p, (uint32_t)k);
					k = 0;
				}
				r[k++] = (struct mote_stub_range){lo, end - lo};
			}
			lo = end;
		}
	}
	return rc || !k ? rc : reset_command(sb, p, (uint32_t)k);
}

/* A restore where what backs guest memory holds the content wanted
 * (backend.h) puts pages back one of two ways: the stub drops them
 * (drop_pages) or the host writes them and protects them again while the
 * stub sleeps (proc_write). Which costs less depends on the machine, by
 * several times either way: where the VM has hardware nested paging, a
 * drop is a few microseconds a page and the host's protection a TLB flush
 * that interrupts the stub's CPU (tens of microseconds); where the VM's
 * own page tables are shadowed by its hypervisor, every change the stub
 * makes to its page tables while the host's thread runs on the other vCPU
 * costs ~20 us a page, and changes made from outside while the stub
 * sleeps ~1 us (docs/architecture.md). So each sandbox measures both: its
 * first restores alternate, then it takes the cheaper, and tries the
 * other again every PUT_PROBE_EVERY restores. A cost is per page restored
 * plus PUT_FIXED_PAGES, so restores of different sizes compare. */
enum { PUT_DROP, PUT_WRITE };
#define PUT_CALIBRATE   4
#define PUT_PROBE_EVERY 64
#define PUT_FIXED_PAGES 8

static int put_way(struct proc_sandbox *p)
{
	unsigned r = p->restores++;
	int forced = __atomic_load_n(&forced_way, __ATOMIC_RELAXED);
	if (forced >= 0)
		return forced;
	if (r < PUT_CALIBRATE)
		return r % 2 ? PUT_WRITE : PUT_DROP;
	int cheaper = p->put_cost[PUT_WRITE] < p->put_cost[PUT_DROP] ? PUT_WRITE : PUT_DROP;
	return r % PUT_PROBE_EVERY == 0 ? !cheaper : cheaper;
}

static void note_put_cost(struct proc_sandbox *p, int way, uint64_t ns, uint64_t pages)
{
	uint64_t cost = ns / (pages + PUT_FIXED_PAGES);
	/* A moving average (weight 1/4), the first sample taken whole. */
	p->put_cost[way] =
	    p->put_runs[way]++ ? p->put_cost[way] - p->put_cost[way] / 4 + cost / 4 : cost;
}

static int proc_reset(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n)
{
	struct proc_sandbox *p = ps(sb);
	if (p->soft_dirty)
		return proc_write(sb, v, n); /* its tracking is cleared all at once */
	uint64_t pages = 0;
	for (size_t i = 0; i < n; i++)
		pages += (v[i].len + MOTE_PAGE_SIZE - 1) / MOTE_PAGE_SIZE;
	int way = put_way(p);
	uint64_t t0 = now_ns();
	int rc = way == PUT_WRITE ? write_back(sb, v, n, true) : drop_pages(sb, v, n);
	if (!rc)
		note_put_cost(p, way, now_ns() - t0, pages);
	return rc;
}

/* Map and unmap commands, run by the stub while it is parked. */
static int map_command(struct mote_sandbox *sb, uint32_t cmd, const struct mote_stub_map *m,
                       const char *what)
{
	struct proc_sandbox *p = ps(sb);
	if (p->dead)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "cannot %s: the sandbox's process is gone", what);
	p->mb->map = *m;
	p->mb->cmd = cmd;
	wake_stub(p);
	if (!wait_report(p))
		return mote_sandbox_fail(sb, -MOTE_EBACKEND,
		                         "cannot %s: the sandbox's process died", what);
	p->cpu_at_report = child_cpu_ns(p);
	uint32_t report = p->mb->report;
	long err = (long)p->mb->error_code;
	if (report != MOTE_STUB_MAPPED)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot %s: unexpected report %u",
		                         what, report);
	if (err)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot %s: %s", what,
		                         strerror(err < 0 && err > -4096 ? (int)-err : EIO));
	return 0;
}

/* The child maps the file itself (zero copy, from the page cache): its
 * descriptor goes over the socket. Read-only mappings are shared and
 * read-only; copy-on-write ones private. */
static int proc_map(struct mote_sandbox *sb, struct mote_file_map *m, int fd)
{
	struct proc_sandbox *p = ps(sb);
	char byte = 0;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = ctl.buf,
	                     .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(p->sock, &msg, MSG_NOSIGNAL) != 1)
		return mote_sandbox_fail(sb, -MOTE_EBACKEND, "cannot map %s: sendmsg: %s", m->path,
		                         strerror(errno));
	bool cow = m->flags & MOTE_MAP_COPY_ON_WRITE;
	struct mote_stub_map sm = {
	    m->gpa, m->size, m->offset, 0, cow ? PROT_READ | PROT_WRITE : PROT_READ, !cow, 0};
	char what[64];
	snprintf(what, sizeof(what), "map a file at 0x%llx", (unsigned long long)m->gpa);
	int rc = map_command(sb, MOTE_STUB_CMD_MAP, &sm, what);
	if (!rc)
		m->slot = 0;
	return rc;
}

static void proc_unmap(struct mote_sandbox *sb, struct mote_file_map *m)
{
	struct mote_stub_map sm = {m->gpa, m->size, 0, -1, 0, 0, 0};
	if (!ps(sb)->dead)
		map_command(sb, MOTE_STUB_CMD_UNMAP, &sm, "unmap a file");
	m->slot = -1;
}

/* Dead, or running when it should be parked (a forged report): either way
 * only starting over helps. */
static bool proc_lost(struct mote_sandbox *sb)
{
	struct proc_sandbox *p = ps(sb);
	if (!p)
		return true;
	if (ran_on_after_report(p)) {
		kill(p->pid, SIGKILL);
		p->dead = true;
	}
	return !child_alive(p);
}

const struct mote_backend_ops mote_process_backend = {
    .name = "process",
    .file_id = 2,
    .create = proc_create,
    .destroy = proc_destroy,
    .run = proc_run,
    .kick = proc_kick,
    .clear_kick = proc_clear_kick,
    .settle = proc_settle,
    .get_state = proc_get_state,
    .set_state = proc_set_state,
    .dirty_pages = proc_dirty_pages,
    .read = proc_read,
    .write = proc_write,
    .reset = proc_reset,
    .poke = proc_poke,
    .map = proc_map,
    .unmap = proc_unmap,
    .lost = proc_lost,
};
