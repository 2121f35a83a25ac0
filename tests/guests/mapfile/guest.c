/* Test guest for host files mapped into the sandbox. */
#include <mote/guest.h>

MOTE_FN0(u32, count)
{
	mote_mapping m[32];
	return (uint32_t)mote_mappings(m, 32);
}

MOTE_FN1(str, name, u32, i)
{
	mote_mapping m[32];
	size_t n = mote_mappings(m, 32);
	if (i >= n)
		return (mote_str){"", 0};
	return (mote_str){m[i].name, strlen(m[i].name)};
}

MOTE_FN1(u64, size, u32, i)
{
	mote_mapping m[32];
	size_t n = mote_mappings(m, 32);
	return i < n ? m[i].size : 0;
}

MOTE_FN1(u64, address, u32, i)
{
	mote_mapping m[32];
	size_t n = mote_mappings(m, 32);
	return i < n ? (uint64_t)(uintptr_t)m[i].data : 0;
}

/* FNV-1a over [addr, addr + len). */
MOTE_FN2(u64, fnv, u64, addr, u64, len)
{
	const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)addr;
	uint64_t h = 1469598103934665603ull;
	for (uint64_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

MOTE_FN1(u32, read_byte, u64, addr)
{
	return *(const volatile uint8_t *)(uintptr_t)addr;
}

MOTE_FN2(void, write_byte, u64, addr, u32, value)
{
	*(volatile uint8_t *)(uintptr_t)addr = (uint8_t)value;
}

/* Read one byte in each of `pages` pages from `addr`, `stride` bytes apart. */
MOTE_FN3(u64, touch, u64, addr, u32, pages, u64, stride)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < pages; i++)
		sum += *(const volatile uint8_t *)(uintptr_t)(addr + i * stride);
	return sum;
}
