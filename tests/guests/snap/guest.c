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

/* First touches of far-apart heap pages with different kinds of access
 * (each lands in memory the host adds lazily); returns what it read back. */
MOTE_FN1(u64, touch_kinds, u32, stride_pages)
{
	uint64_t sum = 0;
	uint8_t *p[6];
	for (int k = 0; k < 6; k++) {
		uint32_t page = (uint32_t)(k + 1) * stride_pages;
		if (page >= heap_npages)
			return 0;
		p[k] = heap_pages + (size_t)page * 4096 + 8;
	}
	*(volatile uint64_t *)p[0] = 0x1111222233334444ull;      /* plain store */
	typedef long long v2 __attribute__((vector_size(16)));
	*(volatile v2 *)(p[1] + 8) = (v2){5, 6};                  /* SSE store */
	memset(p[2], 7, 100);                                     /* rep stosb */
	__atomic_add_fetch((uint64_t *)p[3], 9, __ATOMIC_SEQ_CST); /* lock add */
	uint64_t loaded = *(volatile uint64_t *)p[4];             /* plain load of zero */
	uint8_t copy[64];
	memcpy(copy, p[5], sizeof(copy));                         /* rep movsb read */
	sum += *(volatile uint64_t *)p[0] + (uint64_t)(*(volatile v2 *)(p[1] + 8))[1] + p[2][99] +
	       *(uint64_t *)p[3] + loaded + copy[10];
	return sum;
}
