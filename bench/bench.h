/* Benchmarks behind `mote bench`. */
#ifndef MOTE_BENCH_H
#define MOTE_BENCH_H

int mote_bench_main(int argc, char **argv);

#endif
