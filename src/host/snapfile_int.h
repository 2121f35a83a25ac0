/* The snapshot file format's private parts, shared by the files that
 * implement it: snapfile.c (parse, validate, open, verify), snapfile_hash.c
 * (SHA-256 of headers and of the blob on two threads), snapfile_cache.c (the
 * verification cache) and snapfile_write.c (the writer). The byte layout is
 * specified in docs/snapshot-format.md; the disk_* structs below are that
 * specification in C (byte arrays only, so no padding or host byte order
 * leaks in) and the _Static_asserts pin them. Every integer is
 * little-endian and goes through the get/put helpers. */
#ifndef MOTE_HOST_SNAPFILE_INT_H
#define MOTE_HOST_SNAPFILE_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "host/internal.h"
#include "host/snapfile.h"

/* ---- On-disk records ---- */

#define SNAP_MAGIC       "MOTESNAP"
#define HDR_SIZE         512u
#define GUARD_SIZE       MOTE_PAGE_SIZE
#define PAGE             MOTE_PAGE_SIZE
#define MAX_META         (64ull << 20) /* bytes before the blob a reader accepts */
#define MAX_CHUNK_SIZE   (1ull << 30)  /* largest chunk_size a reader accepts */
#define WRITE_CHUNK_SIZE (2ull << 20)
#define MERGE_GAP_PAGES  4u /* absent pages a region may swallow */
#define CACHE_SIZE       256u
#define MAX_PATH_LEN     4095u                 /* parent, mapping and guest paths, in bytes */
#define MAX_FILE_END     ((uint64_t)INT64_MAX) /* largest end of a mapping's file range */
#define KNOWN_FLAGS      MOTE_SNAP_FLAG_GUEST  /* header flags this reader understands */

enum {
	SEC_LAYOUT,
	SEC_VCPU,
	SEC_HOST_FNS,
	SEC_GUEST_FNS,
	SEC_REGIONS,
	SEC_CHUNKS,
	SEC_PARENT,
	SEC_MAPPINGS,
	SEC_GUEST, /* only with MOTE_SNAP_FLAG_GUEST; its entry is reserved (zero) otherwise */
	NSECTIONS
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
	uint8_t reserved1[104];
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

/* Section 8 (only with MOTE_SNAP_FLAG_GUEST): followed by path_len path
 * bytes and zero padding to a multiple of 8 (every section size is one). */
struct disk_guest {
	uint8_t sha256[MOTE_SNAP_HASH_SIZE]; /* of the whole guest ELF file */
	uint8_t path_len[4];
	uint8_t reserved[4];
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
_Static_assert(offsetof(struct disk_header, sections) + 24 * SEC_GUEST == 384, "entry 8 is format");
_Static_assert(offsetof(struct disk_header, reserved1) == 408, "header layout is format");
_Static_assert(NSECTIONS == 9, "section table entries are format");
_Static_assert(MOTE_SNAP_FLAG_GUEST == 1, "header flag bit is format");
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
_Static_assert(sizeof(struct disk_guest) == 40, "guest record size is format");
_Static_assert(offsetof(struct disk_guest, path_len) == 32, "guest record layout is format");
_Static_assert(MOTE_MAX_MAPPINGS == 32, "mapping count limit is format");
_Static_assert(MOTE_MAP_COPY_ON_WRITE == 1, "mapping flag bit is format");
_Static_assert(sizeof(((struct mote_cpu_state *)0)->fxsave) == 512, "FXSAVE area size");
_Static_assert(HDR_SIZE % 8 == 0 && PAGE % 8 == 0, "sections stay 8-byte aligned");

/* ---- Little-endian fields ---- */

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Eight bytes at a time: it checks up to a page of padding in every file
 * opened (a byte at a time, half of the parse of a small file). */
static inline bool all_zero(const uint8_t *p, size_t n)
{
	uint64_t any = 0, word;
	size_t i = 0;
	for (; i + sizeof(word) <= n; i += sizeof(word)) {
		memcpy(&word, p + i, sizeof(word));
		any |= word;
	}
	for (; i < n; i++)
		any |= p[i];
	return any == 0;
}

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

#define U(x) ((unsigned long long)(x))

#define BAD(...) mote_err(err, errlen, -MOTE_EBADSNAP, __VA_ARGS__)

static inline bool page_aligned(uint64_t x)
{
	return (x & (PAGE - 1)) == 0;
}

static inline uint64_t fn_entry_size(uint32_t name_len)
{
	return sizeof(struct disk_fn) + align_up(name_len, 8);
}

static inline uint64_t path_entry_size(size_t fixed, uint32_t path_len)
{
	return fixed + align_up(path_len, 8);
}

/* ---- Hashing (snapfile_hash.c) ---- */

extern const uint8_t mote_snapfile__zero_page[PAGE];
int mote_snapfile__sha256(const void *p, size_t n, uint8_t md[MOTE_SNAP_HASH_SIZE]);
/* SHA-256 of buf[0, blob_offset) with the header_hash field read as zeros. */
int mote_snapfile__header_digest(const uint8_t *buf, uint64_t blob_offset,
                                 uint8_t md[MOTE_SNAP_HASH_SIZE]);
int mote_snapfile__digest_mem(EVP_MD_CTX *ctx, const uint8_t *p, uint64_t len);

/* First page in [page, limit) whose bit differs from `set`, or limit. */
static inline uint64_t run_end(const uint64_t *bm, uint64_t page, uint64_t limit, bool set)
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

/* Feed blob bytes [off, off+len) (page-aligned) to fn in pieces: guest
 * memory, or NULL for the absent pages a standalone snapshot's region
 * swallowed (stored as zeros). */
typedef int (*blob_piece_fn)(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off);
int mote_snapfile__walk_blob(const struct blob_src *src, uint64_t off, uint64_t len,
                             blob_piece_fn fn, void *ctx);

/* Chunk hashes of the blob, on this thread and a helper: the writer's from
 * guest memory (src, results to hashes), the verifier's from the mapped file
 * (map, compared with expect). */
struct hash_job {
	uint64_t blob_size, chunk_size;
	unsigned nchunks;
	unsigned ngroups;           /* verifier: units [0, ngroups) are 16 chunks in lanes */
	const struct blob_src *src; /* writer: guest memory */
	const uint8_t *map;         /* verifier: the mapped blob */
	uint8_t (*hashes)[MOTE_SNAP_HASH_SIZE];       /* writer: results */
	const uint8_t (*expect)[MOTE_SNAP_HASH_SIZE]; /* verifier: compared */
	atomic_uint next;
	atomic_bool stop;
	pthread_mutex_t lock;
	int rc; /* lowest failing chunk's error, under lock */
	unsigned bad_chunk;
};
/* The verifier's full-size chunks go sixteen at a time through AVX-512 lanes
 * where the CPU has them. */
void mote_snapfile__plan_lanes(struct hash_job *j);
/* Hash the job's chunks until none is left or one fails. */
void *mote_snapfile__hash_worker_run(void *arg);
/* A second hashing thread, every signal blocked. false: run on one thread. */
bool mote_snapfile__start_helper(pthread_t *t, struct hash_job *j);
/* Run a job on this thread and one helper; returns the job's rc. */
int mote_snapfile__run_job(struct hash_job *j);

/* ---- Parsing and encoding (snapfile.c) ---- */

/* Shared by the writer (before encoding) and the reader (after decoding). */
int mote_snapfile__check_sig_types(const struct mote_sig *sig, const char *which, size_t i,
                                   char *err, size_t errlen);
void mote_snapfile__encode_layout(struct disk_layout *d, const struct mote_layout *l,
                                  uint64_t image_size);
void mote_snapfile__encode_cpu(struct disk_cpu *d, const struct mote_cpu_state *v);

/* ---- The verification cache (snapfile_cache.c) ---- */

/* ctime too: it changes on every write and cannot be set back like mtime. */
static inline bool same_version(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}
/* Was this version of the file (device, inode, size, times, header hash)
 * verified whole before? */
bool mote_snapfile__cache_lookup(const struct mote_snapfile *f);
void mote_snapfile__cache_insert(const struct mote_snapfile *f);

#endif
