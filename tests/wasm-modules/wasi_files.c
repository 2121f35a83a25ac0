/* Test WASI command for preopened directories. Each argument is OP:PATH;
 * the command prints one line per argument:
 *   cat:P    the file's content          stat:P   "file N" or "dir"
 *   tail:P   the last 4 bytes (lseek END) pread:P  4 bytes at offset 2
 *   write:P  what fopen(P, "w") says      open:P   what open(P, O_RDONLY) says
 *   keep:P   open(P) and never close it ls:P     the sorted names in directory P
 *                                        (over 16: their count and the last)
 *   size:P   bytes read to the end with 1 MiB reads, and their sum
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("%s\n", strerror(errno));
		return;
	}
	static char *names[1024];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 1024)
		names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), by_name);
	if (n > 16)
		printf("%d entries, last %s", n, names[n - 1]);
	for (int i = 0; i < n; i++) {
		if (n <= 16)
			printf("%s%s", i ? " " : "", names[i]);
		free(names[i]);
	}
	printf("\n");
}

static void run(const char *op, const char *path)
{
	char buf[256];
	printf("%s %s: ", op, path);
	if (!strcmp(op, "cat")) {
		FILE *f = fopen(path, "r");
		if (!f) {
			printf("%s\n", strerror(errno));
			return;
		}
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
		printf("%s\n", buf);
	} else if (!strcmp(op, "stat")) {
		struct stat st;
		if (stat(path, &st) != 0)
			printf("%s\n", strerror(errno));
		else if (S_ISDIR(st.st_mode))
			printf("dir\n");
		else
			printf("file %lld\n", (long long)st.st_size);
	} else if (!strcmp(op, "tail") || !strcmp(op, "pread")) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			printf("%s\n", strerror(errno));
			return;
		}
		ssize_t n;
		if (!strcmp(op, "tail")) {
			off_t at = lseek(fd, -4, SEEK_END);
			n = read(fd, buf, 4);
			printf("at %lld ", (long long)at);
		} else {
			n = pread(fd, buf, 4, 2);
		}
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		printf("%s\n", buf);
	} else if (!strcmp(op, "write")) {
		FILE *f = fopen(path, "w");
		printf("%s\n", f ? "opened" : strerror(errno));
	} else if (!strcmp(op, "size")) {
		static unsigned char big[1 << 20];
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			printf("%s\n", strerror(errno));
			return;
		}
		long long total = 0;
		unsigned sum = 0;
		ssize_t n;
		while ((n = read(fd, big, sizeof(big))) > 0) {
			for (ssize_t i = 0; i < n; i++)
				sum += big[i];
			total += n;
		}
		close(fd);
		printf("%lld bytes, sum %u\n", total, sum);
	} else if (!strcmp(op, "ls")) {
		list(path);
	} else if (!strcmp(op, "keep")) {
		printf("%s\n", open(path, O_RDONLY) >= 0 ? "kept" : strerror(errno));
	} else if (!strcmp(op, "open")) {
		int fd = open(path, O_RDONLY);
		printf("%s\n", fd >= 0 ? "opened" : strerror(errno));
		if (fd >= 0)
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
