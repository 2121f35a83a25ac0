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

/* String and bytes results land in a buffer the module passes after the
 * arguments; the import returns the full length. */
IMPORT(host_greet) uint32_t host_greet(const char *name, uint32_t len, char *dst, uint32_t cap);
IMPORT(host_reverse)
uint32_t host_reverse(const void *p, uint32_t len, void *dst, uint32_t cap);

static char reply[64];

/* Fill the reply buffer with `fill`, ask for a greeting of "wasm" into its
 * first `cap` bytes, return the length the host reported. */
uint32_t greet(uint32_t cap, uint32_t fill)
{
	for (uint32_t i = 0; i < sizeof(reply); i++)
		reply[i] = (char)fill;
	return host_greet("wasm", 4, reply, cap < sizeof(reply) ? cap : sizeof(reply));
}

uint32_t reply_byte(uint32_t i)
{
	return i < sizeof(reply) ? (uint8_t)reply[i] : 0xffffffffu;
}

void greet_bad_buffer(void)
{
	host_greet("x", 1, (char *)0x7ffffff0, 64);
}

/* Reverse 0, 1, ..., n-1 through the host: the length * 1000 plus the
 * first byte back (n - 1). */
uint32_t reverse_bytes(uint32_t n)
{
	static uint8_t in[200], out[200];
	for (uint32_t i = 0; i < n && i < 200; i++)
		in[i] = (uint8_t)i;
	uint32_t got = host_reverse(in, n, out, sizeof(out));
	return got * 1000 + out[0];
}
