/* Test module: every value type, a trap, memory access. Built with
 * clang --target=wasm32 -nostdlib -Wl,--no-entry -Wl,--export-all -O2. */
#include <stdint.h>

int32_t add(int32_t a, int32_t b)
{
	return a + b;
}

int64_t add64(int64_t a, int64_t b)
{
	return a + b;
}

float mulf(float a, float b)
{
	return a * b;
}

double mix(int32_t a, int64_t b, float c, double d)
{
	return (double)a + (double)b + (double)c + d;
}

int32_t fib(int32_t n)
{
	return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int32_t divide(int32_t a, int32_t b)
{
	return a / b;
}

void nothing(void)
{
}

static int32_t table[1024];

/* Fill table[0..n) with i*k and return the sum. */
int64_t fill_sum(int32_t n, int32_t k)
{
	int64_t s = 0;
	for (int32_t i = 0; i < n && i < 1024; i++) {
		table[i] = i * k;
		s += table[i];
	}
	return s;
}

int32_t peek(uint32_t addr)
{
	return *(volatile int32_t *)(uintptr_t)addr;
}

void poke(uint32_t addr, int32_t v)
{
	*(volatile int32_t *)(uintptr_t)addr = v;
}

static int32_t counter;

int32_t bump(void)
{
	return ++counter;
}

/* Grow linear memory by n pages; the old size in pages, or -1. */
int32_t grow(int32_t n)
{
	return __builtin_wasm_memory_grow(0, n);
}

int32_t pages(void)
{
	return __builtin_wasm_memory_size(0);
}

/* Never returns: for timeouts. */
void spin(void)
{
	for (volatile int32_t i = 0;; i++) {
	}
}
