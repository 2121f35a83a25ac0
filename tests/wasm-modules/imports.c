/* Test module calling host functions through "env" imports. */
#include <stdint.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

IMPORT(host_add) int32_t host_add(int32_t a, int32_t b);
IMPORT(host_mix) double host_mix(int64_t a, float b, double c);
IMPORT(host_log) void host_log(const char *s, uint32_t len);
IMPORT(host_sum) uint32_t host_sum(const void *p, uint32_t len);

int32_t call_add(int32_t a, int32_t b)
{
	return host_add(a, b) * 2;
}

double call_mix(int64_t a, float b, double c)
{
	return host_mix(a, b, c);
}

static const char greeting[] = "hello from wasm";

int32_t say_hello(void)
{
	host_log(greeting, sizeof(greeting) - 1);
	return (int32_t)sizeof(greeting) - 1;
}

/* A string argument the guest must refuse: outside linear memory. */
void log_bad_pointer(void)
{
	host_log((const char *)0x7ffffff0, 64);
}

uint32_t sum_bytes(uint32_t n)
{
	static uint8_t buf[256];
	for (uint32_t i = 0; i < n && i < 256; i++)
		buf[i] = (uint8_t)i;
	return host_sum(buf, n);
}
