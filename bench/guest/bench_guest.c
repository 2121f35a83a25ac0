/* The guest the benchmarks run (embedded into the mote binary). */
#include <mote/guest.h>

MOTE_FN0(void, noop)
{
}

/* One host call to "bench_host" (i32) -> i32. */
MOTE_FN1(i32, hostcall, i32, x)
{
	mote_value arg = mote_val_i32(x), r;
	if (mote_host_call("bench_host", MOTE_I32, &r, &arg, 1))
		return -1;
	return r.v.i32;
}

/* Write one byte in each of `pages` distinct heap pages, starting at page
 * `first` (so successive calls can dirty fresh or the same pages). */
MOTE_FN2(u64, touch_pages, u32, first, u32, pages)
{
	static uint8_t *base;
	static size_t size;
	if (!base) {
		size = mote_heap_size() & ~(size_t)4095;
		base = malloc(size - 4096); /* the heap, minus allocator overhead */
		if (!base)
			return 0;
	}
	uint64_t n = 0;
	for (uint32_t i = 0; i < pages; i++) {
		size_t off = ((size_t)(first + i) * 4096) % (size - 8192);
		base[off] = (uint8_t)(base[off] + 1);
		n++;
	}
	return n;
}

/* Read one byte from each of `pages` pages, `stride` bytes apart, from
 * `addr` (a mapped file). */
MOTE_FN3(u64, read_pages, u64, addr, u32, pages, u64, stride)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < pages; i++)
		sum += *(const volatile uint8_t *)(uintptr_t)(addr + i * stride);
	return sum;
}
