/* Minimal test harness shared by every test program.
 *
 * A test program defines tests with TEST(name) { ... } and ends with
 * TEST_MAIN(). Each check that fails records the file, line and values and
 * marks the test failed; the program prints "PASS name" / "FAIL name" per
 * test and a closing "N passed, M failed" line, and exits non-zero if any
 * test failed. A test that cannot run here says why with TEST_SKIP: it
 * prints "SKIP name" and counts as neither (the closing line then adds
 * ", K skipped"). tests/run.sh adds the per-program counts into
 * one total.
 */
#ifndef MOTE_TEST_H
#define MOTE_TEST_H

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* libmote: the process backend keeps spare stub processes (with their
 * descriptors and mappings in this process) started in the background;
 * this fills the pool and waits until it is full, so that counts taken
 * before and after agree. */
void mote__backend_quiesce(void);

/* Run a shell command: its exit status (-1 if it did not exit), its
 * standard output (truncated to cap - 1 bytes, NUL-terminated) in out. */
static inline int run_cli(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Open file descriptors of this process (leak checks); -1 if unknown. */
static inline int count_fds(void)
{
	mote__backend_quiesce();
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

typedef void (*test_fn)(void);
struct test_case {
	const char *name;
	test_fn fn;
};

#define TEST_MAX 512
static struct test_case test_cases[TEST_MAX];
static int test_count;
static int test_failed_current;
static int test_skipped_current;
static const char *test_name_current;

/* This test cannot run here: "SKIP name: why", counted as skipped. */
#define TEST_SKIP(...)                                                                             \
	do {                                                                                       \
		test_skipped_current = 1;                                                          \
		printf("SKIP %s: ", test_name_current);                                            \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
	} while (0)

#define TEST(name)                                                                                   \
	static void test_##name(void);                                                               \
	__attribute__((constructor)) static void test_register_##name(void)                          \
	{                                                                                            \
		if (test_count < TEST_MAX)                                                           \
			test_cases[test_count++] = (struct test_case){#name, test_##name};           \
	}                                                                                            \
	static void test_##name(void)

#define TEST_FAILF(...)                                                                              \
	do {                                                                                         \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                    \
		fprintf(stderr, __VA_ARGS__);                                                        \
		fputc('\n', stderr);                                                                 \
		test_failed_current = 1;                                                             \
	} while (0)

/* CHECK records a failure and continues; REQUIRE returns from the test. */
#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond))                                                                         \
			TEST_FAILF("check failed: %s", #cond);                                       \
	} while (0)

#define REQUIRE(cond)                                                                                \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			TEST_FAILF("requirement failed: %s", #cond);                                 \
			return;                                                                      \
		}                                                                                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                           \
	do {                                                                                         \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                      \
		if (check_a_ != check_b_)                                                            \
			TEST_FAILF("%s == %s: %lld != %lld", #a, #b, check_a_, check_b_);            \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                                           \
	do {                                                                                         \
		unsigned long long check_a_ = (unsigned long long)(a),                               \
				   check_b_ = (unsigned long long)(b);                               \
		if (check_a_ != check_b_)                                                            \
			TEST_FAILF("%s == %s: 0x%llx != 0x%llx", #a, #b, check_a_, check_b_);        \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                                           \
	do {                                                                                         \
		const char *check_a_ = (a), *check_b_ = (b);                                         \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)                       \
			TEST_FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b,                             \
				   check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");  \
	} while (0)

/* Substring match, for error details that embed addresses. */
#define CHECK_CONTAINS(hay, needle)                                                                  \
	do {                                                                                         \
		const char *check_h_ = (hay), *check_n_ = (needle);                                  \
		if (!check_h_ || !strstr(check_h_, check_n_))                                        \
			TEST_FAILF("%s contains \"%s\": got \"%s\"", #hay, check_n_,                 \
				   check_h_ ? check_h_ : "(null)");                                  \
	} while (0)

static inline int test_main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	int passed = 0, failed = 0, skipped = 0;
	for (int i = 0; i < test_count; i++) {
		if (only && !strstr(test_cases[i].name, only))
			continue;
		test_failed_current = 0;
		test_skipped_current = 0;
		test_name_current = test_cases[i].name;
		test_cases[i].fn();
		if (test_skipped_current && !test_failed_current) {
			skipped++;
			printf("SKIP %s\n", test_cases[i].name);
		} else if (test_failed_current) {
			failed++;
			printf("FAIL %s\n", test_cases[i].name);
		} else {
			passed++;
			printf("PASS %s\n", test_cases[i].name);
		}
		fflush(stdout);
	}
	if (skipped)
		printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	else
		printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

#define TEST_MAIN()                                                                                  \
	int main(int argc, char **argv)                                                              \
	{                                                                                            \
		return test_main(argc, argv);                                                        \
	}

#endif
