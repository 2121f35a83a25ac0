/* Wasm sandbox cold starts: a sandbox started from a snapshot with the
 * module already instantiated, against creating a Wasm sandbox and loading
 * the module, for a small module and a ~1 MiB one; and the same modules
 * compiled ahead of time (compile time, cached compile, start from the ELF,
 * cold start from a snapshot file). Standalone (make wasm-sandbox-bench);
 * medians of --runs N (default 21).
 *
 *   wasm_sandbox_bench [--runs N] [--json] [--small-only] [SMALL.wasm BIG.wasm]
 *
 * Every case ends with one completed call of the module's add(i32, i32), so
 * "cold start" means "until the first result is back". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mote.h"
#include "mote/wasm.h"

#ifndef WASM_SANDBOX_BENCH_GUEST
#define WASM_SANDBOX_BENCH_GUEST "build/examples/hello.elf"
#endif
#ifndef WASM_SANDBOX_BENCH_PADDED
#define WASM_SANDBOX_BENCH_PADDED "build/bench/wasm-sandbox/padded.elf"
#endif
#ifndef WASM_SANDBOX_BENCH_DIR
#define WASM_SANDBOX_BENCH_DIR "build/bench/wasm-sandbox"
#endif

static int runs = 21;
static bool json, small_only;
static double interp_file_cold; /* the last module's file cold start, interpreted */
/* Snapshot files of plain C guests with a Wasm sandbox's sizes: examples/hello,
 * and padded.c, whose image is as large as the Wasm runtime's. */
static char plain_file[] = "/tmp/mote-wasm-bench-XXXXXX";
static char padded_file[] = "/tmp/mote-wasm-bench-XXXXXX";

static void release(mote_sandbox *sb)
{
	mote_sandbox_free(sb);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* `slug` names the case in --json output ("wasm-sandbox-<slug>"). */
static void report(const char *module, const char *slug, const char *name, double *v, int n,
		   const char *note)
{
	double med = median(v, n);
	if (json)
		printf("{\"case\": \"wasm-sandbox-%s\", \"module\": \"%s\", \"median_us\": %.1f, "
		       "\"min_us\": %.1f, \"max_us\": %.1f, \"runs\": %d}\n",
		       slug, module, med, v[0], v[n - 1], n);
	else
		printf("  %-6s %-34s %10.1f us  (min %.1f, max %.1f)%s%s\n", module, name, med, v[0],
		       v[n - 1], note ? "  " : "", note ? note : "");
	fflush(stdout);
}

static int die(const char *what, int rc, mote_sandbox *sb)
{
	fprintf(stderr, "wasm_sandbox_bench: %s: %s: %s\n", what, mote_strerror(rc),
		sb ? mote_sandbox_last_error(sb) : mote_last_error());
	return 1;
}

static int first_call(mote_sandbox *sb)
{
	mote_value args[2] = {mote_i32(2), mote_i32(40)}, r;
	int rc = mote_wasm_call(sb, "add", args, 2, &r, 1, NULL);
	if (!rc && r.v.i32 != 42)
		rc = -MOTE_EPROTOCOL;
	return rc;
}

static void *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *p = n > 0 ? malloc((size_t)n) : NULL;
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* Save `sb`'s snapshot to a new temporary file, whose name goes to file[]
 * (a "/tmp/mote-wasm-bench-XXXXXX" template). */
static int save_to_temp(mote_sandbox *sb, char *file)
{
	int fd = mkstemp(file);
	if (fd < 0)
		return 1;
	close(fd);
	mote_snapshot *snap;
	int rc = mote_sandbox_snapshot(sb, &snap);
	if (rc)
		return die("snapshot", rc, sb);
	rc = mote_snapshot_save(snap, file, 0);
	mote_snapshot_free(snap);
	return rc ? die("save", rc, NULL) : 0;
}

/* One cold start: open `file` (header verified), start from it (as a Wasm
 * sandbox or a plain one), first call; the time in *us. */
static int cold_start(const char *file, bool wasm, double *us)
{
	mote_snapshot *snap;
	mote_sandbox *sb;
	double t0 = now_us();
	int rc = mote_snapshot_open(file, MOTE_SNAPSHOT_VERIFY_HEADER, &snap);
	if (rc)
		return die("open", rc, NULL);
	if (wasm)
		rc = mote_wasm_sandbox_from_snapshot(snap, NULL, NULL, &sb);
	else
		rc = mote_sandbox_from_snapshot(snap, NULL, NULL, &sb);
	if (rc)
		return die("from snapshot", rc, NULL);
	if (wasm) {
		rc = first_call(sb);
	} else {
		mote_value arg = mote_string("x"), r;
		rc = mote_sandbox_call(sb, "hello", &arg, 1, &r);
	}
	if (rc)
		return die("call", rc, sb);
	*us = now_us() - t0;
	release(sb);
	mote_snapshot_free(snap);
	return 0;
}

/* v[0..runs): cold starts of a Wasm sandbox from `file`. */
static int file_cold_starts(const char *file, double *v)
{
	for (int i = 0; i < runs; i++)
		if (cold_start(file, true, &v[i]))
			return 1;
	return 0;
}

static int bench_module(const char *label, const char *path, double *v)
{
	size_t len;
	void *bytes = read_all(path, &len);
	if (!bytes) {
		fprintf(stderr, "wasm_sandbox_bench: cannot read %s\n", path);
		return 1;
	}
	char note[160];
	mote_sandbox *sb;
	int rc;

	/* Create from the runtime snapshot + load + first call. */
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if ((rc = mote_wasm_sandbox_new(NULL, NULL, &sb)))
			return die("new", rc, NULL);
		if ((rc = mote_wasm_load(sb, bytes, len)) || (rc = first_call(sb)))
			return die("load", rc, sb);
		v[i] = now_us() - t0;
		release(sb);
	}
	snprintf(note, sizeof(note), "module of %zu bytes", len);
	report(label, "new-load-call", "new + load + first call", v, runs, note);
	double load_path = median(v, runs);

	/* The load alone, in a warm sandbox (unload returns to the runtime). */
	if ((rc = mote_wasm_sandbox_new(NULL, NULL, &sb)))
		return die("new", rc, NULL);
	for (int i = 0; i < runs; i++) {
		if ((rc = mote_wasm_unload(sb)))
			return die("unload", rc, sb);
		double t0 = now_us();
		if ((rc = mote_wasm_load(sb, bytes, len)))
			return die("load", rc, sb);
		v[i] = now_us() - t0;
	}
	report(label, "load-warm", "load in a warm sandbox", v, runs,
	       "decode + validate + instantiate");
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if ((rc = first_call(sb)))
			return die("call", rc, sb);
		v[i] = now_us() - t0;
	}
	report(label, "call-warm", "call add(2, 40), warm", v, runs, NULL);

	/* Snapshot with the module loaded: in memory, then from a file. */
	mote_snapshot *snap;
	if ((rc = mote_sandbox_snapshot(sb, &snap)))
		return die("snapshot", rc, sb);
	release(sb);
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if ((rc = mote_wasm_sandbox_from_snapshot(snap, NULL, NULL, &sb)))
			return die("from snapshot", rc, NULL);
		if ((rc = first_call(sb)))
			return die("call", rc, sb);
		v[i] = now_us() - t0;
		release(sb);
	}
	double snap_path = median(v, runs);
	snprintf(note, sizeof(note), "%.1fx faster than new + load", load_path / snap_path);
	report(label, "snapshot-call", "from snapshot (memory) + first call", v, runs, note);

	char file[] = "/tmp/mote-wasm-bench-XXXXXX";
	int fd = mkstemp(file);
	if (fd < 0)
		return 1;
	close(fd);
	if ((rc = mote_snapshot_save(snap, file, 0)))
		return die("save", rc, NULL);
	mote_snapshot_free(snap);
	struct stat st;
	stat(file, &st);
	if ((rc = file_cold_starts(file, v)))
		return rc;
	interp_file_cold = median(v, runs);
	snprintf(note, sizeof(note), "file of %lld KiB, header verified; %.1fx faster",
	         (long long)st.st_size / 1024, load_path / interp_file_cold);
	report(label, "file-snapshot-call", "open file + from snapshot + call", v, runs, note);
	unlink(file);
	free(bytes);
	return 0;
}

/* The module compiled ahead of time: compile time (without the cache and
 * from it), start from the ELF, and the cold start from a snapshot file
 * against the interpreted module's (bench_module's, just before). */
static int bench_compiled(const char *label, const char *path, double *v)
{
	char elf[] = "/tmp/mote-wasm-bench-elf-XXXXXX";
	int fd = mkstemp(elf);
	if (fd < 0)
		return 1;
	close(fd);
	int rc, ncompile = runs < 3 ? runs : 3;
	char note[160];
	for (int i = 0; i < ncompile; i++) {
		double t0 = now_us();
		if ((rc = mote_wasm_compile_file(path, elf, MOTE_WASM_COMPILE_NO_CACHE)))
			return die("compile", rc, NULL);
		v[i] = now_us() - t0;
	}
	struct stat st;
	stat(path, &st);
	snprintf(note, sizeof(note), "module of %lld KiB, translate + gcc -O2 + link",
	         (long long)st.st_size / 1024);
	report(label, "compile", "mote wasm compile, no cache", v, ncompile, note);
	if ((rc = mote_wasm_compile_file(path, elf, 0)))
		return die("compile", rc, NULL);
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if ((rc = mote_wasm_compile_file(path, elf, 0)))
			return die("compile", rc, NULL);
		v[i] = now_us() - t0;
	}
	report(label, "compile-cached", "mote wasm compile, cached", v, runs,
	       "hash module and SDK, copy the ELF");
	mote_sandbox *sb;
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		if ((rc = mote_wasm_sandbox_new_compiled(elf, NULL, NULL, &sb)))
			return die("new compiled", rc, NULL);
		if ((rc = first_call(sb)))
			return die("call", rc, sb);
		v[i] = now_us() - t0;
		release(sb);
	}
	report(label, "compiled-new-call", "compiled: new from ELF + first call", v, runs,
	       "boot + snapshot + instantiate");
	if ((rc = mote_wasm_sandbox_new_compiled(elf, NULL, NULL, &sb)))
		return die("new compiled", rc, NULL);
	char file[] = "/tmp/mote-wasm-bench-XXXXXX";
	rc = save_to_temp(sb, file);
	release(sb);
	if (rc)
		return rc;
	/* Interleaved with the plain C guests' cold starts, so that all three
	 * meet the same conditions (the stub pool refilling, the CPUs' state). */
	double *plain = calloc((size_t)runs, sizeof(double));
	double *padded = calloc((size_t)runs, sizeof(double));
	rc = !plain || !padded;
	for (int i = 0; !rc && i < runs; i++)
		rc = cold_start(plain_file, false, &plain[i]) ||
		     cold_start(padded_file, false, &padded[i]) || cold_start(file, true, &v[i]);
	if (!rc) {
		double c = median(plain, runs), p = median(padded, runs), w = median(v, runs);
		report("C", "plain-file-snapshot-call",
		       "C guest, same sizes: open file + start + call", plain, runs,
		       "examples/hello, in turn with the next two");
		report("C", "padded-file-snapshot-call", "C guest, + runtime-sized image", padded,
		       runs, "the same with 112 KiB more read-only data");
		snprintf(
		    note, sizeof(note),
		    "%.2fx the interpreted module's, %.2fx the C guest's, %.2fx the padded one's",
		    w / interp_file_cold, w / c, w / p);
		report(label, "compiled-file-snapshot-call",
		       "compiled: open file + from snapshot + call", v, runs, note);
	}
	free(plain);
	free(padded);
	unlink(file);
	unlink(elf);
	return 0;
}

/* A snapshot file of plain C guest `elf`, just created, with a
 * Wasm sandbox's sizes, for comparisons with "any other guest". */
static int plain_guest_file(const char *elf, char *file)
{
	mote_config *cfg;
	mote_sandbox *sb;
	int rc = mote_config_new(&cfg);
	if (!rc)
		rc = mote_config_set_heap_size(cfg, MOTE_WASM_MIN_HEAP);
	if (!rc)
		rc = mote_config_set_stack_size(cfg, MOTE_WASM_MIN_STACK);
	if (!rc)
		rc = mote_config_set_input_size(cfg, MOTE_WASM_MIN_INPUT);
	if (!rc)
		rc = mote_config_set_output_size(cfg, MOTE_WASM_MIN_OUTPUT);
	if (!rc)
		rc = mote_sandbox_new(elf, cfg, NULL, &sb);
	mote_config_free(cfg);
	if (rc)
		return die(elf, rc, NULL);
	rc = save_to_temp(sb, file);
	release(sb);
	return rc;
}

int main(int argc, char **argv)
{
	const char *small = WASM_SANDBOX_BENCH_DIR "/small.wasm";
	const char *big = WASM_SANDBOX_BENCH_DIR "/big.wasm";
	int npaths = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
			if (runs < 1 || runs > 10000) {
				fprintf(stderr, "wasm_sandbox_bench: --runs takes 1..10000\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--small-only")) {
			small_only = true;
		} else if (argv[i][0] != '-' && npaths < 2) {
			if (npaths++ == 0)
				small = argv[i];
			else
				big = argv[i];
		} else {
			fprintf(stderr, "usage: wasm_sandbox_bench [--runs N] [--json] "
			                "[--small-only] [SMALL BIG]\n");
			return 2;
		}
	}
	double *v = calloc((size_t)runs, sizeof(double));
	if (!v)
		return 1;
	if (!json)
		printf("Wasm sandbox cold starts (%d runs per case, medians)\n", runs);
	/* The process's first Wasm sandbox boots and snapshots the runtime. */
	mote_sandbox *sb;
	double t0 = now_us();
	int rc = mote_wasm_sandbox_new(NULL, NULL, &sb);
	if (rc)
		return die("new", rc, NULL);
	v[0] = now_us() - t0;
	report("-", "first", "first sandbox (boots the runtime)", v, 1, "once per process");
	release(sb);
	for (int i = 0; i < runs; i++) {
		t0 = now_us();
		if ((rc = mote_wasm_sandbox_new(NULL, NULL, &sb)))
			return die("new", rc, NULL);
		rc = mote_wasm_call(sb, "add", NULL, 0, NULL, 0, NULL); /* no module: one round trip */
		v[i] = now_us() - t0;
		release(sb);
	}
	report("-", "new-call", "new (runtime snapshot) + one call", v, runs, "no module");
	if (plain_guest_file(WASM_SANDBOX_BENCH_GUEST, plain_file) ||
	    plain_guest_file(WASM_SANDBOX_BENCH_PADDED, padded_file))
		return 1;
	rc = bench_module("small", small, v) || bench_compiled("small", small, v) ||
	     (!small_only && (bench_module("big", big, v) || bench_compiled("big", big, v)));
	unlink(plain_file);
	unlink(padded_file);
	free(v);
	return rc;
}
