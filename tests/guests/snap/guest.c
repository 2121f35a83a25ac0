/* Snapshot test guest: writes known patterns across its heap, keeps state
 * in globals, and can fault on purpose. */
#include <mote/guest.h>

static uint8_t *heap_pages;
static uint32_t heap_npages;
static int counter;

void mote_init(void)
{
	/* Claim most of the heap once, so tests can address pages by index. */
	size_t size = mote_heap_size();
	heap_npages = (uint32_t)(size / 4096) - 2;
	heap_pages = malloc((size_t)heap_npages * 4096);
	if (!heap_pages)
		mote_abort(3, "out of memory");
}

MOTE_FN0(u32, pages)
{
	return heap_npages;
}

MOTE_FN0(i32, bump)
{
	return ++counter;
}

/* Fill `count` pages from `first` with a pattern derived from `seed`. */
MOTE_FN3(u32, write_pattern, u32, first, u32, count, u32, seed)
{
	uint32_t n = 0;
	for (uint32_t p = first; p < first + count && p < heap_npages; p++, n++) {
		uint32_t *w = (uint32_t *)(heap_pages + (size_t)p * 4096);
		for (int i = 0; i < 1024; i++)
			w[i] = seed * 2654435761u + p * 40503u + (uint32_t)i;
	}
	return n;
}

/* Sum of 32-bit words over pages [first, first + count). */
MOTE_FN2(u64, checksum, u32, first, u32, count)
{
	uint64_t sum = 0;
	for (uint32_t p = first; p < first + count && p < heap_npages; p++) {
		const uint32_t *w = (const uint32_t *)(heap_pages + (size_t)p * 4096);
		for (int i = 0; i < 1024; i++)
			sum += w[i] ^ (uint32_t)i;
	}
	return sum;
}

MOTE_FN1(f64, scale, f64, x)
{
	return x * 1.5;
}

static volatile uintptr_t bad_address = 0x10;

MOTE_FN0(void, crash)
{
	*(volatile int *)bad_address = 1;
}

/* Calls the host's "host_tag" () -> i32. */
MOTE_FN0(i32, tag)
{
	mote_value r;
	if (mote_host_call("host_tag", MOTE_I32, &r, 0, 0))
		return -1;
	return r.v.i32;
}

MOTE_FN0(void, spin)
{
	for (;;)
		__asm__ volatile("" ::: "memory");
}
