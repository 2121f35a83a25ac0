/* `mote bench`: measures mote against the bare-KVM floor in the same run and
 * prints ratios to it. Speed targets are checked here, never in tests. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_int.h"
#include "bench/floor.h"
#include "bench/floor_proc.h"

/* The bench guest, embedded at build time (see mk/bench.mk). */
extern const unsigned char mote_bench_guest[];
extern const unsigned char mote_bench_guest_end[];
__asm__(".section .rodata\n"
	".balign 16\n"
	".globl mote_bench_guest\n"
	"mote_bench_guest:\n"
	".incbin \"" MOTE_BENCH_GUEST "\"\n"
	".globl mote_bench_guest_end\n"
	"mote_bench_guest_end:\n"
	".previous\n");

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

const void *bench_guest_elf(void)
{
	return mote_bench_guest;
}

size_t bench_guest_size(void)
{
	return (size_t)(mote_bench_guest_end - mote_bench_guest);
}

struct stats bench_summarize(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	struct stats s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1], n};
	return s;
}

static const char *human_size(uint64_t b, char *buf, size_t n)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%llu GiB", (unsigned long long)(b >> 30));
	else if (b >= (1ull << 20))
		snprintf(buf, n, "%llu MiB", (unsigned long long)(b >> 20));
	else
		snprintf(buf, n, "%llu KiB", (unsigned long long)(b >> 10));
	return buf;
}

/* The backend the cases being measured run on. */
static mote_backend cur_backend;

const char *bench_floor_name(bool exit)
{
	if (cur_backend == MOTE_BACKEND_KVM)
		return exit ? "floor-exit" : "floor-coldstart";
	return exit ? "floor-proc-exit" : "floor-proc-coldstart";
}

void bench_report(const struct bench_opts *o, const char *name, uint64_t heap, struct stats s,
		  const char *note)
{
	if (o->json)
		printf("{\"backend\": \"%s\", \"case\": \"%s\", \"heap\": %llu, "
		       "\"median_us\": %.2f, \"min_us\": %.2f, \"max_us\": %.2f, \"runs\": %d}\n",
		       mote_backend_name(cur_backend), name, (unsigned long long)heap, s.median, s.min,
		       s.max, s.runs);
	else {
		char hs[32] = "";
		if (heap)
			human_size(heap, hs, sizeof(hs));
		printf("  %-16s %8s %10.1f us  (min %.1f, max %.1f, %d runs)%s%s\n", name, hs,
		       s.median, s.min, s.max, s.runs, note ? "  " : "", note ? note : "");
	}
	fflush(stdout);
}


static int bench_host(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
		      mote_value *result)
{
	(void)user;
	(void)sb;
	(void)nargs;
	result->v.i32 = args[0].v.i32 + 1;
	return 0;
}

static mote_host_functions *bench_host_functions(void)
{
	mote_host_functions *fns;
	const mote_type i32[1] = {MOTE_I32};
	if (mote_host_functions_new(&fns))
		return NULL;
	if (mote_host_functions_add(fns, "bench_host", MOTE_I32, i32, 1, bench_host, NULL)) {
		mote_host_functions_free(fns);
		return NULL;
	}
	return fns;
}

int bench_new_sandbox(uint64_t heap, const mote_host_functions *fns, mote_sandbox **out)
{
	mote_config *cfg;
	int rc = mote_config_new(&cfg);
	if (rc)
		return rc;
	rc = mote_config_set_heap_size(cfg, heap);
	if (!rc)
		rc = mote_sandbox_new_from_buffer(mote_bench_guest,
						  (size_t)(mote_bench_guest_end - mote_bench_guest),
						  cfg, fns, out);
	mote_config_free(cfg);
	if (rc)
		fprintf(stderr, "mote bench: cannot create the bench sandbox: %s: %s\n",
			mote_strerror(rc), mote_last_error());
	return rc;
}

/* Floor samples are taken at the start of the run and again at its end
 * (the machine's speed drifts); ratios use the median of both sets. */
static double *floor_cold, *floor_exit;
static int floor_n;

static int sample_floors(const struct bench_opts *o, struct floors *f)
{
	double *c = realloc(floor_cold, (size_t)(floor_n + o->runs) * sizeof(double));
	if (c)
		floor_cold = c;
	double *e = realloc(floor_exit, (size_t)(floor_n + o->runs) * sizeof(double));
	if (e)
		floor_exit = e;
	if (!c || !e)
		return 1;
	bool kvm = cur_backend == MOTE_BACKEND_KVM;
	for (int i = 0; i < o->runs; i++) {
		double *c0 = &floor_cold[floor_n + i], *e0 = &floor_exit[floor_n + i];
		if (kvm ? bench_floor_coldstart(c0) || bench_floor_exit(100, e0)
			: bench_floor_proc_coldstart(c0) || bench_floor_proc_exit(100, e0)) {
			fprintf(stderr, "mote bench: the %s floor failed\n",
				kvm ? "bare-KVM" : "process");
			return 1;
		}
	}
	floor_n += o->runs;
	double *tmp = malloc((size_t)floor_n * sizeof(double));
	if (!tmp)
		return 1;
	memcpy(tmp, floor_cold, (size_t)floor_n * sizeof(double));
	f->coldstart = bench_summarize(tmp, floor_n);
	memcpy(tmp, floor_exit, (size_t)floor_n * sizeof(double));
	f->exit = bench_summarize(tmp, floor_n);
	free(tmp);
	return 0;
}

static void report_floors(const struct bench_opts *o, const struct floors *f, const char *when)
{
	char note[128];
	if (cur_backend == MOTE_BACKEND_KVM) {
		snprintf(note, sizeof(note), "VM + vCPU + memory + long mode, first exit%s", when);
		bench_report(o, "floor-coldstart", 0, f->coldstart, note);
		snprintf(note, sizeof(note), "one guest -> host -> guest exit at CPL 3%s", when);
		bench_report(o, "floor-exit", 0, f->exit, note);
		return;
	}
	snprintf(note, sizeof(note), "posix_spawn of a static program, first round trip%s", when);
	bench_report(o, "floor-proc-coldstart", 0, f->coldstart, note);
	snprintf(note, sizeof(note), "futex round trip between two processes, no spin%s", when);
	bench_report(o, "floor-proc-exit", 0, f->exit, note);
}

static int run_floors(const struct bench_opts *o, struct floors *f)
{
	if (sample_floors(o, f))
		return 1;
	if (!o->json)
		report_floors(o, f, " (start of run)");
	return 0;
}

static const uint64_t evolve_heaps[] = {128ull << 10, 8ull << 20, 64ull << 20, 256ull << 20};
#define NHEAPS (sizeof(evolve_heaps) / sizeof(evolve_heaps[0]))

/* The sizes take turns, one start each (see bench_coldstart). */
static int run_evolve(const struct bench_opts *o, const struct floors *f, double *medians)
{
	int runs = o->runs;
	double *v = calloc(NHEAPS * (size_t)runs, sizeof(double));
	if (!v)
		return 1;
	for (int i = 0; i < runs; i++) {
		for (size_t h = 0; h < NHEAPS; h++) {
			mote_sandbox *sb;
			double t0 = bench_now_us();
			if (bench_new_sandbox(evolve_heaps[h], NULL, &sb)) {
				free(v);
				return 1;
			}
			int rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
			v[h * (size_t)runs + (size_t)i] = bench_now_us() - t0;
			if (rc)
				fprintf(stderr, "mote bench: noop: %s\n",
				        mote_sandbox_last_error(sb));
			mote_sandbox_free(sb);
			if (rc) {
				free(v);
				return 1;
			}
		}
	}
	for (size_t h = 0; h < NHEAPS; h++) {
		struct stats s = bench_summarize(v + h * (size_t)runs, runs);
		medians[h] = s.median;
		char note[96], hs[32];
		snprintf(note, sizeof(note), "heap %s: %.2f x %s",
		         human_size(evolve_heaps[h], hs, sizeof(hs)),
		         s.median / f->coldstart.median, bench_floor_name(false));
		bench_report(o, "evolve", evolve_heaps[h], s, note);
	}
	free(v);
	return 0;
}

static int run_calls(const struct bench_opts *o, const struct floors *f, double *call,
		     double *hostcall)
{
	mote_host_functions *fns = bench_host_functions();
	mote_sandbox *sb;
	if (!fns || bench_new_sandbox(128 << 10, fns, &sb)) {
		mote_host_functions_free(fns);
		return 1;
	}
	int n = o->runs * 50;
	double *v = calloc((size_t)n, sizeof(double));
	int rc = v ? 0 : 1;
	for (int i = 0; !rc && i < n; i++) {
		double t0 = bench_now_us();
		rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
		v[i] = bench_now_us() - t0;
	}
	if (!rc) {
		struct stats s = bench_summarize(v, n);
		*call = s.median;
		char note[64];
		snprintf(note, sizeof(note), "%.2f x %s", s.median / f->exit.median,
			 bench_floor_name(true));
		bench_report(o, "call", 0, s, note);
	}
	for (int i = 0; !rc && i < n; i++) {
		mote_value arg = mote_i32(i), r;
		double t0 = bench_now_us();
		rc = mote_sandbox_call(sb, "hostcall", &arg, 1, &r);
		v[i] = bench_now_us() - t0;
		if (!rc && r.v.i32 != i + 1)
			rc = -MOTE_EPROTOCOL;
	}
	if (!rc) {
		struct stats s = bench_summarize(v, n);
		*hostcall = s.median;
		char note[64];
		snprintf(note, sizeof(note), "%.2f x %s", s.median / f->exit.median,
			 bench_floor_name(true));
		bench_report(o, "hostcall", 0, s, note);
	} else {
		fprintf(stderr, "mote bench: call: %s: %s\n", mote_strerror(rc),
			mote_sandbox_last_error(sb));
	}
	free(v);
	mote_sandbox_free(sb);
	mote_host_functions_free(fns);
	return rc ? 1 : 0;
}

static void target(const struct bench_opts *o, const char *what, double value, double limit)
{
	if (o->json)
		return;
	printf("  %-52s %6.2f <= %.2f  %s\n", what, value, limit, value <= limit ? "ok" : "MISSED");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mote bench [--json] [--runs N] [SUITE...]\n"
		   "suites: floor, evolve, call (call + hostcall), coldstart, restore, density,\n"
		   "        save (save + full verification), mapfile, layers, hugepages;\n"
		   "        default: all\n"
		   "The floors are measured in every run; ratios are to them.\n");
}

enum { S_EVOLVE, S_CALL, S_COLD, S_RESTORE, S_DENSITY, S_SAVE, S_MAPFILE, S_LAYERS, S_HUGE,
       S_COUNT };
static const char *const suite_names[S_COUNT] = {"evolve",  "call",    "coldstart",
						 "restore", "density", "save",
						 "mapfile", "layers",  "hugepages"};

static const char *heap_label(int h)
{
	static const char *const labels[BENCH_NCOLD] = {"128 KiB", "8 MiB", "64 MiB", "256 MiB",
							"1 GiB"};
	return labels[h];
}

static void cold_table(const struct bench_opts *o, const struct floors *f,
		       const struct cold_results *r)
{
	if (o->json)
		return;
	printf("\ncold start to the first completed call (medians, us):\n");
	printf("  %-8s %12s %16s %18s %18s %9s\n", "heap", "from ELF", "snapshot (full)",
	       "snapshot (header)", "snapshot (cached)", "speed-up");
	for (int h = 0; h < BENCH_NCOLD; h++)
		printf("  %-8s %12.0f %16.0f %18.0f %18.0f %8.1fx\n", heap_label(h), r->evolve[h],
		       r->full[h], r->header[h], r->cached[h], r->evolve[h] / r->header[h]);
	printf("  %s (same run): %.0f us\n", bench_floor_name(false), f->coldstart.median);
	printf("  a guest that writes 16 MiB while starting up (64 MiB heap): from ELF %.0f us, "
	       "from a snapshot taken after it %.0f us (%.1fx)\n",
	       r->warm_evolve, r->warm_snapshot, r->warm_evolve / r->warm_snapshot);
}

/* Every wanted suite on cur_backend, against its own floors. */
static int bench_one_backend(struct bench_opts *o, const bool *want)
{
	bool kvm = cur_backend == MOTE_BACKEND_KVM;
	if (!o->json)
		printf("\n%s backend (%d runs per case; medians; floors measured in this run)\n",
		       mote_backend_name(cur_backend), o->runs);
	floor_n = 0;
	struct floors f;
	if (run_floors(o, &f))
		return 1;
	double evolve[NHEAPS] = {0}, call = 0, hostcall = 0, gbps = 0, save8 = 0, save256 = 0;
	double restore16[2] = {0}, density = 0;
	struct cold_results cold;
	memset(&cold, 0, sizeof(cold));
	int rc = 0;
	if (want[S_EVOLVE] && run_evolve(o, &f, evolve))
		rc = 1;
	if (!rc && want[S_CALL] && run_calls(o, &f, &call, &hostcall))
		rc = 1;
	if (!rc && want[S_COLD] && bench_coldstart(o, &f, &cold))
		rc = 1;
	if (!rc && want[S_RESTORE] && bench_restore(o, restore16))
		rc = 1;
	if (!rc && want[S_DENSITY] && bench_density(o, &density))
		rc = 1;
	if (!rc && want[S_SAVE] && bench_verify(o, &gbps, &save8, &save256))
		rc = 1;
	double map1m = 0, map1g = 0, chain = 0, single = 0, layer_bpp = 0, fill4k = 0, fillhuge = 0;
	if (!rc && want[S_MAPFILE] && bench_mapfile(o, &map1m, &map1g))
		rc = 1;
	if (!rc && want[S_LAYERS] && bench_layers(o, &chain, &single, &layer_bpp))
		rc = 1;
	if (!rc && want[S_HUGE] && bench_hugepages(o, &fill4k, &fillhuge))
		rc = 1;
	bench_cleanup_files();
	if (!rc && sample_floors(o, &f))
		rc = 1;
	free(floor_cold);
	free(floor_exit);
	floor_cold = floor_exit = NULL; /* the next backend samples its own */
	if (rc)
		return 1;
	if (!o->json)
		printf("\n");
	report_floors(o, &f, o->json ? "" : " (start and end of run combined)");
	if (want[S_COLD])
		cold_table(o, &f, &cold);
	if (!o->json)
		printf("\ntargets:\n");
	if (want[S_EVOLVE] && kvm) {
		target(o, "evolve 256 MiB / evolve 128 KiB", evolve[3] / evolve[0], 1.2);
		target(o, "evolve 128 KiB / floor-coldstart", evolve[0] / f.coldstart.median, 2.0);
	}
	if (want[S_CALL]) {
		char what[64];
		snprintf(what, sizeof(what), "call / %s", bench_floor_name(true));
		target(o, what, call / f.exit.median, 1.5);
		snprintf(what, sizeof(what), "hostcall / %s", bench_floor_name(true));
		target(o, what, hostcall / f.exit.median, 2.5);
	}
	if (want[S_COLD] && !kvm) {
		target(o, "snapshot-header 1 GiB / 128 KiB", cold.header[4] / cold.header[0], 1.2);
		target(o, "snapshot-header 128 KiB / floor-proc-coldstart",
		       cold.header[0] / f.coldstart.median, 1.5);
	}
	if (want[S_COLD] && kvm) {
		target(o, "snapshot-header 1 GiB / 128 KiB", cold.header[4] / cold.header[0], 1.2);
		target(o, "snapshot-cached 1 GiB / 128 KiB", cold.cached[4] / cold.cached[0], 1.2);
		target(o, "snapshot-header 1 GiB / floor-coldstart",
		       cold.header[4] / f.coldstart.median, 1.5);
		target(o, "snapshot-cached 1 GiB / floor-coldstart",
		       cold.cached[4] / f.coldstart.median, 1.5);
	}
	if (want[S_RESTORE]) {
		target(o, "restore-16 256 MiB / 128 KiB", restore16[1] / restore16[0], 1.2);
		target(o, "restore-16 at 256 MiB (us)", restore16[1], 100);
	}
	if (want[S_SAVE])
		target(o, "full verification, 1/(GB/s) (>= 3 GB/s)", 1 / gbps, 1 / 3.0);
	if (want[S_DENSITY])
		target(o, "density, MiB per sandbox", density / 1024, 1.5);
	if (want[S_MAPFILE])
		target(o, "mapfile 1 GiB / 1 MiB", map1g / map1m, 1.2);
	if (want[S_LAYERS]) {
		target(o, "cold start 3-file chain / single file", chain / single, 1.3);
		target(o, "layer file KiB (16 pages; <= 16 x 4 + 64)", layer_bpp * 16 / 1024,
		       16 * 4 + 64);
	}
	if (want[S_HUGE] && !o->json)
		printf("  %-52s %6.2f (huge pages / 4 KiB; lower is better)\n",
		       "fill 256 MiB heap, huge pages vs 4 KiB", fillhuge / fill4k);
	return 0;
}

int mote_bench_main(int argc, char **argv)
{
	struct bench_opts o = {false, 21};
	bool want[S_COUNT] = {false};
	bool any = false;
	for (int i = 0; i < argc; i++) {
		bool matched = false;
		for (int k = 0; k < S_COUNT; k++)
			if (!strcmp(argv[i], suite_names[k]))
				matched = want[k] = any = true;
		if (!strcmp(argv[i], "hostcall"))
			matched = want[S_CALL] = any = true;
		if (!strcmp(argv[i], "floor"))
			matched = any = true;
		if (matched)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			o.json = true;
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			o.runs = atoi(argv[++i]);
			if (o.runs < 1 || o.runs > 100000) {
				fprintf(stderr, "mote bench: --runs takes 1..100000\n");
				return 2;
			}
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "mote bench: unknown suite or option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!any)
		for (int k = 0; k < S_COUNT; k++)
			want[k] = true;
	/* Every backend this machine runs, or the one MOTE_BACKEND names. */
	mote_backend backends[2];
	int nb = 0;
	const char *env = getenv("MOTE_BACKEND");
	if (env && *env && strcmp(env, "auto")) {
		if (mote_backend_parse(env, &backends[0]) || mote_backend_check(backends[0], NULL)) {
			fprintf(stderr, "mote bench: MOTE_BACKEND=%s: %s\n", env, mote_last_error());
			return 1;
		}
		nb = 1;
	} else {
		static const mote_backend all[] = {MOTE_BACKEND_KVM, MOTE_BACKEND_PROCESS};
		for (int i = 0; i < 2; i++) {
			if (mote_backend_check(all[i], NULL) == 0)
				backends[nb++] = all[i];
			else if (!o.json)
				printf("(%s backend not measured: %s)\n", mote_backend_name(all[i]),
				       mote_last_error());
		}
	}
	char *saved = env ? strdup(env) : NULL;
	int rc = nb ? 0 : 1;
	for (int i = 0; !rc && i < nb; i++) {
		/* Every sandbox the suites make runs on it (their configs say AUTO). */
		setenv("MOTE_BACKEND", mote_backend_name(backends[i]), 1);
		cur_backend = backends[i];
		rc = bench_one_backend(&o, want);
	}
	if (saved)
		setenv("MOTE_BACKEND", saved, 1);
	else
		unsetenv("MOTE_BACKEND");
	free(saved);
	return rc;
}
