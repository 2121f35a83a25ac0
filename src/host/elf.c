/* Validation of guest ELF files.
 *
 * The bytes come from whoever supplied the guest, so nothing in them is
 * trusted: every header is copied out with memcpy (the buffer may be
 * unaligned), every offset and size is checked against the buffer with
 * overflow-checked arithmetic before anything is read through it, and every
 * failure leaves a reason in `err`.
 *
 * Order of checks: the ELF header and the program header table first, then
 * the mote ABI note, then the loadable segments. The note comes before the
 * layout checks so that a guest built for another ABI version (whose layout
 * rules may differ) is reported as -MOTE_EABI rather than as a bad layout.
 *
 * Section headers are never looked at: loading needs only program headers.
 */
#include "host/elf.h"

#include <elf.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/abi.h"
#include "host/internal.h"
#include "mote.h"

/* Headers are copied straight into glibc's structs, which is only right on a
 * little-endian host. KVM on x86-64 is the only host mote supports. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mote's ELF parser assumes a little-endian host"
#endif

/* More program headers than any sane static executable has; bounds the work
 * done on hostile input. */
#define ELF_MAX_PHNUM 64u

#define PAGE_MASK_ (MOTE_PAGE_SIZE - 1)

struct parse_ctx {
	const unsigned char *buf;
	size_t len;
	char *err;
	size_t errlen;
};

/* Fail with `code` (positive, as the X-macro names it) and the detail. */
#define fail(ctx, code, ...) mote_err((ctx)->err, (ctx)->errlen, -(code), __VA_ARGS__)

/* True if [off, off+size) lies inside the buffer, without overflowing. */
static bool in_file(const struct parse_ctx *ctx, uint64_t off, uint64_t size)
{
	uint64_t end;
	if (__builtin_add_overflow(off, size, &end))
		return false;
	return end <= ctx->len;
}

static uint32_t read_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static const char *machine_name(unsigned machine)
{
	switch (machine) {
	case EM_NONE:
		return "none";
	case EM_386:
		return "i386";
	case EM_X86_64:
		return "x86-64";
	case EM_ARM:
		return "ARM";
	case EM_AARCH64:
		return "AArch64";
	case EM_RISCV:
		return "RISC-V";
	case EM_PPC:
		return "PowerPC";
	case EM_PPC64:
		return "PowerPC64";
	case EM_S390:
		return "s390";
	case EM_MIPS:
		return "MIPS";
	case EM_SPARCV9:
		return "SPARC V9";
	case 258: /* EM_LOONGARCH, missing from older glibc headers */
		return "LoongArch";
	default:
		return "unknown";
	}
}

static const char *type_name(unsigned type)
{
	switch (type) {
	case ET_NONE:
		return "ET_NONE";
	case ET_REL:
		return "ET_REL (object file, not linked)";
	case ET_DYN:
		return "ET_DYN";
	case ET_CORE:
		return "ET_CORE (core dump)";
	default:
		return NULL;
	}
}

static int check_ident(struct parse_ctx *ctx)
{
	const unsigned char *id = ctx->buf;

	if (ctx->len == 0)
		return fail(ctx, MOTE_EBADELF, "not an ELF file (file is empty)");
	if (ctx->len < SELFMAG || memcmp(id, ELFMAG, SELFMAG) != 0)
		return fail(ctx, MOTE_EBADELF, "not an ELF file (bad magic)");
	if (ctx->len < EI_NIDENT)
		return fail(ctx, MOTE_EBADELF, "ELF header truncated: file is %zu bytes, need %zu",
			    ctx->len, sizeof(Elf64_Ehdr));
	if (id[EI_CLASS] == ELFCLASS32)
		return fail(ctx, MOTE_EBADELF, "ELF class is 32-bit, need 64-bit");
	if (id[EI_CLASS] != ELFCLASS64)
		return fail(ctx, MOTE_EBADELF, "ELF class is %u (invalid), need 64-bit (%d)",
			    id[EI_CLASS], ELFCLASS64);
	if (id[EI_DATA] == ELFDATA2MSB)
		return fail(ctx, MOTE_EBADELF,
			    "ELF data encoding is big-endian, need little-endian");
	if (id[EI_DATA] != ELFDATA2LSB)
		return fail(ctx, MOTE_EBADELF,
			    "ELF data encoding is %u (invalid), need little-endian (%d)",
			    id[EI_DATA], ELFDATA2LSB);
	if (id[EI_VERSION] != EV_CURRENT)
		return fail(ctx, MOTE_EBADELF, "ELF ident version is %u, need %d (EV_CURRENT)",
			    id[EI_VERSION], EV_CURRENT);
	/* EI_OSABI is not checked: static toolchains emit both SYSV and GNU. */
	return 0;
}

static int check_ehdr(struct parse_ctx *ctx, Elf64_Ehdr *eh)
{
	int rc = check_ident(ctx);
	if (rc)
		return rc;
	if (ctx->len < sizeof(*eh))
		return fail(ctx, MOTE_EBADELF, "ELF header truncated: file is %zu bytes, need %zu",
			    ctx->len, sizeof(*eh));
	memcpy(eh, ctx->buf, sizeof(*eh));

	if (eh->e_version != EV_CURRENT)
		return fail(ctx, MOTE_EBADELF, "ELF version is %" PRIu32 ", need %d (EV_CURRENT)",
			    eh->e_version, EV_CURRENT);
	if (eh->e_machine != EM_X86_64)
		return fail(ctx, MOTE_EBADELF, "ELF machine is %u (%s), need x86-64 (%d)",
			    eh->e_machine, machine_name(eh->e_machine), EM_X86_64);
	if (eh->e_type != ET_EXEC) {
		const char *name = type_name(eh->e_type);
		if (name)
			return fail(ctx, MOTE_EBADELF,
				    "ELF type is %s, need ET_EXEC (static, non-PIE)", name);
		return fail(ctx, MOTE_EBADELF, "ELF type is 0x%x, need ET_EXEC (static, non-PIE)",
			    eh->e_type);
	}
	if (eh->e_ehsize != sizeof(Elf64_Ehdr))
		return fail(ctx, MOTE_EBADELF, "ELF header size is %u, need %zu", eh->e_ehsize,
			    sizeof(Elf64_Ehdr));
	if (eh->e_phnum == 0)
		return fail(ctx, MOTE_EBADELF, "ELF file has no program headers");
	/* PN_XNUM means the real count is in section header 0; no static
	 * executable needs that many, and section headers are not read. */
	if (eh->e_phnum == PN_XNUM)
		return fail(ctx, MOTE_EBADELF,
			    "too many program headers (extended numbering, PN_XNUM), max %u",
			    ELF_MAX_PHNUM);
	if (eh->e_phnum > ELF_MAX_PHNUM)
		return fail(ctx, MOTE_EBADELF, "too many program headers (%u), max %u", eh->e_phnum,
			    ELF_MAX_PHNUM);
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return fail(ctx, MOTE_EBADELF, "program header entry size is %u, need %zu",
			    eh->e_phentsize, sizeof(Elf64_Phdr));

	/* phnum <= 64, so the table size cannot overflow; the sum can. */
	uint64_t phsize = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (!in_file(ctx, eh->e_phoff, phsize))
		return fail(ctx, MOTE_EBADELF,
			    "program header table at offset 0x%" PRIx64 " size 0x%" PRIx64
			    " lies outside the 0x%zx-byte file",
			    (uint64_t)eh->e_phoff, phsize, ctx->len);
	return 0;
}

static void read_phdr(const struct parse_ctx *ctx, const Elf64_Ehdr *eh, unsigned i, Elf64_Phdr *ph)
{
	/* In bounds: check_ehdr verified the whole table. */
	memcpy(ph, ctx->buf + eh->e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

/* Round `v` up to a multiple of `align` (a power of two). False on overflow. */
static bool align_up(uint64_t v, uint64_t align, uint64_t *out)
{
	if (__builtin_add_overflow(v, align - 1, out))
		return false;
	*out &= ~(align - 1);
	return true;
}

/* What the PT_NOTE segments say about mote. The function table note is only
 * recorded while walking: its checks wait until the ABI version is known (a
 * guest of another ABI may shape it differently) and the segments are
 * (its range must lie in one). */
struct mote_notes {
	bool abi_found;
	uint32_t version;
	unsigned nfns;       /* function table notes seen */
	uint32_t fns_descsz; /* of the first one */
	struct mote_note_fns fns;
};

/* Walk the notes of PT_NOTE segment `idx`, looking for the mote notes.
 * Each note is a 12-byte header (namesz, descsz, type), the name padded to
 * the note alignment, then the descriptor padded likewise. The alignment is
 * 4 bytes, or 8 when the segment says p_align == 8 (as GNU property notes
 * do); this matches what binutils and libelf accept. */
static int walk_notes(struct parse_ctx *ctx, unsigned idx, const Elf64_Phdr *ph,
		      struct mote_notes *notes)
{
	if (!in_file(ctx, ph->p_offset, ph->p_filesz))
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: note range 0x%" PRIx64 "+0x%" PRIx64
			    " lies outside the 0x%zx-byte file",
			    idx, (uint64_t)ph->p_offset, (uint64_t)ph->p_filesz, ctx->len);

	const unsigned char *seg = ctx->buf + ph->p_offset;
	const uint64_t size = ph->p_filesz;
	const uint64_t align = ph->p_align == 8 ? 8 : 4;
	uint64_t pos = 0;

	while (pos < size) {
		uint64_t name_off, name_end, desc_off, desc_end, next;

		if (size - pos < 12)
			return fail(ctx, MOTE_EBADELF,
				    "segment %u: malformed note at offset 0x%" PRIx64
				    ": header truncated (0x%" PRIx64 " bytes left, need 12)",
				    idx, pos, size - pos);
		uint32_t namesz = read_u32(seg + pos);
		uint32_t descsz = read_u32(seg + pos + 4);
		uint32_t type = read_u32(seg + pos + 8);

		name_off = pos + 12;
		if (__builtin_add_overflow(name_off, namesz, &name_end) ||
		    !align_up(name_end, align, &desc_off) ||
		    __builtin_add_overflow(desc_off, descsz, &desc_end) || desc_end > size)
			return fail(ctx, MOTE_EBADELF,
				    "segment %u: malformed note at offset 0x%" PRIx64
				    ": name size 0x%" PRIx32 " and desc size 0x%" PRIx32
				    " overrun the 0x%" PRIx64 "-byte note segment",
				    idx, pos, namesz, descsz, size);

		bool mote = namesz == sizeof(MOTE_NOTE_NAME) &&
			    memcmp(seg + name_off, MOTE_NOTE_NAME, sizeof(MOTE_NOTE_NAME)) == 0;
		if (mote && type == MOTE_NOTE_TYPE_ABI) {
			if (descsz != 4)
				return fail(ctx, MOTE_EBADELF,
					    "segment %u: mote ABI note has desc size %" PRIu32
					    ", need 4",
					    idx, descsz);
			if (notes->abi_found)
				return fail(ctx, MOTE_EBADELF, "more than one mote ABI note");
			notes->abi_found = true;
			notes->version = read_u32(seg + desc_off);
		} else if (mote && type == MOTE_NOTE_TYPE_FNS && notes->nfns++ == 0) {
			notes->fns_descsz = descsz;
			if (descsz == sizeof(notes->fns))
				memcpy(&notes->fns, seg + desc_off, sizeof(notes->fns));
		}
		/* Other notes (build IDs, GNU properties, future mote notes)
		 * are skipped. Padding after the last descriptor may be cut
		 * off at the end of the segment. */
		if (!align_up(desc_end, align, &next) || next >= size)
			break;
		pos = next;
	}
	return 0;
}

static int find_notes(struct parse_ctx *ctx, const Elf64_Ehdr *eh, struct mote_notes *notes)
{
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		read_phdr(ctx, eh, i, &ph);
		if (ph.p_type != PT_NOTE)
			continue;
		int rc = walk_notes(ctx, i, &ph, notes);
		if (rc)
			return rc;
	}
	if (!notes->abi_found)
		return fail(ctx, MOTE_EBADELF,
			    "missing mote ABI note (PT_NOTE named \"%s\", type 0x%x); "
			    "was the guest built with the mote SDK?",
			    MOTE_NOTE_NAME, MOTE_NOTE_TYPE_ABI);
	return 0;
}

/* Check one PT_LOAD on its own; relations between segments come later. */
static int check_load(struct parse_ctx *ctx, unsigned idx, const Elf64_Phdr *ph)
{
	uint64_t end;

	if (ph->p_filesz > ph->p_memsz)
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: filesz 0x%" PRIx64 " exceeds memsz 0x%" PRIx64, idx,
			    (uint64_t)ph->p_filesz, (uint64_t)ph->p_memsz);
	/* Nothing to load (filesz is 0 too): the caller skips it, so its
	 * addresses do not matter. */
	if (ph->p_memsz == 0)
		return 0;
	if (!in_file(ctx, ph->p_offset, ph->p_filesz))
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: file range 0x%" PRIx64 "+0x%" PRIx64
			    " lies outside the 0x%zx-byte file",
			    idx, (uint64_t)ph->p_offset, (uint64_t)ph->p_filesz, ctx->len);
	if (__builtin_add_overflow(ph->p_vaddr, ph->p_memsz, &end))
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: [0x%" PRIx64 ",0x%" PRIx64 "+0x%" PRIx64
			    ") outside the guest image area [0x%llx,0x%llx)",
			    idx, (uint64_t)ph->p_vaddr, (uint64_t)ph->p_vaddr,
			    (uint64_t)ph->p_memsz, MOTE_IMAGE_BASE, MOTE_IMAGE_LIMIT);
	if (ph->p_vaddr < MOTE_IMAGE_BASE || end > MOTE_IMAGE_LIMIT)
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: [0x%" PRIx64 ",0x%" PRIx64
			    ") outside the guest image area [0x%llx,0x%llx)",
			    idx, (uint64_t)ph->p_vaddr, end, MOTE_IMAGE_BASE, MOTE_IMAGE_LIMIT);
	if (ph->p_align & (ph->p_align - 1))
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: alignment 0x%" PRIx64 " is not a power of two", idx,
			    (uint64_t)ph->p_align);
	/* The loader maps/copies the file page-wise; p_align beyond a page
	 * does not matter because segments are placed at their exact vaddr. */
	if ((ph->p_vaddr & PAGE_MASK_) != (ph->p_offset & PAGE_MASK_))
		return fail(ctx, MOTE_EBADELF,
			    "segment %u: vaddr 0x%" PRIx64 " and file offset 0x%" PRIx64
			    " differ modulo the 4 KiB page size",
			    idx, (uint64_t)ph->p_vaddr, (uint64_t)ph->p_offset);
	return 0;
}

static uint64_t seg_end(const struct mote_elf_segment *s)
{
	return s->vaddr + s->memsz; /* checked against MOTE_IMAGE_LIMIT */
}

static int collect_loads(struct parse_ctx *ctx, const Elf64_Ehdr *eh, struct mote_elf_image *out)
{
	/* Program header index of each out->segments[] entry, for messages. */
	unsigned phidx[MOTE_ELF_MAX_SEGMENTS];
	unsigned n = 0;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		read_phdr(ctx, eh, i, &ph);

		if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
			return fail(ctx, MOTE_EBADELF,
				    "segment %u: %s present: dynamically linked guests are not "
				    "supported (link with -static -no-pie)",
				    i, ph.p_type == PT_INTERP ? "PT_INTERP" : "PT_DYNAMIC");
		if (ph.p_type != PT_LOAD)
			continue;
		int rc = check_load(ctx, i, &ph);
		if (rc)
			return rc;
		/* memsz == 0 occupies no memory: ignored rather than rejected. */
		if (ph.p_memsz == 0)
			continue;
		if (n == MOTE_ELF_MAX_SEGMENTS)
			return fail(ctx, MOTE_EBADELF, "too many PT_LOAD segments (max %d)",
				    MOTE_ELF_MAX_SEGMENTS);

		/* Insertion sort by vaddr: at most 16 entries. */
		unsigned j = n++;
		while (j > 0 && out->segments[j - 1].vaddr > ph.p_vaddr) {
			out->segments[j] = out->segments[j - 1];
			phidx[j] = phidx[j - 1];
			j--;
		}
		out->segments[j] = (struct mote_elf_segment){
			.vaddr = ph.p_vaddr,
			.memsz = ph.p_memsz,
			.offset = ph.p_offset,
			.filesz = ph.p_filesz,
			.flags = ph.p_flags & (MOTE_SEG_R | MOTE_SEG_W | MOTE_SEG_X),
		};
		phidx[j] = i;
	}
	out->nsegments = n;
	if (n == 0)
		return fail(ctx, MOTE_EBADELF, "no loadable (PT_LOAD) segments");

	/* Each page gets one set of permissions, so segments may not even share
	 * a page. Sorted by vaddr, checking neighbours is enough. */
	for (unsigned k = 1; k < n; k++) {
		const struct mote_elf_segment *a = &out->segments[k - 1], *b = &out->segments[k];
		unsigned lo = phidx[k - 1] < phidx[k] ? phidx[k - 1] : phidx[k];
		unsigned hi = phidx[k - 1] < phidx[k] ? phidx[k] : phidx[k - 1];

		if (seg_end(a) > b->vaddr)
			return fail(ctx, MOTE_EBADELF, "segments %u and %u overlap", lo, hi);
		if (((seg_end(a) + PAGE_MASK_) & ~PAGE_MASK_) > (b->vaddr & ~PAGE_MASK_))
			return fail(ctx, MOTE_EBADELF,
				    "segments %u and %u share a 4 KiB page (0x%" PRIx64 ")", lo, hi,
				    (uint64_t)(b->vaddr & ~PAGE_MASK_));
	}

	for (unsigned k = 0; k < n; k++) {
		const struct mote_elf_segment *s = &out->segments[k];
		if ((s->flags & MOTE_SEG_X) && eh->e_entry >= s->vaddr &&
		    eh->e_entry < seg_end(s)) {
			out->entry = eh->e_entry;
			out->image_end =
				(seg_end(&out->segments[n - 1]) + PAGE_MASK_) & ~PAGE_MASK_;
			return 0;
		}
	}
	return fail(ctx, MOTE_EBADELF,
		    "entry point 0x%" PRIx64 " is not inside an executable segment",
		    (uint64_t)eh->e_entry);
}

/* The segment holding guest range [addr, addr+size) wholly in its file-backed
 * bytes, or NULL. size 0 matches up to and including the end of those bytes. */
static const struct mote_elf_segment *file_segment(const struct mote_elf_image *img, uint64_t addr,
						   uint64_t size)
{
	for (unsigned k = 0; k < img->nsegments && k < MOTE_ELF_MAX_SEGMENTS; k++) {
		const struct mote_elf_segment *s = &img->segments[k];
		if (addr >= s->vaddr && addr - s->vaddr <= s->filesz &&
		    size <= s->filesz - (addr - s->vaddr))
			return s;
	}
	return NULL;
}

/* The same in the whole segment (memsz), zero-filled part included. */
static const struct mote_elf_segment *mem_segment(const struct mote_elf_image *img, uint64_t addr,
						  uint64_t size)
{
	for (unsigned k = 0; k < img->nsegments; k++) {
		const struct mote_elf_segment *s = &img->segments[k];
		if (addr >= s->vaddr && addr - s->vaddr <= s->memsz &&
		    size <= s->memsz - (addr - s->vaddr))
			return s;
	}
	return NULL;
}

/* The function table note, once the ABI and the segments are known. Only
 * file-backed bytes can hold the table: the zero-filled rest of a segment
 * would read as entries with null names, which no SDK emits. */
static int check_fns_note(struct parse_ctx *ctx, const struct mote_notes *n,
			  struct mote_elf_image *out)
{
	const uint64_t start = n->fns.start, end = n->fns.end;
	const uint64_t esz = sizeof(struct mote_wire_desc);

	if (n->nfns == 0)
		return 0; /* optional here; mote_elf_read_functions requires it */
	if (n->nfns > 1)
		return fail(ctx, MOTE_EBADELF, "more than one mote function table note (%u)",
			    n->nfns);
	if (n->fns_descsz != sizeof(struct mote_note_fns))
		return fail(ctx, MOTE_EBADELF,
			    "mote function table note has desc size %" PRIu32 ", need %zu",
			    n->fns_descsz, sizeof(struct mote_note_fns));
	if (start % 8)
		return fail(ctx, MOTE_EBADELF,
			    "function table note: start 0x%" PRIx64 " is not 8-byte aligned",
			    start);
	if (end < start)
		return fail(ctx, MOTE_EBADELF,
			    "function table note: end 0x%" PRIx64 " is before start 0x%" PRIx64,
			    end, start);
	if ((end - start) % esz)
		return fail(ctx, MOTE_EBADELF,
			    "function table note: size 0x%" PRIx64
			    " is not a multiple of the %" PRIu64 "-byte entry",
			    end - start, esz);
	if ((end - start) / esz > MOTE_ELF_MAX_FUNCTIONS)
		return fail(ctx, MOTE_EBADELF, "function table note: %" PRIu64 " entries, max %u",
			    (end - start) / esz, MOTE_ELF_MAX_FUNCTIONS);
	if (start == end) {
		/* Nothing to read; an empty section may sit at the image end. */
		if (start < MOTE_IMAGE_BASE || start > out->image_end)
			return fail(ctx, MOTE_EBADELF,
				    "function table note: empty table at 0x%" PRIx64
				    " lies outside the guest image",
				    start);
	} else if (!file_segment(out, start, end - start)) {
		const struct mote_elf_segment *s = mem_segment(out, start, end - start);
		if (s)
			return fail(ctx, MOTE_EBADELF,
				    "function table note: [0x%" PRIx64 ",0x%" PRIx64
				    ") is not in the file bytes of the segment at 0x%" PRIx64
				    " (filesz 0x%" PRIx64 "); zero-filled memory holds no table",
				    start, end, s->vaddr, s->filesz);
		return fail(ctx, MOTE_EBADELF,
			    "function table note: [0x%" PRIx64 ",0x%" PRIx64
			    ") does not lie inside one loaded segment",
			    start, end);
	}
	out->has_fns = true;
	out->fns_start = start;
	out->fns_end = end;
	return 0;
}

int mote_elf_parse(const void *buf, size_t len, struct mote_elf_image *out, char *err,
		   size_t errlen)
{
	struct parse_ctx ctx = {buf, len, err, errlen};
	Elf64_Ehdr eh;
	struct mote_notes notes = {0};
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out || (!buf && len))
		return fail(&ctx, MOTE_EINVAL, "mote_elf_parse: NULL %s",
			    out ? "buffer" : "output");
	memset(out, 0, sizeof(*out));

	rc = check_ehdr(&ctx, &eh);
	if (rc)
		return rc;
	rc = find_notes(&ctx, &eh, &notes);
	if (rc)
		return rc;
	out->abi_version = notes.version;
	if (notes.version != MOTE_ABI_VERSION)
		return fail(&ctx, MOTE_EABI,
			    "guest ABI version %" PRIu32 ", host supports %u (rebuild the guest "
			    "with this mote's mote-cc)",
			    notes.version, MOTE_ABI_VERSION);
	rc = collect_loads(&ctx, &eh, out);
	if (!rc)
		rc = check_fns_note(&ctx, &notes, out);
	if (rc) {
		/* Leave no half-filled image behind. */
		memset(out, 0, sizeof(*out));
		return rc;
	}
	return 0;
}

/* ---- The function table ---- */

/* File bytes behind guest range [addr, addr+size), all inside one segment's
 * file-backed part; *avail gets the bytes from addr to that part's end. The
 * file range is checked again because `img` comes from the caller. */
static const unsigned char *file_bytes(const struct parse_ctx *ctx,
				       const struct mote_elf_image *img, uint64_t addr,
				       uint64_t size, uint64_t *avail)
{
	const struct mote_elf_segment *s = file_segment(img, addr, size);
	if (!s || !in_file(ctx, s->offset, s->filesz))
		return NULL;
	if (avail)
		*avail = s->filesz - (addr - s->vaddr);
	return ctx->buf + s->offset + (addr - s->vaddr);
}

static int read_name(struct parse_ctx *ctx, const struct mote_elf_image *img, size_t i,
		     uint64_t addr, const char **name)
{
	uint64_t avail;
	const unsigned char *p = file_bytes(ctx, img, addr, 1, &avail);
	if (!p)
		return fail(ctx, MOTE_EBADELF,
			    "function table entry %zu: name pointer 0x%" PRIx64
			    " is not inside a segment's file bytes",
			    i, addr);
	size_t lim = avail < MOTE_MAX_NAME + 1 ? (size_t)avail : MOTE_MAX_NAME + 1;
	const unsigned char *nul = memchr(p, 0, lim);
	if (!nul && lim == avail)
		return fail(ctx, MOTE_EBADELF,
			    "function table entry %zu: name at 0x%" PRIx64
			    " has no NUL before the end of its segment's file bytes",
			    i, addr);
	if (!nul)
		return fail(ctx, MOTE_EBADELF,
			    "function table entry %zu: name at 0x%" PRIx64
			    " is longer than %d bytes (no NUL)",
			    i, addr, MOTE_MAX_NAME);
	if (nul == p)
		return fail(ctx, MOTE_EBADELF, "function table entry %zu: empty name", i);
	*name = (const char *)p;
	return 0;
}

static int read_entry(struct parse_ctx *ctx, const struct mote_elf_image *img, size_t i,
		      const unsigned char *raw, struct mote_elf_function *f)
{
	struct mote_wire_desc d;
	memcpy(&d, raw, sizeof(d));
	int rc = read_name(ctx, img, i, d.name, &f->name);
	if (rc)
		return rc;
	if (d.ret >= MOTE_TYPE_COUNT_)
		return fail(ctx, MOTE_EBADELF,
			    "function '%s' (table entry %zu): invalid result type %u", f->name, i,
			    d.ret);
	if (d.nargs > MOTE_MAX_ARGS)
		return fail(ctx, MOTE_EBADELF,
			    "function '%s' (table entry %zu): %u arguments, max %d", f->name, i,
			    d.nargs, MOTE_MAX_ARGS);
	/* With no arguments the pointer may sit just past its array. */
	const unsigned char *args = d.nargs ? file_bytes(ctx, img, d.args, d.nargs, NULL) : raw;
	if (!args)
		return fail(ctx, MOTE_EBADELF,
			    "function '%s' (table entry %zu): argument types at 0x%" PRIx64
			    " (%u bytes) are not inside a segment's file bytes",
			    f->name, i, d.args, d.nargs);
	for (unsigned a = 0; a < d.nargs; a++) {
		if (args[a] == MOTE_VOID || args[a] >= MOTE_TYPE_COUNT_)
			return fail(ctx, MOTE_EBADELF,
				    "function '%s' (table entry %zu): argument %u has invalid type "
				    "%u",
				    f->name, i, a, args[a]);
		f->args[a] = args[a];
	}
	f->ret = d.ret;
	f->nargs = d.nargs;
	/* Never called by the host, but a wrapper outside the code means the
	 * table is not what the SDK wrote. */
	const struct mote_elf_segment *ws = file_segment(img, d.wrapper, 1);
	if (!ws || !(ws->flags & MOTE_SEG_X))
		return fail(ctx, MOTE_EBADELF,
			    "function '%s' (table entry %zu): wrapper 0x%" PRIx64
			    " is not inside an executable segment",
			    f->name, i, d.wrapper);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	const struct mote_elf_function *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* Sorted, so a hostile table of 65536 entries costs n log n, not n^2. */
static int check_duplicates(struct parse_ctx *ctx, const struct mote_elf_function *fns, size_t n)
{
	if (n < 2)
		return 0;
	const struct mote_elf_function **v = mote_calloc(n, sizeof(*v));
	if (!v)
		return fail(ctx, MOTE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = &fns[i];
	qsort(v, n, sizeof(*v), by_name);
	int rc = 0;
	for (size_t i = 1; i < n && !rc; i++) {
		if (strcmp(v[i - 1]->name, v[i]->name) != 0)
			continue;
		size_t a = (size_t)(v[i - 1] - fns), b = (size_t)(v[i] - fns);
		rc = fail(ctx, MOTE_EBADELF,
			  "function '%s' is declared twice (table entries %zu and %zu)", v[i]->name,
			  a < b ? a : b, a < b ? b : a);
	}
	mote_free(v);
	return rc;
}

int mote_elf_read_functions(const void *buf, size_t len, const struct mote_elf_image *img,
			    struct mote_elf_function **out, size_t *count, char *err, size_t errlen)
{
	struct parse_ctx ctx = {buf, len, err, errlen};

	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (count)
		*count = 0;
	if (!img || !out || !count || (!buf && len))
		return fail(&ctx, MOTE_EINVAL, "mote_elf_read_functions: NULL argument");
	if (!img->has_fns)
		return fail(&ctx, MOTE_EBADELF,
			    "no function table note (PT_NOTE named \"%s\", type 0x%x): guest built "
			    "before ABI 2?",
			    MOTE_NOTE_NAME, MOTE_NOTE_TYPE_FNS);
	const uint64_t esz = sizeof(struct mote_wire_desc);
	uint64_t size = img->fns_end - img->fns_start;
	const unsigned char *tab = file_bytes(&ctx, img, img->fns_start, size, NULL);
	/* mote_elf_parse checked all this; `img` may not come from it. */
	if (img->fns_end < img->fns_start || size % esz || size / esz > MOTE_ELF_MAX_FUNCTIONS ||
	    (size && !tab))
		return fail(&ctx, MOTE_EBADELF,
			    "function table [0x%" PRIx64 ",0x%" PRIx64 ") is malformed",
			    img->fns_start, img->fns_end);
	size_t n = (size_t)(size / esz);
	struct mote_elf_function *fns = mote_calloc(n ? n : 1, sizeof(*fns));
	if (!fns)
		return fail(&ctx, MOTE_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = read_entry(&ctx, img, i, tab + i * esz, &fns[i]);
	if (!rc)
		rc = check_duplicates(&ctx, fns, n);
	if (rc) {
		mote_free(fns);
		return rc;
	}
	*out = fns;
	*count = n;
	return 0;
}
