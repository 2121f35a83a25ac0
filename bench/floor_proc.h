/* The process backend's floors (floor_proc.c): what a process round trip
 * and a process start cost on this machine, measured in the same run. */
#ifndef MOTE_BENCH_FLOOR_PROC_H
#define MOTE_BENCH_FLOOR_PROC_H

#include <stdint.h>

/* The page the floor child shares with its parent. */
struct floor_page {
	uint32_t to_child, to_parent, quit;
};

#ifndef __ASSEMBLER__
/* posix_spawn of a minimal static program until its first wake of us. */
int bench_floor_proc_coldstart(double *us);
/* One futex wake/wait round trip between two processes, no spinning. */
int bench_floor_proc_exit(int iterations, double *us_per_exit);
#endif

#endif
