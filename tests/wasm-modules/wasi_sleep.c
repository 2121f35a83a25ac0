/* Test WASI command: sleeping and polling through wasi-libc (poll_oneoff):
 * relative and absolute sleeps on both clocks, poll on stdio, and a sleep
 * far past any timeout ("forever"). Built against wasi-libc. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000ll + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* "ok" if the wait took at least `min` ms and not absurdly long. */
static const char *took(const struct timespec *t0, long long min)
{
	long long ms = ms_since(t0);
	return ms >= min && ms < min + 2000 ? "ok" : ms < min ? "short" : "long";
}

int main(int argc, char **argv)
{
	struct timespec t0, d;
	if (argc > 1 && strcmp(argv[1], "forever") == 0) {
		printf("sleeping\n");
		fflush(stdout);
		sleep(1000);
		printf("woke\n");
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = usleep(40000);
	printf("usleep %d %s\n", rc, took(&t0, 40));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	d = (struct timespec){0, 30000000};
	rc = nanosleep(&d, NULL);
	printf("nanosleep %d %s\n", rc, took(&t0, 30));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_REALTIME, &d);
	d.tv_nsec += 30000000;
	if (d.tv_nsec >= 1000000000) {
		d.tv_sec++;
		d.tv_nsec -= 1000000000;
	}
	rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &d, NULL);
	printf("absolute realtime %d %s\n", rc, took(&t0, 30));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_MONOTONIC, &d);
	d.tv_nsec += 30000000;
	if (d.tv_nsec >= 1000000000) {
		d.tv_sec++;
		d.tv_nsec -= 1000000000;
	}
	rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
	printf("absolute monotonic %d %s\n", rc, took(&t0, 30));

	/* A time already past: at once. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	d = (struct timespec){1, 0};
	rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, NULL);
	printf("past %d %s\n", rc, took(&t0, 0));

	/* Stdio never blocks: ready at once, despite the long timeout. */
	struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = 1, .events = POLLOUT}};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = poll(p, 2, 5000);
	printf("poll stdio %d in=%d out=%d %s\n", rc, !!(p[0].revents & POLLIN),
	       !!(p[1].revents & POLLOUT), took(&t0, 0));

	/* No descriptors: a plain timeout. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = poll(NULL, 0, 30);
	printf("poll timeout %d %s\n", rc, took(&t0, 30));

	/* A descriptor that does not exist. */
	struct pollfd bad = {.fd = 99, .events = POLLIN};
	rc = poll(&bad, 1, 0);
	printf("poll bad fd %d nval=%d\n", rc, !!(bad.revents & POLLNVAL));
	return 0;
}
