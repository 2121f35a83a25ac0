#include "kernels.h"

#define QS_N 1000000
uint32_t bench_qsort_n = QS_N;
static int32_t arr[QS_N];

static void qs(int32_t *a, int32_t lo, int32_t hi)
{
	while (lo < hi) {
		int32_t p = a[lo + (hi - lo) / 2], i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j) {
				int32_t t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				j--;
			}
		}
		/* recurse into the smaller half, loop on the larger */
		if (j - lo < hi - i) {
			qs(a, lo, j);
			lo = i;
		} else {
			qs(a, i, hi);
			hi = j;
		}
	}
}

uint32_t bench_qsort(void)
{
	uint32_t n = bench_qsort_n, x = 42;
	for (uint32_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		arr[i] = (int32_t)x;
	}
	qs(arr, 0, (int32_t)n - 1);
	uint32_t acc = 0;
	for (uint32_t i = 0; i < n; i += 997)
		acc = acc * 31 + (uint32_t)arr[i];
	return acc;
}
