/* Test module linked with --import-memory and --import-table: its linear
 * memory is env.memory and its function table env.__indirect_function_table,
 * both provided by the sandbox. */
#include <stdint.h>

static uint32_t add(uint32_t a, uint32_t b)
{
	return a + b;
}

static uint32_t mul(uint32_t a, uint32_t b)
{
	return a * b;
}

typedef uint32_t (*binop)(uint32_t, uint32_t);
static binop volatile ops[2] = {add, mul};
static uint32_t data[4096];

/* Through the imported table. */
uint32_t apply(uint32_t which, uint32_t a, uint32_t b)
{
	return ops[which & 1](a, b);
}

/* Write and read back 16 KiB of the imported memory. */
uint32_t fill_and_sum(uint32_t n)
{
	uint32_t s = 0;
	for (uint32_t i = 0; i < n && i < 4096; i++)
		data[i] = i;
	for (uint32_t i = 0; i < n && i < 4096; i++)
		s += data[i];
	return s;
}

uint32_t pages(void)
{
	return (uint32_t)__builtin_wasm_memory_size(0);
}

uint32_t grow(uint32_t delta)
{
	return (uint32_t)__builtin_wasm_memory_grow(0, delta);
}
