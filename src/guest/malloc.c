/* Guest heap: boundary-tag chunks with segregated free lists and immediate
 * coalescing. Payloads are 16-byte aligned. Touches only the pages it hands
 * out, so an untouched heap stays unbacked on the host (and out of snapshots'
 * dirty sets). */
#include "guest/guest_internal.h"
#include "mote/guest.h"

#define ALIGN 16u
#define HDR 16u      /* prev_size + size */
#define MIN_CHUNK 32u
#define INUSE 1u
#define PREV_INUSE 2u
#define FLAGS 15u
#define NBINS 64u

struct chunk {
	size_t prev_size; /* valid only when the previous chunk is free */
	size_t size;      /* chunk bytes | flags */
	struct chunk *fd; /* free chunks only */
	struct chunk *bk;
};

static struct chunk *bins[NBINS];
static uint64_t bin_map;
static uint8_t *heap_lo, *heap_hi;
static size_t heap_used_bytes, heap_total;

static size_t csize(const struct chunk *c)
{
	return c->size & ~(size_t)FLAGS;
}

static struct chunk *next_chunk(struct chunk *c)
{
	return (struct chunk *)((uint8_t *)c + csize(c));
}

static unsigned bin_index(size_t size)
{
	if (size < 1024)
		return (unsigned)(size / ALIGN) / 2; /* 0..31, 32-byte steps */
	unsigned lg = 63u - (unsigned)__builtin_clzll(size); /* >= 10 */
	unsigned idx = 32 + (lg - 10) * 2 + (unsigned)((size >> (lg - 1)) & 1);
	return idx < NBINS ? idx : NBINS - 1;
}

static void bin_insert(struct chunk *c)
{
	unsigned i = bin_index(csize(c));
	c->fd = bins[i];
	c->bk = 0;
	if (bins[i])
		bins[i]->bk = c;
	bins[i] = c;
	bin_map |= 1ull << i;
}

static void bin_remove(struct chunk *c)
{
	unsigned i = bin_index(csize(c));
	if (c->bk)
		c->bk->fd = c->fd;
	else
		bins[i] = c->fd;
	if (c->fd)
		c->fd->bk = c->bk;
	if (!bins[i])
		bin_map &= ~(1ull << i);
}

/* Mark c free with the given size, write its footer, file it. */
static void make_free(struct chunk *c, size_t size, size_t prev_flag)
{
	c->size = size | prev_flag;
	struct chunk *n = next_chunk(c);
	n->prev_size = size;
	n->size &= ~(size_t)PREV_INUSE;
	bin_insert(c);
}

static void *heap_base;
static size_t heap_bytes;

/* Only records the heap: the first malloc() lays it out, so a guest that
 * never allocates touches no heap page (each first touch is a fault). */
void mote__heap_init(void *base, size_t size)
{
	heap_base = base;
	heap_bytes = size;
}

static bool heap_setup(void)
{
	uintptr_t lo = ((uintptr_t)heap_base + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
	uintptr_t hi = ((uintptr_t)heap_base + heap_bytes) & ~(uintptr_t)(ALIGN - 1);
	if (!heap_base || hi < lo + MIN_CHUNK + HDR)
		return false;
	heap_lo = (uint8_t *)lo;
	heap_hi = (uint8_t *)hi;
	/* Sentinel at the end: an in-use zero-size chunk stops coalescing. */
	struct chunk *end = (struct chunk *)(hi - HDR);
	end->size = INUSE;
	struct chunk *c = (struct chunk *)lo;
	heap_total = (size_t)(hi - HDR - lo);
	make_free(c, heap_total, PREV_INUSE);
	return true;
}

static size_t request_size(size_t n)
{
	if (n > (size_t)1 << 48)
		return 0;
	size_t s = (n + HDR + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	return s < MIN_CHUNK ? MIN_CHUNK : s;
}

static struct chunk *find_fit(size_t size)
{
	unsigned i = bin_index(size);
	uint64_t map = bin_map & (~0ull << i);
	while (map) {
		unsigned b = (unsigned)__builtin_ctzll(map);
		for (struct chunk *c = bins[b]; c; c = c->fd)
			if (csize(c) >= size)
				return c;
		map &= map - 1;
	}
	return 0;
}

/* Use `size` bytes of free chunk c (already unlinked), free the rest. */
static void carve(struct chunk *c, size_t size)
{
	size_t total = csize(c);
	size_t prev = c->size & PREV_INUSE;
	if (total - size >= MIN_CHUNK) {
		c->size = size | INUSE | prev;
		struct chunk *rest = next_chunk(c);
		rest->size = 0;
		make_free(rest, total - size, PREV_INUSE);
	} else {
		c->size = total | INUSE | prev;
		next_chunk(c)->size |= PREV_INUSE;
	}
	heap_used_bytes += csize(c);
}

void *malloc(size_t n)
{
	size_t size = request_size(n);
	if (!size || (!heap_lo && !heap_setup()))
		return 0;
	struct chunk *c = find_fit(size);
	if (!c)
		return 0;
	bin_remove(c);
	carve(c, size);
	return (uint8_t *)c + HDR;
}

void free(void *p)
{
	if (!p)
		return;
	struct chunk *c = (struct chunk *)((uint8_t *)p - HDR);
	if ((uint8_t *)c < heap_lo || (uint8_t *)c >= heap_hi || !(c->size & INUSE))
		mote_abort(3, "free(): invalid pointer or double free");
	size_t size = csize(c);
	heap_used_bytes -= size;
	size_t prev_flag = c->size & PREV_INUSE;
	struct chunk *n = next_chunk(c);
	if (!(n->size & INUSE)) {
		bin_remove(n);
		size += csize(n);
	}
	if (!prev_flag) {
		struct chunk *prev = (struct chunk *)((uint8_t *)c - c->prev_size);
		bin_remove(prev);
		size += csize(prev);
		prev_flag = prev->size & PREV_INUSE;
		c = prev;
	}
	make_free(c, size, prev_flag);
}

void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return 0;
	void *p = malloc(total);
	if (p)
		memset(p, 0, total);
	return p;
}

void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {
		free(p);
		return 0;
	}
	struct chunk *c = (struct chunk *)((uint8_t *)p - HDR);
	size_t size = request_size(n);
	if (!size)
		return 0;
	size_t have = csize(c);
	if (have >= size)
		return p;
	/* Grow in place into a free neighbour when it is large enough. */
	struct chunk *nx = next_chunk(c);
	if (!(nx->size & INUSE) && have + csize(nx) >= size) {
		bin_remove(nx);
		size_t total = have + csize(nx);
		heap_used_bytes -= have;
		c->size = total | (c->size & FLAGS);
		c->size &= ~(size_t)INUSE;
		/* carve() expects a free chunk; re-mark and split. */
		carve(c, size);
		return p;
	}
	void *q = malloc(n);
	if (!q)
		return 0;
	memcpy(q, p, have - HDR);
	free(p);
	return q;
}

size_t mote_heap_used(void)
{
	return heap_used_bytes;
}

size_t mote_heap_size(void)
{
	if (!heap_lo)
		heap_setup();
	return heap_total;
}
