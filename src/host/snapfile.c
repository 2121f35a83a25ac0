/* Snapshot files. The byte layout is specified in docs/snapshot-format.md;
 * the disk_* structs below are that specification in C (byte arrays only, so
 * no padding or host byte order leaks in) and the _Static_asserts pin them.
 * Every integer is little-endian and goes through get/put helpers. Files are
 * untrusted: parse checks every field, with overflow-checked arithmetic,
 * before anything is used. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#endif

#include "host/sha256x16.h"
#include "host/snapfile.h"

/* ---- On-disk records ---- */

#define SNAP_MAGIC "MOTESNAP"
#define HDR_SIZE 512u
#define GUARD_SIZE MOTE_PAGE_SIZE
#define PAGE MOTE_PAGE_SIZE
#define MAX_META (64ull << 20)      /* bytes before the blob a reader accepts */
#define MAX_CHUNK_SIZE (1ull << 30) /* largest chunk_size a reader accepts */
#define WRITE_CHUNK_SIZE (2ull << 20)
#define MERGE_GAP_PAGES 4u          /* absent pages a region may swallow */
#define CACHE_SIZE 256u
#define MAX_PATH_LEN 4095u          /* parent and mapping paths, in bytes */
#define MAX_FILE_END ((uint64_t)INT64_MAX) /* largest end of a mapping's file range */

enum {
	SEC_LAYOUT,
	SEC_VCPU,
	SEC_HOST_FNS,
	SEC_GUEST_FNS,
	SEC_REGIONS,
	SEC_CHUNKS,
	SEC_PARENT,
	SEC_MAPPINGS,
	NSECTIONS
};
static const char *const section_names[NSECTIONS] = {
	"layout",  "vcpu",         "host functions", "guest functions",
	"regions", "chunk hashes", "parent",         "mappings",
};

struct disk_section {
	uint8_t offset[8];
	uint8_t size[8];
	uint8_t count[4];
	uint8_t reserved[4];
};

struct disk_header {
	uint8_t magic[8];
	uint8_t format_version[4];
	uint8_t header_size[4];
	uint8_t abi_version[4];
	uint8_t arch[4];
	uint8_t hypervisor[4];
	uint8_t flags[4];
	uint8_t cpu_vendor[16];
	uint8_t created_unix_ns[8];
	uint8_t file_size[8];
	uint8_t blob_offset[8];
	uint8_t blob_size[8];
	uint8_t chunk_size[8];
	uint8_t reserved0[8];
	uint8_t parent_hash[32];
	uint8_t blob_hash[32];
	uint8_t header_hash[32];
	struct disk_section sections[NSECTIONS];
	uint8_t reserved1[128];
};

struct disk_layout {
	uint8_t mem_size[8];
	uint8_t image_end[8];
	uint8_t stack_base[8];
	uint8_t stack_size[8];
	uint8_t in_buf[8];
	uint8_t in_size[8];
	uint8_t out_buf[8];
	uint8_t out_size[8];
	uint8_t log_buf[8];
	uint8_t log_size[8];
	uint8_t heap_base[8];
	uint8_t heap_size[8];
	uint8_t image_size[8];
};

/* The backend-neutral CPU state (struct mote_cpu_state). */
struct disk_cpu {
	uint8_t gpr[16][8];
	uint8_t rip[8];
	uint8_t rflags[8];
	uint8_t fs_base[8];
	uint8_t gs_base[8];
	uint8_t reserved[32];
	uint8_t fxsave[512];
};

/* Followed by name_len name bytes and zero padding to a multiple of 8. */
struct disk_fn {
	uint8_t name_len[4];
	uint8_t ret;
	uint8_t nargs;
	uint8_t reserved[2];
	uint8_t args[MOTE_MAX_ARGS];
};

struct disk_region {
	uint8_t guest_addr[8];
	uint8_t size[8];
	uint8_t file_offset[8];
};

/* Section 6 (present only in a layer): followed by path_len path bytes and
 * zero padding to a multiple of 8. */
struct disk_parent {
	uint8_t path_len[4];
	uint8_t reserved[4];
};

/* Section 7: followed by path_len path bytes and zero padding to a multiple
 * of 8. */
struct disk_mapping {
	uint8_t offset[8];
	uint8_t size[8];
	uint8_t gpa[8];
	uint8_t flags[4];
	uint8_t path_len[4];
	uint8_t sha256[MOTE_SNAP_HASH_SIZE];
};

/* Tripwires: these numbers are the format (docs/snapshot-format.md). */
_Static_assert(sizeof(struct disk_section) == 24, "section entry size is format");
_Static_assert(sizeof(struct disk_header) == HDR_SIZE, "header size is format");
_Static_assert(offsetof(struct disk_header, format_version) == 8, "header layout is format");
_Static_assert(offsetof(struct disk_header, abi_version) == 16, "header layout is format");
_Static_assert(offsetof(struct disk_header, flags) == 28, "header layout is format");
_Static_assert(offsetof(struct disk_header, cpu_vendor) == 32, "header layout is format");
_Static_assert(offsetof(struct disk_header, created_unix_ns) == 48, "header layout is format");
_Static_assert(offsetof(struct disk_header, file_size) == 56, "header layout is format");
_Static_assert(offsetof(struct disk_header, blob_offset) == 64, "header layout is format");
_Static_assert(offsetof(struct disk_header, chunk_size) == 80, "header layout is format");
_Static_assert(offsetof(struct disk_header, parent_hash) == 96, "header layout is format");
_Static_assert(offsetof(struct disk_header, blob_hash) == 128, "header layout is format");
_Static_assert(offsetof(struct disk_header, header_hash) == 160, "header layout is format");
_Static_assert(offsetof(struct disk_header, sections) == 192, "header layout is format");
_Static_assert(offsetof(struct disk_header, reserved1) == 384, "header layout is format");
_Static_assert(NSECTIONS == 8, "section table entries are format");
_Static_assert(sizeof(struct disk_layout) == 104, "layout record size is format");
_Static_assert(offsetof(struct disk_cpu, rflags) == 136, "cpu record layout is format");
_Static_assert(offsetof(struct disk_cpu, fs_base) == 144, "cpu record layout is format");
_Static_assert(offsetof(struct disk_cpu, fxsave) == 192, "cpu record layout is format");
_Static_assert(sizeof(struct disk_cpu) == 704, "cpu record size is format");
_Static_assert(sizeof(struct disk_fn) == 24, "function record size is format");
_Static_assert(sizeof(struct disk_region) == 24, "region record size is format");
_Static_assert(sizeof(struct disk_parent) == 8, "parent record size is format");
_Static_assert(sizeof(struct disk_mapping) == 64, "mapping record size is format");
_Static_assert(offsetof(struct disk_mapping, flags) == 24, "mapping record layout is format");
_Static_assert(offsetof(struct disk_mapping, path_len) == 28, "mapping record layout is format");
_Static_assert(offsetof(struct disk_mapping, sha256) == 32, "mapping record layout is format");
_Static_assert(MOTE_MAX_MAPPINGS == 32, "mapping count limit is format");
_Static_assert(MOTE_MAP_COPY_ON_WRITE == 1, "mapping flag bit is format");
_Static_assert(sizeof(((struct mote_cpu_state *)0)->fxsave) == 512, "FXSAVE area size");
_Static_assert(HDR_SIZE % 8 == 0 && PAGE % 8 == 0, "sections stay 8-byte aligned");

/* ---- Little-endian fields ---- */

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

#define U(x) ((unsigned long long)(x))

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
						      const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

#define BAD(...) fail(err, errlen, -MOTE_EBADSNAP, __VA_ARGS__)

/* ---- Hashing ---- */

static const uint8_t zero_page[PAGE];

static int sha256(const void *p, size_t n, uint8_t md[MOTE_SNAP_HASH_SIZE])
{
	return EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
}

/* SHA-256 of buf[0, blob_offset) with the header_hash field read as zeros. */
static int header_digest(const uint8_t *buf, uint64_t blob_offset,
			 uint8_t md[MOTE_SNAP_HASH_SIZE])
{
	const size_t hh = offsetof(struct disk_header, header_hash);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(ctx, buf, hh) &&
		 EVP_DigestUpdate(ctx, zero_page, MOTE_SNAP_HASH_SIZE) &&
		 EVP_DigestUpdate(ctx, buf + hh + MOTE_SNAP_HASH_SIZE,
				  blob_offset - hh - MOTE_SNAP_HASH_SIZE) &&
		 EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -MOTE_ENOMEM;
}

/* SHA-NI hashes faster than the hardware prefetcher streams memory in on
 * these VMs: prefetching one page ahead took the in-memory rate from ~1.3 to
 * ~1.6 GB/s per core (measured), for guest memory and for mapped files. */
static int digest_mem(EVP_MD_CTX *ctx, const uint8_t *p, uint64_t len)
{
	while (len) {
		size_t n = len < PAGE ? (size_t)len : PAGE;
		if (len >= 2 * PAGE)
			for (size_t l = 0; l < PAGE; l += 64)
				__builtin_prefetch(p + PAGE + l);
		if (!EVP_DigestUpdate(ctx, p, n))
			return -MOTE_ENOMEM;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- Parsing ---- */

static bool page_aligned(uint64_t x)
{
	return (x & (PAGE - 1)) == 0;
}

struct sec {
	uint64_t off, size;
	uint32_t count;
};

static int check_vendor(const uint8_t *v, char *err, size_t errlen)
{
	const uint8_t *nul = memchr(v, 0, 16);
	if (!nul)
		return BAD("cpu vendor is not NUL-terminated");
	for (const uint8_t *p = v; p < nul; p++)
		if (*p < 0x20 || *p > 0x7e)
			return BAD("cpu vendor byte %d is not printable ASCII", (int)(p - v));
	if (!all_zero(nul, (size_t)(v + 16 - nul)))
		return BAD("cpu vendor has bytes after its NUL");
	return 0;
}

static int check_layout(const struct mote_layout *l, uint64_t image_size, char *err,
			size_t errlen)
{
	if (!l->mem_size || !page_aligned(l->mem_size) || l->mem_size > MOTE_MEM_LIMIT)
		return BAD("layout: mem_size 0x%llx invalid (page-aligned, non-zero, <= 0x%llx)",
			   U(l->mem_size), U(MOTE_MEM_LIMIT));
	if (!page_aligned(l->image_end) || l->image_end <= MOTE_IMAGE_BASE ||
	    l->image_end > MOTE_IMAGE_LIMIT || l->image_end > l->mem_size)
		return BAD("layout: image_end 0x%llx invalid (page-aligned, in (0x%llx, 0x%llx], "
			   "inside memory)",
			   U(l->image_end), U(MOTE_IMAGE_BASE), U(MOTE_IMAGE_LIMIT));
	if (!image_size || image_size > l->image_end - MOTE_IMAGE_BASE)
		return BAD("image size 0x%llx does not fit the image area [0x%llx, 0x%llx)",
			   U(image_size), U(MOTE_IMAGE_BASE), U(l->image_end));
	const struct {
		const char *name;
		uint64_t base, size;
	} areas[] = {
		{"stack", l->stack_base, l->stack_size}, {"in_buf", l->in_buf, l->in_size},
		{"out_buf", l->out_buf, l->out_size},    {"log_buf", l->log_buf, l->log_size},
		{"heap", l->heap_base, l->heap_size},
	};
	uint64_t prev_end = l->image_end;
	const char *prev = "the image";
	for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++) {
		uint64_t b = areas[i].base, s = areas[i].size, end;
		if (!page_aligned(b) || !page_aligned(s) || !s)
			return BAD("layout: %s [0x%llx,+0x%llx) not page-aligned or empty",
				   areas[i].name, U(b), U(s));
		if (b < prev_end)
			return BAD("layout: %s at 0x%llx overlaps or precedes %s (ends 0x%llx)",
				   areas[i].name, U(b), prev, U(prev_end));
		if (__builtin_add_overflow(b, s, &end) || end > l->mem_size)
			return BAD("layout: %s [0x%llx,+0x%llx) outside memory (mem_size 0x%llx)",
				   areas[i].name, U(b), U(s), U(l->mem_size));
		prev_end = end;
		prev = areas[i].name;
	}
	return 0;
}

static void decode_layout(const struct disk_layout *d, struct mote_layout *l, uint64_t *image_size)
{
	l->mem_size = get64(d->mem_size);
	l->image_end = get64(d->image_end);
	l->stack_base = get64(d->stack_base);
	l->stack_size = get64(d->stack_size);
	l->in_buf = get64(d->in_buf);
	l->in_size = get64(d->in_size);
	l->out_buf = get64(d->out_buf);
	l->out_size = get64(d->out_size);
	l->log_buf = get64(d->log_buf);
	l->log_size = get64(d->log_size);
	l->heap_base = get64(d->heap_base);
	l->heap_size = get64(d->heap_size);
	*image_size = get64(d->image_size);
}

static void encode_layout(struct disk_layout *d, const struct mote_layout *l, uint64_t image_size)
{
	put64(d->mem_size, l->mem_size);
	put64(d->image_end, l->image_end);
	put64(d->stack_base, l->stack_base);
	put64(d->stack_size, l->stack_size);
	put64(d->in_buf, l->in_buf);
	put64(d->in_size, l->in_size);
	put64(d->out_buf, l->out_buf);
	put64(d->out_size, l->out_size);
	put64(d->log_buf, l->log_buf);
	put64(d->log_size, l->log_size);
	put64(d->heap_base, l->heap_base);
	put64(d->heap_size, l->heap_size);
	put64(d->image_size, image_size);
}

static void encode_cpu(struct disk_cpu *d, const struct mote_cpu_state *v)
{
	for (unsigned i = 0; i < 16; i++)
		put64(d->gpr[i], v->gpr[i]);
	put64(d->rip, v->rip);
	put64(d->rflags, v->rflags);
	put64(d->fs_base, v->fs_base);
	put64(d->gs_base, v->gs_base);
	memcpy(d->fxsave, v->fxsave, sizeof(d->fxsave));
}

/* Shared by the writer and the reader: a state every backend can load. */
static int check_cpu(const struct mote_cpu_state *v, uint64_t mem_size, char *err, size_t errlen)
{
	if (v->rflags & ~MOTE_RFLAGS_GUEST)
		return BAD("cpu: rflags 0x%llx has bits a backend sets (allowed: 0x%llx)",
			   U(v->rflags), U(MOTE_RFLAGS_GUEST));
	/* Canonical user addresses: loading anything else faults. */
	if (v->fs_base >> 47 || v->gs_base >> 47)
		return BAD("cpu: fs base 0x%llx or gs base 0x%llx is not a user address",
			   U(v->fs_base), U(v->gs_base));
	uint32_t mxcsr;
	memcpy(&mxcsr, v->fxsave + 24, sizeof(mxcsr));
	if (mxcsr >> 16)
		return BAD("cpu: MXCSR 0x%x sets reserved bits", mxcsr);
	if (v->rip >= mem_size)
		return BAD("entry/rip 0x%llx outside guest memory (mem_size 0x%llx)", U(v->rip),
			   U(mem_size));
	return 0;
}

static int decode_cpu(const struct disk_cpu *d, struct mote_cpu_state *v, uint64_t mem_size,
		      char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	for (unsigned i = 0; i < 16; i++)
		v->gpr[i] = get64(d->gpr[i]);
	v->rip = get64(d->rip);
	v->rflags = get64(d->rflags);
	v->fs_base = get64(d->fs_base);
	v->gs_base = get64(d->gs_base);
	if (!all_zero(d->reserved, sizeof(d->reserved)))
		return BAD("cpu: reserved bytes are not zero");
	memcpy(v->fxsave, d->fxsave, sizeof(v->fxsave));
	return check_cpu(v, mem_size, err, errlen);
}

/* Shared by the writer (before encoding) and the reader (after decoding). */
static int check_sig_types(const struct mote_sig *sig, const char *which, size_t i, char *err,
			   size_t errlen)
{
	if ((unsigned)sig->ret >= MOTE_TYPE_COUNT_)
		return BAD("%s function %zu: result type %u invalid", which, i, (unsigned)sig->ret);
	if (sig->nargs > MOTE_MAX_ARGS)
		return BAD("%s function %zu: %u arguments exceed %d", which, i, sig->nargs,
			   MOTE_MAX_ARGS);
	for (unsigned a = 0; a < sig->nargs; a++)
		if (sig->args[a] == MOTE_VOID || (unsigned)sig->args[a] >= MOTE_TYPE_COUNT_)
			return BAD("%s function %zu: argument %u type %u invalid", which, i, a,
				   (unsigned)sig->args[a]);
	return 0;
}

static uint64_t fn_entry_size(uint32_t name_len)
{
	return sizeof(struct disk_fn) + align_up(name_len, 8);
}

static int cmp_sig_name(const void *a, const void *b)
{
	const struct mote_sig *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int check_unique(const struct mote_sig *fns, size_t n, const char *which, char *err,
			size_t errlen)
{
	if (n < 2)
		return 0;
	const struct mote_sig **v = mote_calloc(n, sizeof(*v));
	if (!v)
		return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = &fns[i];
	qsort(v, n, sizeof(*v), cmp_sig_name);
	int rc = 0;
	for (size_t i = 1; i < n && !rc; i++)
		if (!strcmp(v[i - 1]->name, v[i]->name)) {
			size_t a = (size_t)(v[i - 1] - fns), b = (size_t)(v[i] - fns);
			rc = BAD("%s functions %zu and %zu have the same name", which,
				 a < b ? a : b, a < b ? b : a);
		}
	mote_free(v);
	return rc;
}

static int parse_fns(const uint8_t *buf, const struct sec *sec, const char *which,
		     struct mote_sig **out, size_t *nout, char *err, size_t errlen)
{
	if (sec->count > MOTE_SNAP_MAX_FUNCTIONS)
		return BAD("%s function count %u exceeds %u", which, sec->count,
			   MOTE_SNAP_MAX_FUNCTIONS);
	if (!sec->count) {
		if (sec->size)
			return BAD("%s functions: section of 0x%llx bytes for 0 entries", which,
				   U(sec->size));
		return 0;
	}
	struct mote_sig *fns = mote_calloc(sec->count, sizeof(*fns));
	if (!fns)
		return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	*out = fns;
	*nout = sec->count;
	uint64_t p = sec->off, end = sec->off + sec->size;
	for (size_t i = 0; i < sec->count; i++) {
		if (end - p < sizeof(struct disk_fn))
			return BAD("%s function %zu: entry truncated by the section end", which, i);
		const struct disk_fn *d = (const struct disk_fn *)(buf + p);
		uint32_t name_len = get32(d->name_len);
		if (!name_len)
			return BAD("%s function %zu: empty name", which, i);
		if (name_len > MOTE_MAX_NAME)
			return BAD("%s function %zu: name length %u exceeds %d", which, i, name_len,
				   MOTE_MAX_NAME);
		uint64_t esize = fn_entry_size(name_len);
		if (end - p < esize)
			return BAD("%s function %zu: entry truncated by the section end", which, i);
		if (!all_zero(d->reserved, sizeof(d->reserved)))
			return BAD("%s function %zu: reserved bytes are not zero", which, i);
		struct mote_sig *s = &fns[i];
		s->ret = (mote_type)d->ret;
		s->nargs = d->nargs;
		for (unsigned a = 0; a < MOTE_MAX_ARGS; a++) {
			if (a >= d->nargs && d->args[a])
				return BAD("%s function %zu: unused argument slot %u is not zero",
					   which, i, a);
			s->args[a] = (mote_type)d->args[a];
		}
		int rc = check_sig_types(s, which, i, err, errlen);
		if (rc)
			return rc;
		const uint8_t *name = buf + p + sizeof(*d);
		if (memchr(name, 0, name_len))
			return BAD("%s function %zu: name contains a NUL byte", which, i);
		if (!all_zero(name + name_len, esize - sizeof(*d) - name_len))
			return BAD("%s function %zu: name padding is not zero", which, i);
		s->name = mote_malloc(name_len + 1);
		if (!s->name)
			return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
		memcpy(s->name, name, name_len);
		s->name[name_len] = 0;
		p += esize;
	}
	if (p != end)
		return BAD("%s functions: 0x%llx bytes after the last entry", which, U(end - p));
	return check_unique(fns, sec->count, which, err, errlen);
}

/* A region above guest RAM must be exactly an absorbed mapping's range. */
static bool absorbed_region(const struct mote_snapfile *f, const struct mote_snap_region *r,
			    size_t *count)
{
	for (size_t i = 0; i < f->meta.nmappings; i++) {
		const struct mote_snap_mapping *m = &f->meta.mappings[i];
		if ((m->flags & MOTE_SNAP_MAP_ABSORBED) && m->gpa == r->guest_addr &&
		    m->size == r->size) {
			(*count)++;
			return true;
		}
	}
	return false;
}

static int parse_regions(const uint8_t *buf, const struct sec *sec, struct mote_snapfile *f,
			 char *err, size_t errlen)
{
	size_t absorbed = 0;
	if (sec->count > MOTE_SNAP_MAX_REGIONS)
		return BAD("region count %u exceeds %u", sec->count, MOTE_SNAP_MAX_REGIONS);
	if (sec->size != (uint64_t)sec->count * sizeof(struct disk_region))
		return BAD("region section size 0x%llx does not match %u regions", U(sec->size),
			   sec->count);
	if (sec->count) {
		f->regions = mote_calloc(sec->count, sizeof(*f->regions));
		if (!f->regions)
			return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	}
	f->nregions = sec->count;
	const uint64_t mem_size = f->meta.layout.mem_size;
	const uint64_t blob_end = f->blob_offset + f->blob_size;
	uint64_t next_off = f->blob_offset;
	for (size_t i = 0; i < sec->count; i++) {
		const struct disk_region *d =
			(const struct disk_region *)(buf + sec->off) + i;
		struct mote_snap_region *r = &f->regions[i];
		r->guest_addr = get64(d->guest_addr);
		r->size = get64(d->size);
		r->file_offset = get64(d->file_offset);
		uint64_t gend, fend;
		if (!page_aligned(r->guest_addr) || !page_aligned(r->size) || !r->size)
			return BAD("region %zu [0x%llx,+0x%llx) is not page-aligned or empty", i,
				   U(r->guest_addr), U(r->size));
		if (!page_aligned(r->file_offset))
			return BAD("region %zu file offset 0x%llx is not page-aligned", i,
				   U(r->file_offset));
		/* Above guest RAM only an absorbed mapping's exact range is valid. */
		if (__builtin_add_overflow(r->guest_addr, r->size, &gend) ||
		    (gend > mem_size && !absorbed_region(f, r, &absorbed)))
			return BAD("region %zu [0x%llx,+0x%llx) guest range outside guest memory "
				   "(mem_size 0x%llx)",
				   i, U(r->guest_addr), U(r->size), U(mem_size));
		if (i) {
			const struct mote_snap_region *p = &f->regions[i - 1];
			if (r->guest_addr < p->guest_addr)
				return BAD("region %zu [0x%llx,+0x%llx) is not sorted after region "
					   "%zu",
					   i, U(r->guest_addr), U(r->size), i - 1);
			if (r->guest_addr < p->guest_addr + p->size)
				return BAD("region %zu [0x%llx,+0x%llx) overlaps region %zu", i,
					   U(r->guest_addr), U(r->size), i - 1);
		}
		if (r->file_offset < f->blob_offset ||
		    __builtin_add_overflow(r->file_offset, r->size, &fend) || fend > blob_end)
			return BAD("region %zu file range [0x%llx,+0x%llx) outside the blob", i,
				   U(r->file_offset), U(r->size));
		if (r->file_offset != next_off)
			return BAD("region %zu file offset 0x%llx, expected 0x%llx (regions are "
				   "stored in order, back to back)",
				   i, U(r->file_offset), U(next_off));
		next_off = fend;
	}
	if (next_off != blob_end)
		return BAD("regions cover 0x%llx bytes, the blob has 0x%llx",
			   U(next_off - f->blob_offset), U(f->blob_size));
	size_t want = 0;
	for (size_t i = 0; i < f->meta.nmappings; i++)
		want += (f->meta.mappings[i].flags & MOTE_SNAP_MAP_ABSORBED) != 0;
	if (absorbed != want)
		return BAD("%zu absorbed mapping%s but %zu region%s for them", want,
			   want == 1 ? "" : "s", absorbed, absorbed == 1 ? "" : "s");
	return 0;
}

static int parse_chunks(const uint8_t *buf, const struct sec *sec, struct mote_snapfile *f,
			char *err, size_t errlen)
{
	uint64_t want = f->blob_size / f->chunk_size + (f->blob_size % f->chunk_size != 0);
	if (sec->count != want)
		return BAD("chunk count %u does not match the blob size 0x%llx (%llu chunks of "
			   "0x%llx expected)",
			   sec->count, U(f->blob_size), U(want), U(f->chunk_size));
	if (sec->size != (uint64_t)sec->count * MOTE_SNAP_HASH_SIZE)
		return BAD("chunk hash section size 0x%llx does not match %u chunks", U(sec->size),
			   sec->count);
	uint8_t md[MOTE_SNAP_HASH_SIZE];
	int rc = sha256(buf + sec->off, sec->size, md);
	if (rc)
		return fail(err, errlen, rc, "SHA-256 failed");
	if (memcmp(md, f->blob_hash, sizeof(md)))
		return fail(err, errlen, -MOTE_EHASH,
			    "blob hash does not match the chunk hashes (file corrupt)");
	f->nchunks = sec->count;
	if (sec->count) {
		f->chunk_hashes = mote_malloc(sec->size);
		if (!f->chunk_hashes)
			return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
		memcpy(f->chunk_hashes, buf + sec->off, sec->size);
	}
	return 0;
}

/* A NUL-free copy of the path_len bytes at p, or NULL (out of memory). */
static char *copy_path(const uint8_t *p, uint32_t path_len)
{
	char *s = mote_malloc((size_t)path_len + 1);
	if (s) {
		memcpy(s, p, path_len);
		s[path_len] = 0;
	}
	return s;
}

/* Size of a parent or mapping entry: the fixed record, the path, padding. */
static uint64_t path_entry_size(size_t fixed, uint32_t path_len)
{
	return fixed + align_up(path_len, 8);
}

/* Section 6: a layer's parent path; count 1 exactly when the header's parent
 * hash is non-zero. */
static int parse_parent(const uint8_t *buf, const struct sec *sec, const uint8_t *parent_hash,
			struct mote_snapfile *f, char *err, size_t errlen)
{
	const bool layer = !all_zero(parent_hash, MOTE_SNAP_HASH_SIZE);
	if (sec->count > 1)
		return BAD("parent section: count %u, at most 1", sec->count);
	if (!sec->count) {
		if (sec->size)
			return BAD("parent section: 0x%llx bytes for 0 entries", U(sec->size));
		if (layer)
			return BAD("parent hash set without a parent path");
		return 0;
	}
	if (!layer)
		return BAD("parent path present without a parent hash");
	if (sec->size < sizeof(struct disk_parent))
		return BAD("parent path: entry truncated by the section end");
	const struct disk_parent *d = (const struct disk_parent *)(buf + sec->off);
	uint32_t path_len = get32(d->path_len);
	if (!all_zero(d->reserved, sizeof(d->reserved)))
		return BAD("parent path: reserved bytes are not zero");
	if (!path_len)
		return BAD("parent path is empty");
	if (path_len > MAX_PATH_LEN)
		return BAD("parent path length %u exceeds %u", path_len, MAX_PATH_LEN);
	uint64_t esize = path_entry_size(sizeof(*d), path_len);
	if (sec->size < esize)
		return BAD("parent path: entry truncated by the section end");
	if (sec->size > esize)
		return BAD("parent section: 0x%llx bytes after the entry", U(sec->size - esize));
	const uint8_t *path = buf + sec->off + sizeof(*d);
	if (memchr(path, 0, path_len))
		return BAD("parent path contains a NUL byte");
	if (!all_zero(path + path_len, esize - sizeof(*d) - path_len))
		return BAD("parent path padding is not zero");
	f->meta.parent_path = copy_path(path, path_len);
	if (!f->meta.parent_path)
		return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	memcpy(f->meta.parent_hash, parent_hash, MOTE_SNAP_HASH_SIZE);
	return 0;
}

/* Section 7: host files mapped into the guest, by reference. */
static int parse_mappings(const uint8_t *buf, const struct sec *sec, struct mote_snapfile *f,
			  char *err, size_t errlen)
{
	if (sec->count > MOTE_MAX_MAPPINGS)
		return BAD("mapping count %u exceeds %u", sec->count, MOTE_MAX_MAPPINGS);
	if (!sec->count) {
		if (sec->size)
			return BAD("mappings: section of 0x%llx bytes for 0 entries",
				   U(sec->size));
		return 0;
	}
	struct mote_snap_mapping *maps = mote_calloc(sec->count, sizeof(*maps));
	if (!maps)
		return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	f->meta.mappings = maps;
	f->meta.nmappings = sec->count;
	uint64_t p = sec->off, end = sec->off + sec->size;
	for (size_t i = 0; i < sec->count; i++) {
		if (end - p < sizeof(struct disk_mapping))
			return BAD("mapping %zu: entry truncated by the section end", i);
		const struct disk_mapping *d = (const struct disk_mapping *)(buf + p);
		struct mote_snap_mapping *m = &maps[i];
		uint32_t path_len = get32(d->path_len);
		if (!path_len)
			return BAD("mapping %zu: empty path", i);
		if (path_len > MAX_PATH_LEN)
			return BAD("mapping %zu: path length %u exceeds %u", i, path_len,
				   MAX_PATH_LEN);
		uint64_t esize = path_entry_size(sizeof(*d), path_len);
		if (end - p < esize)
			return BAD("mapping %zu: entry truncated by the section end", i);
		m->offset = get64(d->offset);
		m->size = get64(d->size);
		m->gpa = get64(d->gpa);
		m->flags = get32(d->flags);
		memcpy(m->sha256, d->sha256, sizeof(m->sha256));
		uint64_t gend, fend;
		if (m->flags & ~(uint32_t)(MOTE_MAP_COPY_ON_WRITE | MOTE_SNAP_MAP_ABSORBED))
			return BAD("mapping %zu: unknown flags 0x%x", i, m->flags);
		if (!page_aligned(m->offset))
			return BAD("mapping %zu: file offset 0x%llx is not page-aligned", i,
				   U(m->offset));
		if (!m->size || !page_aligned(m->size))
			return BAD("mapping %zu: size 0x%llx is not page-aligned or zero", i,
				   U(m->size));
		if (!page_aligned(m->gpa))
			return BAD("mapping %zu: guest address 0x%llx is not page-aligned", i,
				   U(m->gpa));
		if (__builtin_add_overflow(m->offset, m->size, &fend) || fend > MAX_FILE_END)
			return BAD("mapping %zu: file range [0x%llx,+0x%llx) overflows", i,
				   U(m->offset), U(m->size));
		if (m->gpa < MOTE_MAP_BASE || __builtin_add_overflow(m->gpa, m->size, &gend) ||
		    gend > MOTE_MAP_LIMIT)
			return BAD("mapping %zu [0x%llx,+0x%llx) outside the mapping window "
				   "[0x%llx, 0x%llx)",
				   i, U(m->gpa), U(m->size), U(MOTE_MAP_BASE), U(MOTE_MAP_LIMIT));
		if (i) {
			const struct mote_snap_mapping *q = &maps[i - 1];
			if (m->gpa < q->gpa)
				return BAD("mapping %zu at 0x%llx is not sorted after mapping %zu "
					   "(0x%llx)",
					   i, U(m->gpa), i - 1, U(q->gpa));
			if (m->gpa < q->gpa + q->size)
				return BAD("mapping %zu [0x%llx,+0x%llx) overlaps mapping %zu", i,
					   U(m->gpa), U(m->size), i - 1);
		}
		const uint8_t *path = buf + p + sizeof(*d);
		if (memchr(path, 0, path_len))
			return BAD("mapping %zu: path contains a NUL byte", i);
		if (!all_zero(path + path_len, esize - sizeof(*d) - path_len))
			return BAD("mapping %zu: path padding is not zero", i);
		m->path = copy_path(path, path_len);
		if (!m->path)
			return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
		p += esize;
	}
	if (p != end)
		return BAD("mappings: 0x%llx bytes after the last entry", U(end - p));
	return 0;
}

static int parse_inner(const uint8_t *buf, size_t len, uint64_t file_size, struct mote_snapfile *f,
		       char *err, size_t errlen)
{
	if (len < HDR_SIZE)
		return BAD("truncated header: 0x%zx bytes, the header needs 0x%x", len, HDR_SIZE);
	const struct disk_header *h = (const struct disk_header *)buf;
	if (memcmp(h->magic, SNAP_MAGIC, sizeof(h->magic)))
		return BAD("bad magic (not a mote snapshot)");
	f->format_version = get32(h->format_version);
	if (f->format_version == 1)
		return BAD("format version 1, this reader supports %u: the file predates "
			   "backend-neutral CPU state; take the snapshot again with this mote",
			   MOTE_SNAP_FORMAT_VERSION);
	if (f->format_version != MOTE_SNAP_FORMAT_VERSION)
		return BAD("format version %u, this reader supports %u", f->format_version,
			   MOTE_SNAP_FORMAT_VERSION);
	if (get32(h->header_size) != HDR_SIZE)
		return BAD("header size %u, expected %u", get32(h->header_size), HDR_SIZE);

	/* Frame the hashed range, then check the hash before trusting anything
	 * else: a corrupt file then reads as corrupt, not as a confusing
	 * structural error. */
	uint64_t bo = get64(h->blob_offset);
	if (!page_aligned(bo))
		return BAD("blob offset 0x%llx is not page-aligned", U(bo));
	if (bo < HDR_SIZE)
		return BAD("blob offset 0x%llx lies inside the header", U(bo));
	if (bo > MAX_META)
		return BAD("metadata of 0x%llx bytes exceeds the 0x%llx-byte limit", U(bo),
			   U(MAX_META));
	if (bo > len || bo > file_size)
		return BAD("file truncated in the metadata: blob offset 0x%llx, have 0x%llx bytes",
			   U(bo), U(len < file_size ? len : file_size));
	memcpy(f->header_hash, h->header_hash, MOTE_SNAP_HASH_SIZE);
	uint8_t md[MOTE_SNAP_HASH_SIZE];
	int rc = header_digest(buf, bo, md);
	if (rc)
		return fail(err, errlen, rc, "SHA-256 failed");
	if (memcmp(md, h->header_hash, sizeof(md)))
		return fail(err, errlen, -MOTE_EHASH, "header hash mismatch (file corrupt)");

	uint32_t flags = get32(h->flags);
	if (flags)
		return BAD("unknown flags 0x%x (written by a newer mote?)", flags);
	f->meta.abi_version = get32(h->abi_version);
	if (f->meta.abi_version != MOTE_ABI_VERSION)
		return BAD("snapshot ABI version %u, host ABI %u (take the snapshot again with "
			   "this mote, from the guest rebuilt with its mote-cc)",
			   f->meta.abi_version, MOTE_ABI_VERSION);
	f->arch = get32(h->arch);
	if (f->arch != MOTE_SNAP_ARCH_X86_64)
		return BAD("arch %u is not x86-64", f->arch);
	f->hypervisor = get32(h->hypervisor);
	if (f->hypervisor != MOTE_SNAP_BACKEND_KVM && f->hypervisor != MOTE_SNAP_BACKEND_PROCESS)
		return BAD("saved by backend %u, not KVM (1) or process (2)", f->hypervisor);
	f->meta.saved_by = f->hypervisor;
	if (!all_zero(h->reserved0, sizeof(h->reserved0)) ||
	    !all_zero(h->reserved1, sizeof(h->reserved1)))
		return BAD("reserved header bytes are not zero");
	rc = check_vendor(h->cpu_vendor, err, errlen);
	if (rc)
		return rc;
	memcpy(f->meta.cpu_vendor, h->cpu_vendor, sizeof(f->meta.cpu_vendor));
	f->meta.created_unix_ns = get64(h->created_unix_ns);

	f->file_size = get64(h->file_size);
	if (f->file_size != file_size)
		return BAD("file size 0x%llx in header, actual 0x%llx (file truncated or changed)",
			   U(f->file_size), U(file_size));
	f->blob_offset = bo;
	f->blob_size = get64(h->blob_size);
	if (!page_aligned(f->blob_size))
		return BAD("blob size 0x%llx is not page-aligned", U(f->blob_size));
	uint64_t blob_end, want_size;
	if (__builtin_add_overflow(bo, f->blob_size, &blob_end) ||
	    __builtin_add_overflow(blob_end, GUARD_SIZE, &want_size) || want_size != file_size)
		return BAD("blob [0x%llx,+0x%llx) plus the 0x%llx-byte guard page does not end at "
			   "the file size 0x%llx",
			   U(bo), U(f->blob_size), U(GUARD_SIZE), U(file_size));
	f->chunk_size = get64(h->chunk_size);
	if (!f->chunk_size || !page_aligned(f->chunk_size) || f->chunk_size > MAX_CHUNK_SIZE)
		return BAD("chunk size 0x%llx invalid (a multiple of 0x%llx up to 0x%llx)",
			   U(f->chunk_size), U(PAGE), U(MAX_CHUNK_SIZE));
	memcpy(f->blob_hash, h->blob_hash, MOTE_SNAP_HASH_SIZE);

	struct sec secs[NSECTIONS];
	uint64_t next = HDR_SIZE;
	for (unsigned i = 0; i < NSECTIONS; i++) {
		const struct disk_section *d = &h->sections[i];
		struct sec *s = &secs[i];
		s->off = get64(d->offset);
		s->size = get64(d->size);
		s->count = get32(d->count);
		uint64_t end;
		if (!all_zero(d->reserved, sizeof(d->reserved)))
			return BAD("section %s: reserved bytes are not zero", section_names[i]);
		if (s->off != next)
			return BAD("section %s at 0x%llx, expected 0x%llx (sections are "
				   "contiguous)",
				   section_names[i], U(s->off), U(next));
		if (s->size % 8)
			return BAD("section %s size 0x%llx is not a multiple of 8",
				   section_names[i], U(s->size));
		if (__builtin_add_overflow(s->off, s->size, &end) || end > bo)
			return BAD("section %s [0x%llx,+0x%llx) runs past the blob offset 0x%llx",
				   section_names[i], U(s->off), U(s->size), U(bo));
		next = end;
	}
	if (align_up(next, PAGE) != bo)
		return BAD("blob offset 0x%llx does not follow the metadata (expected 0x%llx)",
			   U(bo), U(align_up(next, PAGE)));
	if (!all_zero(buf + next, bo - next))
		return BAD("padding before the blob is not zero");

	const struct sec *s = &secs[SEC_LAYOUT];
	if (s->count != 1 || s->size != sizeof(struct disk_layout))
		return BAD("layout section: count %u size 0x%llx, expected 1 and 0x%zx", s->count,
			   U(s->size), sizeof(struct disk_layout));
	decode_layout((const struct disk_layout *)(buf + s->off), &f->meta.layout,
		      &f->meta.image_size);
	rc = check_layout(&f->meta.layout, f->meta.image_size, err, errlen);
	if (rc)
		return rc;
	s = &secs[SEC_VCPU];
	if (s->count != 1 || s->size != sizeof(struct disk_cpu))
		return BAD("vcpu section: count %u size 0x%llx, expected 1 and 0x%zx", s->count,
			   U(s->size), sizeof(struct disk_cpu));
	rc = decode_cpu((const struct disk_cpu *)(buf + s->off), &f->meta.cpu,
			f->meta.layout.mem_size, err, errlen);
	if (!rc)
		rc = parse_fns(buf, &secs[SEC_HOST_FNS], "host", &f->meta.host_fns,
			       &f->meta.nhost_fns, err, errlen);
	if (!rc)
		rc = parse_fns(buf, &secs[SEC_GUEST_FNS], "guest", &f->meta.guest_fns,
			       &f->meta.nguest_fns, err, errlen);
	/* Mappings before regions: absorbed ones own regions above RAM. */
	if (!rc)
		rc = parse_mappings(buf, &secs[SEC_MAPPINGS], f, err, errlen);
	if (!rc)
		rc = parse_regions(buf, &secs[SEC_REGIONS], f, err, errlen);
	if (!rc)
		rc = parse_chunks(buf, &secs[SEC_CHUNKS], f, err, errlen);
	if (!rc)
		rc = parse_parent(buf, &secs[SEC_PARENT], h->parent_hash, f, err, errlen);
	return rc;
}

int mote_snapfile_parse(const uint8_t *buf, size_t len, uint64_t file_size,
			struct mote_snapfile *out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!out)
		return fail(err, errlen, -MOTE_EINVAL, "no output");
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (!buf && len)
		return fail(err, errlen, -MOTE_EINVAL, "no input");
	int rc = parse_inner(buf, len, file_size, out, err, errlen);
	if (rc)
		mote_snapfile_close(out);
	return rc;
}

int mote_snapfile__rehash(uint8_t *buf, size_t len)
{
	if (!buf || len < HDR_SIZE)
		return -MOTE_EINVAL;
	struct disk_header *h = (struct disk_header *)buf;
	uint64_t bo = get64(h->blob_offset);
	if (bo < HDR_SIZE || bo > len)
		return -MOTE_EINVAL;
	const struct disk_section *c = &h->sections[SEC_CHUNKS];
	uint64_t off = get64(c->offset), size = get64(c->size), end;
	if (!__builtin_add_overflow(off, size, &end) && off >= HDR_SIZE && end <= bo &&
	    sha256(buf + off, size, h->blob_hash))
		return -MOTE_ENOMEM;
	return header_digest(buf, bo, h->header_hash);
}

void mote_snap_meta_clear(struct mote_snap_meta *meta)
{
	if (!meta)
		return;
	for (size_t i = 0; meta->host_fns && i < meta->nhost_fns; i++)
		mote_free(meta->host_fns[i].name);
	for (size_t i = 0; meta->guest_fns && i < meta->nguest_fns; i++)
		mote_free(meta->guest_fns[i].name);
	mote_free(meta->host_fns);
	mote_free(meta->guest_fns);
	meta->host_fns = meta->guest_fns = NULL;
	meta->nhost_fns = meta->nguest_fns = 0;
	for (size_t i = 0; meta->mappings && i < meta->nmappings; i++)
		mote_free(meta->mappings[i].path);
	mote_free(meta->mappings);
	meta->mappings = NULL;
	meta->nmappings = 0;
	mote_free(meta->parent_path);
	meta->parent_path = NULL;
	memset(meta->parent_hash, 0, sizeof(meta->parent_hash));
}

void mote_snapfile_close(struct mote_snapfile *f)
{
	if (!f)
		return;
	/* A zeroed struct has fd 0 but no regular-file stat: never close stdin. */
	if (f->fd >= 0 && S_ISREG(f->st.st_mode))
		close(f->fd);
	mote_free(f->chunk_hashes);
	mote_free(f->regions);
	mote_snap_meta_clear(&f->meta);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

/* ---- Blob hashing on two threads (writer: from memory; verifier: file) ---- */

/* Where the blob's bytes come from when writing. */
struct blob_src {
	const uint8_t *mem;
	const uint64_t *present;
	const struct mote_snap_region *regions;
	size_t nregions;
	uint64_t blob_offset;
	/* Regions from nram on are absorbed mappings; their bytes come from
	 * extra[k - nram] instead of guest memory. */
	size_t nram;
	const uint8_t *const *extra;
	/* A layer: the absent pages a region swallows are the base's, not
	 * zero, so their bytes come from mem (the composed memory) too. */
	bool gaps_from_mem;
};

static bool page_present(const uint64_t *bm, uint64_t page)
{
	return bm[page / 64] >> (page % 64) & 1;
}

/* First page in [page, limit) whose bit differs from `set`, or limit. */
static uint64_t run_end(const uint64_t *bm, uint64_t page, uint64_t limit, bool set)
{
	while (page < limit) {
		uint64_t diff = (set ? ~bm[page / 64] : bm[page / 64]) >> (page % 64);
		if (diff) {
			uint64_t r = page + (uint64_t)__builtin_ctzll(diff);
			return r < limit ? r : limit;
		}
		page = (page / 64 + 1) * 64;
	}
	return limit;
}

/* Feed blob bytes [off, off+len) (page-aligned) to fn in pieces: guest
 * memory, or NULL for the absent pages a standalone snapshot's region
 * swallowed (stored as zeros). */
typedef int (*blob_piece_fn)(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off);

static int walk_blob(const struct blob_src *src, uint64_t off, uint64_t len, blob_piece_fn fn,
		     void *ctx)
{
	size_t lo = 0, hi = src->nregions;
	while (hi - lo > 1) { /* last region starting at or before off */
		size_t mid = lo + (hi - lo) / 2;
		if (src->regions[mid].file_offset - src->blob_offset <= off)
			lo = mid;
		else
			hi = mid;
	}
	for (size_t k = lo; len && k < src->nregions; k++) {
		const struct mote_snap_region *r = &src->regions[k];
		uint64_t in = off - (r->file_offset - src->blob_offset);
		uint64_t n = len < r->size - in ? len : r->size - in;
		if (k >= src->nram) {
			int rc = fn(ctx, src->extra[k - src->nram] + in, n, off);
			if (rc)
				return rc;
			off += n;
			len -= n;
			continue;
		}
		uint64_t page = (r->guest_addr + in) / PAGE, endp = page + n / PAGE;
		while (page < endp) {
			bool set = src->gaps_from_mem || page_present(src->present, page);
			uint64_t e = src->gaps_from_mem ? endp
							: run_end(src->present, page, endp, set);
			uint64_t bytes = (e - page) * PAGE;
			int rc = fn(ctx, set ? src->mem + page * PAGE : NULL, bytes, off);
			if (rc)
				return rc;
			off += bytes;
			page = e;
		}
		len -= n;
	}
	return 0;
}

struct hash_job {
	uint64_t blob_size, chunk_size;
	unsigned nchunks;
	unsigned ngroups; /* verifier: units [0, ngroups) are 16 chunks in lanes */
	const struct blob_src *src;                   /* writer: guest memory */
	const uint8_t *map;                           /* verifier: the mapped blob */
	uint8_t (*hashes)[MOTE_SNAP_HASH_SIZE];       /* writer: results */
	const uint8_t (*expect)[MOTE_SNAP_HASH_SIZE]; /* verifier: compared */
	atomic_uint next;
	atomic_bool stop;
	pthread_mutex_t lock;
	int rc; /* lowest failing chunk's error, under lock */
	unsigned bad_chunk;
};

static void job_fail(struct hash_job *j, int rc, unsigned chunk)
{
	pthread_mutex_lock(&j->lock);
	if (!j->rc || chunk < j->bad_chunk) {
		j->rc = rc;
		j->bad_chunk = chunk;
	}
	pthread_mutex_unlock(&j->lock);
	atomic_store(&j->stop, true);
}

static int digest_piece(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off)
{
	(void)blob_off;
	if (p)
		return digest_mem(ctx, p, len);
	for (; len; len -= PAGE)
		if (!EVP_DigestUpdate(ctx, zero_page, PAGE))
			return -MOTE_ENOMEM;
	return 0;
}

/* Full-size chunks of a mapped blob, sixteen at a time in AVX-512 lanes:
 * every chunk but a short last one has the same length. */
static void plan_lanes(struct hash_job *j)
{
	uint64_t full = j->blob_size / j->chunk_size;
	if (j->map && j->chunk_size <= SIZE_MAX && mote_sha256x16_usable())
		j->ngroups = (unsigned)(full / MOTE_SHA256X16_LANES);
}

static int hash_group(struct hash_job *j, unsigned group)
{
	unsigned first = group * MOTE_SHA256X16_LANES;
	const uint8_t *msg[MOTE_SHA256X16_LANES];
	uint8_t md[MOTE_SHA256X16_LANES][32];
	for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++)
		msg[i] = j->map + (uint64_t)(first + i) * j->chunk_size;
	mote_sha256x16(msg, (size_t)j->chunk_size, md);
	for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++)
		if (memcmp(md[i], j->expect[first + i], MOTE_SNAP_HASH_SIZE)) {
			job_fail(j, -MOTE_EHASH, first + i);
			return -MOTE_EHASH;
		}
	return 0;
}

static int hash_chunk(struct hash_job *j, EVP_MD_CTX *ctx, unsigned i)
{
	uint64_t off = (uint64_t)i * j->chunk_size;
	uint64_t left = j->blob_size - off;
	uint64_t len = left < j->chunk_size ? left : j->chunk_size;
	uint8_t md[MOTE_SNAP_HASH_SIZE];
	int rc = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
	if (!rc)
		rc = j->src ? walk_blob(j->src, off, len, digest_piece, ctx)
			    : digest_mem(ctx, j->map + off, len);
	if (!rc && !EVP_DigestFinal_ex(ctx, md, NULL))
		rc = -MOTE_ENOMEM;
	if (!rc && j->expect && memcmp(md, j->expect[i], sizeof(md)))
		rc = -MOTE_EHASH;
	if (rc) {
		job_fail(j, rc, i);
		return rc;
	}
	if (j->hashes)
		memcpy(j->hashes[i], md, sizeof(md));
	return 0;
}

/* Work units: the lane groups first, then the remaining chunks one by one. */
static void *hash_worker_run(void *arg)
{
	struct hash_job *j = arg;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx) {
		job_fail(j, -MOTE_ENOMEM, 0);
		return NULL;
	}
	unsigned grouped = j->ngroups * MOTE_SHA256X16_LANES;
	unsigned units = j->ngroups + (j->nchunks - grouped);
	while (!atomic_load(&j->stop)) {
		unsigned u = atomic_fetch_add(&j->next, 1);
		if (u >= units)
			break;
		int rc = u < j->ngroups ? hash_group(j, u)
					: hash_chunk(j, ctx, grouped + (u - j->ngroups));
		if (rc)
			break;
	}
	EVP_MD_CTX_free(ctx);
	return NULL;
}

/* Start the second hashing thread with every signal blocked, so signals meant
 * for the caller's threads never land on it. false: run on one thread. */
static bool start_helper(pthread_t *t, struct hash_job *j)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	bool ok = pthread_create(t, NULL, hash_worker_run, j) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

/* ---- Verification cache ---- */

struct cache_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint8_t header_hash[MOTE_SNAP_HASH_SIZE];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[CACHE_SIZE];
static unsigned cache_len, cache_next;
static uint64_t cache_hits;

/* ctime too: it changes on every write and cannot be set back like mtime. */
static bool same_version(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static bool entry_matches(const struct cache_entry *c, const struct stat *st)
{
	return c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
	       c->mtim.tv_sec == st->st_mtim.tv_sec && c->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       c->ctim.tv_sec == st->st_ctim.tv_sec && c->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

static bool cache_lookup(const struct mote_snapfile *f)
{
	bool hit = false;
	pthread_mutex_lock(&cache_lock);
	for (unsigned i = 0; i < cache_len && !hit; i++)
		hit = entry_matches(&cache[i], &f->st) &&
		      !memcmp(cache[i].header_hash, f->header_hash, MOTE_SNAP_HASH_SIZE);
	cache_hits += hit;
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_insert(const struct mote_snapfile *f)
{
	struct cache_entry e = {
		.dev = f->st.st_dev,
		.ino = f->st.st_ino,
		.size = f->st.st_size,
		.mtim = f->st.st_mtim,
		.ctim = f->st.st_ctim,
	};
	memcpy(e.header_hash, f->header_hash, MOTE_SNAP_HASH_SIZE);
	pthread_mutex_lock(&cache_lock);
	unsigned slot = cache_len;
	for (unsigned i = 0; i < cache_len; i++)
		if (cache[i].dev == e.dev && cache[i].ino == e.ino)
			slot = i; /* a newer version of the same file replaces the old */
	if (slot == cache_len) {
		if (cache_len < CACHE_SIZE) {
			cache_len++;
		} else {
			slot = cache_next; /* full: evict round-robin */
			cache_next = (cache_next + 1) % CACHE_SIZE;
		}
	}
	cache[slot] = e;
	pthread_mutex_unlock(&cache_lock);
}

void mote_snapfile_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	cache_len = cache_next = 0;
	pthread_mutex_unlock(&cache_lock);
}

uint64_t mote_snapfile__cache_hits(void)
{
	pthread_mutex_lock(&cache_lock);
	uint64_t n = cache_hits;
	pthread_mutex_unlock(&cache_lock);
	return n;
}

/* ---- Verification and opening ---- */

static ssize_t pread_full(int fd, void *p, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (uint8_t *)p + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* Run a job on this thread and one helper; returns the job's rc. */
static int run_job(struct hash_job *j)
{
	pthread_t t;
	bool helper = j->nchunks > 1 && start_helper(&t, j);
	hash_worker_run(j);
	if (helper)
		pthread_join(t, NULL);
	return j->rc;
}

/* The blob is hashed through a read-only mapping: measured ~10% faster than
 * pread into a cache-resident buffer (no copy), which matters at 256 MiB+.
 * The cost is the usual one of mapped files: truncating the file while it
 * is being verified raises SIGBUS. Sandboxes map the same file for guest
 * memory, so snapshot files must not be modified in place anyway (mote's
 * writer never does); the fstat below catches a change made before now. */
int mote_snapfile_verify_blob(struct mote_snapfile *f, char *err, size_t errlen)
{
	if (!f || f->fd < 0 || !S_ISREG(f->st.st_mode))
		return fail(err, errlen, -MOTE_EINVAL, "no open snapshot file to verify");
	struct stat now;
	if (fstat(f->fd, &now))
		return fail(err, errlen, -MOTE_EIO, "fstat: %s", strerror(errno));
	if (!same_version(&f->st, &now))
		return BAD("file changed after it was opened");
	void *map = NULL;
	if (f->blob_size) {
		off_t at = (off_t)f->blob_offset;
		map = mmap(NULL, f->blob_size, PROT_READ, MAP_PRIVATE, f->fd, at);
		if (map == MAP_FAILED)
			return fail(err, errlen, errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO,
				    "map the blob: %s", strerror(errno));
	}
	struct hash_job j = {
		.blob_size = f->blob_size,
		.chunk_size = f->chunk_size,
		.nchunks = f->nchunks,
		.map = map,
		.expect = (const uint8_t(*)[MOTE_SNAP_HASH_SIZE])f->chunk_hashes,
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	plan_lanes(&j);
	int rc = run_job(&j);
	if (map)
		munmap(map, f->blob_size);
	pthread_mutex_destroy(&j.lock);
	if (rc == -MOTE_EHASH)
		return fail(err, errlen, rc, "blob chunk %u hash mismatch (file corrupt)",
			    j.bad_chunk);
	if (rc)
		return fail(err, errlen, rc, "out of memory for SHA-256");
	/* The guard page is part of the format: it must be there, as zeros. */
	uint8_t guard[GUARD_SIZE];
	ssize_t r = pread_full(f->fd, guard, GUARD_SIZE, f->blob_offset + f->blob_size);
	if (r < 0)
		return fail(err, errlen, -MOTE_EIO, "read the guard page: %s", strerror(errno));
	if ((size_t)r != GUARD_SIZE || !all_zero(guard, GUARD_SIZE))
		return BAD("trailing guard page is missing or not zero");
	if (fstat(f->fd, &now))
		return fail(err, errlen, -MOTE_EIO, "fstat: %s", strerror(errno));
	if (!same_version(&f->st, &now))
		return BAD("file changed while it was being verified");
	cache_insert(f);
	return 0;
}

int mote_snapfile_open(const char *path, unsigned flags, struct mote_snapfile *out, char *err,
		       size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (out) {
		memset(out, 0, sizeof(*out));
		out->fd = -1;
	}
	if (!path || !out || (flags & ~(MOTE_SNAPFILE_VERIFY_HEADER | MOTE_SNAPFILE_NO_CACHE)))
		return fail(err, errlen, -MOTE_EINVAL, "invalid arguments");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -MOTE_EIO, "open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st)) {
		int rc = fail(err, errlen, -MOTE_EIO, "fstat %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return BAD("%s is not a regular file", path);
	}
	/* Read the header, then exactly the metadata it announces if that is
	 * sane; otherwise parse what we have and let it explain the problem. */
	uint8_t hdr[HDR_SIZE];
	uint64_t size = (uint64_t)st.st_size;
	ssize_t got = pread_full(fd, hdr, size < HDR_SIZE ? (size_t)size : HDR_SIZE, 0);
	uint8_t *buf = NULL;
	int rc = 0;
	if (got < 0) {
		rc = fail(err, errlen, -MOTE_EIO, "read %s: %s", path, strerror(errno));
	} else {
		size_t len = (size_t)got;
		uint64_t bo = len == HDR_SIZE ? get64(((struct disk_header *)hdr)->blob_offset) : 0;
		if (bo > HDR_SIZE && bo <= MAX_META && bo <= size && page_aligned(bo)) {
			buf = mote_malloc((size_t)bo);
			got = buf ? pread_full(fd, buf, (size_t)bo, 0) : 0;
			if (!buf)
				rc = fail(err, errlen, -MOTE_ENOMEM, "out of memory");
			else if (got < 0)
				rc = fail(err, errlen, -MOTE_EIO, "read %s: %s", path,
					  strerror(errno));
			else
				len = (size_t)got;
		}
		if (!rc)
			rc = mote_snapfile_parse(buf ? buf : hdr, len, size, out, err, errlen);
	}
	mote_free(buf);
	if (rc) {
		close(fd);
		return rc;
	}
	out->fd = fd;
	out->st = st;
	if (flags & MOTE_SNAPFILE_VERIFY_HEADER)
		return 0;
	if (!(flags & MOTE_SNAPFILE_NO_CACHE) && cache_lookup(out))
		return 0;
	rc = mote_snapfile_verify_blob(out, err, errlen);
	if (rc)
		mote_snapfile_close(out);
	return rc;
}

/* ---- Writing ---- */

static size_t find_regions(const uint64_t *bm, uint64_t npages, uint64_t gap,
			   struct mote_snap_region *out)
{
	size_t n = 0;
	uint64_t page = 0;
	while (page < npages) {
		uint64_t start = run_end(bm, page, npages, false);
		if (start == npages)
			break;
		uint64_t end = run_end(bm, start, npages, true);
		while (end < npages) {
			uint64_t next = run_end(bm, end, npages, false);
			if (next == npages || next - end > gap)
				break;
			end = run_end(bm, next, npages, true);
		}
		if (out)
			out[n] = (struct mote_snap_region){start * PAGE, (end - start) * PAGE, 0};
		n++;
		page = end;
	}
	return n;
}

static uint64_t fns_size(const struct mote_sig *fns, size_t n)
{
	uint64_t size = 0;
	for (size_t i = 0; i < n; i++)
		size += fn_entry_size((uint32_t)strlen(fns[i].name));
	return size;
}

static int check_fns_for_write(const struct mote_sig *fns, size_t n, const char *which, char *err,
			       size_t errlen)
{
	if (n > MOTE_SNAP_MAX_FUNCTIONS || (n && !fns))
		return fail(err, errlen, -MOTE_EINVAL, "%s function count %zu invalid", which, n);
	for (size_t i = 0; i < n; i++) {
		if (!fns[i].name || !fns[i].name[0] ||
		    strnlen(fns[i].name, MOTE_MAX_NAME + 1) > MOTE_MAX_NAME)
			return fail(err, errlen, -MOTE_EINVAL,
				    "%s function %zu: name missing, empty or longer than %d", which,
				    i, MOTE_MAX_NAME);
		int rc = check_sig_types(&fns[i], which, i, err, errlen);
		if (rc)
			return -MOTE_EINVAL;
	}
	return 0;
}

static uint8_t *encode_fns(uint8_t *p, const struct mote_sig *fns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct disk_fn *d = (struct disk_fn *)p;
		uint32_t len = (uint32_t)strlen(fns[i].name);
		put32(d->name_len, len);
		d->ret = (uint8_t)fns[i].ret;
		d->nargs = fns[i].nargs;
		for (unsigned a = 0; a < fns[i].nargs; a++)
			d->args[a] = (uint8_t)fns[i].args[a];
		memcpy(p + sizeof(*d), fns[i].name, len);
		p += fn_entry_size(len);
	}
	return p;
}

/* Early checks of what the encoder relies on (counts, pointers, lengths);
 * every other rule is the parser's, applied to the encoded metadata. */
static int check_refs_for_write(const struct mote_snap_meta *meta, char *err, size_t errlen)
{
	if (meta->parent_path && strnlen(meta->parent_path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
		return fail(err, errlen, -MOTE_EINVAL, "parent path longer than %u bytes",
			    MAX_PATH_LEN);
	if (meta->nmappings > MOTE_MAX_MAPPINGS || (meta->nmappings && !meta->mappings))
		return fail(err, errlen, -MOTE_EINVAL, "mapping count %zu invalid (at most %u)",
			    meta->nmappings, MOTE_MAX_MAPPINGS);
	for (size_t i = 0; i < meta->nmappings; i++) {
		const char *path = meta->mappings[i].path;
		if (!path || strnlen(path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
			return fail(err, errlen, -MOTE_EINVAL,
				    "mapping %zu: path missing or longer than %u bytes", i,
				    MAX_PATH_LEN);
		if ((meta->mappings[i].flags & MOTE_SNAP_MAP_ABSORBED) && !meta->mappings[i].data)
			return fail(err, errlen, -MOTE_EINVAL,
				    "mapping %zu: absorbed but no content given", i);
	}
	return 0;
}

/* Mappings are stored sorted by guest address: order[] gets the indices of
 * meta->mappings in that order (stable; n <= MOTE_MAX_MAPPINGS). */
static void sort_mappings(const struct mote_snap_mapping *m, size_t n, size_t *order)
{
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		for (; j && m[order[j - 1]].gpa > m[i].gpa; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
}

static void encode_parent(uint8_t *p, const char *path)
{
	struct disk_parent *d = (struct disk_parent *)p;
	uint32_t len = (uint32_t)strlen(path);
	put32(d->path_len, len);
	memcpy(p + sizeof(*d), path, len);
}

static void encode_mappings(uint8_t *p, const struct mote_snap_mapping *maps, const size_t *order,
			    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct mote_snap_mapping *m = &maps[order[i]];
		struct disk_mapping *d = (struct disk_mapping *)p;
		uint32_t len = (uint32_t)strlen(m->path);
		put64(d->offset, m->offset);
		put64(d->size, m->size);
		put64(d->gpa, m->gpa);
		put32(d->flags, m->flags);
		put32(d->path_len, len);
		memcpy(d->sha256, m->sha256, sizeof(d->sha256));
		memcpy(p + sizeof(*d), m->path, len);
		p += path_entry_size(sizeof(*d), len);
	}
}

static int pwrite_full(int fd, const void *p, uint64_t len, uint64_t off)
{
	const uint8_t *b = p;
	while (len) {
		size_t n = len < (1u << 30) ? (size_t)len : (1u << 30);
		ssize_t w = pwrite(fd, b, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		b += w;
		len -= (uint64_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

struct blob_writer {
	int fd;
	uint64_t blob_offset;
};

static int write_piece(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off)
{
	const struct blob_writer *bw = ctx;
	uint64_t off = bw->blob_offset + blob_off;
	if (p)
		return pwrite_full(bw->fd, p, len, off) ? -MOTE_EIO : 0;
	for (; len; len -= PAGE, off += PAGE)
		if (pwrite_full(bw->fd, zero_page, PAGE, off))
			return -MOTE_EIO;
	return 0;
}

/* Blob hash from the chunk-hash section, then the header hash. */
static int seal(uint8_t *buf, uint64_t chunks_off, uint64_t nchunks, uint64_t blob_offset)
{
	struct disk_header *h = (struct disk_header *)buf;
	int rc = sha256(buf + chunks_off, nchunks * MOTE_SNAP_HASH_SIZE, h->blob_hash);
	return rc ? rc : header_digest(buf, blob_offset, h->header_hash);
}

static atomic_uint tmp_counter;

int mote_snapfile_write(const char *path, const struct mote_snap_meta *meta, const uint8_t *mem,
			const uint64_t *present, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!path || !meta || !mem || !present)
		return fail(err, errlen, -MOTE_EINVAL, "invalid arguments");
	const uint64_t mem_size = meta->layout.mem_size;
	if (!mem_size || !page_aligned(mem_size) || mem_size > MOTE_MEM_LIMIT)
		return fail(err, errlen, -MOTE_EINVAL, "layout: mem_size 0x%llx invalid",
			    U(mem_size));
	int rc = check_fns_for_write(meta->host_fns, meta->nhost_fns, "host", err, errlen);
	if (!rc)
		rc = check_fns_for_write(meta->guest_fns, meta->nguest_fns, "guest", err, errlen);
	if (!rc)
		rc = check_refs_for_write(meta, err, errlen);
	if (rc)
		return rc;
	size_t map_order[MOTE_MAX_MAPPINGS];
	sort_mappings(meta->mappings, meta->nmappings, map_order);
	uint64_t maps_size = 0;
	for (size_t i = 0; i < meta->nmappings; i++)
		maps_size += path_entry_size(sizeof(struct disk_mapping),
					     (uint32_t)strlen(meta->mappings[i].path));
	/* An empty parent path is encoded as such, for the parser to reject. */
	const char *parent = meta->parent_path;

	/* Regions: runs of present pages, merged across small gaps; merge wider
	 * gaps until the table fits what a reader accepts. */
	const uint64_t npages = mem_size / PAGE;
	uint64_t gap = MERGE_GAP_PAGES;
	size_t nregions;
	while ((nregions = find_regions(present, npages, gap, NULL)) > MOTE_SNAP_MAX_REGIONS)
		gap = gap * 2 + 1;
	/* Absorbed mappings follow as one region each, above guest RAM. */
	size_t nabsorbed = 0;
	for (size_t i = 0; i < meta->nmappings; i++)
		nabsorbed += (meta->mappings[i].flags & MOTE_SNAP_MAP_ABSORBED) != 0;
	struct mote_snap_region *regions = NULL;
	const uint8_t *extra[MOTE_MAX_MAPPINGS];
	if (nregions + nabsorbed &&
	    !(regions = mote_calloc(nregions + nabsorbed, sizeof(*regions))))
		return fail(err, errlen, -MOTE_ENOMEM, "out of memory");
	find_regions(present, npages, gap, regions);
	const size_t nram = nregions;
	for (size_t k = 0; k < meta->nmappings; k++) {
		const struct mote_snap_mapping *m = &meta->mappings[map_order[k]];
		if (!(m->flags & MOTE_SNAP_MAP_ABSORBED))
			continue;
		extra[nregions - nram] = m->data;
		regions[nregions++] = (struct mote_snap_region){m->gpa, m->size, 0};
	}

	/* Metadata geometry. */
	uint64_t sizes[NSECTIONS] = {
		sizeof(struct disk_layout),
		sizeof(struct disk_cpu),
		fns_size(meta->host_fns, meta->nhost_fns),
		fns_size(meta->guest_fns, meta->nguest_fns),
		nregions * sizeof(struct disk_region),
		0,
		parent ? path_entry_size(sizeof(struct disk_parent), (uint32_t)strlen(parent)) : 0,
		maps_size,
	};
	uint64_t counts[NSECTIONS] = {
		1, 1, meta->nhost_fns, meta->nguest_fns, nregions, 0, parent != NULL,
		meta->nmappings,
	};
	uint64_t blob_size = 0;
	for (size_t i = 0; i < nregions; i++)
		blob_size += regions[i].size;
	uint64_t nchunks = (blob_size + WRITE_CHUNK_SIZE - 1) / WRITE_CHUNK_SIZE;
	counts[SEC_CHUNKS] = nchunks;
	sizes[SEC_CHUNKS] = nchunks * MOTE_SNAP_HASH_SIZE;
	uint64_t offs[NSECTIONS], next = HDR_SIZE;
	for (unsigned i = 0; i < NSECTIONS; i++) {
		offs[i] = next;
		next += sizes[i];
	}
	const uint64_t blob_offset = align_up(next, PAGE);
	const uint64_t file_size = blob_offset + blob_size + GUARD_SIZE;
	uint64_t at = blob_offset;
	for (size_t i = 0; i < nregions; i++) {
		regions[i].file_offset = at;
		at += regions[i].size;
	}

	char *dir = NULL, *tmp = NULL;
	int dirfd = -1, fd = -1;
	bool created = false;
	struct hash_job job = {.lock = PTHREAD_MUTEX_INITIALIZER};
	uint8_t *buf = blob_offset <= MAX_META ? mote_calloc(1, blob_offset) : NULL;
	if (!buf) {
		rc = blob_offset <= MAX_META
			     ? fail(err, errlen, -MOTE_ENOMEM, "out of memory")
			     : fail(err, errlen, -MOTE_EINVAL, "metadata of 0x%llx bytes too large",
				    U(blob_offset));
		goto out;
	}

	/* Encode everything but the chunk hashes. */
	struct disk_header *h = (struct disk_header *)buf;
	memcpy(h->magic, SNAP_MAGIC, sizeof(h->magic));
	put32(h->format_version, MOTE_SNAP_FORMAT_VERSION);
	put32(h->header_size, HDR_SIZE);
	put32(h->abi_version, meta->abi_version);
	put32(h->arch, MOTE_SNAP_ARCH_X86_64);
	put32(h->hypervisor, meta->saved_by);
	char vendor[16];
	memcpy(vendor, meta->cpu_vendor, sizeof(vendor));
	if (!vendor[0])
		mote_cpu_vendor(vendor);
	memcpy(h->cpu_vendor, vendor, sizeof(vendor));
	uint64_t created_ns = meta->created_unix_ns;
	if (!created_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	put64(h->created_unix_ns, created_ns);
	put64(h->file_size, file_size);
	put64(h->blob_offset, blob_offset);
	put64(h->blob_size, blob_size);
	put64(h->chunk_size, WRITE_CHUNK_SIZE);
	memcpy(h->parent_hash, meta->parent_hash, sizeof(h->parent_hash));
	for (unsigned i = 0; i < NSECTIONS; i++) {
		put64(h->sections[i].offset, offs[i]);
		put64(h->sections[i].size, sizes[i]);
		put32(h->sections[i].count, (uint32_t)counts[i]);
	}
	encode_layout((struct disk_layout *)(buf + offs[SEC_LAYOUT]), &meta->layout,
		      meta->image_size);
	encode_cpu((struct disk_cpu *)(buf + offs[SEC_VCPU]), &meta->cpu);
	encode_fns(buf + offs[SEC_HOST_FNS], meta->host_fns, meta->nhost_fns);
	encode_fns(buf + offs[SEC_GUEST_FNS], meta->guest_fns, meta->nguest_fns);
	for (size_t i = 0; i < nregions; i++) {
		struct disk_region *d = (struct disk_region *)(buf + offs[SEC_REGIONS]) + i;
		put64(d->guest_addr, regions[i].guest_addr);
		put64(d->size, regions[i].size);
		put64(d->file_offset, regions[i].file_offset);
	}
	if (parent)
		encode_parent(buf + offs[SEC_PARENT], parent);
	encode_mappings(buf + offs[SEC_MAPPINGS], meta->mappings, map_order, meta->nmappings);

	/* Never write a file the reader would reject: parse the metadata now,
	 * before touching the disk (chunk hashes still zero, sealed as such). */
	rc = seal(buf, offs[SEC_CHUNKS], nchunks, blob_offset);
	if (rc) {
		fail(err, errlen, rc, "SHA-256 failed");
		goto out;
	}
	struct mote_snapfile check;
	char why[256];
	rc = mote_snapfile_parse(buf, (size_t)blob_offset, file_size, &check, why, sizeof(why));
	mote_snapfile_close(&check);
	if (rc == -MOTE_ENOMEM) {
		fail(err, errlen, rc, "out of memory");
		goto out;
	}
	if (rc) {
		rc = fail(err, errlen, -MOTE_EINVAL, "invalid snapshot metadata: %s", why);
		goto out;
	}

	/* Temporary file next to the destination, so rename is atomic. */
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base) {
		rc = fail(err, errlen, -MOTE_EINVAL, "%s names a directory", path);
		goto out;
	}
	size_t dlen = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
	size_t tlen = strlen(base) + 48;
	dir = mote_malloc(dlen + 1);
	tmp = mote_malloc(tlen);
	if (!dir || !tmp) {
		rc = fail(err, errlen, -MOTE_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(dir, slash ? path : ".", dlen);
	dir[dlen] = 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = fail(err, errlen, -MOTE_EIO, "open directory %s: %s", dir, strerror(errno));
		goto out;
	}
	for (int tries = 0; fd < 0; tries++) {
		snprintf(tmp, tlen, ".%s.tmp.%ld.%u", base, (long)getpid(),
			 atomic_fetch_add(&tmp_counter, 1));
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST || tries >= 100)) {
			rc = fail(err, errlen, -MOTE_EIO, "create %s/%s: %s", dir, tmp,
				  strerror(errno));
			goto out;
		}
	}
	created = true;

	/* Blob and guard page while the helper thread hashes from memory; then
	 * this thread helps hash what is left. The header goes last, so an
	 * interrupted temporary file never looks complete. */
	struct blob_src src = {mem, present, regions, nregions, blob_offset, nram, extra,
			       .gaps_from_mem = parent != NULL};
	job.blob_size = blob_size;
	job.chunk_size = WRITE_CHUNK_SIZE;
	job.nchunks = (unsigned)nchunks;
	job.src = &src;
	job.hashes = (uint8_t(*)[MOTE_SNAP_HASH_SIZE])(buf + offs[SEC_CHUNKS]);
	pthread_t helper;
	bool have_helper = nchunks > 1 && start_helper(&helper, &job);
	struct blob_writer bw = {fd, blob_offset};
	rc = walk_blob(&src, 0, blob_size, write_piece, &bw);
	if (!rc && pwrite_full(fd, zero_page, GUARD_SIZE, blob_offset + blob_size))
		rc = -MOTE_EIO;
	int werrno = errno;
	if (rc)
		atomic_store(&job.stop, true);
	else
		hash_worker_run(&job);
	if (have_helper)
		pthread_join(helper, NULL);
	if (rc) {
		fail(err, errlen, rc, "write %s/%s: %s", dir, tmp, strerror(werrno));
		goto out;
	}
	if (job.rc) {
		rc = fail(err, errlen, job.rc, "SHA-256 failed");
		goto out;
	}
	rc = seal(buf, offs[SEC_CHUNKS], nchunks, blob_offset);
	if (rc) {
		fail(err, errlen, rc, "SHA-256 failed");
		goto out;
	}
	if (pwrite_full(fd, buf, blob_offset, 0) || fsync(fd)) {
		rc = fail(err, errlen, -MOTE_EIO, "write %s/%s: %s", dir, tmp, strerror(errno));
		goto out;
	}
	int cfd = fd;
	fd = -1;
	if (close(cfd)) {
		rc = fail(err, errlen, -MOTE_EIO, "close %s/%s: %s", dir, tmp, strerror(errno));
		goto out;
	}
	if (renameat(dirfd, tmp, dirfd, base)) {
		rc = fail(err, errlen, -MOTE_EIO, "rename %s/%s to %s: %s", dir, tmp, path,
			  strerror(errno));
		goto out;
	}
	created = false;
	/* Make the rename durable. Filesystems that cannot sync a directory say
	 * EINVAL; the file itself is complete either way. */
	if (fsync(dirfd) && errno != EINVAL)
		rc = fail(err, errlen, -MOTE_EIO, "fsync directory %s: %s", dir, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlinkat(dirfd, tmp, 0);
	if (dirfd >= 0)
		close(dirfd);
	pthread_mutex_destroy(&job.lock);
	mote_free(dir);
	mote_free(tmp);
	mote_free(buf);
	mote_free(regions);
	return rc;
}
