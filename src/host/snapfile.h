/* The snapshot file: one self-describing file holding a sandbox's layout,
 * vCPU state, function tables, region table, hashes and the page-aligned
 * memory blob. The format is specified in docs/snapshot-format.md. Files are
 * untrusted input: every field is validated before use. */
#ifndef MOTE_HOST_SNAPFILE_H
#define MOTE_HOST_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/abi.h"
#include "host/backend.h"
#include "host/records.h"

/* 2: backend-neutral CPU state (struct mote_cpu_state); version 1 files
 * are refused with a message that says to take them again. */
#define MOTE_SNAP_FORMAT_VERSION 2u
#define MOTE_SNAP_ARCH_X86_64 1u
/* The header's `hypervisor` field: the backend that saved the file. */
#define MOTE_SNAP_BACKEND_KVM 1u
#define MOTE_SNAP_BACKEND_PROCESS 2u
#define MOTE_SNAP_HASH_SIZE 32u /* SHA-256 */
/* The header's `flags`: bit 0, the file has section 8 (the guest ELF's
 * identity). A reader rejects bits it does not know. */
#define MOTE_SNAP_FLAG_GUEST 1u
/* Bounds a reader enforces (a writer never exceeds them). */
#define MOTE_SNAP_MAX_FUNCTIONS 4096u
#define MOTE_SNAP_MAX_REGIONS 65536u

/* A host file a snapshot had mapped, recorded by reference. */
struct mote_snap_mapping {
	char *path;      /* as given to mote_sandbox_map_file; 1..4095 bytes, no NUL */
	uint64_t offset; /* page-aligned */
	uint64_t size;   /* page-aligned, > 0 */
	uint64_t gpa;    /* page-aligned, inside [MOTE_MAP_BASE, MOTE_MAP_LIMIT) */
	uint32_t flags;  /* MOTE_MAP_COPY_ON_WRITE | MOTE_SNAP_MAP_ABSORBED */
	uint8_t sha256[MOTE_SNAP_HASH_SIZE]; /* of the file's bytes in the range
					      * (zero-padded to `size`) */
	/* Writer input for an absorbed mapping: its `size` bytes, stored in
	 * the blob as a region at `gpa` (NULL when reading). */
	const uint8_t *data;
};

/* The mapping's content is stored in the snapshot (one region exactly
 * covering [gpa, gpa + size)), not read from `path` when opened. */
#define MOTE_SNAP_MAP_ABSORBED 2u

/* Everything in a snapshot except the memory contents. */
struct mote_snap_meta {
	uint32_t abi_version;
	uint64_t created_unix_ns;
	char cpu_vendor[16]; /* CPUID vendor string, NUL-terminated */
	struct mote_layout layout;
	struct mote_cpu_state cpu;
	uint32_t saved_by; /* MOTE_SNAP_BACKEND_* */
	uint64_t image_size;
	struct mote_sig *host_fns; /* host functions the guest may call */
	size_t nhost_fns;
	struct mote_sig *guest_fns;
	size_t nguest_fns;
	/* Layered snapshots: all zero for a standalone snapshot. Otherwise the
	 * header hash of the base snapshot file this one is a layer over, and
	 * where it was (a path, relative to this file's directory unless
	 * absolute). A layer's regions hold only the pages that differ from
	 * its base; guest memory = the base's memory with the layer's pages
	 * over it. */
	uint8_t parent_hash[MOTE_SNAP_HASH_SIZE];
	char *parent_path; /* NULL or 1..4095 bytes, no NUL */
	struct mote_snap_mapping *mappings;
	size_t nmappings; /* <= MOTE_MAX_MAPPINGS, non-overlapping */
	/* The guest ELF the memory came from, for symbols and core dumps:
	 * SHA-256 of the whole file and where it was (a hint; absolute when
	 * known). guest_path NULL: not recorded (no section 8). */
	uint8_t guest_sha256[MOTE_SNAP_HASH_SIZE];
	char *guest_path; /* NULL or 1..4095 bytes, no NUL */
};

/* A run of guest pages stored in the blob. Guest memory outside every
 * region is zero. */
struct mote_snap_region {
	uint64_t guest_addr;  /* page-aligned */
	uint64_t size;        /* page-aligned, > 0 */
	uint64_t file_offset; /* page-aligned, absolute offset in the file */
};

struct mote_snapfile {
	int fd; /* open read-only; -1 when parsed from a buffer */
	struct stat st;
	uint32_t format_version;
	uint32_t arch, hypervisor;
	uint64_t file_size;
	uint64_t blob_offset, blob_size;
	uint64_t chunk_size; /* blob bytes per chunk hash */
	uint32_t nchunks;
	uint8_t (*chunk_hashes)[MOTE_SNAP_HASH_SIZE];
	uint8_t blob_hash[MOTE_SNAP_HASH_SIZE];   /* SHA-256 of the chunk hashes */
	uint8_t header_hash[MOTE_SNAP_HASH_SIZE]; /* covers [0, blob_offset) */
	struct mote_snap_meta meta;
	struct mote_snap_region *regions;
	size_t nregions;
};

/* Open flags (the public MOTE_SNAPSHOT_* values in mote.h are the same). */
#define MOTE_SNAPFILE_VERIFY_HEADER 1u /* header hash only: constant time */
#define MOTE_SNAPFILE_NO_CACHE 2u      /* verify fully even if cached */

/* Write `meta` and the pages of `mem` whose bit is set in `present` (one
 * bit per 4 KiB page of meta->layout.mem_size: page i is bit i % 64 of
 * present[i / 64]) to `path`, atomically: a temporary file in the same
 * directory (".NAME.tmp.PID.N", mode 0600), fsync, rename over `path`, fsync
 * of the directory. An existing file at `path` is replaced only when the new
 * one is complete, and a file that sandboxes have mapped is never written.
 * Runs of present pages separated by a few absent pages are stored as one
 * region. The absent pages in it are stored as zeros in a standalone file
 * (never read from mem); in a layer (meta->parent_path set) they are read
 * from mem, which must then hold the composed memory: outside the layer's
 * regions a reader takes the base's pages, so a region must carry them too.
 * A guest_path is stored as section 8, with MOTE_SNAP_FLAG_GUEST. Blob
 * chunks are hashed on two threads. A created_unix_ns of 0 means "now", an
 * empty cpu_vendor means this host's CPUID vendor. The metadata is
 * validated exactly as the reader would (-MOTE_EINVAL if it would not pass).
 * A writer killed mid-save leaves its temporary file behind (the file at
 * `path` is intact); such leftovers may be deleted. */
int mote_snapfile_write(const char *path, const struct mote_snap_meta *meta, const uint8_t *mem,
			const uint64_t *present, char *err, size_t errlen);

/* Parse and validate everything before the blob from `buf` (the first `len`
 * bytes of a file of `file_size` bytes) and check the header hash. Does not
 * read the blob. Used by mote_snapfile_open and by the fuzzer. Returns 0,
 * -MOTE_EBADSNAP (the reason in err), -MOTE_EHASH or -MOTE_ENOMEM. */
int mote_snapfile_parse(const uint8_t *buf, size_t len, uint64_t file_size,
			struct mote_snapfile *out, char *err, size_t errlen);

/* Open `path`, parse it, and verify the blob according to flags: by default
 * every chunk (two threads, through a read-only mapping) and the guard page,
 * unless a process-wide cache says this exact file (device, inode, size,
 * mtime, ctime, header hash) was fully verified before; with
 * MOTE_SNAPFILE_VERIFY_HEADER only the metadata and its hash. Errors:
 * -MOTE_EIO (open/read), -MOTE_EBADSNAP, -MOTE_EHASH, -MOTE_ENOMEM. */
int mote_snapfile_open(const char *path, unsigned flags, struct mote_snapfile *out, char *err,
		       size_t errlen);

/* Hash every blob chunk and compare; records success in the cache. */
int mote_snapfile_verify_blob(struct mote_snapfile *f, char *err, size_t errlen);

/* Forget every cached verification (benchmarks, tests). */
void mote_snapfile_cache_clear(void);

/* Free what parse/open allocated and close the fd (an fd is owned only when
 * `st` describes a regular file, i.e. after open). Safe on a zeroed struct. */
void mote_snapfile_close(struct mote_snapfile *f);

/* Free the arrays and paths inside a meta. */
void mote_snap_meta_clear(struct mote_snap_meta *meta);

/* ---- For tests and the fuzzer only ---- */
/* Recompute the blob hash (when the chunk-hash section lies inside buf) and
 * the header hash of the snapshot bytes buf[0, len), so a test can corrupt a
 * field and still reach the structural check. 0, or -MOTE_EINVAL when the
 * header or its blob offset does not fit in buf. */
int mote_snapfile__rehash(uint8_t *buf, size_t len);
/* Opens satisfied by the verification cache since the process started. */
uint64_t mote_snapfile__cache_hits(void);

#endif
