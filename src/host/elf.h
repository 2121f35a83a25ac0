/* Validation of guest ELF files. The file is untrusted input: every field is
 * checked before use and a failure names the reason. */
#ifndef MOTE_HOST_ELF_H
#define MOTE_HOST_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mote/types.h"

#define MOTE_ELF_MAX_SEGMENTS 16

/* PF_X/PF_W/PF_R as in the ELF spec. */
#define MOTE_SEG_X 1u
#define MOTE_SEG_W 2u
#define MOTE_SEG_R 4u

struct mote_elf_segment {
	uint64_t vaddr;  /* guest address of the first byte */
	uint64_t memsz;  /* bytes in memory (>= filesz) */
	uint64_t offset; /* file offset of the first byte */
	uint64_t filesz; /* bytes taken from the file; the rest is zero */
	uint32_t flags;  /* MOTE_SEG_* */
};

/* Most entries a function table may have: the host's limit on the INIT
 * directory too (src/host/sandbox.c). */
#define MOTE_ELF_MAX_FUNCTIONS 65536u

struct mote_elf_image {
	uint64_t entry;
	uint64_t image_end; /* end of the highest segment, rounded up to a page */
	uint32_t abi_version;
	unsigned nsegments; /* PT_LOAD segments, sorted by vaddr */
	struct mote_elf_segment segments[MOTE_ELF_MAX_SEGMENTS];
	/* The function table note's range [fns_start, fns_end) of struct
	 * mote_wire_desc entries (guest addresses); has_fns false without it. */
	bool has_fns;
	uint64_t fns_start, fns_end;
};

/* Validate `buf` as a mote guest: ELF64, little-endian, x86-64, ET_EXEC with
 * no PT_INTERP/PT_DYNAMIC, at most 64 program headers, every PT_LOAD inside
 * the file and inside [MOTE_IMAGE_BASE, MOTE_IMAGE_LIMIT) with filesz <=
 * memsz, a power-of-two (or 0) p_align and vaddr % 4096 == offset % 4096 (so
 * it can be loaded page-wise), no two PT_LOADs overlapping or sharing a 4 KiB
 * page, at most MOTE_ELF_MAX_SEGMENTS of them, the entry point inside an
 * executable one, and exactly one mote ABI note (name "mote", type
 * MOTE_NOTE_TYPE_ABI, 4-byte little-endian version) in a PT_NOTE.
 *
 * The function table note (type MOTE_NOTE_TYPE_FNS) is optional here, since
 * loading never uses it, but if present there must be one, with a 16-byte
 * descriptor whose range is 8-byte aligned, a multiple of 32 bytes, at most
 * MOTE_ELF_MAX_FUNCTIONS entries, and wholly inside one PT_LOAD's
 * file-backed bytes (not its zero-filled tail); an empty range need only lie
 * in [MOTE_IMAGE_BASE, image_end]. The entries are checked by
 * mote_elf_read_functions().
 *
 * A PT_LOAD with memsz == 0 loads nothing and is ignored (its filesz must be
 * 0 too). Section headers are not read.
 *
 * Returns 0 with `out` filled (segments sorted by vaddr); -MOTE_EABI if the
 * note is well-formed but its version differs from MOTE_ABI_VERSION (then
 * only out->abi_version is set; the layout is not checked, since it may follow
 * other rules); -MOTE_EBADELF for anything else wrong with the bytes;
 * -MOTE_EINVAL if `out` is NULL or `buf` is NULL with len > 0. On failure `out`
 * holds no segments. `err` may be NULL; otherwise it is always NUL-terminated
 * (truncated to `errlen`), "" on success and the reason on failure. */
int mote_elf_parse(const void *buf, size_t len, struct mote_elf_image *out, char *err,
		   size_t errlen);

/* One guest function, as the guest's function table declares it. */
struct mote_elf_function {
	const char *name; /* into the ELF buffer: 1..MOTE_MAX_NAME bytes + NUL */
	uint8_t ret;      /* a mote_type; may be MOTE_VOID */
	uint8_t nargs;    /* <= MOTE_MAX_ARGS */
	uint8_t args[MOTE_MAX_ARGS];
};

/* Read the function table of `buf`, which mote_elf_parse() accepted as
 * `img`, without running the guest: the static twin of the INIT directory a
 * guest sends (src/host/sandbox.c read_directory) and held to its rules.
 * Every pointer in an entry (struct mote_wire_desc) is translated through
 * the PT_LOADs and must lie in one segment's file-backed bytes: the name,
 * NUL-terminated there within MOTE_MAX_NAME + 1 bytes and not empty; the
 * nargs (<= MOTE_MAX_ARGS) argument types, each a mote_type other than
 * MOTE_VOID; the wrapper, in an executable segment. The result type is any
 * mote_type. No two names are equal.
 *
 * Returns 0 with *out (free with mote_free(); names point into `buf`) and
 * *count set, in table order (the order a sandbox lists them);
 * -MOTE_EBADELF if img has no function table note or an entry breaks a rule
 * (the reason names the entry); -MOTE_ENOMEM; -MOTE_EINVAL for NULL
 * arguments. On failure *out is NULL and *count 0. `err` as for
 * mote_elf_parse(). */
int mote_elf_read_functions(const void *buf, size_t len, const struct mote_elf_image *img,
			    struct mote_elf_function **out, size_t *count, char *err,
			    size_t errlen);

#endif
