/* Picking a backend: by name, by the environment, by what this machine can
 * run; and saying why one cannot run, with the fix. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/internal.h"
#include "host/kvm/kvm.h"
#include "host/process/stub.h"

const char *mote_backend_name(mote_backend backend)
{
	switch (backend) {
	case MOTE_BACKEND_AUTO:
		return "auto";
	case MOTE_BACKEND_KVM:
		return "kvm";
	case MOTE_BACKEND_PROCESS:
		return "process";
	}
	return "unknown";
}

int mote_backend_parse(const char *name, mote_backend *out)
{
	static const mote_backend all[] = {MOTE_BACKEND_AUTO, MOTE_BACKEND_KVM,
	                                   MOTE_BACKEND_PROCESS};
	if (!name || !out)
		return mote_fail(-MOTE_EINVAL, "mote_backend_parse: no %s", !name ? "name" : "out");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(name, mote_backend_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return mote_fail(-MOTE_EINVAL, "'%.64s' is not a backend (auto, kvm or process)", name);
}

static int check_kvm(char *err, size_t errlen)
{
	char why[256];
	if (!mote_kvm_init(why, sizeof(why)))
		return 0;
	int e = access("/dev/kvm", F_OK) ? ENOENT : EACCES;
	if (e == ENOENT)
		mote_errf(err, errlen,
		          "the KVM backend needs /dev/kvm, and this machine has none (%s): no "
		          "hardware virtualisation, or it is not exposed to this VM; the process "
		          "backend runs without it",
		          why);
	else
		mote_errf(
		    err, errlen,
		    "the KVM backend cannot use /dev/kvm (%s): if permission is denied, join "
		    "the group that owns it (`sudo usermod -aG kvm $USER`, then log in again)",
		    why);
	return -MOTE_EBACKEND;
}

/* How the process backend tracks the pages a guest writes. Linux 6.7 and
 * later: asynchronous userfaultfd write protection, read back with
 * PAGEMAP_SCAN, at a cost proportional to the pages in memory. Before that
 * (Debian 12's 6.1): soft-dirty bits, read from /proc/PID/pagemap, at a cost
 * proportional to the size of guest memory. */
struct pm_scan_probe {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PROBE_PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_probe)

/* What this kernel offers does not change: asked once per process. */
static int process_rc;
static enum mote_write_tracking process_tracking;
static char process_why[512];
static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static int probe_process(char *err, size_t errlen);
static void probe_process_once(void)
{
	process_rc = probe_process(process_why, sizeof(process_why));
}

static int check_process(char *err, size_t errlen)
{
	pthread_once(&process_once, probe_process_once);
	if (process_rc)
		mote_errf(err, errlen, "%s", process_why);
	return process_rc;
}

enum mote_write_tracking mote_process_tracking(void)
{
	pthread_once(&process_once, probe_process_once);
	return process_rc ? MOTE_TRACK_NONE : process_tracking;
}

const char *mote_write_tracking_name(enum mote_write_tracking t)
{
	switch (t) {
	case MOTE_TRACK_USERFAULTFD:
		return "userfaultfd";
	case MOTE_TRACK_SOFT_DIRTY:
		return "soft-dirty";
	case MOTE_TRACK_NONE:
		break;
	}
	return "none";
}

/* Asynchronous write protection and PAGEMAP_SCAN. 0 or why not. */
static const char *probe_userfaultfd(int pagemap)
{
	static char why[160];
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0) {
		int e = errno;
		snprintf(why, sizeof(why), "userfaultfd: %s%s", strerror(e),
		         e == ENOSYS || e == EPERM ? " (blocked by a container's seccomp profile, "
		                                     "or no CONFIG_USERFAULTFD)"
		                                   : "");
		return why;
	}
	struct uffdio_api api = {.api = UFFD_API,
	                         .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	int r = ioctl(uffd, UFFDIO_API, &api);
	close(uffd);
	if (r)
		return "no asynchronous userfaultfd write protection (Linux 6.7)";
	struct pm_scan_probe a = {.size = sizeof(a), .start = 0x10000, .end = 0x10000};
	if (ioctl(pagemap, PROBE_PAGEMAP_SCAN, &a) < 0 && (errno == ENOTTY || errno == EINVAL))
		return "no PAGEMAP_SCAN (Linux 6.7)";
	return NULL;
}

/* Soft-dirty bits: a page written in a new mapping reads as soft-dirty
 * (bit 55 of its pagemap entry) where the kernel has them. */
static bool probe_soft_dirty(int pagemap)
{
	if (access("/proc/self/clear_refs", W_OK))
		return false;
	volatile uint8_t *page =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return false;
	page[0] = 1;
	uint64_t entry = 0;
	ssize_t n =
	    pread(pagemap, &entry, sizeof(entry), (off_t)((uintptr_t)page / 4096 * sizeof(entry)));
	munmap((void *)page, 4096);
	return n == sizeof(entry) && (entry >> 55 & 1);
}

static int probe_process(char *err, size_t errlen)
{
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		mote_errf(err, errlen,
		          "the process backend needs seccomp filters, which this kernel lacks "
		          "(CONFIG_SECCOMP_FILTER)");
		return -MOTE_EBACKEND;
	}
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mote_errf(err, errlen,
		          "the process backend needs /proc: cannot open "
		          "/proc/self/pagemap: %s",
		          strerror(errno));
		return -MOTE_EBACKEND;
	}
	/* MOTE_PROCESS_TRACKING picks one, for tests and measurements. */
	const char *want = getenv("MOTE_PROCESS_TRACKING");
	if (want && !*want)
		want = NULL;
	if (want && strcmp(want, "userfaultfd") && strcmp(want, "soft-dirty")) {
		close(fd);
		mote_errf(err, errlen,
		          "MOTE_PROCESS_TRACKING=%s: not a way to track writes "
		          "(userfaultfd or soft-dirty)",
		          want);
		return -MOTE_EBACKEND;
	}
	const char *no_uffd = "not tried";
	bool soft_dirty = false;
	if (!want || !strcmp(want, "userfaultfd"))
		no_uffd = probe_userfaultfd(fd);
	if (no_uffd && (!want || !strcmp(want, "soft-dirty")))
		soft_dirty = probe_soft_dirty(fd);
	close(fd);
	if (!no_uffd) {
		process_tracking = MOTE_TRACK_USERFAULTFD;
		return 0;
	}
	if (soft_dirty) {
		process_tracking = MOTE_TRACK_SOFT_DIRTY;
		return 0;
	}
	if (want)
		mote_errf(err, errlen, "MOTE_PROCESS_TRACKING=%s: this kernel cannot (%s)", want,
		          !strcmp(want, "userfaultfd") ? no_uffd : "no soft-dirty bits");
	else
		mote_errf(err, errlen,
		          "the process backend cannot track guest writes on this kernel: it "
		          "needs Linux 6.7 or later (%s) or soft-dirty bits "
		          "(CONFIG_MEM_SOFT_DIRTY), which this kernel lacks",
		          no_uffd);
	return -MOTE_EBACKEND;
}

/* The CPU can make CPUID fault (the kernel lists cpuid_fault): then the
 * process backend shows guests the same trimmed CPUID as KVM. */
static bool cpu_has_cpuid_faulting(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[4096];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = !strncmp(line, "flags", 5) && strstr(line, " cpuid_fault");
	if (f)
		fclose(f);
	return found;
}

const char *mote_backend_describe(mote_backend backend)
{
	static char text[256];
	if (backend == MOTE_BACKEND_AUTO && mote_backend_check(backend, &backend))
		return "";
	if (backend == MOTE_BACKEND_KVM)
		return check_kvm(text, sizeof(text)) ? "" : "KVM through /dev/kvm";
	if (backend != MOTE_BACKEND_PROCESS || check_process(text, sizeof(text)))
		return "";
	snprintf(text, sizeof(text), "%s; %s",
	         process_tracking == MOTE_TRACK_USERFAULTFD
	             ? "guest writes tracked with userfaultfd and PAGEMAP_SCAN"
	             : "guest writes tracked with soft-dirty bits (Linux before 6.7: each "
	               "restore reads the page map of all guest memory)",
	         cpu_has_cpuid_faulting()
	             ? "CPUID faults, guests see mote's CPUID table"
	             : "no CPUID faulting on this CPU: guests see the host's CPUID");
	return text;
}

int mote_backend_resolve(mote_backend want, const struct mote_backend_ops **out, char *err,
                         size_t errlen)
{
	if (want == MOTE_BACKEND_AUTO) {
		const char *env = getenv("MOTE_BACKEND");
		if (env && *env && mote_backend_parse(env, &want)) {
			mote_errf(err, errlen,
			          "MOTE_BACKEND=%s: not a backend (auto, kvm or process)", env);
			return -MOTE_EINVAL;
		}
	}
	if (want == MOTE_BACKEND_AUTO) {
		char why[512];
		if (check_kvm(why, sizeof(why)) == 0) {
			*out = &mote_kvm_backend;
			return 0;
		}
		want = MOTE_BACKEND_PROCESS;
	}
	int rc = want == MOTE_BACKEND_KVM ? check_kvm(err, errlen) : check_process(err, errlen);
	if (!rc)
		*out = want == MOTE_BACKEND_KVM ? &mote_kvm_backend : &mote_process_backend;
	return rc;
}

int mote_backend_check(mote_backend backend, mote_backend *chosen)
{
	if ((unsigned)backend > MOTE_BACKEND_PROCESS)
		return mote_fail(-MOTE_EINVAL, "unknown backend %d", (int)backend);
	const struct mote_backend_ops *ops = NULL;
	char err[512] = "";
	int rc = mote_backend_resolve(backend, &ops, err, sizeof(err));
	if (rc)
		return mote_fail(rc, "%s", err);
	if (chosen)
		*chosen = ops == &mote_kvm_backend ? MOTE_BACKEND_KVM : MOTE_BACKEND_PROCESS;
	mote_set_last_error("%s", ""); /* success: no stale detail */
	return 0;
}

mote_backend mote_sandbox_backend(const mote_sandbox *sb)
{
	if (!sb)
		return MOTE_BACKEND_AUTO;
	return sb->be == &mote_process_backend ? MOTE_BACKEND_PROCESS : MOTE_BACKEND_KVM;
}
