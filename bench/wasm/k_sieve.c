#include "kernels.h"

#define SIEVE_MAX 4000000
uint32_t bench_sieve_n = SIEVE_MAX;
uint32_t bench_sieve_reps = 4;
static uint8_t composite[SIEVE_MAX + 1];

uint32_t bench_sieve(void)
{
	uint32_t n = bench_sieve_n, count = 0;
	for (uint32_t r = 0; r < bench_sieve_reps; r++) {
		for (uint32_t i = 0; i <= n; i++)
			composite[i] = 0;
		count = 0;
		for (uint32_t i = 2; i <= n; i++) {
			if (composite[i])
				continue;
			count++;
			for (uint64_t j = (uint64_t)i * i; j <= n; j += i)
				composite[j] = 1;
		}
	}
	return count;
}
