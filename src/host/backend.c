/* Picking a backend: by name, by the environment, by what this machine can
 * run; and saying why one cannot run, with the fix. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/internal.h"
#include "host/kvm/kvm.h"

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
	for (size_t i = 0; name && out && i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(name, mote_backend_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -MOTE_EINVAL;
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

/* PAGEMAP_SCAN and asynchronous userfaultfd write protection came with
 * Linux 6.7. */
struct pm_scan_probe {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PROBE_PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_probe)

/* What this kernel offers does not change: asked once per process. */
static int process_rc;
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

static int probe_process(char *err, size_t errlen)
{
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
		mote_errf(err, errlen,
		          "the process backend needs seccomp filters, which this kernel lacks "
		          "(CONFIG_SECCOMP_FILTER)");
		return -MOTE_EBACKEND;
	}
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (uffd < 0) {
		int e = errno;
		mote_errf(err, errlen, "the process backend needs userfaultfd: %s%s", strerror(e),
		          e == ENOSYS || e == EPERM
		              ? " (a container's seccomp profile may block it: allow the "
		                "userfaultfd system call; or the kernel lacks CONFIG_USERFAULTFD)"
		              : "");
		return -MOTE_EBACKEND;
	}
	close(uffd);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mote_errf(err, errlen,
		          "the process backend needs /proc: cannot open "
		          "/proc/self/pagemap: %s",
		          strerror(errno));
		return -MOTE_EBACKEND;
	}
	struct pm_scan_probe a = {.size = sizeof(a), .start = 0x10000, .end = 0x10000};
	long r = ioctl(fd, PROBE_PAGEMAP_SCAN, &a);
	int e = errno;
	close(fd);
	if (r < 0 && (e == ENOTTY || e == EINVAL)) {
		mote_errf(err, errlen,
		          "the process backend needs Linux 6.7 or later (PAGEMAP_SCAN, to track "
		          "guest writes); this kernel lacks it");
		return -MOTE_EBACKEND;
	}
	return 0;
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
	if ((unsigned)backend > MOTE_BACKEND_PROCESS) {
		mote_set_last_error("unknown backend %d", (int)backend);
		return -MOTE_EINVAL;
	}
	const struct mote_backend_ops *ops = NULL;
	char err[512] = "";
	int rc = mote_backend_resolve(backend, &ops, err, sizeof(err));
	if (rc) {
		mote_set_last_error("%s", err);
		return rc;
	}
	if (chosen)
		*chosen = ops == &mote_kvm_backend ? MOTE_BACKEND_KVM : MOTE_BACKEND_PROCESS;
	mote_set_last_error("%s", "");
	return 0;
}

mote_backend mote_sandbox_backend(const mote_sandbox *sb)
{
	if (!sb)
		return MOTE_BACKEND_AUTO;
	return sb->be == &mote_process_backend ? MOTE_BACKEND_PROCESS : MOTE_BACKEND_KVM;
}
