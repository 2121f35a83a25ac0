/* Tests for the guest ELF validator (src/host/elf.c).
 *
 * Every test starts from a small valid guest built in memory and breaks one
 * thing. Layout of the valid image (640 bytes):
 *
 *   0x000  Elf64_Ehdr
 *   0x040  3 program headers: [0] text PT_LOAD, [1] data PT_LOAD, [2] PT_NOTE
 *   0x0e8  mote ABI note (24 bytes)
 *   0x100  code; entry point 0x200100
 *   0x200  data (0x80 bytes, then 0xf80 bytes of bss)
 *
 *   [0] R+X  offset 0x000 filesz 0x200 -> vaddr 0x200000 memsz 0x200
 *   [1] R+W  offset 0x200 filesz 0x080 -> vaddr 0x201200 memsz 0x1000
 *   [2] NOTE offset 0x0e8 filesz 0x018
 */
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "common/abi.h"
#include "host/elf.h"
#include "host/internal.h"
#include "mote.h"
#include "test.h"

#define IMG_MAX 8192
#define PH_TEXT 0
#define PH_DATA 1
#define PH_NOTE 2
#define NOTE_OFF 0xe8u
#define NOTE_SIZE 24u
#define CODE_OFF 0x100u
#define DATA_OFF 0x200u
#define VALID_LEN 0x280u

struct img {
	unsigned char b[IMG_MAX];
	size_t len;
};

static char errbuf[256];

static Elf64_Ehdr get_eh(const struct img *im)
{
	Elf64_Ehdr eh;
	memcpy(&eh, im->b, sizeof(eh));
	return eh;
}

static void put_eh(struct img *im, const Elf64_Ehdr *eh)
{
	memcpy(im->b, eh, sizeof(*eh));
}

static Elf64_Phdr get_ph(const struct img *im, unsigned i)
{
	Elf64_Phdr ph;
	memcpy(&ph, im->b + sizeof(Elf64_Ehdr) + i * sizeof(ph), sizeof(ph));
	return ph;
}

static void put_ph(struct img *im, unsigned i, const Elf64_Phdr *ph)
{
	memcpy(im->b + sizeof(Elf64_Ehdr) + i * sizeof(*ph), ph, sizeof(*ph));
}

static void put_u32(struct img *im, size_t off, uint32_t v)
{
	memcpy(im->b + off, &v, sizeof(v));
}

/* Write a note (header, name padded to 4, desc padded to 4) at `off`;
 * returns its padded size. */
static size_t put_note(unsigned char *p, const char *name, uint32_t namesz, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	size_t pos = 12;
	memcpy(p, &namesz, 4);
	memcpy(p + 4, &descsz, 4);
	memcpy(p + 8, &type, 4);
	memset(p + pos, 0, (namesz + 3u) & ~3u);
	memcpy(p + pos, name, strlen(name) < namesz ? strlen(name) : namesz);
	pos += (namesz + 3u) & ~3u;
	memset(p + pos, 0, (descsz + 3u) & ~3u);
	memcpy(p + pos, desc, descsz);
	pos += (descsz + 3u) & ~3u;
	return pos;
}

static void build_valid(struct img *im)
{
	memset(im, 0, sizeof(*im));
	im->len = VALID_LEN;

	Elf64_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = 0x200000 + CODE_OFF;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 3;
	put_eh(im, &eh);

	Elf64_Phdr text = {
		.p_type = PT_LOAD,
		.p_flags = PF_R | PF_X,
		.p_offset = 0,
		.p_vaddr = 0x200000,
		.p_paddr = 0x200000,
		.p_filesz = DATA_OFF,
		.p_memsz = DATA_OFF,
		.p_align = 0x1000,
	};
	Elf64_Phdr data = {
		.p_type = PT_LOAD,
		.p_flags = PF_R | PF_W,
		.p_offset = DATA_OFF,
		.p_vaddr = 0x201000 + DATA_OFF,
		.p_paddr = 0x201000 + DATA_OFF,
		.p_filesz = 0x80,
		.p_memsz = 0x1000,
		.p_align = 0x1000,
	};
	Elf64_Phdr note = {
		.p_type = PT_NOTE,
		.p_flags = PF_R,
		.p_offset = NOTE_OFF,
		.p_vaddr = 0x200000 + NOTE_OFF,
		.p_paddr = 0x200000 + NOTE_OFF,
		.p_filesz = NOTE_SIZE,
		.p_memsz = NOTE_SIZE,
		.p_align = 4,
	};
	put_ph(im, PH_TEXT, &text);
	put_ph(im, PH_DATA, &data);
	put_ph(im, PH_NOTE, &note);

	uint32_t version = MOTE_ABI_VERSION;
	put_note(im->b + NOTE_OFF, MOTE_NOTE_NAME, sizeof(MOTE_NOTE_NAME), MOTE_NOTE_TYPE_ABI,
		 &version, 4);
	memset(im->b + CODE_OFF, 0xf4, DATA_OFF - CODE_OFF); /* hlt */
	memset(im->b + DATA_OFF, 0xa5, 0x80);
}

static int parse(const struct img *im, struct mote_elf_image *out)
{
	memset(errbuf, 'X', sizeof(errbuf));
	return mote_elf_parse(im->b, im->len, out, errbuf, sizeof(errbuf));
}

/* Parse and expect -MOTE_EBADELF with `needle` in the message. */
#define EXPECT_BAD(im, needle)                                                                     \
	do {                                                                                       \
		struct mote_elf_image out_;                                                        \
		CHECK_EQ_INT(parse((im), &out_), -MOTE_EBADELF);                                   \
		CHECK_CONTAINS(errbuf, (needle));                                                  \
		CHECK_EQ_INT(out_.nsegments, 0);                                                   \
	} while (0)

/* Properties every successfully parsed image must have. */
static int image_ok(const struct mote_elf_image *im, size_t len)
{
	if (im->nsegments == 0 || im->nsegments > MOTE_ELF_MAX_SEGMENTS)
		return 0;
	if (im->abi_version != MOTE_ABI_VERSION)
		return 0;
	int entry_ok = 0;
	for (unsigned i = 0; i < im->nsegments; i++) {
		const struct mote_elf_segment *s = &im->segments[i];
		if (s->memsz == 0 || s->filesz > s->memsz)
			return 0;
		if (s->vaddr < MOTE_IMAGE_BASE || s->vaddr > MOTE_IMAGE_LIMIT ||
		    s->memsz > MOTE_IMAGE_LIMIT - s->vaddr)
			return 0;
		if (s->offset > len || s->filesz > len - s->offset)
			return 0;
		if ((s->vaddr ^ s->offset) & (MOTE_PAGE_SIZE - 1))
			return 0;
		if (s->flags & ~(MOTE_SEG_R | MOTE_SEG_W | MOTE_SEG_X))
			return 0;
		if (i > 0) {
			const struct mote_elf_segment *p = &im->segments[i - 1];
			uint64_t pend =
				(p->vaddr + p->memsz + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
			if (pend > (s->vaddr & ~(MOTE_PAGE_SIZE - 1)))
				return 0;
		}
		if ((s->flags & MOTE_SEG_X) && im->entry >= s->vaddr &&
		    im->entry < s->vaddr + s->memsz)
			entry_ok = 1;
	}
	const struct mote_elf_segment *last = &im->segments[im->nsegments - 1];
	uint64_t end = (last->vaddr + last->memsz + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
	return entry_ok && im->image_end == end;
}

/* ---- The valid image ---- */

TEST(valid_image)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	REQUIRE(parse(&im, &out) == 0);
	CHECK_EQ_STR(errbuf, "");
	CHECK_EQ_U64(out.entry, 0x200100);
	CHECK_EQ_INT(out.abi_version, MOTE_ABI_VERSION);
	REQUIRE(out.nsegments == 2);
	CHECK_EQ_U64(out.segments[0].vaddr, 0x200000);
	CHECK_EQ_U64(out.segments[0].memsz, 0x200);
	CHECK_EQ_U64(out.segments[0].offset, 0);
	CHECK_EQ_U64(out.segments[0].filesz, 0x200);
	CHECK_EQ_INT(out.segments[0].flags, MOTE_SEG_R | MOTE_SEG_X);
	CHECK_EQ_U64(out.segments[1].vaddr, 0x201200);
	CHECK_EQ_U64(out.segments[1].memsz, 0x1000);
	CHECK_EQ_U64(out.segments[1].offset, 0x200);
	CHECK_EQ_U64(out.segments[1].filesz, 0x80);
	CHECK_EQ_INT(out.segments[1].flags, MOTE_SEG_R | MOTE_SEG_W);
	CHECK_EQ_U64(out.image_end, 0x203000);
	CHECK(!out.has_fns); /* optional for loading */
	CHECK(image_ok(&out, im.len));
}

TEST(valid_with_trailing_bytes)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	im.len = IMG_MAX;
	CHECK_EQ_INT(parse(&im, &out), 0);
}

TEST(unaligned_buffer)
{
	static unsigned char raw[VALID_LEN + 8];
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	for (size_t shift = 1; shift < 8; shift++) {
		memcpy(raw + shift, im.b, VALID_LEN);
		CHECK_EQ_INT(mote_elf_parse(raw + shift, VALID_LEN, &out, NULL, 0), 0);
		CHECK_EQ_U64(out.entry, 0x200100);
	}
}

TEST(segments_sorted_by_vaddr)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	/* Swap the two PT_LOAD headers. */
	Elf64_Phdr a = get_ph(&im, PH_TEXT), b = get_ph(&im, PH_DATA);
	put_ph(&im, PH_TEXT, &b);
	put_ph(&im, PH_DATA, &a);
	REQUIRE(parse(&im, &out) == 0);
	REQUIRE(out.nsegments == 2);
	CHECK_EQ_U64(out.segments[0].vaddr, 0x200000);
	CHECK_EQ_U64(out.segments[1].vaddr, 0x201200);
}

TEST(err_may_be_null_and_is_truncated)
{
	struct img im;
	struct mote_elf_image out;
	char small[8];
	build_valid(&im);
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, NULL, 0), 0);
	im.b[0] = 'X';
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, NULL, 0), -MOTE_EBADELF);
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, NULL, 100), -MOTE_EBADELF);
	memset(small, 'X', sizeof(small));
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, small, sizeof(small)), -MOTE_EBADELF);
	CHECK_EQ_STR(small, "not an "); /* 7 chars + NUL */
	small[0] = 'X';
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, small, 1), -MOTE_EBADELF);
	CHECK_EQ_INT(small[0], '\0');
	small[0] = 'X';
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, small, 0), -MOTE_EBADELF);
	CHECK_EQ_INT(small[0], 'X'); /* errlen 0: not touched */
}

TEST(success_clears_err)
{
	struct img im;
	struct mote_elf_image out;
	char e[32] = "stale";
	build_valid(&im);
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &out, e, sizeof(e)), 0);
	CHECK_EQ_STR(e, "");
}

TEST(null_arguments)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, NULL, errbuf, sizeof(errbuf)), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_elf_parse(NULL, 10, &out, errbuf, sizeof(errbuf)), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_elf_parse(NULL, 0, &out, errbuf, sizeof(errbuf)), -MOTE_EBADELF);
	CHECK_CONTAINS(errbuf, "empty");
}

/* ---- ELF header ---- */

TEST(empty_buffer)
{
	struct img im;
	build_valid(&im);
	im.len = 0;
	EXPECT_BAD(&im, "not an ELF file");
}

TEST(not_elf)
{
	struct img im;
	build_valid(&im);
	memcpy(im.b, "#!/bin/sh\n", 10);
	EXPECT_BAD(&im, "not an ELF file (bad magic)");
	build_valid(&im);
	im.len = 3;
	EXPECT_BAD(&im, "not an ELF file");
}

TEST(wrong_class)
{
	struct img im;
	build_valid(&im);
	im.b[EI_CLASS] = ELFCLASS32;
	EXPECT_BAD(&im, "ELF class is 32-bit, need 64-bit");
	im.b[EI_CLASS] = 7;
	EXPECT_BAD(&im, "ELF class is 7");
}

TEST(wrong_endianness)
{
	struct img im;
	build_valid(&im);
	im.b[EI_DATA] = ELFDATA2MSB;
	EXPECT_BAD(&im, "big-endian");
	im.b[EI_DATA] = 0;
	EXPECT_BAD(&im, "data encoding is 0");
}

TEST(wrong_versions)
{
	struct img im;
	build_valid(&im);
	im.b[EI_VERSION] = 2;
	EXPECT_BAD(&im, "ident version is 2");

	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_version = 0;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ELF version is 0");
}

TEST(wrong_machine)
{
	struct img im;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_machine = EM_AARCH64;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ELF machine is 183 (AArch64), need x86-64 (62)");
	eh.e_machine = 0x7777;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "(unknown)");
}

TEST(wrong_type)
{
	struct img im;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_type = ET_DYN;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ELF type is ET_DYN, need ET_EXEC (static, non-PIE)");
	eh.e_type = ET_REL;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ET_REL");
	eh.e_type = 0xfe00;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ELF type is 0xfe00");
}

TEST(wrong_header_sizes)
{
	struct img im;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_ehsize = 52;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "ELF header size is 52");

	build_valid(&im);
	eh = get_eh(&im);
	eh.e_phentsize = 32;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "program header entry size is 32, need 56");
}

TEST(phnum_bounds)
{
	struct img im;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_phnum = 0;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "no program headers");
	eh.e_phnum = 65;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "too many program headers (65)");
	eh.e_phnum = PN_XNUM;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "too many program headers");
	/* 64 is allowed, but then the table runs past the 640-byte file. */
	eh.e_phnum = 64;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "program header table at offset 0x40 size 0xe00 lies outside the "
			"0x280-byte file");
}

TEST(phoff_outside_file)
{
	struct img im;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_phoff = VALID_LEN - 100;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "program header table at offset 0x21c");
	eh.e_phoff = UINT64_MAX - 10; /* offset + size overflows */
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "lies outside the 0x280-byte file");
}

TEST(truncated_at_every_length)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	/* Every proper prefix cuts the data segment at least; most cut
	 * headers or the note. Each must fail cleanly, never crash. */
	for (size_t n = 0; n < VALID_LEN; n++) {
		unsigned char *copy = malloc(n ? n : 1);
		REQUIRE(copy);
		memcpy(copy, im.b, n);
		memset(errbuf, 'X', sizeof(errbuf));
		int rc = mote_elf_parse(copy, n, &out, errbuf, sizeof(errbuf));
		if (rc != -MOTE_EBADELF)
			TEST_FAILF("length %zu: rc %d", n, rc);
		if (!memchr(errbuf, '\0', sizeof(errbuf)) || errbuf[0] == '\0')
			TEST_FAILF("length %zu: no message", n);
		free(copy);
	}
	/* Spot-check the reasons at the interesting boundaries. */
	im.len = 40;
	EXPECT_BAD(&im, "ELF header truncated");
	im.len = sizeof(Elf64_Ehdr) + 100;
	EXPECT_BAD(&im, "program header table");
	im.len = NOTE_OFF + 10;
	EXPECT_BAD(&im, "note range");
	im.len = DATA_OFF + 0x7f;
	EXPECT_BAD(&im, "segment 1: file range 0x200+0x80 lies outside the 0x27f-byte file");
}

/* ---- PT_LOAD ---- */

TEST(segment_outside_file)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_filesz = 0x81;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: file range 0x200+0x81 lies outside the 0x280-byte file");
}

TEST(segment_offset_plus_filesz_overflows)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_offset = UINT64_MAX - 0x10;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: file range");
}

TEST(segment_below_image_area)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_TEXT);
	ph.p_vaddr = 0x1ff000;
	put_ph(&im, PH_TEXT, &ph);
	EXPECT_BAD(&im, "segment 0: [0x1ff000,0x1ff200) outside the guest image area "
			"[0x200000,0x40000000)");
	ph.p_vaddr = 0;
	put_ph(&im, PH_TEXT, &ph);
	EXPECT_BAD(&im, "outside the guest image area");
}

TEST(segment_crossing_image_limit)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_vaddr = MOTE_IMAGE_LIMIT - 0x1000 + 0x200;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: [0x3ffff200,0x40000200) outside the guest image area");

	/* Ending exactly at the limit is fine. */
	ph.p_memsz = 0xe00;
	put_ph(&im, PH_DATA, &ph);
	CHECK_EQ_INT(parse(&im, &out), 0);
	CHECK_EQ_U64(out.image_end, MOTE_IMAGE_LIMIT);

	ph.p_vaddr = MOTE_IMAGE_LIMIT + 0x200;
	ph.p_memsz = 0x80;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "outside the guest image area");
}

TEST(segment_giant_memsz)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_memsz = UINT64_MAX;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: [0x201200,0x201200+0xffffffffffffffff) outside the guest "
			"image area");
	ph.p_memsz = MOTE_IMAGE_LIMIT;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "outside the guest image area");
	ph.p_vaddr = UINT64_MAX - 0xdff;
	ph.p_memsz = 0x1000;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "outside the guest image area");
}

TEST(filesz_exceeds_memsz)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_TEXT);
	ph.p_memsz = 0x100;
	put_ph(&im, PH_TEXT, &ph);
	EXPECT_BAD(&im, "segment 0: filesz 0x200 exceeds memsz 0x100");
	ph.p_memsz = 0;
	put_ph(&im, PH_TEXT, &ph);
	EXPECT_BAD(&im, "segment 0: filesz 0x200 exceeds memsz 0x0");
}

TEST(bad_alignment)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_align = 0x1800;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: alignment 0x1800 is not a power of two");
	ph.p_align = 0;
	put_ph(&im, PH_DATA, &ph);
	CHECK_EQ_INT(parse(&im, &out), 0);
	ph.p_align = 1;
	put_ph(&im, PH_DATA, &ph);
	CHECK_EQ_INT(parse(&im, &out), 0);
	ph.p_align = 0x200000; /* larger than a page: only page congruence matters */
	put_ph(&im, PH_DATA, &ph);
	CHECK_EQ_INT(parse(&im, &out), 0);
}

TEST(vaddr_offset_not_congruent)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_vaddr = 0x201300;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segment 1: vaddr 0x201300 and file offset 0x200 differ modulo");
}

TEST(segments_overlap)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_TEXT);
	ph.p_memsz = 0x1000;
	put_ph(&im, PH_TEXT, &ph);
	ph = get_ph(&im, PH_DATA);
	ph.p_vaddr = 0x200200;
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segments 0 and 1 overlap");

	/* One segment inside another, listed in the other order. */
	build_valid(&im);
	Elf64_Phdr a = get_ph(&im, PH_TEXT), b = get_ph(&im, PH_DATA);
	b.p_vaddr = 0x200000 + DATA_OFF;
	a.p_memsz = 0x10000;
	put_ph(&im, PH_TEXT, &b);
	put_ph(&im, PH_DATA, &a);
	EXPECT_BAD(&im, "segments 0 and 1 overlap");
}

TEST(segments_share_page)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_DATA);
	ph.p_vaddr = 0x200200; /* right after text, same page */
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "segments 0 and 1 share a 4 KiB page (0x200000)");
}

TEST(empty_load_ignored)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	/* Turn the note header into an empty PT_LOAD at a silly address and
	 * add a fourth header for the note. */
	Elf64_Ehdr eh = get_eh(&im);
	Elf64_Phdr note = get_ph(&im, PH_NOTE);
	eh.e_phoff = 0x300;
	eh.e_phnum = 4;
	put_eh(&im, &eh);
	memcpy(im.b + 0x300, im.b + sizeof(Elf64_Ehdr), 3 * sizeof(Elf64_Phdr));
	Elf64_Phdr empty = {.p_type = PT_LOAD, .p_flags = PF_R, .p_vaddr = 0x7, .p_offset = 0x3};
	memcpy(im.b + 0x300 + 2 * sizeof(Elf64_Phdr), &empty, sizeof(empty));
	memcpy(im.b + 0x300 + 3 * sizeof(Elf64_Phdr), &note, sizeof(note));
	im.len = 0x300 + 4 * sizeof(Elf64_Phdr);
	REQUIRE(parse(&im, &out) == 0);
	CHECK_EQ_INT(out.nsegments, 2);
	CHECK(image_ok(&out, im.len));

	/* But filesz > 0 with memsz 0 is still wrong. */
	empty.p_filesz = 1;
	memcpy(im.b + 0x300 + 2 * sizeof(Elf64_Phdr), &empty, sizeof(empty));
	EXPECT_BAD(&im, "segment 2: filesz 0x1 exceeds memsz 0x0");
}

TEST(entry_outside_executable_segment)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	Elf64_Ehdr eh = get_eh(&im);
	eh.e_entry = 0x201200; /* in the RW segment */
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "entry point 0x201200 is not inside an executable segment");
	eh.e_entry = 0x200200; /* one past the end of text */
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "entry point 0x200200 is not inside an executable segment");
	eh.e_entry = 0;
	put_eh(&im, &eh);
	EXPECT_BAD(&im, "entry point 0x0");
	eh.e_entry = 0x2001ff; /* last byte of text */
	put_eh(&im, &eh);
	CHECK_EQ_INT(parse(&im, &out), 0);
	CHECK_EQ_U64(out.entry, 0x2001ff);
}

TEST(no_load_segments)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_TEXT);
	ph.p_type = PT_NULL;
	put_ph(&im, PH_TEXT, &ph);
	put_ph(&im, PH_DATA, &ph);
	EXPECT_BAD(&im, "no loadable (PT_LOAD) segments");
}

TEST(too_many_load_segments)
{
	struct img im;
	struct mote_elf_image out;
	unsigned n = MOTE_ELF_MAX_SEGMENTS + 1;
	build_valid(&im);
	/* n PT_LOADs, one page apart, all sharing file bytes 0..0x200, plus
	 * the note. The table goes at 0x300 so the original note survives. */
	Elf64_Ehdr eh = get_eh(&im);
	Elf64_Phdr note = get_ph(&im, PH_NOTE);
	Elf64_Phdr text = get_ph(&im, PH_TEXT);
	eh.e_phoff = 0x300;
	eh.e_phnum = (Elf64_Half)(n + 1);
	put_eh(&im, &eh);
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph = text;
		ph.p_vaddr = 0x200000 + 0x1000ull * i;
		memcpy(im.b + 0x300 + i * sizeof(ph), &ph, sizeof(ph));
	}
	memcpy(im.b + 0x300 + n * sizeof(note), &note, sizeof(note));
	im.len = 0x300 + (n + 1) * sizeof(note);
	EXPECT_BAD(&im, "too many PT_LOAD segments (max 16)");

	/* Exactly the maximum is fine. */
	memcpy(im.b + 0x300 + (n - 1) * sizeof(note), &note, sizeof(note));
	eh.e_phnum = (Elf64_Half)n;
	put_eh(&im, &eh);
	REQUIRE(parse(&im, &out) == 0);
	CHECK_EQ_INT(out.nsegments, MOTE_ELF_MAX_SEGMENTS);
	CHECK_EQ_U64(out.image_end, 0x200000 + 0x1000ull * MOTE_ELF_MAX_SEGMENTS);
	CHECK(image_ok(&out, im.len));
}

TEST(dynamic_linking_rejected)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = {.p_type = PT_INTERP, .p_offset = CODE_OFF, .p_filesz = 8};
	Elf64_Ehdr eh = get_eh(&im);
	/* The note data follows the 3 headers directly, so move the table to
	 * make room for a 4th. */
	memcpy(im.b + 0x300, im.b + sizeof(Elf64_Ehdr), 3 * sizeof(Elf64_Phdr));
	memcpy(im.b + 0x300 + 3 * sizeof(Elf64_Phdr), &ph, sizeof(ph));
	eh.e_phoff = 0x300;
	eh.e_phnum = 4;
	put_eh(&im, &eh);
	im.len = 0x300 + 4 * sizeof(Elf64_Phdr);
	EXPECT_BAD(&im,
		   "segment 3: PT_INTERP present: dynamically linked guests are not supported");

	ph.p_type = PT_DYNAMIC;
	memcpy(im.b + 0x300 + 3 * sizeof(Elf64_Phdr), &ph, sizeof(ph));
	EXPECT_BAD(&im, "PT_DYNAMIC present: dynamically linked guests are not supported");
}

TEST(other_program_headers_ignored)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	Elf64_Phdr ph = {.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W, .p_offset = UINT64_MAX};
	Elf64_Ehdr eh = get_eh(&im);
	memcpy(im.b + 0x300, im.b + sizeof(Elf64_Ehdr), 3 * sizeof(Elf64_Phdr));
	memcpy(im.b + 0x300 + 3 * sizeof(Elf64_Phdr), &ph, sizeof(ph));
	eh.e_phoff = 0x300;
	eh.e_phnum = 4;
	put_eh(&im, &eh);
	im.len = 0x300 + 4 * sizeof(Elf64_Phdr);
	CHECK_EQ_INT(parse(&im, &out), 0);
}

/* ---- The ABI note ---- */

TEST(missing_note)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_type = PT_NULL;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "missing mote ABI note (PT_NOTE named \"mote\"");
}

/* Replace the valid note with one of the given shape, sizing PT_NOTE to it. */
static void set_note(struct img *im, const char *name, uint32_t namesz, uint32_t type)
{
	uint32_t v = MOTE_ABI_VERSION;
	Elf64_Phdr ph = get_ph(im, PH_NOTE);
	ph.p_filesz = put_note(im->b + NOTE_OFF, name, namesz, type, &v, 4);
	put_ph(im, PH_NOTE, &ph);
}

TEST(note_with_other_name_or_type_ignored)
{
	struct img im;
	build_valid(&im);
	set_note(&im, "GNU", 4, MOTE_NOTE_TYPE_ABI);
	EXPECT_BAD(&im, "missing mote ABI note");
	set_note(&im, "mote", 5, 1);
	EXPECT_BAD(&im, "missing mote ABI note");
	set_note(&im, "mote", 4, MOTE_NOTE_TYPE_ABI); /* no NUL */
	EXPECT_BAD(&im, "missing mote ABI note");
	set_note(&im, "motf", 5, MOTE_NOTE_TYPE_ABI);
	EXPECT_BAD(&im, "missing mote ABI note");
	set_note(&im, "mote", 5, MOTE_NOTE_TYPE_ABI);
	CHECK_EQ_INT(mote_elf_parse(im.b, im.len, &(struct mote_elf_image){0}, NULL, 0), 0);
}

TEST(note_after_other_notes)
{
	struct img im;
	struct mote_elf_image out;
	uint32_t v = MOTE_ABI_VERSION;
	unsigned char id[20] = {1, 2, 3};
	build_valid(&im);
	/* Build-ID note then the mote note, in a note area at 0x300. */
	size_t n = put_note(im.b + 0x300, "GNU", 4, NT_GNU_BUILD_ID, id, 20);
	n += put_note(im.b + 0x300 + n, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_offset = 0x300;
	ph.p_filesz = n;
	put_ph(&im, PH_NOTE, &ph);
	im.len = 0x300 + n;
	CHECK_EQ_INT(parse(&im, &out), 0);
}

TEST(note_8_byte_aligned)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	/* With p_align 8 the name is padded to 8: 12 + 5 -> 24, desc 4 -> 28. */
	unsigned char *p = im.b + 0x300;
	uint32_t hdr[3] = {5, 4, MOTE_NOTE_TYPE_ABI};
	uint32_t v = MOTE_ABI_VERSION;
	memcpy(p, hdr, 12);
	memcpy(p + 12, "mote", 5);
	memcpy(p + 24, &v, 4);
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_offset = 0x300;
	ph.p_filesz = 28; /* final padding may be missing */
	ph.p_align = 8;
	put_ph(&im, PH_NOTE, &ph);
	im.len = 0x300 + 32;
	REQUIRE(parse(&im, &out) == 0);
	CHECK_EQ_INT(out.abi_version, MOTE_ABI_VERSION);

	/* Read with 4-byte rules the same bytes put desc at 20 and leave a
	 * 4-byte tail that cannot hold a note header. */
	ph.p_align = 4;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "segment 2: malformed note at offset 0x18: header truncated");
}

TEST(note_in_second_pt_note)
{
	struct img im;
	struct mote_elf_image out;
	unsigned char id[8] = {0};
	uint32_t v = MOTE_ABI_VERSION;
	build_valid(&im);
	/* First PT_NOTE (at index 2) holds a build-ID; a second one holds the
	 * mote note. */
	size_t n1 = put_note(im.b + 0x300, "GNU", 4, NT_GNU_BUILD_ID, id, 8);
	size_t n2 = put_note(im.b + 0x340, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	Elf64_Phdr first = {.p_type = PT_NOTE, .p_offset = 0x300, .p_filesz = n1, .p_align = 4};
	Elf64_Phdr second = {.p_type = PT_NOTE, .p_offset = 0x340, .p_filesz = n2, .p_align = 4};
	Elf64_Ehdr eh = get_eh(&im);
	memcpy(im.b + 0x380, im.b + sizeof(Elf64_Ehdr), 2 * sizeof(Elf64_Phdr));
	memcpy(im.b + 0x380 + 2 * sizeof(first), &first, sizeof(first));
	memcpy(im.b + 0x380 + 3 * sizeof(first), &second, sizeof(second));
	eh.e_phoff = 0x380;
	eh.e_phnum = 4;
	put_eh(&im, &eh);
	im.len = 0x380 + 4 * sizeof(first);
	CHECK_EQ_INT(parse(&im, &out), 0);
}

TEST(wrong_abi_version)
{
	struct img im;
	struct mote_elf_image out;
	build_valid(&im);
	put_u32(&im, NOTE_OFF + 20, 7);
	CHECK_EQ_INT(parse(&im, &out), -MOTE_EABI);
	CHECK_EQ_INT(out.abi_version, 7);
	CHECK_EQ_INT(out.nsegments, 0);
	CHECK_CONTAINS(errbuf, "guest ABI version 7, host supports 2");

	/* A guest for another ABI is reported as such even if its layout
	 * breaks this host's rules. */
	Elf64_Phdr ph = get_ph(&im, PH_TEXT);
	ph.p_vaddr = 0x1000;
	put_ph(&im, PH_TEXT, &ph);
	CHECK_EQ_INT(parse(&im, &out), -MOTE_EABI);
	CHECK_EQ_INT(out.abi_version, 7);
}

TEST(malformed_note_sizes)
{
	struct img im;
	build_valid(&im);
	put_u32(&im, NOTE_OFF, 0xffffffffu); /* namesz */
	EXPECT_BAD(&im, "segment 2: malformed note at offset 0x0: name size 0xffffffff");

	build_valid(&im);
	put_u32(&im, NOTE_OFF + 4, 0xfffffffdu); /* descsz */
	EXPECT_BAD(&im, "malformed note");

	build_valid(&im);
	put_u32(&im, NOTE_OFF + 4, 5); /* desc runs one byte past the segment */
	EXPECT_BAD(&im, "overrun the 0x18-byte note segment");

	build_valid(&im);
	put_u32(&im, NOTE_OFF + 4, 8); /* mote note with the wrong desc size */
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_filesz = 28;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "mote ABI note has desc size 8, need 4");

	build_valid(&im);
	ph = get_ph(&im, PH_NOTE);
	ph.p_filesz = NOTE_SIZE + 8; /* trailing partial header */
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "segment 2: malformed note at offset 0x18: header truncated");

	build_valid(&im);
	ph = get_ph(&im, PH_NOTE);
	ph.p_filesz = 4;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "header truncated");

	build_valid(&im);
	ph = get_ph(&im, PH_NOTE);
	ph.p_offset = VALID_LEN - 8;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "segment 2: note range 0x278+0x18 lies outside the 0x280-byte file");

	build_valid(&im);
	ph = get_ph(&im, PH_NOTE);
	ph.p_offset = UINT64_MAX - 4;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "note range");
}

TEST(duplicate_note)
{
	struct img im;
	uint32_t v = MOTE_ABI_VERSION;
	build_valid(&im);
	size_t n = put_note(im.b + 0x300, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	n += put_note(im.b + 0x300 + n, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_offset = 0x300;
	ph.p_filesz = n;
	put_ph(&im, PH_NOTE, &ph);
	im.len = 0x300 + n;
	EXPECT_BAD(&im, "more than one mote ABI note");
}

TEST(empty_note_segment)
{
	struct img im;
	build_valid(&im);
	Elf64_Phdr ph = get_ph(&im, PH_NOTE);
	ph.p_filesz = 0;
	put_ph(&im, PH_NOTE, &ph);
	EXPECT_BAD(&im, "missing mote ABI note");
}

/* ---- The function table of the real guests ---- */

#define GUEST_ELF(name) MOTE_BUILD_DIR "/guests/" name ".elf"

/* Whole file in a buffer of exactly its size, so ASan sees any over-read. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long size;
	if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)size)) &&
	    fread(b, 1, (size_t)size, f) != (size_t)size) {
		free(b);
		b = NULL;
	}
	if (f)
		fclose(f);
	if (b)
		*len = (size_t)size;
	return b;
}

/* mote_elf_parse then mote_elf_read_functions; the first failure's code. */
static int read_table(const unsigned char *b, size_t len, struct mote_elf_function **fns, size_t *n)
{
	struct mote_elf_image img;
	*fns = NULL;
	*n = 0;
	memset(errbuf, 'X', sizeof(errbuf));
	int rc = mote_elf_parse(b, len, &img, errbuf, sizeof(errbuf));
	if (rc)
		return rc;
	return mote_elf_read_functions(b, len, &img, fns, n, errbuf, sizeof(errbuf));
}

static void sig_of(const struct mote_elf_function *f, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s %s(", mote_type_name(f->ret), f->name);
	for (unsigned a = 0; a < f->nargs && n < len; a++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", a ? ", " : "",
				      mote_type_name(f->args[a]));
	if (n < len)
		snprintf(buf + n, len - n, ")");
}

/* The guest's table holds exactly `want` (signatures as mote inspect prints
 * them), in any order: the linker decides the order. */
static void expect_functions(const char *path, const char *const *want, size_t nwant)
{
	size_t len, n;
	struct mote_elf_function *fns;
	unsigned char *b = slurp(path, &len);
	if (!b) {
		TEST_FAILF("cannot read %s", path);
		return;
	}
	int rc = read_table(b, len, &fns, &n);
	if (rc) {
		TEST_FAILF("%s: rc %d: %s", path, rc, errbuf);
		free(b);
		return;
	}
	CHECK_EQ_STR(errbuf, "");
	if (n != nwant)
		TEST_FAILF("%s: %zu functions, want %zu", path, n, nwant);
	for (size_t w = 0; w < nwant; w++) {
		char sig[256];
		size_t i;
		for (i = 0; i < n; i++) {
			sig_of(&fns[i], sig, sizeof(sig));
			if (!strcmp(sig, want[w]))
				break;
		}
		if (i == n)
			TEST_FAILF("%s: no function %s", path, want[w]);
	}
	mote_free(fns);
	free(b);
}

#define EXPECT_FUNCTIONS(name, ...)                                                                \
	do {                                                                                       \
		static const char *const want_[] = {__VA_ARGS__};                                  \
		expect_functions(GUEST_ELF(name), want_, sizeof(want_) / sizeof(want_[0]));        \
	} while (0)

TEST(real_guest_tables)
{
	EXPECT_FUNCTIONS(
	    "basic", "void noop()", "i32 add(i32, i32)", "i32 echo_i32(i32)", "u32 echo_u32(u32)",
	    "i64 echo_i64(i64)", "u64 echo_u64(u64)", "f32 echo_f32(f32)", "f64 echo_f64(f64)",
	    "bool echo_bool(bool)", "string echo_str(string)", "bytes echo_bytes(bytes)",
	    "u64 str_len_checked(string)", "f64 mix(i32, i64, f32, f64)", "string greet(string)",
	    "i32 call_host_add(i32, i32)", "string call_host_upper(string)",
	    "i32 call_host_status(string)", "i32 call_host_wrong_types()", "i32 log_levels(i32)",
	    "bytes make_bytes(u32)", "i32 fail_on_purpose()", "i32 bump()",
	    "u64 heap_roundtrip(u32)", "u64 cpuid_cx_dx(u32)");
	EXPECT_FUNCTIONS("mapfile", "u32 count()", "string name(u32)", "u64 size(u32)",
			 "u64 address(u32)", "u64 fnv(u64, u64)", "u32 read_byte(u64)",
			 "void write_byte(u64, u32)", "u64 touch(u64, u32, u64)");
	EXPECT_FUNCTIONS("snap", "u32 pages()", "i32 bump()", "u32 write_pattern(u32, u32, u32)",
			 "u64 checksum(u32, u32)", "f64 scale(f64)", "void crash()", "i32 tag()",
			 "void spin()", "u64 touch_kinds(u32)");
	/* Its init faults, so no sandbox could list this; the file can. */
	EXPECT_FUNCTIONS("hostile_init_fault", "i32 never_called()");
	EXPECT_FUNCTIONS("hostile_init_loop", "i32 never_called()");
	EXPECT_FUNCTIONS(
	    "hostile", "i32 add(i32, i32)", "u64 echo_len(bytes)", "void spin()",
	    "void write_addr(u64)", "u64 read_addr(u64)", "void exec_addr(u64)", "u64 code_addr()",
	    "void write_code()", "u64 rodata_addr()", "void write_rodata()", "u64 data_addr()",
	    "u64 input_addr()", "u32 read_input()", "void write_input()", "u64 stack_overflow()",
	    "void div_zero()", "void do_ud2()", "void do_int3()", "void do_hlt()",
	    "void do_mov_cr3()", "void do_wrmsr()", "u64 insn_addr(string)", "void out_port42()",
	    "u32 in_port42()", "void fake_exception()", "i32 call_unknown_host()",
	    "i32 call_host_wrong_types()", "i32 call_host_add(i32, i32)", "i32 last_rc()",
	    "bytes big_result()", "void forge(u32)", "void abort_oom()", "i32 corrupt_log()",
	    "void do_syscall()", "u64 syscall_at()", "void do_int80()", "u64 int80_at()",
	    "void do_sysenter()", "u64 stub_gadget(u64, u64, u64, u64)",
	    "u64 stub_gadget_ret(u64, u64, u64, u64)", "void poke(u64, u32)",
	    "void fill(u64, u64, u32)", "void forge_report()");
}

/* basic.elf and where its function table and notes are. */
struct real {
	unsigned char *b;
	size_t len;
	struct mote_elf_image img;
	unsigned note_ph; /* the PT_NOTE program header */
	size_t fns_desc;  /* file offset of the function table note's descriptor */
	size_t table;     /* file offset of entry 0 */
	size_t n;         /* entries */
	const struct mote_elf_segment *text, *data;
	char name[8][MOTE_MAX_NAME + 1]; /* of the first entries */
};

static size_t file_off(const struct real *r, uint64_t vaddr)
{
	for (unsigned k = 0; k < r->img.nsegments; k++) {
		const struct mote_elf_segment *s = &r->img.segments[k];
		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz)
			return (size_t)(s->offset + (vaddr - s->vaddr));
	}
	return 0;
}

static struct mote_wire_desc get_desc(const unsigned char *b, const struct real *r, size_t i)
{
	struct mote_wire_desc d;
	memcpy(&d, b + r->table + i * sizeof(d), sizeof(d));
	return d;
}

static void put_desc(unsigned char *b, const struct real *r, size_t i,
		     const struct mote_wire_desc *d)
{
	memcpy(b + r->table + i * sizeof(*d), d, sizeof(*d));
}

static bool load_real(struct real *r)
{
	memset(r, 0, sizeof(*r));
	r->b = slurp(GUEST_ELF("basic"), &r->len);
	if (!r->b || mote_elf_parse(r->b, r->len, &r->img, errbuf, sizeof(errbuf)) != 0 ||
	    !r->img.has_fns) {
		TEST_FAILF("cannot parse %s: %s", GUEST_ELF("basic"), r->b ? errbuf : "unreadable");
		free(r->b);
		return false;
	}
	/* The note: namesz 5, descsz 16, type, "mote" padded to 8, then desc. */
	static const uint32_t hdr[3] = {5, 16, MOTE_NOTE_TYPE_FNS};
	for (size_t off = 0; off + 20 + 16 <= r->len; off += 4)
		if (!memcmp(r->b + off, hdr, 12) && !memcmp(r->b + off + 12, "mote", 5)) {
			r->fns_desc = off + 20;
			break;
		}
	Elf64_Ehdr eh;
	memcpy(&eh, r->b, sizeof(eh));
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, r->b + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE)
			r->note_ph = i;
	}
	for (unsigned k = 0; k < r->img.nsegments; k++) {
		const struct mote_elf_segment *s = &r->img.segments[k];
		if ((s->flags & MOTE_SEG_X) && !r->text)
			r->text = s;
		if (r->img.fns_start >= s->vaddr && r->img.fns_start < s->vaddr + s->memsz)
			r->data = s;
	}
	r->table = file_off(r, r->img.fns_start);
	r->n = (r->img.fns_end - r->img.fns_start) / sizeof(struct mote_wire_desc);
	if (!r->fns_desc || !r->note_ph || !r->table || !r->text || !r->data || r->n < 8) {
		TEST_FAILF("unexpected layout of %s", GUEST_ELF("basic"));
		free(r->b);
		return false;
	}
	for (size_t i = 0; i < 8; i++) {
		struct mote_wire_desc d = get_desc(r->b, r, i);
		snprintf(r->name[i], sizeof(r->name[i]), "%s",
			 (const char *)r->b + file_off(r, d.name));
	}
	return true;
}

static unsigned char *copy_of(const struct real *r)
{
	unsigned char *b = malloc(r->len);
	if (b)
		memcpy(b, r->b, r->len);
	return b;
}

static void put_range(unsigned char *b, const struct real *r, uint64_t start, uint64_t end)
{
	struct mote_note_fns d = {start, end};
	memcpy(b + r->fns_desc, &d, sizeof(d));
}

/* Read the table of patched `b` and expect `want`, with `needle` in the
 * reason; `stage` says which call must fail: 'p' mote_elf_parse (the note),
 * 'r' mote_elf_read_functions (an entry). */
static void expect_table_(const unsigned char *b, size_t len, char stage, int want,
			  const char *needle, int line)
{
	struct mote_elf_image img;
	struct mote_elf_function *fns = (void *)1;
	size_t n = 99;
	memset(errbuf, 'X', sizeof(errbuf));
	int rc = mote_elf_parse(b, len, &img, errbuf, sizeof(errbuf));
	if (stage == 'r' && rc == 0)
		rc = mote_elf_read_functions(b, len, &img, &fns, &n, errbuf, sizeof(errbuf));
	if (rc != want || !strstr(errbuf, needle))
		TEST_FAILF("line %d: rc %d (%s) \"%s\", want %d (%s) with \"%s\"", line, rc,
			   mote_errname(rc), errbuf, want, mote_errname(want), needle);
	if (stage == 'p' && rc && img.nsegments)
		TEST_FAILF("line %d: failed parse left segments", line);
	if (stage == 'r' && (fns || n))
		TEST_FAILF("line %d: failed read left a table", line);
}
#define EXPECT_TABLE(b, len, stage, want, needle)                                                  \
	expect_table_((b), (len), (stage), (want), (needle), __LINE__)

TEST(fns_note_range_hostile)
{
	struct real r;
	if (!load_real(&r))
		return;
	unsigned char *b = copy_of(&r);
	REQUIRE(b);
	const uint64_t s = r.img.fns_start, e = r.img.fns_end;
	char want[160];

	put_range(b, &r, 0x30000000, 0x30000000 + 64);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF,
		     "function table note: [0x30000000,0x30000040) does not lie inside one "
		     "loaded segment");
	put_range(b, &r, 0x1000, 0x1020); /* below the image */
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "does not lie inside one loaded segment");
	/* From the text segment into the next: not one segment. */
	put_range(b, &r, r.text->vaddr + 0x20, e);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "does not lie inside one loaded segment");

	put_range(b, &r, s + 4, e + 4);
	snprintf(want, sizeof(want), "function table note: start 0x%llx is not 8-byte aligned",
		 (unsigned long long)s + 4);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, want);

	put_range(b, &r, s, e - 8);
	snprintf(want, sizeof(want),
		 "function table note: size 0x%llx is not a multiple of the 32-byte entry",
		 (unsigned long long)(e - 8 - s));
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, want);

	put_range(b, &r, e, s);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "is before start");
	put_range(b, &r, UINT64_MAX - 31, 0); /* end = start + 32, wrapped */
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "is before start");

	put_range(b, &r, s, s + 32ull * (MOTE_ELF_MAX_FUNCTIONS + 1));
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "function table note: 65537 entries, max 65536");

	/* Into the zero-filled tail of the data segment: refused, not read
	 * as zero entries. */
	REQUIRE(e == r.data->vaddr + r.data->filesz && e + 32 <= r.data->vaddr + r.data->memsz);
	put_range(b, &r, s, e + 32);
	snprintf(want, sizeof(want),
		 "is not in the file bytes of the segment at 0x%llx (filesz 0x%llx); zero-filled "
		 "memory holds no table",
		 (unsigned long long)r.data->vaddr, (unsigned long long)r.data->filesz);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, want);
	put_range(b, &r, e + 32, e + 64);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "zero-filled memory holds no table");

	/* Empty is fine anywhere in the image, even where nothing is loaded. */
	struct mote_elf_function *fns;
	size_t n;
	put_range(b, &r, r.img.image_end, r.img.image_end);
	CHECK_EQ_INT(read_table(b, r.len, &fns, &n), 0);
	CHECK_EQ_INT(n, 0);
	mote_free(fns);
	put_range(b, &r, r.img.image_end + 8, r.img.image_end + 8);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "empty table at");
	/* The first entries alone are a valid table too. */
	put_range(b, &r, s, s + 64);
	CHECK_EQ_INT(read_table(b, r.len, &fns, &n), 0);
	CHECK_EQ_INT(n, 2);
	mote_free(fns);
	free(b);
	free(r.b);
}

/* Replace basic.elf's notes with `notes` (n bytes), moved to the unused file
 * bytes after the program headers. */
static void set_notes(unsigned char *b, const struct real *r, const unsigned char *notes, size_t n)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	memcpy(&eh, b, sizeof(eh));
	memcpy(&ph, b + eh.e_phoff + r->note_ph * sizeof(ph), sizeof(ph));
	ph.p_offset = 0x400;
	ph.p_filesz = n;
	memcpy(b + eh.e_phoff + r->note_ph * sizeof(ph), &ph, sizeof(ph));
	memcpy(b + 0x400, notes, n);
}

TEST(fns_note_shape_hostile)
{
	struct real r;
	if (!load_real(&r))
		return;
	unsigned char *b = copy_of(&r), notes[256];
	REQUIRE(b && r.text->offset >= 0x400 + sizeof(notes));
	struct mote_note_fns d = {r.img.fns_start, r.img.fns_end};
	uint32_t v = MOTE_ABI_VERSION;
	struct mote_elf_function *fns;
	size_t n, len;

	/* The notes as the SDK writes them, moved: still fine. */
	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_FNS, &d, sizeof(d));
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	set_notes(b, &r, notes, len);
	CHECK_EQ_INT(read_table(b, r.len, &fns, &n), 0);
	CHECK_EQ_INT(n, r.n);
	mote_free(fns);

	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_FNS, &d, sizeof(d));
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_FNS, &d, sizeof(d));
	set_notes(b, &r, notes, len);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF, "more than one mote function table note (2)");

	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_FNS, &d, 8);
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	set_notes(b, &r, notes, len);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EBADELF,
		     "mote function table note has desc size 8, need 16");

	/* Another ABI's guest is reported as such, whatever its table note. */
	v = MOTE_ABI_VERSION + 1;
	set_notes(b, &r, notes, len);
	memcpy(notes + len - 4, &v, 4);
	set_notes(b, &r, notes, len);
	EXPECT_TABLE(b, r.len, 'p', -MOTE_EABI, "guest ABI version 3");
	v = MOTE_ABI_VERSION;

	/* Without the note the guest still loads; its table cannot be read. */
	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	set_notes(b, &r, notes, len);
	struct mote_elf_image img;
	REQUIRE(mote_elf_parse(b, r.len, &img, errbuf, sizeof(errbuf)) == 0);
	CHECK(!img.has_fns);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF,
		     "no function table note (PT_NOTE named \"mote\", type 0x534e464d): guest "
		     "built before ABI 2?");
	/* The same name with another type is not a table note. */
	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_FNS + 1, &d, sizeof(d));
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	set_notes(b, &r, notes, len);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "no function table note");
	free(b);
	free(r.b);
}

TEST(fns_entry_names_hostile)
{
	struct real r;
	if (!load_real(&r))
		return;
	unsigned char *b = copy_of(&r);
	REQUIRE(b);
	char want[256];
	struct mote_wire_desc d0 = get_desc(r.b, &r, 0), d;
	const uint64_t text_end = r.text->vaddr + r.text->filesz;

	d = d0;
	d.name = 0x1000;
	put_desc(b, &r, 0, &d);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF,
		     "function table entry 0: name pointer 0x1000 is not inside a segment's file "
		     "bytes");
	d.name = r.data->vaddr + r.data->filesz; /* zero-filled: not in the file */
	put_desc(b, &r, 0, &d);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "name pointer");

	/* No NUL before the segment's file bytes end. */
	memcpy(b, r.b, r.len);
	b[file_off(&r, text_end - 1)] = 'x';
	d.name = text_end - 1;
	put_desc(b, &r, 0, &d);
	snprintf(want, sizeof(want),
		 "function table entry 0: name at 0x%llx has no NUL before the end of its "
		 "segment's file bytes",
		 (unsigned long long)text_end - 1);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);

	/* No NUL within MOTE_MAX_NAME + 1 bytes; exactly MOTE_MAX_NAME is fine. */
	memcpy(b, r.b, r.len);
	size_t at = file_off(&r, text_end - 256);
	memset(b + at, 'a', MOTE_MAX_NAME + 1);
	d.name = text_end - 256;
	put_desc(b, &r, 0, &d);
	snprintf(want, sizeof(want),
		 "function table entry 0: name at 0x%llx is longer than 127 bytes (no NUL)",
		 (unsigned long long)text_end - 256);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	b[at + MOTE_MAX_NAME] = 0;
	struct mote_elf_function *fns;
	size_t n;
	CHECK_EQ_INT(read_table(b, r.len, &fns, &n), 0);
	if (fns)
		CHECK_EQ_INT(strlen(fns[0].name), MOTE_MAX_NAME);
	mote_free(fns);

	memcpy(b, r.b, r.len);
	b[file_off(&r, d0.name)] = 0;
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "function table entry 0: empty name");

	/* Entry 3 takes entry 1's name. */
	memcpy(b, r.b, r.len);
	d = get_desc(r.b, &r, 3);
	d.name = get_desc(r.b, &r, 1).name;
	put_desc(b, &r, 3, &d);
	snprintf(want, sizeof(want), "function '%s' is declared twice (table entries 1 and 3)",
		 r.name[1]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	/* Equal bytes at another address are a duplicate as well. */
	memcpy(b, r.b, r.len);
	at = file_off(&r, text_end - 256);
	memcpy(b + at, r.name[5], strlen(r.name[5]) + 1);
	d = get_desc(r.b, &r, 2);
	d.name = text_end - 256;
	put_desc(b, &r, 2, &d);
	snprintf(want, sizeof(want), "function '%s' is declared twice (table entries 2 and 5)",
		 r.name[5]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	free(b);
	free(r.b);
}

TEST(fns_entry_types_hostile)
{
	struct real r;
	if (!load_real(&r))
		return;
	unsigned char *b = copy_of(&r);
	REQUIRE(b);
	char want[256];
	const uint64_t text_end = r.text->vaddr + r.text->filesz;
	const uint64_t scratch = text_end - 32; /* code bytes to overwrite */
	struct mote_wire_desc d = get_desc(r.b, &r, 2);

	d.ret = MOTE_TYPE_COUNT_;
	put_desc(b, &r, 2, &d);
	snprintf(want, sizeof(want), "function '%s' (table entry 2): invalid result type 10",
		 r.name[2]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	d.ret = 0xff;
	put_desc(b, &r, 2, &d);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "invalid result type 255");

	d = get_desc(r.b, &r, 2);
	d.nargs = MOTE_MAX_ARGS + 1;
	d.args = scratch;
	put_desc(b, &r, 2, &d);
	snprintf(want, sizeof(want), "function '%s' (table entry 2): 17 arguments, max 16",
		 r.name[2]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);

	/* MOTE_MAX_ARGS valid types are fine; then one of them void or junk. */
	d.nargs = MOTE_MAX_ARGS;
	put_desc(b, &r, 2, &d);
	size_t at = file_off(&r, scratch);
	for (unsigned a = 0; a < MOTE_MAX_ARGS; a++)
		b[at + a] = (unsigned char)(MOTE_I32 + a % (MOTE_TYPE_COUNT_ - 1));
	struct mote_elf_function *fns;
	size_t n;
	REQUIRE(read_table(b, r.len, &fns, &n) == 0);
	CHECK_EQ_INT(fns[2].nargs, MOTE_MAX_ARGS);
	CHECK_EQ_INT(fns[2].args[15], MOTE_I32 + 15 % 9);
	mote_free(fns);
	b[at + 7] = MOTE_VOID;
	snprintf(want, sizeof(want), "function '%s' (table entry 2): argument 7 has invalid type 0",
		 r.name[2]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	b[at + 7] = MOTE_TYPE_COUNT_;
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "argument 7 has invalid type 10");

	/* The argument types must lie in file bytes too, all of them. */
	d.nargs = 2;
	d.args = 0x10;
	put_desc(b, &r, 2, &d);
	snprintf(want, sizeof(want),
		 "function '%s' (table entry 2): argument types at 0x10 (2 bytes) are not inside "
		 "a segment's file bytes",
		 r.name[2]);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	d.args = text_end - 1;
	put_desc(b, &r, 2, &d);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "argument types at");
	/* No arguments: the pointer is not read (the SDK's points past its
	 * one-byte array). */
	d.nargs = 0;
	d.args = 0xdead;
	put_desc(b, &r, 2, &d);
	CHECK_EQ_INT(read_table(b, r.len, &fns, &n), 0);
	mote_free(fns);

	memcpy(b, r.b, r.len);
	d = get_desc(r.b, &r, 4);
	d.wrapper = r.img.fns_start; /* data, not code */
	put_desc(b, &r, 4, &d);
	snprintf(want, sizeof(want),
		 "function '%s' (table entry 4): wrapper 0x%llx is not inside an executable "
		 "segment",
		 r.name[4], (unsigned long long)r.img.fns_start);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, want);
	d.wrapper = 0;
	put_desc(b, &r, 4, &d);
	EXPECT_TABLE(b, r.len, 'r', -MOTE_EBADELF, "wrapper 0x0 is not inside");
	free(b);
	free(r.b);
}

TEST(fns_reader_arguments)
{
	struct real r;
	if (!load_real(&r))
		return;
	struct mote_elf_function *fns = (void *)1;
	size_t n = 5;
	CHECK_EQ_INT(mote_elf_read_functions(r.b, r.len, NULL, &fns, &n, errbuf, sizeof(errbuf)),
		     -MOTE_EINVAL);
	CHECK(fns == NULL && n == 0);
	CHECK_EQ_INT(mote_elf_read_functions(r.b, r.len, &r.img, NULL, &n, NULL, 0), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_elf_read_functions(NULL, 1, &r.img, &fns, &n, NULL, 0), -MOTE_EINVAL);
	/* An image that does not describe the buffer is caught, not trusted. */
	CHECK_EQ_INT(
	    mote_elf_read_functions(r.b, r.table, &r.img, &fns, &n, errbuf, sizeof(errbuf)),
	    -MOTE_EBADELF);
	CHECK_CONTAINS(errbuf, "function table [");
	/* The reason may be dropped or cut; the verdict stays. */
	CHECK_EQ_INT(mote_elf_read_functions(r.b, r.len, &r.img, &fns, &n, NULL, 0), 0);
	CHECK_EQ_INT(n, r.n);
	mote_free(fns);
	/* Cut right after the segments' bytes: the table is still all there. */
	size_t end = 0;
	for (unsigned k = 0; k < r.img.nsegments; k++)
		if (r.img.segments[k].offset + r.img.segments[k].filesz > end)
			end = r.img.segments[k].offset + r.img.segments[k].filesz;
	unsigned char *cut = malloc(end);
	REQUIRE(cut);
	memcpy(cut, r.b, end);
	CHECK_EQ_INT(read_table(cut, end, &fns, &n), 0);
	CHECK_EQ_INT(n, r.n);
	mote_free(fns);
	free(cut);
	free(r.b);
}

/* ---- mote_guest_info_read: the public API over the reader ---- */

static char tmpdir[64];

static const char *tmp_file(const char *name, const void *data, size_t len)
{
	static char path[128];
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/mote-test-elf-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			tmpdir[0] = 0;
			return NULL;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(data, 1, len, f) == len;
	if (f && fclose(f))
		ok = false;
	return ok ? path : NULL;
}

/* Counts the library's live allocations, to show that info_free (and every
 * failure) gives back everything. */
static long live_allocs;
static long fail_after = -1; /* allocations that succeed; -1: all */

static void *count_malloc(size_t n)
{
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	void *p = malloc(n);
	if (p)
		live_allocs++;
	return p;
}

static void *count_realloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q && !p)
		live_allocs++;
	return q;
}

static void count_free(void *p)
{
	if (p)
		live_allocs--;
	free(p);
}

static const mote_allocator counting = {count_malloc, count_realloc, count_free};

TEST(guest_info_real_guest)
{
	struct real r;
	if (!load_real(&r))
		return;
	mote_set_allocator(&counting);
	live_allocs = 0;
	int fds = count_fds();
	mote_guest_info in;
	int rc = mote_guest_info_read(GUEST_ELF("basic"), &in);
	if (rc)
		TEST_FAILF("rc %d: %s", rc, mote_last_error());
	CHECK_EQ_INT(in.abi_version, MOTE_ABI_VERSION);
	CHECK_EQ_U64(in.entry, r.img.entry);
	CHECK_EQ_U64(in.file_size, r.len);
	CHECK_EQ_U64(in.image_size, r.img.image_end - MOTE_IMAGE_BASE);
	/* The defaults of mote_config (mote.h) and what a sandbox reports. */
	CHECK_EQ_U64(in.heap_size, 128 * 1024);
	CHECK_EQ_U64(in.stack_size, 64 * 1024);
	CHECK_EQ_U64(in.input_size, 64 * 1024);
	CHECK_EQ_U64(in.output_size, 64 * 1024);
	CHECK(in.mem_size > r.img.image_end + in.heap_size + in.stack_size);
	struct mote_elf_function *fns;
	size_t n;
	REQUIRE(read_table(r.b, r.len, &fns, &n) == 0);
	REQUIRE(mote_guest_info_function_count(&in) == n);
	for (size_t i = 0; i < n; i++) {
		mote_function_info info;
		const mote_function_info *fi = &info;
		REQUIRE(mote_guest_info_function(&in, i, &info) == 0);
		CHECK_EQ_STR(fi->name, fns[i].name);
		CHECK(fi->name != fns[i].name); /* a copy: the file is unmapped */
		CHECK_EQ_INT(fi->ret, fns[i].ret);
		CHECK_EQ_INT(fi->nargs, fns[i].nargs);
		for (size_t a = 0; a < fi->nargs; a++)
			CHECK_EQ_INT(fi->args[a], fns[i].args[a]);
	}
	mote_free(fns);
	mote_guest_info_free(&in);
	CHECK(mote_guest_info_function_count(&in) == 0 && in.priv_ == NULL);
	mote_guest_info_free(&in); /* twice is harmless */
	mote_guest_info_free(NULL);
	CHECK_EQ_INT(live_allocs, 0);
	CHECK_EQ_INT(count_fds(), fds);
	mote_set_allocator(NULL);
	free(r.b);
}

/* mote_guest_info_read of `b` written to a file fails with `want`; the
 * detail names the file and contains `needle`; nothing is left behind. */
static void expect_info_(const void *b, size_t len, int want, const char *needle, int line)
{
	const char *path = tmp_file("guest.elf", b, len);
	if (!path) {
		TEST_FAILF("line %d: cannot write a temporary file", line);
		return;
	}
	mote_guest_info in;
	memset(&in, 0x5a, sizeof(in));
	live_allocs = 0;
	int rc = mote_guest_info_read(path, &in);
	if (rc != want || !strstr(mote_last_error(), needle) || !strstr(mote_last_error(), path))
		TEST_FAILF("line %d: rc %d (%s) \"%s\", want %d (%s) with \"%s\"", line, rc,
			   mote_errname(rc), mote_last_error(), want, mote_errname(want), needle);
	if (in.priv_ || live_allocs)
		TEST_FAILF("line %d: a failed read left something behind", line);
	if (want != -MOTE_EABI && in.abi_version)
		TEST_FAILF("line %d: abi_version %u after failure", line, in.abi_version);
	mote_guest_info_free(&in);
	unlink(path);
}
#define EXPECT_INFO(b, len, want, needle) expect_info_((b), (len), (want), (needle), __LINE__)

TEST(guest_info_errors)
{
	struct real r;
	if (!load_real(&r))
		return;
	unsigned char *b = copy_of(&r), notes[128];
	REQUIRE(b);
	mote_set_allocator(&counting);
	int fds = count_fds();
	mote_guest_info in;

	int rc;
	CHECK_EQ_INT(mote_guest_info_read(NULL, &in), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_guest_info_read(GUEST_ELF("basic"), NULL), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_guest_info_read("/nonexistent/guest.elf", &in), -MOTE_EIO);
	CHECK_CONTAINS(mote_last_error(), "cannot open /nonexistent/guest.elf: No such file");
	CHECK_EQ_INT(mote_guest_info_read("/", &in), -MOTE_EIO);
	CHECK_CONTAINS(mote_last_error(), "/ is not a regular file");
	CHECK_EQ_INT(mote_guest_info_read("/dev/null", &in), -MOTE_EIO);
	EXPECT_INFO("", 0, -MOTE_EBADELF, "empty file, not an ELF");
	EXPECT_INFO("#!/bin/sh\n", 10, -MOTE_EBADELF, "not an ELF file (bad magic)");

	/* The ELF checks of mote_sandbox_new come first. */
	memcpy(b, r.b, r.len);
	b[EI_CLASS] = ELFCLASS32;
	EXPECT_INFO(b, r.len, -MOTE_EBADELF, "ELF class is 32-bit");

	/* Another ABI: the guest's version is kept. */
	uint32_t v = MOTE_ABI_VERSION + 5, d2 = MOTE_ABI_VERSION;
	struct mote_note_fns d = {r.img.fns_start, r.img.fns_end};
	size_t len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_FNS, &d, sizeof(d));
	len += put_note(notes + len, "mote", 5, MOTE_NOTE_TYPE_ABI, &v, 4);
	memcpy(b, r.b, r.len);
	set_notes(b, &r, notes, len);
	const char *path = tmp_file("abi.elf", b, r.len);
	REQUIRE(path);
	CHECK_EQ_INT(mote_guest_info_read(path, &in), -MOTE_EABI);
	CHECK_EQ_INT(in.abi_version, MOTE_ABI_VERSION + 5);
	CHECK_CONTAINS(mote_last_error(), "guest ABI version 7, host supports 2");
	CHECK(in.priv_ == NULL);
	mote_guest_info_free(&in);
	unlink(path);

	/* No table note: a loadable guest, but nothing to list. */
	len = put_note(notes, "mote", 5, MOTE_NOTE_TYPE_ABI, &d2, 4);
	set_notes(b, &r, notes, len);
	EXPECT_INFO(b, r.len, -MOTE_EBADELF,
		    "no function table note (PT_NOTE named \"mote\", "
		    "type 0x534e464d): guest built before ABI 2?");

	/* A bad note range and a bad entry, one each way. */
	memcpy(b, r.b, r.len);
	put_range(b, &r, r.img.fns_start + 4, r.img.fns_end + 4);
	EXPECT_INFO(b, r.len, -MOTE_EBADELF, "is not 8-byte aligned");
	memcpy(b, r.b, r.len);
	struct mote_wire_desc e = get_desc(r.b, &r, 6);
	e.name = get_desc(r.b, &r, 0).name;
	put_desc(b, &r, 6, &e);
	char want[200];
	snprintf(want, sizeof(want), "function '%s' is declared twice (table entries 0 and 6)",
		 r.name[0]);
	EXPECT_INFO(b, r.len, -MOTE_EBADELF, want);

	/* Truncated right after the segments: still complete. */
	size_t end = 0;
	for (unsigned k = 0; k < r.img.nsegments; k++)
		if (r.img.segments[k].offset + r.img.segments[k].filesz > end)
			end = r.img.segments[k].offset + r.img.segments[k].filesz;
	path = tmp_file("cut.elf", r.b, end);
	REQUIRE(path);
	CHECK_EQ_INT(mote_guest_info_read(path, &in), 0);
	CHECK_EQ_INT(mote_guest_info_function_count(&in), r.n);
	mote_guest_info_free(&in);
	unlink(path);
	CHECK_EQ_INT(live_allocs, 0);

	/* Out of memory at each allocation in turn: a clean -MOTE_ENOMEM. */
	int k;
	for (k = 0; k < 16; k++) {
		live_allocs = 0;
		fail_after = k;
		rc = mote_guest_info_read(GUEST_ELF("basic"), &in);
		fail_after = -1;
		if (rc == 0)
			break;
		CHECK_EQ_INT(rc, -MOTE_ENOMEM);
		CHECK_CONTAINS(mote_last_error(), "out of memory");
		CHECK(in.priv_ == NULL);
		CHECK_EQ_INT(live_allocs, 0);
	}
	CHECK(k > 1 && k < 16);
	mote_guest_info_free(&in);
	CHECK_EQ_INT(live_allocs, 0);
	mote_set_allocator(NULL);
	CHECK_EQ_INT(count_fds(), fds);
	rmdir(tmpdir);
	free(b);
	free(r.b);
}

/* ---- Random mutation ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64: deterministic, so failures reproduce. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

TEST(random_mutations)
{
	struct img base, im;
	struct mote_elf_image out;
	int ok = 0, bad = 0, abi = 0;
	build_valid(&base);
	for (int iter = 0; iter < 20000; iter++) {
		im = base;
		unsigned flips = 1 + (unsigned)(rng() % 8);
		for (unsigned f = 0; f < flips; f++) {
			/* Bias towards the headers and note, where the parser looks. */
			size_t pos = rng() % 4 ? rng() % (NOTE_OFF + NOTE_SIZE) : rng() % im.len;
			if (rng() % 2)
				im.b[pos] ^= (unsigned char)(1u << (rng() % 8));
			else
				im.b[pos] = (unsigned char)rng();
		}
		if (rng() % 16 == 0)
			im.len = rng() % (im.len + 1);
		memset(errbuf, 'X', sizeof(errbuf));
		int rc = mote_elf_parse(im.b, im.len, &out, errbuf, sizeof(errbuf));
		if (!memchr(errbuf, '\0', sizeof(errbuf))) {
			TEST_FAILF("iteration %d: err not terminated", iter);
			return;
		}
		if (rc == 0) {
			ok++;
			if (!image_ok(&out, im.len) || errbuf[0]) {
				TEST_FAILF("iteration %d: accepted image breaks invariants", iter);
				return;
			}
		} else if (rc == -MOTE_EABI) {
			abi++;
			if (out.abi_version == MOTE_ABI_VERSION || !errbuf[0]) {
				TEST_FAILF("iteration %d: bad EABI result", iter);
				return;
			}
		} else if (rc == -MOTE_EBADELF) {
			bad++;
			if (!errbuf[0] || out.nsegments) {
				TEST_FAILF("iteration %d: EBADELF without reason", iter);
				return;
			}
		} else {
			TEST_FAILF("iteration %d: unexpected rc %d", iter, rc);
			return;
		}
	}
	/* The mix shows the loop reaches past the header checks. */
	CHECK(ok > 100);
	CHECK(bad > 100);
	CHECK(abi > 10);
}

TEST_MAIN()
