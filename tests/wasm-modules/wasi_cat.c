/* WASI command: copies standard input to standard output, upper-cased, and
 * reports the byte count on stderr. */
#include <stdio.h>

int main(void)
{
	int c;
	long n = 0;
	while ((c = getchar()) != EOF) {
		putchar(c >= 'a' && c <= 'z' ? c - 32 : c);
		n++;
	}
	fprintf(stderr, "%ld bytes\n", n);
	return 0;
}
