/* Tests for the guest symbolizer and unwinder (src/host/symbolize.c).
 *
 * They read the real test guest basic.elf: its function symbols (looked up here with libelf), its
 * DWARF line table and its .debug_frame CFI. The unwinder runs on synthetic stacks: an array of
 * words the read callback serves as guest memory at STACK_BASE. The functions used as frames are
 * the guest's one-instruction-long wrappers (mote_wrap_echo_i32 and the like): leaves that never
 * move rsp, so the CFA is rsp + 8 and the return address is at [rsp] at every pc in them. Then
 * hostile input: files that are not ELF, truncated or corrupted, and garbage registers and stacks.
 * Starts no sandbox. */
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/symbolize.h"
#include "mote.h"
#include "test.h"

#define GUEST MOTE_BUILD_DIR "/guests/basic.elf"
#define GUEST_SRC "tests/guests/basic/guest.c"

#define STACK_BASE 0x7ff000ull
#define STACK_WORDS 64
#ifndef FUZZ_ITERS
#define FUZZ_ITERS 600 /* corrupted files tried; more with -DFUZZ_ITERS=N */
#endif

static char errbuf[256];

/* ---- Helpers ---- */

/* Address and size of function `name` in the .symtab of the ELF at `path`, read with libelf. */
static bool sym_lookup(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
	bool found = false;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	Elf_Scn *scn = NULL;
	while (elf && !found && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t n = d ? d->d_size / sizeof(Elf64_Sym) : 0;
		for (size_t i = 0; i < n && !found; i++) {
			GElf_Sym sym;
			const char *nm;
			if (!gelf_getsym(d, (int)i, &sym))
				continue;
			nm = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (!nm || strcmp(nm, name) != 0)
				continue;
			*addr = sym.st_value;
			*size = sym.st_size;
			found = true;
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}

/* Line number (from 1) of the first line of `path` containing `needle`; 0 if none. */
static int source_line(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int n = 0, found = 0;
	while (f && !found && fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, needle))
			found = n;
	}
	if (f)
		fclose(f);
	return found;
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *p = n > 0 ? malloc((size_t)n) : NULL;
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = p ? (size_t)n : 0;
	return p;
}

/* Scratch files live in one directory, removed at exit. */
static char tmpdir[64];

static void rm_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[sizeof(tmpdir) + sizeof(e->d_name) + 2];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

/* Write `len` bytes to scratch file `name`; returns its path (static). */
static const char *scratch(const char *name, const void *buf, size_t len)
{
	static char path[256];
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/mote-symbolize-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(1);
		}
		atexit(rm_tmpdir);
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len)) {
		perror(path);
		exit(1);
	}
	fclose(f);
	return path;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Guest memory: STACK_WORDS words at STACK_BASE, readable at any alignment. */
struct stack {
	uint64_t w[STACK_WORDS];
};

static int stack_read(void *ctx, uint64_t addr, uint64_t *out)
{
	struct stack *st = ctx;
	if (addr < STACK_BASE || addr - STACK_BASE > sizeof(st->w) - 8)
		return -1;
	memcpy(out, (const unsigned char *)st->w + (addr - STACK_BASE), 8);
	return 0;
}

static int read_fails(void *ctx, uint64_t addr, uint64_t *out)
{
	(void)ctx, (void)addr, (void)out;
	return -1;
}

/* Every address reads as the same word: an endless stack. */
static int read_const(void *ctx, uint64_t addr, uint64_t *out)
{
	(void)addr;
	*out = *(const uint64_t *)ctx;
	return 0;
}

static void word(struct stack *st, uint64_t addr, uint64_t v)
{
	st->w[(addr - STACK_BASE) / 8] = v;
}

/* The guest functions the tests use as frames. */
struct fns {
	uint64_t f, fsize; /* mote_wrap_echo_i32 */
	uint64_t g, gsize; /* mote_wrap_add */
	uint64_t h, hsize; /* mote_wrap_echo_u32 */
	uint64_t start, startsize; /* _start: assembly, no CFI, no size */
};

static bool get_fns(struct fns *x)
{
	return sym_lookup(GUEST, "mote_wrap_echo_i32", &x->f, &x->fsize) &&
	       sym_lookup(GUEST, "mote_wrap_add", &x->g, &x->gsize) &&
	       sym_lookup(GUEST, "mote_wrap_echo_u32", &x->h, &x->hsize) &&
	       sym_lookup(GUEST, "_start", &x->start, &x->startsize) && x->fsize > 4 &&
	       x->gsize > 5 && x->hsize > 3;
}

static struct mote_symbolizer *open_guest(void)
{
	struct mote_symbolizer *s = NULL;
	int rc = mote_symbolizer_open(GUEST, &s, errbuf, sizeof(errbuf));
	if (rc)
		fprintf(stderr, "  open %s: %d %s\n", GUEST, rc, errbuf);
	return s;
}

#define CHECK_PREFIX(str, prefix)                                                                  \
	do {                                                                                       \
		const char *check_s_ = (str), *check_p_ = (prefix);                                \
		if (strncmp(check_s_, check_p_, strlen(check_p_)) != 0)                            \
			TEST_FAILF("%s starts with \"%s\": got \"%s\"", #str, check_p_, check_s_); \
	} while (0)

/* ---- Symbols and lines ---- */

TEST(symbolize_names_offsets_and_lines)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	int line = source_line(GUEST_SRC, "MOTE_FN1(i32, echo_i32,");
	int uline = source_line(GUEST_SRC, "MOTE_FN1(u32, echo_u32,");
	REQUIRE(line > 0 && uline > 0);
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	CHECK_EQ_STR(errbuf, "");
	char buf[256], want[256];

	/* The wrapper MOTE_FN1 defines is all on the macro's line. */
	snprintf(want, sizeof(want), "mote_wrap_echo_i32 (guest.c:%d)", line);
	CHECK_EQ_U64(mote_symbolize(s, x.f, buf, sizeof(buf)), strlen(want));
	CHECK_EQ_STR(buf, want);
	snprintf(want, sizeof(want), "mote_wrap_echo_i32+0x4 (guest.c:%d)", line);
	mote_symbolize(s, x.f + 4, buf, sizeof(buf));
	CHECK_EQ_STR(buf, want);
	snprintf(want, sizeof(want), "mote_wrap_echo_u32+0x2 (guest.c:%d)", uline);
	mote_symbolize(s, x.h + 2, buf, sizeof(buf));
	CHECK_EQ_STR(buf, want);

	/* A size-0 assembly symbol covers up to the next symbol; no line info there. */
	mote_symbolize(s, x.start + 2, buf, sizeof(buf));
	CHECK_PREFIX(buf, "_start+0x2");

	/* No symbol covers these: below the image, the read-only data, far above. */
	mote_symbolize(s, 0x1000, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "0x1000");
	uint64_t fns, fnsize;
	REQUIRE(sym_lookup(GUEST, "__mote_fns_start", &fns, &fnsize));
	snprintf(want, sizeof(want), "0x%" PRIx64, fns);
	mote_symbolize(s, fns, buf, sizeof(buf));
	CHECK_EQ_STR(buf, want);
	mote_symbolize(s, UINT64_MAX, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "0xffffffffffffffff");

	/* Truncation always leaves a terminated string and says its length. */
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ_U64(mote_symbolize(s, x.f + 4, buf, 8), 7);
	CHECK_EQ_STR(buf, "mote_wr");
	CHECK_EQ_U64(mote_symbolize(s, x.f + 4, buf, 1), 0);
	CHECK_EQ_STR(buf, "");
	buf[0] = 'x';
	CHECK_EQ_U64(mote_symbolize(s, x.f, buf, 0), 0);
	CHECK(buf[0] == 'x');
	CHECK_EQ_U64(mote_symbolize(s, x.f, NULL, 16), 0);

	/* Without a symbolizer: the number. */
	mote_symbolize(NULL, 0x2011a4, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "0x2011a4");
	mote_symbolizer_close(s);
	mote_symbolizer_close(NULL);
}

/* ---- Unwinding ---- */

TEST(backtrace_cfi_chain)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	/* f at its first instruction, called from g + 5, called from h + 3, then a 0 return. */
	struct stack st = {{0}};
	uint64_t rsp = STACK_BASE + 0x80;
	word(&st, rsp, x.g + 5);
	word(&st, rsp + 8, x.h + 3);
	uint64_t pcs[8];
	size_t n = mote_backtrace(s, x.f, rsp, 0x1234567, stack_read, &st, pcs, 8);
	CHECK_EQ_U64(n, 3);
	CHECK_EQ_U64(pcs[0], x.f);
	CHECK_EQ_U64(pcs[1], x.g + 5);
	CHECK_EQ_U64(pcs[2], x.h + 3);

	char buf[512], want[128];
	mote_backtrace_format(s, pcs, n, buf, sizeof(buf));
	int line = source_line(GUEST_SRC, "MOTE_FN1(i32, echo_i32,");
	int uline = source_line(GUEST_SRC, "MOTE_FN1(u32, echo_u32,");
	snprintf(want, sizeof(want),
		 "mote_wrap_echo_i32 (guest.c:%d), called from mote_wrap_add+0x5 (guest.c:", line);
	CHECK_PREFIX(buf, want);
	snprintf(want, sizeof(want), "), called from mote_wrap_echo_u32+0x3 (guest.c:%d)", uline);
	CHECK(strlen(buf) > strlen(want) && strcmp(buf + strlen(buf) - strlen(want), want) == 0);
	if (!test_failed_current)
		printf("  %s\n", buf);

	/* max bounds the walk. */
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, 0, stack_read, &st, pcs, 2), 2);
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, 0, stack_read, &st, pcs, 1), 1);
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, 0, stack_read, &st, pcs, 0), 0);
	mote_symbolizer_close(s);
}

TEST(backtrace_return_address_is_looked_up_at_the_call)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	/* A call that is g's last instruction returns to the first byte after g. The unwinder and
	 * the formatter look it up at the call (pc - 1): g, with the return address's offset. */
	uint64_t gend = x.g + x.gsize;
	struct stack st = {{0}};
	uint64_t rsp = STACK_BASE + 0x80;
	word(&st, rsp, gend);
	uint64_t pcs[4];
	size_t n = mote_backtrace(s, x.f + 1, rsp, 0, stack_read, &st, pcs, 4);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_U64(pcs[1], gend);
	char buf[512], want[128], alone[128];
	mote_backtrace_format(s, pcs, n, buf, sizeof(buf));
	snprintf(want, sizeof(want), ", called from mote_wrap_add+0x%" PRIx64 " (guest.c:",
		 x.gsize);
	CHECK_CONTAINS(buf, want);
	/* On its own the same address is not in g. */
	mote_symbolize(s, gend, alone, sizeof(alone));
	CHECK(strncmp(alone, "mote_wrap_add", 13) != 0);
	mote_symbolizer_close(s);
}

TEST(backtrace_frame_pointer_fallback)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	/* No CFI covers _start: the rbp chain, [rbp] = caller's rbp, [rbp + 8] = return. */
	struct stack st = {{0}};
	uint64_t rsp = STACK_BASE + 0x20, rbp = STACK_BASE + 0x40;
	word(&st, rbp, 0);
	word(&st, rbp + 8, x.f + 3);
	uint64_t pcs[8];
	size_t n = mote_backtrace(s, x.start + 2, rsp, rbp, stack_read, &st, pcs, 8);
	CHECK_EQ_U64(n, 2);
	CHECK_EQ_U64(pcs[0], x.start + 2);
	CHECK_EQ_U64(pcs[1], x.f + 3);
	/* A frame record below rsp or misaligned is garbage. */
	CHECK_EQ_U64(mote_backtrace(s, x.start + 2, rbp + 8, rbp, stack_read, &st, pcs, 8), 1);
	CHECK_EQ_U64(mote_backtrace(s, x.start + 2, rsp, rbp + 4, stack_read, &st, pcs, 8), 1);
	mote_symbolizer_close(s);
}

/* basic.elf with its .debug_* sections renamed .xebug_*: symbols only, no lines, no CFI. */
TEST(without_debug_info)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	size_t len;
	unsigned char *img = read_all(GUEST, &len);
	REQUIRE(img && len > sizeof(Elf64_Ehdr));
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof(eh));
	REQUIRE(eh.e_shoff + (uint64_t)(eh.e_shstrndx + 1) * sizeof(Elf64_Shdr) <= len);
	Elf64_Shdr strsh;
	memcpy(&strsh, img + eh.e_shoff + eh.e_shstrndx * sizeof(Elf64_Shdr), sizeof(strsh));
	REQUIRE(strsh.sh_offset + strsh.sh_size <= len);
	int renamed = 0;
	for (size_t i = 0; i + 7 <= strsh.sh_size; i++) {
		unsigned char *p = img + strsh.sh_offset + i;
		if (memcmp(p, ".debug_", 7) == 0) {
			p[1] = 'x';
			renamed++;
		}
	}
	CHECK(renamed >= 3);
	const char *path = scratch("nodebug.elf", img, len);
	free(img);

	struct mote_symbolizer *s = NULL;
	REQUIRE(mote_symbolizer_open(path, &s, errbuf, sizeof(errbuf)) == 0);
	char buf[256];
	mote_symbolize(s, x.f + 4, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "mote_wrap_echo_i32+0x4");
	mote_symbolize(s, x.f, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "mote_wrap_echo_i32");

	/* Without CFI, the rbp chain all the way: f+3 <- g+5 <- h+3, then rbp 0 ends it. */
	struct stack st = {{0}};
	uint64_t rsp = STACK_BASE + 0x20, rbp = STACK_BASE + 0x40;
	word(&st, rbp, STACK_BASE + 0x60);
	word(&st, rbp + 8, x.g + 5);
	word(&st, STACK_BASE + 0x60, 0);
	word(&st, STACK_BASE + 0x68, x.h + 3);
	uint64_t pcs[8];
	size_t n = mote_backtrace(s, x.f + 3, rsp, rbp, stack_read, &st, pcs, 8);
	CHECK_EQ_U64(n, 3);
	CHECK_EQ_U64(pcs[1], x.g + 5);
	CHECK_EQ_U64(pcs[2], x.h + 3);
	mote_backtrace_format(s, pcs, n, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "mote_wrap_echo_i32+0x3, called from mote_wrap_add+0x5, called from "
			  "mote_wrap_echo_u32+0x3");
	mote_symbolizer_close(s);
}

TEST(backtrace_garbage_registers_and_stacks)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	uint64_t pcs[1000];
	struct stack st = {{0}};
	uint64_t rsp = STACK_BASE + 0x80;
	word(&st, rsp, x.g + 5);

	/* Nothing readable: just the faulting pc. */
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, rsp, read_fails, NULL, pcs, 16), 1);
	CHECK_EQ_U64(pcs[0], x.f);
	/* A pc of 0 or one no symbol covers: reported, not unwound. */
	CHECK_EQ_U64(mote_backtrace(s, 0, rsp, rsp, stack_read, &st, pcs, 16), 1);
	CHECK_EQ_U64(pcs[0], 0);
	CHECK_EQ_U64(mote_backtrace(s, 0xdeadbeefcafeull, rsp, rsp, stack_read, &st, pcs, 16), 1);
	CHECK_EQ_U64(pcs[0], 0xdeadbeefcafeull);
	/* No reader, no symbolizer, nowhere to store. */
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, rsp, NULL, NULL, pcs, 16), 1);
	CHECK_EQ_U64(mote_backtrace(NULL, x.f, rsp, rsp, stack_read, &st, pcs, 16), 1);
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, rsp, stack_read, &st, NULL, 16), 0);

	/* A return address no symbol covers is not stored. */
	word(&st, rsp, 0x1000);
	CHECK_EQ_U64(mote_backtrace(s, x.f, rsp, 0, stack_read, &st, pcs, 16), 1);

	/* An unaligned rsp over a stack full of return addresses into g: ends at the array end. */
	for (size_t i = 0; i < STACK_WORDS; i++)
		st.w[i] = x.g + 5;
	size_t n = mote_backtrace(s, x.f, STACK_BASE + 3, 0, stack_read, &st, pcs, 1000);
	CHECK(n >= 1 && n <= STACK_WORDS + 1);

	/* [rsp] = rip, a self-loop: rsp must still grow. */
	memset(&st, 0, sizeof(st));
	word(&st, rsp, x.g + 5);
	n = mote_backtrace(s, x.g + 5, rsp, 0, stack_read, &st, pcs, 1000);
	CHECK_EQ_U64(n, 2);
	/* An endless stack of the same return address: only max ends it. */
	uint64_t ret = x.g + 5;
	CHECK_EQ_U64(mote_backtrace(s, x.g + 5, rsp, 0, read_const, &ret, pcs, 1000), 1000);
	/* rsp at the top of the address space: the CFA wraps, which is not growth. */
	CHECK_EQ_U64(mote_backtrace(s, x.f, UINT64_MAX - 3, 0, read_const, &ret, pcs, 16), 1);
	/* A frame-pointer self-loop: [rbp] = rbp. */
	memset(&st, 0, sizeof(st));
	uint64_t rbp = STACK_BASE + 0x40;
	word(&st, rbp, rbp);
	word(&st, rbp + 8, x.start + 2);
	n = mote_backtrace(s, x.start + 2, rbp, rbp, stack_read, &st, pcs, 1000);
	CHECK_EQ_U64(n, 2);
	mote_symbolizer_close(s);
}

TEST(backtrace_format_truncates_cleanly)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	struct mote_symbolizer *s = open_guest();
	REQUIRE(s);
	uint64_t pcs[3] = {x.f, x.g + 5, x.h + 3};
	char full[512], buf[512];
	size_t flen = mote_backtrace_format(s, pcs, 3, full, sizeof(full));
	CHECK_EQ_U64(flen, strlen(full));
	for (size_t len = 1; len <= flen + 2; len++) {
		memset(buf, 'x', sizeof(buf));
		size_t n = mote_backtrace_format(s, pcs, 3, buf, len);
		CHECK_EQ_U64(n, strlen(buf));
		CHECK(n < len);
		if (len > flen) {
			CHECK_EQ_STR(buf, full);
			continue;
		}
		if (n >= 5 && strcmp(buf + n - 5, ", ...") == 0) {
			/* Cut after a whole entry, where the next one begins. */
			CHECK(strncmp(buf, full, n - 5) == 0 && full[n - 5] == ',');
		} else if (len >= 4) {
			/* The first entry alone is too long: as much of it as fits, then "...". */
			CHECK(n >= 3 && strcmp(buf + n - 3, "...") == 0);
			CHECK(strncmp(buf, full, n - 3) == 0);
		}
	}
	CHECK_EQ_U64(mote_backtrace_format(s, pcs, 3, buf, 0), 0);
	CHECK_EQ_U64(mote_backtrace_format(s, pcs, 0, buf, sizeof(buf)), 0);
	CHECK_EQ_STR(buf, "");
	/* Without a symbolizer: numbers, return addresses as they are. */
	uint64_t raw[2] = {0x2011a4, 0x201000};
	mote_backtrace_format(NULL, raw, 2, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "0x2011a4, called from 0x201000");
	mote_symbolizer_close(s);
}

/* ---- Opening hostile files ---- */

static void expect_open_fails(const char *path, int code, const char *reason)
{
	struct mote_symbolizer *s = (struct mote_symbolizer *)&errbuf;
	errbuf[0] = 0;
	int rc = mote_symbolizer_open(path, &s, errbuf, sizeof(errbuf));
	if (rc != code)
		TEST_FAILF("%s: rc %d, want %d (%s)", path, rc, code, errbuf);
	CHECK(s == NULL);
	CHECK(errbuf[0] != 0);
	if (reason)
		CHECK_CONTAINS(errbuf, reason);
	if (s && s != (struct mote_symbolizer *)&errbuf)
		mote_symbolizer_close(s);
}

TEST(open_rejects_bad_files)
{
	int fds = open_fds();
	size_t len;
	unsigned char *img = read_all(GUEST, &len);
	REQUIRE(img && len > 256);

	expect_open_fails("/nonexistent/guest.elf", -MOTE_EIO, "No such file");
	expect_open_fails("tests", -MOTE_EIO, "not a regular file");
	expect_open_fails(scratch("empty", "", 0), -MOTE_EBADELF, "empty");
	const char text[] = "#!/bin/sh\necho this is not an ELF\n";
	expect_open_fails(scratch("text", text, sizeof(text) - 1), -MOTE_EBADELF, "not an ELF");
	expect_open_fails(scratch("magic", img, 10), -MOTE_EBADELF, "truncated ELF header");
	expect_open_fails(scratch("trunc100", img, 100), -MOTE_EBADELF, "truncated?");
	expect_open_fails(scratch("trunc_half", img, len / 2), -MOTE_EBADELF, "truncated?");

	unsigned char *bad = malloc(len);
	REQUIRE(bad);
	Elf64_Ehdr eh;
	memcpy(bad, img, len);
	memcpy(&eh, bad, sizeof(eh));
	eh.e_machine = EM_AARCH64;
	memcpy(bad, &eh, sizeof(eh));
	expect_open_fails(scratch("arm", bad, len), -MOTE_EBADELF, "not x86-64");
	memcpy(bad, img, len);
	bad[EI_CLASS] = ELFCLASS32;
	expect_open_fails(scratch("class32", bad, len), -MOTE_EBADELF, "64-bit");
	memcpy(bad, img, len);
	memcpy(&eh, bad, sizeof(eh));
	eh.e_type = ET_DYN;
	memcpy(bad, &eh, sizeof(eh));
	expect_open_fails(scratch("dyn", bad, len), -MOTE_EBADELF, "e_type");
	memcpy(bad, img, len);
	memcpy(&eh, bad, sizeof(eh));
	eh.e_shentsize = 32;
	memcpy(bad, &eh, sizeof(eh));
	expect_open_fails(scratch("shentsize", bad, len), -MOTE_EBADELF, "section header size");
	free(bad);
	free(img);

	/* Arguments. */
	struct mote_symbolizer *s = NULL;
	CHECK_EQ_INT(mote_symbolizer_open(NULL, &s, errbuf, sizeof(errbuf)), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_symbolizer_open(GUEST, NULL, errbuf, sizeof(errbuf)), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_symbolizer_open("/nonexistent", &s, NULL, 0), -MOTE_EIO);
	CHECK_EQ_INT(mote_symbolizer_open(GUEST, &s, NULL, 0), 0);
	mote_symbolizer_close(s);
	CHECK_EQ_INT(open_fds(), fds);
}

/* Corrupt basic.elf at random (deterministically) and use each result: open may refuse it,
 * but nothing may crash, hang or leak. */
TEST(corrupted_elf_never_crashes)
{
	struct fns x;
	REQUIRE(get_fns(&x));
	size_t len;
	unsigned char *img = read_all(GUEST, &len);
	REQUIRE(img);
	unsigned char *bad = malloc(len);
	REQUIRE(bad);
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof(eh));
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int opened = 0, fds = open_fds();
	for (int iter = 0; iter < FUZZ_ITERS; iter++) {
		memcpy(bad, img, len);
		int nflips = 1 + (int)(seed % 8);
		for (int k = 0; k < nflips; k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			size_t pos;
			switch (iter % 3) {
			case 0: /* anywhere: mostly DWARF, symbols and code */
				pos = seed % len;
				break;
			case 1: /* the ELF header and the section header table */
				if ((seed >> 8) & 1)
					pos = (seed >> 16) % sizeof(eh);
				else
					pos = eh.e_shoff + (seed >> 16) % (len - eh.e_shoff);
				break;
			default: /* the second half: DWARF, .symtab, .strtab */
				pos = len / 2 + (seed >> 16) % (len - len / 2);
				break;
			}
			bad[pos] = (unsigned char)(seed >> 32);
		}
		const char *path = scratch("fuzz.elf", bad, len);
		struct mote_symbolizer *s = NULL;
		int rc = mote_symbolizer_open(path, &s, errbuf, sizeof(errbuf));
		if (rc != 0 && rc != -MOTE_EBADELF)
			TEST_FAILF("iteration %d: rc %d (%s)", iter, rc, errbuf);
		if (rc != 0)
			continue;
		opened++;
		char buf[512];
		uint64_t addrs[] = {x.f, x.f + 4, x.g + 5, x.h + 3, x.start + 2,
				    0x200000 + seed % 0x3000, seed, 0};
		for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
			size_t n = mote_symbolize(s, addrs[i], buf, sizeof(buf));
			CHECK(n == strlen(buf));
		}
		struct stack st;
		for (size_t i = 0; i < STACK_WORDS; i++)
			st.w[i] = i % 2 ? x.g + 5 : STACK_BASE + 8 * ((i * 7) % STACK_WORDS);
		uint64_t pcs[32];
		size_t n = mote_backtrace(s, addrs[iter % 6], STACK_BASE + 0x80, STACK_BASE + 0x40,
					  stack_read, &st, pcs, 32);
		CHECK(n >= 1 && n <= 32);
		mote_backtrace_format(s, pcs, n, buf, sizeof(buf));
		mote_symbolizer_close(s);
	}
	printf("  %d of %d corrupted files opened\n", opened, FUZZ_ITERS);
	CHECK(opened > 0);
	CHECK_EQ_INT(open_fds(), fds);
	free(bad);
	free(img);
}

TEST_MAIN()
