/* PID 1 of the test VM's initramfs (tests/vm/run-in-vm.sh builds it static).
 *
 * Loads the kernel modules listed in /modules/order (KVM for AMD SVM, virtio,
 * 9p, overlayfs), mounts the host's root filesystem (virtio-9p, read-only)
 * at /host, the host's /tmp over it through an overlay that keeps writes in
 * memory, the run's results folder over its own path (writable), gives the
 * chroot fresh /proc, /sys and /dev, then runs the run's cmd.sh there and
 * powers off. Everything it learns goes to the console and,
 * once the results folder is mounted, to its vm-log file; a step that fails
 * is written to vm-error, so the host can say why the VM run failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOST_ROOT "/host"

static char run_dir[512]; /* the results folder, a path on the host */
static FILE *vm_log;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mote-vm: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
	if (vm_log) {
		va_start(ap, fmt);
		vfprintf(vm_log, fmt, ap);
		fputc('\n', vm_log);
		fflush(vm_log);
		va_end(ap);
	}
}

__attribute__((noreturn)) static void power_off(void)
{
	if (vm_log)
		fclose(vm_log);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

/* A step that cannot be done ends the run: the reason goes to vm-error. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say("error: %s", msg);
	if (run_dir[0]) {
		char path[600];
		snprintf(path, sizeof(path), HOST_ROOT "%s/vm-error", run_dir);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "%s\n", msg);
			fclose(f);
		}
	}
	power_off();
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		       const char *opts)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, opts) != 0)
		fail("mount %s (%s) on %s: %s", src, type, dst, strerror(errno));
}

static void read_cmdline(void)
{
	char buf[4096] = {0};
	int fd = open("/proc/cmdline", O_RDONLY);
	if (fd < 0)
		fail("/proc/cmdline: %s", strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		fail("/proc/cmdline is empty");
	for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
		if (!strncmp(tok, "mote.run=", 9))
			snprintf(run_dir, sizeof(run_dir), "%s", tok + 9);
	if (run_dir[0] != '/')
		fail("no mote.run=/ABSOLUTE/PATH on the kernel command line");
}

static void load_modules(void)
{
	FILE *order = fopen("/modules/order", "r");
	if (!order)
		fail("/modules/order: %s", strerror(errno));
	char name[256];
	while (fgets(name, sizeof(name), order)) {
		name[strcspn(name, "\n")] = 0;
		if (!name[0])
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/modules/%s", name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail("%s: %s", path, strerror(errno));
		if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
			fail("loading %s: %s", name, strerror(errno));
		close(fd);
	}
	fclose(order);
}

static void read_file(const char *path, char *out, size_t len)
{
	out[0] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, len - 1);
	close(fd);
	out[n > 0 ? n : 0] = 0;
	out[strcspn(out, "\n")] = 0;
}

/* The tests talk to themselves over 127.0.0.1 (the gdb stub): a kernel
 * with no init of its own leaves the loopback interface down. */
static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		fail("loopback: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		fail("loopback up: %s", strerror(errno));
	close(fd);
}

int main(void)
{
	must_mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	/* The kernel gave no console if the archive had no /dev/console. */
	int con = open("/dev/console", O_RDWR);
	if (con >= 0) {
		dup2(con, 0);
		dup2(con, 1);
		dup2(con, 2);
		if (con > 2)
			close(con);
	}
	must_mount("proc", "/proc", "proc", 0, NULL);
	must_mount("sysfs", "/sys", "sysfs", 0, NULL);
	read_cmdline();
	load_modules();

	/* Read-only root; page cache kept (the host's files do not change
	 * during the run), which makes starting programs much faster. */
	must_mount("hostroot", HOST_ROOT, "9p", MS_RDONLY,
		   "trans=virtio,version=9p2000.L,msize=262144,cache=loose");
	/* /tmp: the host's, seen through an overlay whose writes stay in the
	 * VM's memory. The checkout and ../shared may live under /tmp (as a CI
	 * clone may), and the tests write their files there. */
	must_mount("tmpfs", "/tmp-upper", "tmpfs", 0, "mode=755");
	mkdir("/tmp-upper/upper", 01777);
	chmod("/tmp-upper/upper", 01777);
	mkdir("/tmp-upper/work", 0755);
	must_mount("overlay", HOST_ROOT "/tmp", "overlay", 0,
		   "lowerdir=" HOST_ROOT "/tmp,upperdir=/tmp-upper/upper,workdir=/tmp-upper/work");
	char path[600];
	snprintf(path, sizeof(path), HOST_ROOT "%s", run_dir);
	if (mount("results", path, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144") != 0)
		fail("mount results on %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), HOST_ROOT "%s/vm-log", run_dir);
	vm_log = fopen(path, "w");

	char release[128], npt[16];
	read_file("/proc/sys/kernel/osrelease", release, sizeof(release));
	read_file("/sys/module/kvm_amd/parameters/npt", npt, sizeof(npt));
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		fail("no /dev/kvm after loading kvm_amd (%s): does this QEMU emulate SVM?",
		     strerror(errno));
	say("kernel %s, /dev/kvm present, kvm_amd npt=%s", release, npt[0] ? npt : "?");
	/* Nested paging is what this VM is for: KVM as on hardware. */
	if (strcmp(npt, "Y") != 0)
		fail("kvm_amd runs without nested paging (npt=%s)", npt[0] ? npt : "?");

	must_mount("proc", HOST_ROOT "/proc", "proc", 0, NULL);
	must_mount("sysfs", HOST_ROOT "/sys", "sysfs", 0, NULL);
	must_mount("devtmpfs", HOST_ROOT "/dev", "devtmpfs", 0, NULL);
	must_mount("tmpfs", HOST_ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	loopback_up();

	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (chroot(HOST_ROOT) != 0 || chdir("/") != 0) {
			say("chroot %s: %s", HOST_ROOT, strerror(errno));
			_exit(127);
		}
		snprintf(path, sizeof(path), "%s/cmd.sh", run_dir);
		char *const argv[] = {"sh", path, NULL};
		char *const envp[] = {
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "LANG=C.UTF-8", "TERM=dumb", NULL};
		execve("/bin/sh", argv, envp);
		say("exec /bin/sh %s: %s", path, strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		say("cmd.sh killed by signal %d", WTERMSIG(status));
	else
		say("cmd.sh exited with status %d", WEXITSTATUS(status));
	power_off();
}
