/* Validation of guest ELF files. The file is untrusted input: every field is
 * checked before use and a failure names the reason. */
#ifndef MOTE_HOST_ELF_H
#define MOTE_HOST_ELF_H

#include <stddef.h>
#include <stdint.h>

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

struct mote_elf_image {
	uint64_t entry;
	uint64_t image_end; /* end of the highest segment, rounded up to a page */
	uint32_t abi_version;
	unsigned nsegments; /* PT_LOAD segments, sorted by vaddr */
	struct mote_elf_segment segments[MOTE_ELF_MAX_SEGMENTS];
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

#endif
