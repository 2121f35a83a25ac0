#include "kernels.h"

uint32_t bench_fib_n = 35;

static uint32_t fib(uint32_t n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

uint32_t bench_fib(void)
{
	return fib(bench_fib_n);
}
