#include "kernels.h"

#define MM_N 256
uint32_t bench_matmul_n = MM_N;
static double A[MM_N * MM_N], B[MM_N * MM_N], C[MM_N * MM_N];

uint32_t bench_matmul(void)
{
	uint32_t n = bench_matmul_n;
	for (uint32_t i = 0; i < n * n; i++) {
		A[i] = (double)(i % 17) * 0.5 - 3.0;
		B[i] = (double)(i % 13) * 0.25 + 1.0;
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++) {
			double s = 0.0;
			for (uint32_t k = 0; k < n; k++)
				s += A[i * n + k] * B[k * n + j];
			C[i * n + j] = s;
		}
	double sum = 0.0;
	for (uint32_t i = 0; i < n * n; i++)
		sum += C[i] * (double)(i % 7 + 1);
	return (uint32_t)(int64_t)sum;
}
