/* Benchmark kernels shared by the native build (gcc -O2, linked into the
 * driver) and the wasm32 build (clang --target=wasm32, one module each).
 * Every kernel is a no-argument function returning a checksum so that
 * wabt's `wasm-interp --run-all-exports` can run it too. Problem sizes live
 * in non-static globals so the native compiler cannot constant-fold them. */
#ifndef MOTE_WASM_BENCH_KERNELS_H
#define MOTE_WASM_BENCH_KERNELS_H

#include <stdint.h>

uint32_t bench_fib(void);
uint32_t bench_sieve(void);
uint32_t bench_matmul(void);
uint32_t bench_sha256(void);
uint32_t bench_nbody(void);
uint32_t bench_crc32(void);
uint32_t bench_qsort(void);

#endif
