/* Bare-KVM floors (see floor.c). */
#ifndef MOTE_BENCH_FLOOR_H
#define MOTE_BENCH_FLOOR_H

double bench_now_us(void);
/* VM + vCPU + memory + long mode, run to the first exit. */
int bench_floor_coldstart(double *us);
/* One guest -> host -> guest round trip at CPL 3, averaged. */
int bench_floor_exit(int iterations, double *us_per_exit);

#endif
