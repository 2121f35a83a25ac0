#include "kernels.h"

#define CRC_BYTES (1u << 22)
uint32_t bench_crc32_len = CRC_BYTES;
uint32_t bench_crc32_reps = 4;
static uint8_t buf[CRC_BYTES];
static uint32_t table[256];

uint32_t bench_crc32(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	uint32_t len = bench_crc32_len, x = 12345;
	for (uint32_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	uint32_t acc = 0;
	for (uint32_t r = 0; r < bench_crc32_reps; r++) {
		uint32_t crc = 0xffffffffu ^ r;
		for (uint32_t i = 0; i < len; i++)
			crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
		acc += ~crc;
	}
	return acc;
}
