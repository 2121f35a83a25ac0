/* Test WASI command: arguments, environment, stdout/stderr, clock, random,
 * exit code. Built against wasi-libc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	printf("argc=%d", argc);
	for (int i = 0; i < argc; i++)
		printf(" [%s]", argv[i]);
	printf("\n");
	const char *v = getenv("GREETING");
	printf("GREETING=%s\n", v ? v : "(unset)");
	fprintf(stderr, "to stderr\n");
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec > 1600000000)
		printf("clock ok\n");
	unsigned char r[32];
	if (getentropy(r, sizeof(r)) == 0) {
		int nonzero = 0;
		for (size_t i = 0; i < sizeof(r); i++)
			nonzero += r[i] != 0;
		printf("random %s\n", nonzero > 8 ? "ok" : "suspicious");
	}
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "exit7") == 0)
		exit(7);
	return argc > 2 ? 3 : 0;
}
