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
#include <string.h>

#include "common/abi.h"
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

__attribute__((format(printf, 3, 4))) static int fail(struct parse_ctx *ctx, int code,
						      const char *fmt, ...)
{
	if (ctx->err && ctx->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ctx->err, ctx->errlen, fmt, ap);
		va_end(ap);
	}
	return -code;
}

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

/* Walk the notes of PT_NOTE segment `idx`, looking for the mote ABI note.
 * Each note is a 12-byte header (namesz, descsz, type), the name padded to
 * the note alignment, then the descriptor padded likewise. The alignment is
 * 4 bytes, or 8 when the segment says p_align == 8 (as GNU property notes
 * do); this matches what binutils and libelf accept. */
static int walk_notes(struct parse_ctx *ctx, unsigned idx, const Elf64_Phdr *ph, bool *found,
		      uint32_t *version)
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

		if (namesz == sizeof(MOTE_NOTE_NAME) &&
		    memcmp(seg + name_off, MOTE_NOTE_NAME, sizeof(MOTE_NOTE_NAME)) == 0 &&
		    type == MOTE_NOTE_TYPE_ABI) {
			if (descsz != 4)
				return fail(ctx, MOTE_EBADELF,
					    "segment %u: mote ABI note has desc size %" PRIu32
					    ", need 4",
					    idx, descsz);
			if (*found)
				return fail(ctx, MOTE_EBADELF, "more than one mote ABI note");
			*found = true;
			*version = read_u32(seg + desc_off);
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

static int find_abi_note(struct parse_ctx *ctx, const Elf64_Ehdr *eh, uint32_t *version)
{
	bool found = false;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		read_phdr(ctx, eh, i, &ph);
		if (ph.p_type != PT_NOTE)
			continue;
		int rc = walk_notes(ctx, i, &ph, &found, version);
		if (rc)
			return rc;
	}
	if (!found)
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

int mote_elf_parse(const void *buf, size_t len, struct mote_elf_image *out, char *err,
		   size_t errlen)
{
	struct parse_ctx ctx = {buf, len, err, errlen};
	Elf64_Ehdr eh;
	uint32_t version = 0;
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
	rc = find_abi_note(&ctx, &eh, &version);
	if (rc)
		return rc;
	out->abi_version = version;
	if (version != MOTE_ABI_VERSION)
		return fail(&ctx, MOTE_EABI,
			    "guest ABI version %" PRIu32 ", host supports %u (rebuild the guest "
			    "with this mote's mote-cc)",
			    version, MOTE_ABI_VERSION);
	rc = collect_loads(&ctx, &eh, out);
	if (rc) {
		/* Leave no half-filled image behind. */
		memset(out, 0, sizeof(*out));
		return rc;
	}
	return 0;
}
