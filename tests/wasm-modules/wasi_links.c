/* Test WASI command for symbolic links, writes refused on read-only
 * preopens and the descriptor calls real programs make. Each argument is
 * OP:ARG; the command prints "OP ARG: RESULT" per argument, with errno
 * names (WASI's values, which wasi-libc's errno are). Through wasi-libc,
 * as programs call it:
 *   lstat:P  stat:P    "link N" (N: the target's length), "file N", "dir"
 *   readlink:P         the target and its length; readlink4:P with 4 bytes
 *   mkdir:P  rmdir:P  unlink:P  nofollow:P (open with O_NOFOLLOW)
 *   rename:A,B  link:A,B  symlink:TARGET,P
 *   fcntl:F  fcntl(F, F_SETFL, O_NONBLOCK), then whether F_GETFL has it
 *   fcntlsync:F  fcntl(F, F_SETFL, O_SYNC)   fadvise:F  fsync:F (and fdatasync)
 *   at:F     fstatat, openat, readlinkat and mkdirat of "x" relative to F
 * Raw WASI calls, for what wasi-libc would not pass on:
 *   fdops:F  every descriptor call on F          rights:F  its fdstat
 *   rawlstat:P  rawstat:P  rawreadlink:P  rawutimes:P   P relative to fd 3
 *   (utimensat needs compiler-rt's __muloti4, which is not installed)
 *   longlstat:N  longreadlink:N  longmkdir:N   a name of N 'a's under fd 3
 *   ls3:     fd_readdir on the preopen itself   renumber:A,B
 * F is a descriptor number or a path, opened read-only for the op. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasi/api.h>

#include "errno_names.h"

static void describe(int rc, const struct stat *st)
{
	if (rc != 0)
		printf("%s\n", ename(errno));
	else if (S_ISLNK(st->st_mode))
		printf("link %lld\n", (long long)st->st_size);
	else if (S_ISDIR(st->st_mode))
		printf("dir\n");
	else
		printf("file %lld\n", (long long)st->st_size);
}

/* A descriptor number, or path P opened read-only (*opened set). */
static int get_fd(const char *arg, int *opened)
{
	*opened = 0;
	if (arg[0] != '/')
		return atoi(arg);
	int fd = open(arg, O_RDONLY);
	if (fd < 0)
		printf("(open %s) ", ename(errno));
	*opened = fd >= 0;
	return fd;
}

/* "A,B" split at the comma. */
static char *second(char *arg)
{
	char *comma = strchr(arg, ',');
	if (!comma)
		return arg + strlen(arg);
	*comma = 0;
	return comma + 1;
}

static void stat_raw(const char *path, __wasi_lookupflags_t flags)
{
	__wasi_filestat_t st;
	__wasi_errno_t e = __wasi_path_filestat_get(3, flags, path, &st);
	if (e)
		printf("%s\n", ename(e));
	else if (st.filetype == __WASI_FILETYPE_SYMBOLIC_LINK)
		printf("link %llu\n", (unsigned long long)st.size);
	else if (st.filetype == __WASI_FILETYPE_DIRECTORY)
		printf("dir\n");
	else
		printf("file %llu\n", (unsigned long long)st.size);
}

static void readlink_raw(const char *path)
{
	char buf[64];
	__wasi_size_t used = 0;
	__wasi_errno_t e = __wasi_path_readlink(3, path, (uint8_t *)buf, sizeof(buf), &used);
	if (e)
		printf("%s\n", ename(e));
	else
		printf("\"%.*s\"\n", (int)used, buf);
}

static void fdops(int fd)
{
	char byte, dents[256];
	__wasi_iovec_t in = {(uint8_t *)&byte, 1};
	__wasi_ciovec_t out = {(const uint8_t *)"", 0};
	__wasi_size_t n;
	__wasi_filesize_t pos;
	__wasi_prestat_t pre;
	printf("read=%s ", ename(__wasi_fd_read(fd, &in, 1, &n)));
	printf("write=%s ", ename(__wasi_fd_write(fd, &out, 1, &n)));
	printf("pread=%s ", ename(__wasi_fd_pread(fd, &in, 1, 0, &n)));
	printf("pwrite=%s ", ename(__wasi_fd_pwrite(fd, &out, 1, 0, &n)));
	printf("seek=%s ", ename(__wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &pos)));
	printf("readdir=%s ", ename(__wasi_fd_readdir(fd, (uint8_t *)dents, sizeof(dents), 0, &n)));
	printf("allocate=%s ", ename(__wasi_fd_allocate(fd, 0, 1)));
	printf("set_size=%s ", ename(__wasi_fd_filestat_set_size(fd, 0)));
	__wasi_fstflags_t now = __WASI_FSTFLAGS_ATIM_NOW | __WASI_FSTFLAGS_MTIM_NOW;
	__wasi_fstflags_t both = __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_ATIM_NOW;
	printf("set_times=%s ", ename(__wasi_fd_filestat_set_times(fd, 0, 0, now)));
	printf("bad_times=%s ", ename(__wasi_fd_filestat_set_times(fd, 0, 0, both)));
	printf("advise=%s ", ename(__wasi_fd_advise(fd, 0, 0, __WASI_ADVICE_NORMAL)));
	printf("bad_advice=%s ", ename(__wasi_fd_advise(fd, 0, 0, 9)));
	printf("sync=%s ", ename(__wasi_fd_sync(fd)));
	printf("datasync=%s ", ename(__wasi_fd_datasync(fd)));
	printf("nonblock=%s ", ename(__wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_NONBLOCK)));
	printf("dsync=%s ", ename(__wasi_fd_fdstat_set_flags(fd, __WASI_FDFLAGS_DSYNC)));
	printf("bad_flags=%s ", ename(__wasi_fd_fdstat_set_flags(fd, 0x100)));
	printf("set_rights=%s ", ename(__wasi_fd_fdstat_set_rights(fd, 0, 0)));
	printf("prestat=%s\n", ename(__wasi_fd_prestat_get(fd, &pre)));
}

static void rights(int fd)
{
	__wasi_fdstat_t st;
	__wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
	if (e) {
		printf("%s\n", ename(e));
		return;
	}
	printf("type %u flags %u base %#llx inheriting %#llx\n", st.fs_filetype, st.fs_flags,
	       (unsigned long long)st.fs_rights_base,
	       (unsigned long long)st.fs_rights_inheriting);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The preopen's names, from fd_readdir on fd 3 itself. */
static void list3(void)
{
	static char buf[4096], names[32][64];
	char *sorted[32];
	__wasi_size_t used;
	__wasi_errno_t e = __wasi_fd_readdir(3, (uint8_t *)buf, sizeof(buf), 0, &used);
	if (e) {
		printf("%s\n", ename(e));
		return;
	}
	int n = 0;
	for (size_t off = 0; off + sizeof(__wasi_dirent_t) <= used && n < 32;) {
		__wasi_dirent_t d;
		memcpy(&d, buf + off, sizeof(d));
		off += sizeof(d);
		snprintf(names[n], sizeof(names[n]), "%.*s", (int)d.d_namlen, buf + off);
		sorted[n] = names[n];
		n++;
		off += d.d_namlen;
	}
	qsort(sorted, (size_t)n, sizeof(sorted[0]), by_name);
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? " " : "", sorted[i]);
	printf("\n");
}

static void renumber(const char *a, const char *b)
{
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	if (fa < 0 || fb < 0) {
		printf("open %s\n", ename(errno));
		return;
	}
	char buf[16] = {0};
	__wasi_iovec_t iov = {(uint8_t *)buf, sizeof(buf) - 1};
	__wasi_size_t n = 0;
	printf("%s ", ename(__wasi_fd_renumber(fa, fb)));
	__wasi_errno_t e = __wasi_fd_read(fb, &iov, 1, &n);
	printf("read new %s \"%s\" ", ename(e), buf);
	printf("read old %s ", ename(__wasi_fd_read(fa, &iov, 1, &n)));
	printf("stdio %s\n", ename(__wasi_fd_renumber(fb, 1)));
	close(fb);
}

static void at(int fd)
{
	struct stat st;
	char buf[8];
	printf("fstatat=%s ", res(fstatat(fd, "x", &st, 0)));
	printf("openat=%s ", res(openat(fd, "x", O_RDONLY)));
	printf("readlinkat=%s ", res((int)readlinkat(fd, "x", buf, sizeof(buf))));
	printf("mkdirat=%s\n", res(mkdirat(fd, "x", 0777)));
}

static void run(const char *op, char *arg)
{
	struct stat st;
	char buf[256];
	printf("%s %s: ", op, arg);
	if (!strcmp(op, "lstat")) {
		describe(lstat(arg, &st), &st);
	} else if (!strcmp(op, "stat")) {
		describe(stat(arg, &st), &st);
	} else if (!strcmp(op, "readlink") || !strcmp(op, "readlink4")) {
		ssize_t n = readlink(arg, buf, !strcmp(op, "readlink") ? sizeof(buf) : 4);
		if (n < 0)
			printf("%s\n", ename(errno));
		else
			printf("\"%.*s\" (%zd)\n", (int)n, buf, n);
	} else if (!strcmp(op, "mkdir")) {
		printf("%s\n", res(mkdir(arg, 0777)));
	} else if (!strcmp(op, "rmdir")) {
		printf("%s\n", res(rmdir(arg)));
	} else if (!strcmp(op, "unlink")) {
		printf("%s\n", res(unlink(arg)));
	} else if (!strcmp(op, "rawutimes")) {
		__wasi_fstflags_t now = __WASI_FSTFLAGS_ATIM_NOW | __WASI_FSTFLAGS_MTIM_NOW;
		printf("%s\n", ename(__wasi_path_filestat_set_times(3, 0, arg, 0, 0, now)));
	} else if (!strcmp(op, "nofollow")) {
		int fd = open(arg, O_RDONLY | O_NOFOLLOW);
		printf("%s\n", res(fd));
		if (fd >= 0)
			close(fd);
	} else if (!strcmp(op, "rename")) {
		char *to = second(arg);
		printf("%s\n", res(rename(arg, to)));
	} else if (!strcmp(op, "link")) {
		char *to = second(arg);
		printf("%s\n", res(link(arg, to)));
	} else if (!strcmp(op, "symlink")) {
		char *at_path = second(arg);
		printf("%s\n", res(symlink(arg, at_path)));
	} else if (!strcmp(op, "rawlstat") || !strcmp(op, "rawstat")) {
		stat_raw(arg, !strcmp(op, "rawstat") ? __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW : 0);
	} else if (!strcmp(op, "rawreadlink")) {
		readlink_raw(arg);
	} else if (!strncmp(op, "long", 4)) {
		static char name[8192];
		size_t n = (size_t)atoi(arg);
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memset(name, 'a', n);
		name[n] = 0;
		if (!strcmp(op, "longlstat"))
			stat_raw(name, 0);
		else if (!strcmp(op, "longreadlink"))
			readlink_raw(name);
		else
			printf("%s\n", ename(__wasi_path_create_directory(3, name)));
	} else if (!strcmp(op, "ls3")) {
		list3();
	} else if (!strcmp(op, "renumber")) {
		char *b = second(arg);
		renumber(arg, b);
	} else {
		int opened, fd = get_fd(arg, &opened);
		if (!strcmp(op, "fcntl")) {
			int rc = fcntl(fd, F_SETFL, O_NONBLOCK);
			int fl = fcntl(fd, F_GETFL);
			printf("%s, then %s\n", res(rc),
			       fl < 0 ? ename(errno) : fl & O_NONBLOCK ? "nonblock" : "blocking");
		} else if (!strcmp(op, "fcntlsync")) {
			printf("%s\n", res(fcntl(fd, F_SETFL, O_SYNC)));
		} else if (!strcmp(op, "fadvise")) {
			printf("%s\n", ename(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)));
		} else if (!strcmp(op, "fsync")) {
			printf("%s", res(fsync(fd)));
			printf(", fdatasync %s\n", res(fdatasync(fd)));
		} else if (!strcmp(op, "fdops")) {
			fdops(fd);
		} else if (!strcmp(op, "rights")) {
			rights(fd);
		} else if (!strcmp(op, "at")) {
			at(fd);
		} else {
			printf("unknown op\n");
		}
		if (opened)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *colon = strchr(argv[i], ':');
		if (!colon)
			continue;
		*colon = 0;
		run(argv[i], colon + 1);
	}
	return 0;
}
