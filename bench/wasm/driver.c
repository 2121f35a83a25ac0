/* wasm_bench: times each kernel natively (gcc -O2), in the mote wasm engine
 * and in wabt's wasm-interp (if installed), in one run.
 *
 *   wasm_bench [--json] [--runs N] [--no-wabt] [--dir DIR] [NAME...]
 *
 * Prints a table with the median time per case and the ratio to native, plus
 * the geometric mean; --json prints one record per line instead.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "mote.h"
#include "mote/wasm.h"
#include "wasm.h"

#ifndef WASM_BENCH_DIR
#define WASM_BENCH_DIR "build/bench/wasm"
#endif

extern char **environ;

typedef struct kernel {
	const char *name;
	uint32_t (*native)(void);
} kernel;

static const kernel KERNELS[] = {
	{"fib", bench_fib},	  {"sieve", bench_sieve}, {"matmul", bench_matmul},
	{"sha256", bench_sha256}, {"nbody", bench_nbody}, {"crc32", bench_crc32},
	{"qsort", bench_qsort},
};
#define NKERNELS (sizeof KERNELS / sizeof KERNELS[0])

typedef struct stats {
	double med, min, max; /* microseconds */
	int runs;
	int ok;
} stats;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void summarize(double *t, int n, stats *s)
{
	qsort(t, (size_t)n, sizeof *t, cmp_d);
	s->runs = n;
	s->min = t[0];
	s->max = t[n - 1];
	s->med = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	s->ok = 1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
	if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(b);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void run_native(const kernel *k, int runs, stats *s, uint32_t *result)
{
	double t[64];
	*result = k->native(); /* warm-up */
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		uint32_t r = k->native();
		t[i] = now_us() - t0;
		if (r != *result)
			fprintf(stderr, "native %s: unstable result\n", k->name);
	}
	summarize(t, runs, s);
}

static void run_mote(const char *path, const kernel *k, int runs, uint32_t expect, stats *s,
		     double *load_us)
{
	size_t len;
	unsigned char *bytes = read_file(path, &len);
	s->ok = 0;
	if (!bytes) {
		fprintf(stderr, "mote %s: cannot read %s\n", k->name, path);
		return;
	}
	mw_module *m;
	mw_error err;
	double t0 = now_us();
	if (mw_module_load(bytes, len, NULL, &m, &err) != 0) {
		fprintf(stderr, "mote %s: load failed: %s\n", k->name, err.msg);
		free(bytes);
		return;
	}
	*load_us = now_us() - t0;
	free(bytes);
	mw_store *st = mw_store_new(NULL);
	mw_instance *inst;
	if (mw_instantiate(st, m, NULL, NULL, &inst, &err) != 0) {
		fprintf(stderr, "mote %s: instantiate failed: %s\n", k->name, err.msg);
		goto out;
	}
	char fname[64];
	snprintf(fname, sizeof fname, "bench_%s", k->name);
	mw_func *f = mw_instance_func(inst, fname);
	if (!f) {
		fprintf(stderr, "mote %s: no export %s\n", k->name, fname);
		goto out;
	}
	double t[64];
	mw_val res;
	for (int i = -1; i < runs; i++) {
		double t1 = now_us();
		mw_trap tr = mw_call(st, f, NULL, 0, &res, 1);
		double dt = now_us() - t1;
		if (tr != MW_TRAP_NONE) {
			fprintf(stderr, "mote %s: trap: %s\n", k->name, mw_trap_message(tr));
			goto out;
		}
		if (res.u32 != expect) {
			fprintf(stderr, "mote %s: result 0x%x, native 0x%x\n", k->name, res.u32,
				expect);
			goto out;
		}
		if (i >= 0)
			t[i] = dt;
	}
	summarize(t, runs, s);
out:
	mw_store_free(st);
	mw_module_free(m);
}

/* The kernel translated to C (mw_aot_translate), compiled with cc -O2 into
 * a shared object and run as native code; compile time is not timed. */
static void run_aot(const char *path, const kernel *k, int runs, uint32_t expect, stats *s,
                    double *compile_us)
{
	size_t len;
	unsigned char *bytes = read_file(path, &len);
	s->ok = 0;
	if (!bytes)
		return;
	char *src = NULL;
	size_t srclen;
	mw_error err;
	mw_aot_options opt = {.prefix = "k_", .symbol = "k_module"};
	mw_module *m = NULL;
	mw_store *st = NULL;
	void *so = NULL;
	char dir[] = "/tmp/mote-wasm-bench-XXXXXX", cpath[64], sopath[64], cmd[512];
	if (!mkdtemp(dir) || mw_aot_translate(bytes, len, &opt, &src, &srclen, &err) != 0) {
		fprintf(stderr, "aot %s: cannot translate\n", k->name);
		goto out;
	}
	snprintf(cpath, sizeof cpath, "%s/k.c", dir);
	snprintf(sopath, sizeof sopath, "%s/k.so", dir);
	FILE *f = fopen(cpath, "w");
	if (!f || fwrite(src, 1, srclen, f) != srclen || fclose(f) != 0) {
		fprintf(stderr, "aot %s: cannot write %s\n", k->name, cpath);
		goto out;
	}
	snprintf(cmd, sizeof cmd, "cc " MW_AOT_CFLAGS " -O2 -fPIC -shared -I%s -o %s %s",
	         WASM_BENCH_INCLUDE, sopath, cpath);
	double t0 = now_us();
	if (system(cmd) != 0 || !(so = dlopen(sopath, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "aot %s: cannot compile\n", k->name);
		goto out;
	}
	*compile_us = now_us() - t0;
	const struct mw_aot_module *aot = dlsym(so, "k_module");
	if (!aot || mw_module_load(bytes, len, NULL, &m, &err) != 0 ||
	    mw_module_set_native(m, aot, &err) != 0) {
		fprintf(stderr, "aot %s: cannot load\n", k->name);
		goto out;
	}
	st = mw_store_new(NULL);
	mw_instance *inst;
	if (!st || mw_instantiate(st, m, NULL, NULL, &inst, &err) != 0)
		goto out;
	char fname[64];
	snprintf(fname, sizeof fname, "bench_%s", k->name);
	mw_func *fn = mw_instance_func(inst, fname);
	if (!fn)
		goto out;
	double t[64];
	mw_val res;
	for (int i = -1; i < runs; i++) {
		double t1 = now_us();
		mw_trap tr = mw_call(st, fn, NULL, 0, &res, 1);
		double dt = now_us() - t1;
		if (tr != MW_TRAP_NONE || res.u32 != expect) {
			fprintf(stderr, "aot %s: %s\n", k->name,
			        tr ? mw_trap_message(tr) : "wrong result");
			goto out;
		}
		if (i >= 0)
			t[i] = dt;
	}
	summarize(t, runs, s);
out:
	if (st)
		mw_store_free(st);
	if (m)
		mw_module_free(m);
	if (so)
		dlclose(so);
	free(src);
	free(bytes);
	unlink(cpath);
	unlink(sopath);
	rmdir(dir);
}

/* The kernel compiled by mote_wasm_compile and run inside a Wasm sandbox:
 * each timed call includes one round trip into the sandbox. */
static void run_aot_sandbox(const char *path, const kernel *k, int runs, uint32_t expect, stats *s)
{
	s->ok = 0;
	char elf[] = "/tmp/mote-wasm-bench-XXXXXX";
	int fd = mkstemp(elf);
	if (fd < 0)
		return;
	close(fd);
	mote_sandbox *sb = NULL;
	int rc = mote_wasm_compile_file(path, elf, MOTE_WASM_COMPILE_NO_CACHE);
	if (!rc)
		rc = mote_wasm_sandbox_new_compiled(elf, NULL, NULL, &sb);
	if (rc) {
		fprintf(stderr, "aot-sandbox %s: %s: %s\n", k->name, mote_strerror(rc),
		        mote_last_error());
		unlink(elf);
		return;
	}
	char fname[64];
	snprintf(fname, sizeof fname, "bench_%s", k->name);
	double t[64];
	for (int i = -1; i < runs; i++) {
		mote_value r;
		double t1 = now_us();
		rc = mote_wasm_call(sb, fname, NULL, 0, &r, 1, NULL);
		double dt = now_us() - t1;
		if (rc || r.v.u32 != expect) {
			fprintf(stderr, "aot-sandbox %s: %s\n", k->name,
			        rc ? mote_sandbox_last_error(sb) : "wrong result");
			goto out;
		}
		if (i >= 0)
			t[i] = dt;
	}
	summarize(t, runs, s);
out:
	mote_sandbox_free(sb);
	unlink(elf);
}

static const char *find_wabt(void)
{
	static char buf[4096];
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *e = strchr(path, ':');
		size_t n = e ? (size_t)(e - path) : strlen(path);
		snprintf(buf, sizeof buf, "%.*s/wasm-interp", (int)n, path);
		if (access(buf, X_OK) == 0)
			return buf;
		path += n + (e ? 1 : 0);
	}
	return NULL;
}

static void run_wabt(const char *interp, const char *path, int runs, stats *s)
{
	double t[64];
	s->ok = 0;
	for (int i = 0; i < runs; i++) {
		char *argv[] = {(char *)interp, (char *)path, (char *)"--run-all-exports", NULL};
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1 /* O_WRONLY */, 0);
		pid_t pid;
		double t0 = now_us();
		if (posix_spawn(&pid, interp, &fa, NULL, argv, environ) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			return;
		}
		int status;
		waitpid(pid, &status, 0);
		t[i] = now_us() - t0;
		posix_spawn_file_actions_destroy(&fa);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return;
	}
	summarize(t, runs, s);
}

static void json_rec_case(const char *kind, const char *name, const char *engine, const stats *s,
                          double native_med)
{
	printf("{\"case\": \"%s-%s\", \"engine\": \"%s\", \"median_us\": %.1f, \"min_us\": %.1f, "
	       "\"max_us\": %.1f, \"runs\": %d, \"ratio_to_native\": %.3f}\n",
	       kind, name, engine, s->med, s->min, s->max, s->runs, s->med / native_med);
}

static void json_rec(const char *name, const char *engine, const stats *s, double native_med)
{
	json_rec_case("wasm", name, engine, s, native_med);
}

int main(int argc, char **argv)
{
	int json = 0, runs = 5, use_wabt = 1, wabt_runs = 3, sandbox = 1;
	const char *dir = WASM_BENCH_DIR;
	const char *only[16];
	int nonly = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--no-wabt"))
			use_wabt = 0;
		else if (!strcmp(argv[i], "--no-sandbox"))
			sandbox = 0;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (argv[i][0] == '-') {
			fprintf(
			    stderr,
			    "usage: %s [--json] [--runs N] [--no-wabt] [--no-sandbox] [--dir DIR] "
			    "[NAME...]\n",
			    argv[0]);
			return 2;
		} else if (nonly < 16)
			only[nonly++] = argv[i];
	}
	if (runs < 1)
		runs = 1;
	if (runs > 64)
		runs = 64;
	if (wabt_runs > runs)
		wabt_runs = runs;
	const char *wabt = use_wabt ? find_wabt() : NULL;
	double lg_mote = 0, lg_wabt = 0, lg_aot = 0, worst_aot = 0, lg_sb = 0, worst_sb = 0;
	int n_mote = 0, n_wabt = 0, n_aot = 0, n_sb = 0, failures = 0;
	if (!json) {
		printf("%-8s %11s %11s %8s %11s %8s %11s %8s %11s %8s %9s %9s\n", "kernel",
		       "native ms", "mote ms", "mote x", "aot ms", "aot x", "aot-sb ms", "aot-sb x",
		       "wabt ms", "wabt x", "load ms", "cc ms");
	}
	for (size_t ki = 0; ki < NKERNELS; ki++) {
		const kernel *k = &KERNELS[ki];
		if (nonly) {
			int hit = 0;
			for (int j = 0; j < nonly; j++)
				hit |= !strcmp(only[j], k->name);
			if (!hit)
				continue;
		}
		char path[4096];
		snprintf(path, sizeof path, "%s/k_%s.wasm", dir, k->name);
		stats sn, sm, sw;
		uint32_t expect;
		double load_us = 0, cc_us = 0;
		stats sa, ss;
		run_native(k, runs, &sn, &expect);
		run_mote(path, k, runs, expect, &sm, &load_us);
		run_aot(path, k, runs, expect, &sa, &cc_us);
		ss.ok = 0;
		if (sandbox) {
			run_aot_sandbox(path, k, runs, expect, &ss);
			if (!ss.ok)
				failures++;
		}
		if (ss.ok) {
			lg_sb += log(ss.med / sn.med);
			n_sb++;
			if (ss.med / sn.med > worst_sb)
				worst_sb = ss.med / sn.med;
		}
		sw.ok = 0;
		if (wabt)
			run_wabt(wabt, path, wabt_runs, &sw);
		if (!sm.ok || !sa.ok)
			failures++;
		if (sa.ok) {
			lg_aot += log(sa.med / sn.med);
			n_aot++;
			if (sa.med / sn.med > worst_aot)
				worst_aot = sa.med / sn.med;
		}
		if (sm.ok) {
			lg_mote += log(sm.med / sn.med);
			n_mote++;
		}
		if (sw.ok) {
			lg_wabt += log(sw.med / sn.med);
			n_wabt++;
		}
		if (json) {
			json_rec(k->name, "native", &sn, sn.med);
			if (sm.ok)
				json_rec(k->name, "mote", &sm, sn.med);
			if (sa.ok)
				json_rec_case("aot", k->name, "mote-aot", &sa, sn.med);
			if (ss.ok)
				json_rec_case("aot-sandbox", k->name, "mote-aot-sandbox", &ss,
				              sn.med);
			if (sw.ok)
				json_rec(k->name, "wabt", &sw, sn.med);
		} else {
			printf("%-8s %11.2f ", k->name, sn.med / 1e3);
			if (sm.ok)
				printf("%11.2f %8.2f ", sm.med / 1e3, sm.med / sn.med);
			else
				printf("%11s %8s ", "FAIL", "-");
			if (sa.ok)
				printf("%11.2f %8.2f ", sa.med / 1e3, sa.med / sn.med);
			else
				printf("%11s %8s ", "FAIL", "-");
			if (ss.ok)
				printf("%11.2f %8.2f ", ss.med / 1e3, ss.med / sn.med);
			else
				printf("%11s %8s ", sandbox ? "FAIL" : "-", "-");
			if (sw.ok)
				printf("%11.2f %8.2f ", sw.med / 1e3, sw.med / sn.med);
			else
				printf("%11s %8s ", "-", "-");
			printf("%9.2f %9.0f\n", load_us / 1e3, cc_us / 1e3);
		}
		fflush(stdout);
	}
	if (!json) {
		printf("geomean mote/native: %.2fx   aot/native: %.2fx (worst %.2fx)",
		       n_mote ? exp(lg_mote / n_mote) : 0.0, n_aot ? exp(lg_aot / n_aot) : 0.0,
		       worst_aot);
		if (n_sb)
			printf("   aot in a sandbox/native: %.2fx (worst %.2fx)", exp(lg_sb / n_sb),
			       worst_sb);
		if (n_wabt)
			printf("   wabt/native: %.2fx (wabt times include process start + load)",
			       exp(lg_wabt / n_wabt));
		printf("\n");
	}
	return failures ? 1 : 0;
}
