/* Test WASI command for writable preopens: each argument is OP:ARG, the
 * command prints "OP ARG: RESULT" per argument, with errno names. The
 * calls are the ones real programs make, through wasi-libc:
 *   put:P,TEXT     fopen(P, "w"), fputs, fclose    append:P,TEXT  the same, "a"
 *   cat:P          the file's contents             stat:P  "file N", "dir", "link"
 *   excl:P         open(O_WRONLY | O_CREAT | O_EXCL), then close
 *   trunc:P,N      open(O_RDWR), ftruncate to N    alloc:P,N  posix_fallocate(0, N)
 *   rename:A,B  link:A,B  symlink:TARGET,P  unlink:P  mkdir:P  rmdir:P
 *   sync:P         open(O_WRONLY | O_APPEND), write, fsync, fdatasync
 *   rw:P           open(O_RDWR | O_CREAT), write, lseek, read, pwrite, pread
 *   wronly:P       open(O_WRONLY), then read (no right) and fcntl(F_GETFL)
 *   fill:P,N       open(O_WRONLY | O_CREAT | O_TRUNC), write N bytes, then 1
 *   many:PREFIX,N  create PREFIX0 .. PREFIX<N-1> (O_CREAT | O_EXCL): how many
 *   mkdirs:PREFIX,N  the same with mkdir
 *   seal:P         open(O_CREAT | O_TRUNC | O_WRONLY), write "a", exit 0
 *                  without closing (the host closes it with the module) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errno_names.h"

/* "A,B" split at the comma. */
static char *second(char *arg)
{
	char *comma = strchr(arg, ',');
	if (!comma)
		return arg + strlen(arg);
	*comma = 0;
	return comma + 1;
}

static void put(const char *path, const char *text, const char *mode)
{
	FILE *f = fopen(path, mode);
	if (!f) {
		printf("%s\n", ename(errno));
		return;
	}
	size_t n = fwrite(text, 1, strlen(text), f);
	int e = n == strlen(text) ? 0 : errno;
	int rc = fclose(f);
	printf("%s\n", e ? ename(e) : res(rc));
}

static void cat(const char *path)
{
	char buf[256];
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("%s\n", ename(errno));
		return;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	printf("\"%s\"\n", buf);
}

static void stat_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		printf("%s\n", ename(errno));
	else if (S_ISLNK(st.st_mode))
		printf("link\n");
	else if (S_ISDIR(st.st_mode))
		printf("dir\n");
	else
		printf("file %lld\n", (long long)st.st_size);
}

static void with_fd(const char *path, int flags, int op, long n)
{
	int fd = open(path, flags, 0600);
	if (fd < 0) {
		printf("%s\n", ename(errno));
		return;
	}
	int rc = 0;
	if (op == 't')
		rc = ftruncate(fd, n);
	else if (op == 'a')
		rc = posix_fallocate(fd, 0, n) ? -1 : 0; /* it returns the error */
	else if (op == 's') {
		rc = write(fd, "+", 1) == 1 ? fsync(fd) : -1;
		if (rc == 0)
			rc = fdatasync(fd);
	}
	printf("%s\n", res(rc));
	close(fd);
}

static void rw(const char *path)
{
	char buf[16] = {0};
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		printf("%s\n", ename(errno));
		return;
	}
	ssize_t w = write(fd, "hello", 5);
	off_t at = lseek(fd, 0, SEEK_SET);
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	ssize_t pw = pwrite(fd, "J", 1, 0);
	char b2[8] = {0};
	ssize_t pr = pread(fd, b2, 5, 0);
	printf("wrote %zd, at %lld, read %zd \"%s\", pwrite %zd, pread \"%s\"\n", w,
	       (long long)at, r, buf, pw, pr > 0 ? b2 : "");
	close(fd);
}

static void wronly(const char *path)
{
	char c;
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		printf("%s\n", ename(errno));
		return;
	}
	ssize_t r = read(fd, &c, 1);
	int e = r < 0 ? errno : 0;
	int mode = fcntl(fd, F_GETFL) & O_ACCMODE;
	printf("read %s, access %s\n", ename(e),
	       mode == O_WRONLY ? "wronly" : mode == O_RDWR ? "rdwr" : "other");
	close(fd);
}

static void fill(const char *path, long n)
{
	static char buf[1 << 20];
	memset(buf, 'x', sizeof(buf));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		printf("%s\n", ename(errno));
		return;
	}
	ssize_t w = write(fd, buf, (size_t)n);
	int e1 = w < 0 ? errno : 0;
	ssize_t w2 = write(fd, buf, 1);
	int e2 = w2 < 0 ? errno : 0;
	printf("%zd (%s) then %zd (%s)\n", w, ename(e1), w2, ename(e2));
	close(fd);
}

static void many(const char *prefix, long n, int dirs)
{
	char name[256];
	long made = 0;
	int e = 0;
	for (; made < n; made++) {
		snprintf(name, sizeof(name), "%s%ld", prefix, made);
		int rc = dirs ? mkdir(name, 0700) : open(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (rc < 0) {
			e = errno;
			break;
		}
		if (!dirs)
			close(rc);
	}
	printf("%ld made, %s\n", made, ename(e));
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *op = argv[i], *arg = strchr(op, ':');
		if (!arg)
			continue;
		*arg++ = 0;
		printf("%s %s: ", op, arg);
		fflush(stdout);
		char *b;
		if (!strcmp(op, "put")) {
			b = second(arg);
			put(arg, b, "w");
		} else if (!strcmp(op, "append")) {
			b = second(arg);
			put(arg, b, "a");
		} else if (!strcmp(op, "cat")) {
			cat(arg);
		} else if (!strcmp(op, "stat")) {
			stat_path(arg);
		} else if (!strcmp(op, "excl")) {
			int fd = open(arg, O_WRONLY | O_CREAT | O_EXCL, 0600);
			printf("%s\n", res(fd));
			if (fd >= 0)
				close(fd);
		} else if (!strcmp(op, "trunc")) {
			b = second(arg);
			with_fd(arg, O_RDWR, 't', atol(b));
		} else if (!strcmp(op, "alloc")) {
			b = second(arg);
			with_fd(arg, O_RDWR, 'a', atol(b));
		} else if (!strcmp(op, "sync")) {
			with_fd(arg, O_WRONLY | O_APPEND, 's', 0);
		} else if (!strcmp(op, "rename")) {
			b = second(arg);
			printf("%s\n", res(rename(arg, b)));
		} else if (!strcmp(op, "link")) {
			b = second(arg);
			printf("%s\n", res(link(arg, b)));
		} else if (!strcmp(op, "symlink")) {
			b = second(arg);
			printf("%s\n", res(symlink(arg, b)));
		} else if (!strcmp(op, "unlink")) {
			printf("%s\n", res(unlink(arg)));
		} else if (!strcmp(op, "mkdir")) {
			printf("%s\n", res(mkdir(arg, 0700)));
		} else if (!strcmp(op, "rmdir")) {
			printf("%s\n", res(rmdir(arg)));
		} else if (!strcmp(op, "rw")) {
			rw(arg);
		} else if (!strcmp(op, "wronly")) {
			wronly(arg);
		} else if (!strcmp(op, "fill")) {
			b = second(arg);
			fill(arg, atol(b));
		} else if (!strcmp(op, "many") || !strcmp(op, "mkdirs")) {
			b = second(arg);
			many(arg, atol(b), op[1] == 'k');
		} else if (!strcmp(op, "seal")) {
			int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int ok = fd >= 0 && write(fd, "a", 1) == 1;
			printf("%s\n", fd < 0 ? ename(errno) : ok ? "kept" : "?");
		} else {
			printf("unknown op\n");
		}
		fflush(stdout);
	}
	return 0;
}
