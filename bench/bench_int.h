/* Shared by the benchmark suites behind `mote bench`. */
#ifndef MOTE_BENCH_INT_H
#define MOTE_BENCH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "mote.h"

struct stats {
	double median, min, max;
	int runs;
};

struct bench_opts {
	bool json;
	int runs;
};

struct floors {
	struct stats coldstart, exit;
};

#define BENCH_NCOLD 5 /* 128 KiB, 8 MiB, 64 MiB, 256 MiB, 1 GiB */
struct cold_results {
	double evolve[BENCH_NCOLD], full[BENCH_NCOLD], header[BENCH_NCOLD], cached[BENCH_NCOLD];
	double warm_evolve, warm_snapshot; /* a guest with 16 MiB of start-up writes */
};

struct stats bench_summarize(double *v, int n);
/* The floors' names on the backend being measured. */
const char *bench_floor_name(bool exit);
void bench_report(const struct bench_opts *o, const char *name, uint64_t heap, struct stats s,
		  const char *note);
/* A sandbox of the embedded bench guest. */
int bench_new_sandbox(uint64_t heap, const mote_host_functions *fns, mote_sandbox **out);

int bench_coldstart(const struct bench_opts *o, const struct floors *f, struct cold_results *res);
int bench_verify(const struct bench_opts *o, double *gbps, double *save_8m, double *save_256m);
int bench_restore(const struct bench_opts *o, double restore16[2]);
int bench_density(const struct bench_opts *o, double *kib_per_sandbox);
int bench_mapfile(const struct bench_opts *o, double *us_1m, double *us_1g);
int bench_layers(const struct bench_opts *o, double *chain_us, double *single_us,
		 double *layer_bytes_per_page);
int bench_hugepages(const struct bench_opts *o, double *off_us, double *on_us);
void bench_cleanup_files(void);
/* The embedded bench guest. */
const void *bench_guest_elf(void);
size_t bench_guest_size(void);

#endif
