/* Test WASI command: what stdio is (isatty, fstat), and standard output
 * and standard error interleaved. Built against wasi-libc. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return "error";
	return S_ISCHR(st.st_mode) ? "chr" : S_ISREG(st.st_mode) ? "reg" : "other";
}

int main(void)
{
	char line[128];
	snprintf(line, sizeof(line), "tty %d%d%d %s %s %s\n", isatty(0), isatty(1), isatty(2),
	         kind(0), kind(1), kind(2));
	/* Unbuffered writes, so the order between the streams is the program's. */
	write(1, line, __builtin_strlen(line));
	write(2, "err1\n", 5);
	write(1, "out1\n", 5);
	write(2, "err2\n", 5);
	return 0;
}
