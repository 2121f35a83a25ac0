/* Guest symbolizer and stack unwinder (symbolize.h), on elfutils' libelf and libdw.
 *
 * The ELF is read into memory once and given to libelf with elf_memory(): a file changed or
 * truncated after opening cannot fault us, as an mmap of it could (SIGBUS). The ELF header and
 * the bounds of the header tables are checked here first; libelf and libdw check the rest.
 * Function symbols are copied into a sorted table with sanitized names (they end up in error
 * messages); line tables and CFI are read through libdw when asked. Every walk is bounded: by the
 * table sizes, by the caller's `max`, and in unwinding by a stack pointer that must grow. */
#include "host/symbolize.h"

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/internal.h"

#define MAX_FILE_SIZE (256u << 20)
#define MAX_SYMS      (1u << 20)
#define MAX_NAME      200   /* bytes kept of a symbol or file name */
#define LOOKBACK      32    /* symbols tried below an address (nested or aliased ones) */
#define MAX_CUS       65536 /* units scanned for an address without .debug_aranges */
#define EXPR_MAX_OPS  64    /* DWARF expression evaluation bounds */
#define EXPR_STACK    16
#define ENTRY_MAX     512 /* one formatted address: two names and numbers */

/* DWARF register numbers on x86-64: 0-15 general, 16 the return address (rip). */
#define DW_NREGS   17
#define DW_REG_RBP 6
#define DW_REG_RSP 7
#define DW_REG_RA  16

struct sym {
	uint64_t start, end; /* [start, end) */
	uint32_t name;       /* offset in names */
	uint32_t index;      /* symtab index: a deterministic tie-break */
	bool sized;          /* false: runs to the next symbol or its section's end */
};

struct mote_symbolizer {
	pthread_mutex_t lock; /* libdw caches lazily and is not thread-safe */
	char *image;          /* the file; libelf reads it in place */
	size_t size;
	Elf *elf;
	Dwarf *dwarf;         /* NULL without debug info */
	Dwarf_CFI *debug_cfi; /* .debug_frame, owned by dwarf */
	Dwarf_CFI *eh_cfi;    /* .eh_frame, ended by us */
	struct sym *syms;     /* sorted by start */
	size_t nsyms;
	char *names;
};

static pthread_once_t libelf_once = PTHREAD_ONCE_INIT;
static bool libelf_ok;

static void libelf_init(void)
{
	libelf_ok = elf_version(EV_CURRENT) != EV_NONE;
}

/* ---- Opening ---- */

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO must not block the open; fstat rejects it next. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return mote_err(err, errlen, -MOTE_EIO, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return mote_err(err, errlen, -MOTE_EIO, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return mote_err(err, errlen, -MOTE_EIO, "%s: not a regular file", path);
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > MAX_FILE_SIZE) {
		close(fd);
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: larger than %u MiB", path,
		                MAX_FILE_SIZE >> 20);
	}
	size_t size = (size_t)st.st_size;
	char *buf = mote_malloc(size ? size : 1);
	if (!buf) {
		close(fd);
		return mote_err(err, errlen, -MOTE_ENOMEM, "%s: out of memory", path);
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			mote_free(buf);
			return mote_err(err, errlen, -MOTE_EIO, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break; /* shrank since fstat: take what is there */
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*outlen = got;
	return 0;
}

/* Does a table of `n` entries of `entsize` bytes at `off` lie inside the file? */
static bool table_fits(uint64_t off, uint64_t n, uint64_t entsize, size_t size)
{
	return off <= size && n <= (size - off) / entsize;
}

static int check_header(const char *path, const char *image, size_t size, char *err, size_t errlen)
{
	if (size == 0)
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: empty file, not an ELF", path);
	if (size < SELFMAG || memcmp(image, ELFMAG, SELFMAG) != 0)
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: not an ELF file (no ELF magic)",
		                path);
	if (size < sizeof(Elf64_Ehdr))
		return mote_err(err, errlen, -MOTE_EBADELF,
		                "%s: truncated ELF header (%zu of %zu bytes)", path, size,
		                sizeof(Elf64_Ehdr));
	Elf64_Ehdr eh;
	memcpy(&eh, image, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: not a 64-bit little-endian ELF",
		                path);
	if (eh.e_machine != EM_X86_64)
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: not x86-64 (e_machine %u)", path,
		                (unsigned)eh.e_machine);
	/* Only a fixed-address executable's addresses are guest addresses. */
	if (eh.e_type != ET_EXEC)
		return mote_err(err, errlen, -MOTE_EBADELF,
		                "%s: not a fixed-address executable (e_type %u)", path,
		                (unsigned)eh.e_type);
	if (eh.e_shoff != 0) {
		/* e_shnum 0 means the count is in section 0: that one must be there at least. */
		uint64_t n = eh.e_shnum ? eh.e_shnum : 1;
		if (eh.e_shentsize != sizeof(Elf64_Shdr))
			return mote_err(err, errlen, -MOTE_EBADELF,
			                "%s: section header size %u, not %zu", path,
			                (unsigned)eh.e_shentsize, sizeof(Elf64_Shdr));
		if (!table_fits(eh.e_shoff, n, sizeof(Elf64_Shdr), size))
			return mote_err(err, errlen, -MOTE_EBADELF,
			                "%s: section headers (at %" PRIu64
			                ") end beyond the file's "
			                "%zu bytes: truncated?",
			                path, (uint64_t)eh.e_shoff, size);
	}
	if (eh.e_phnum != 0) {
		if (eh.e_phentsize != sizeof(Elf64_Phdr))
			return mote_err(err, errlen, -MOTE_EBADELF,
			                "%s: program header size %u, not %zu", path,
			                (unsigned)eh.e_phentsize, sizeof(Elf64_Phdr));
		if (!table_fits(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr), size))
			return mote_err(err, errlen, -MOTE_EBADELF,
			                "%s: program headers (at %" PRIu64
			                ") end beyond the file's "
			                "%zu bytes: truncated?",
			                path, (uint64_t)eh.e_phoff, size);
	}
	return 0;
}

/* Is symbol `sym` one of code we can name, and where does it start and end? */
static bool code_symbol(Elf *elf, const GElf_Sym *sym, uint64_t *start, uint64_t *end, bool *sized)
{
	int type = GELF_ST_TYPE(sym->st_info);
	if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
		return false;
	if (sym->st_shndx == SHN_UNDEF || sym->st_shndx >= SHN_LORESERVE)
		return false;
	GElf_Shdr sh;
	Elf_Scn *scn = elf_getscn(elf, sym->st_shndx);
	if (!scn || !gelf_getshdr(scn, &sh))
		return false;
	/* NOTYPE symbols in code are assembly labels (_start); elsewhere they mark data. */
	if ((sh.sh_flags & (SHF_ALLOC | SHF_EXECINSTR)) != (SHF_ALLOC | SHF_EXECINSTR))
		return false;
	*start = sym->st_value;
	if (sym->st_size) {
		if (sym->st_size > UINT64_MAX - sym->st_value)
			return false;
		*end = sym->st_value + sym->st_size;
		*sized = true;
		return true;
	}
	if (sh.sh_size > UINT64_MAX - sh.sh_addr || sym->st_value < sh.sh_addr ||
	    sym->st_value >= sh.sh_addr + sh.sh_size)
		return false;
	*end = sh.sh_addr + sh.sh_size; /* trimmed to the next symbol once sorted */
	*sized = false;
	return true;
}

/* Copy a name, at most MAX_NAME bytes, with non-printable bytes replaced: names reach logs. */
static size_t copy_name(char *dst, const char *src)
{
	size_t n = 0;
	for (; src[n] && n < MAX_NAME; n++) {
		unsigned char c = (unsigned char)src[n];
		dst[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = 0;
	return n;
}

static int sym_cmp(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	/* Lookups walk down from the last candidate: sized symbols there win. */
	if (x->sized != y->sized)
		return x->sized ? 1 : -1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Load the function symbols of .symtab; none is not an error. */
/* Symbol `i` if it is a named code symbol we keep: its name, and where it
 * covers; NULL otherwise. */
static const char *kept_symbol(struct mote_symbolizer *s, Elf_Data *data, size_t strtab, size_t i,
                               uint64_t *start, uint64_t *end, bool *sized)
{
	GElf_Sym sym;
	if (!gelf_getsym(data, (int)i, &sym) || !code_symbol(s->elf, &sym, start, end, sized))
		return NULL;
	const char *name = elf_strptr(s->elf, strtab, sym.st_name);
	return name && *name ? name : NULL;
}

static int load_symbols(struct mote_symbolizer *s, const char *path, char *err, size_t errlen)
{
	size_t shnum;
	if (elf_getshdrnum(s->elf, &shnum) != 0)
		return mote_err(err, errlen, -MOTE_EBADELF, "%s: section headers: %s", path,
		                elf_errmsg(-1));
	if (shnum > s->size / sizeof(Elf64_Shdr))
		shnum = s->size / sizeof(Elf64_Shdr);
	Elf_Scn *symscn = NULL;
	GElf_Shdr symsh;
	for (size_t i = 1; i < shnum; i++) {
		Elf_Scn *scn = elf_getscn(s->elf, i);
		if (scn && gelf_getshdr(scn, &symsh) && symsh.sh_type == SHT_SYMTAB) {
			symscn = scn;
			break;
		}
	}
	Elf_Data *data = symscn ? elf_getdata(symscn, NULL) : NULL;
	if (!data)
		return 0;
	size_t count = data->d_size / sizeof(Elf64_Sym);
	if (count > MAX_SYMS)
		count = MAX_SYMS;

	/* Two passes: count what is kept and its name bytes, then fill. */
	size_t nkeep = 0, namebytes = 0;
	for (size_t i = 1; i < count; i++) {
		uint64_t start, end;
		bool sized;
		const char *name = kept_symbol(s, data, symsh.sh_link, i, &start, &end, &sized);
		if (!name)
			continue;
		size_t len = strnlen(name, MAX_NAME);
		nkeep++;
		namebytes += len + 1;
	}
	if (nkeep == 0)
		return 0;
	s->syms = mote_calloc(nkeep, sizeof(*s->syms));
	s->names = mote_malloc(namebytes);
	if (!s->syms || !s->names)
		return mote_err(err, errlen, -MOTE_ENOMEM, "%s: out of memory for %zu symbols",
		                path, nkeep);
	size_t n = 0, pos = 0;
	for (size_t i = 1; i < count && n < nkeep; i++) {
		uint64_t start, end;
		bool sized;
		const char *name = kept_symbol(s, data, symsh.sh_link, i, &start, &end, &sized);
		if (!name)
			continue;
		s->syms[n] = (struct sym){start, end, (uint32_t)pos, (uint32_t)i, sized};
		pos += copy_name(s->names + pos, name) + 1;
		n++;
	}
	s->nsyms = n;
	qsort(s->syms, n, sizeof(*s->syms), sym_cmp);
	/* An unsized symbol ends where the next higher one starts. */
	uint64_t next = UINT64_MAX;
	for (size_t i = n; i > 0;) {
		size_t g = i - 1;
		while (g > 0 && s->syms[g - 1].start == s->syms[i - 1].start)
			g--;
		for (size_t k = g; k < i; k++)
			if (!s->syms[k].sized && s->syms[k].end > next)
				s->syms[k].end = next;
		next = s->syms[g].start;
		i = g;
	}
	return 0;
}

int mote_symbolizer_open(const char *path, struct mote_symbolizer **out, char *err, size_t errlen)
{
	mote_errf(err, errlen, "%s", "");
	if (!out)
		return mote_err(err, errlen, -MOTE_EINVAL, "symbolizer: no result pointer");
	*out = NULL;
	if (!path)
		return mote_err(err, errlen, -MOTE_EINVAL, "symbolizer: no path");
	pthread_once(&libelf_once, libelf_init);
	if (!libelf_ok)
		return mote_err(err, errlen, -MOTE_EIO, "symbolizer: libelf version mismatch");
	char *image = NULL;
	size_t size = 0;
	int rc = read_file(path, &image, &size, err, errlen);
	if (rc)
		return rc;
	rc = check_header(path, image, size, err, errlen);
	if (rc) {
		mote_free(image);
		return rc;
	}
	struct mote_symbolizer *s = mote_calloc(1, sizeof(*s));
	if (!s) {
		mote_free(image);
		return mote_err(err, errlen, -MOTE_ENOMEM, "%s: out of memory", path);
	}
	pthread_mutex_init(&s->lock, NULL);
	s->image = image;
	s->size = size;
	s->elf = elf_memory(image, size);
	if (!s->elf || elf_kind(s->elf) != ELF_K_ELF) {
		rc = mote_err(err, errlen, -MOTE_EBADELF, "%s: libelf: %s", path, elf_errmsg(-1));
		goto fail;
	}
	rc = load_symbols(s, path, err, errlen);
	if (rc)
		goto fail;
	/* Debug info and CFI are optional: without them, symbols only, or the rbp chain. */
	s->dwarf = dwarf_begin_elf(s->elf, DWARF_C_READ, NULL);
	if (s->dwarf)
		s->debug_cfi = dwarf_getcfi(s->dwarf);
	s->eh_cfi = dwarf_getcfi_elf(s->elf);
	*out = s;
	return 0;
fail:
	mote_symbolizer_close(s);
	return rc;
}

void mote_symbolizer_close(struct mote_symbolizer *s)
{
	if (!s)
		return;
	if (s->eh_cfi)
		dwarf_cfi_end(s->eh_cfi);
	if (s->dwarf)
		dwarf_end(s->dwarf);
	if (s->elf)
		elf_end(s->elf);
	pthread_mutex_destroy(&s->lock);
	mote_free(s->syms);
	mote_free(s->names);
	mote_free(s->image);
	mote_free(s);
}

/* ---- Lookups (lock held) ---- */

static const struct sym *sym_at(const struct mote_symbolizer *s, uint64_t addr)
{
	size_t lo = 0, hi = s->nsyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->syms[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Below lo all start at or before addr: the nearest that covers it wins. */
	for (size_t k = 0; k < LOOKBACK && lo > 0; k++, lo--)
		if (addr < s->syms[lo - 1].end)
			return &s->syms[lo - 1];
	return NULL;
}

/* The compilation unit whose ranges hold addr: .debug_aranges first, else a bounded scan. */
static bool cu_at(Dwarf *dw, uint64_t addr, Dwarf_Die *cu)
{
	if (dwarf_addrdie(dw, addr, cu))
		return true;
	Dwarf_Off off = 0, next;
	size_t hsize;
	for (unsigned i = 0; i < MAX_CUS; i++) {
		if (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) != 0 || next <= off)
			return false;
		if (dwarf_offdie(dw, off + hsize, cu) && dwarf_haspc(cu, addr) > 0)
			return true;
		off = next;
	}
	return false;
}

/* The source file (basename, in libdw's memory) and line of addr, if the line table has it. */
static bool line_at(const struct mote_symbolizer *s, uint64_t addr, const char **file, int *line)
{
	Dwarf_Die cu;
	Dwarf_Lines *lines;
	size_t n;
	if (!s->dwarf || !cu_at(s->dwarf, addr, &cu) || dwarf_getsrclines(&cu, &lines, &n) != 0)
		return false;
	/* libdw sorts the rows by address: the last at or below addr holds it, unless that row
	 * ends a sequence. */
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		Dwarf_Line *l = dwarf_onesrcline(lines, mid);
		Dwarf_Addr a;
		if (!l || dwarf_lineaddr(l, &a) != 0)
			return false;
		if (a <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	Dwarf_Line *l = dwarf_onesrcline(lines, lo - 1);
	bool end;
	if (!l || dwarf_lineendsequence(l, &end) != 0 || end)
		return false; /* addr is past the end of a sequence: a gap */
	const char *src = dwarf_linesrc(l, NULL, NULL);
	if (!src || dwarf_lineno(l, line) != 0 || *line <= 0)
		return false;
	const char *base = strrchr(src, '/');
	*file = base ? base + 1 : src;
	return **file != 0;
}

struct out {
	char *buf;
	size_t len, pos; /* pos < len always */
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->pos = (size_t)n < o->len - o->pos ? o->pos + (size_t)n : o->len - 1;
}

/* Describe addr, with its function and line taken at `at`: addr itself, or for a return address
 * the call before it (addr - 1). The offset printed is always addr's own. */
static size_t describe(const struct mote_symbolizer *s, uint64_t addr, uint64_t at, char *buf,
                       size_t len)
{
	struct out o = {buf, len, 0};
	buf[0] = 0;
	const struct sym *y = s ? sym_at(s, at) : NULL;
	if (!y) {
		put(&o, "0x%" PRIx64, addr);
		return o.pos;
	}
	const char *name = s->names + y->name;
	if (addr != y->start)
		put(&o, "%s+0x%" PRIx64, name, addr - y->start);
	else
		put(&o, "%s", name);
	const char *file;
	int line;
	if (line_at(s, at, &file, &line)) {
		char clean[MAX_NAME + 1];
		copy_name(clean, file);
		put(&o, " (%s:%d)", clean, line);
	}
	return o.pos;
}

size_t mote_symbolize(struct mote_symbolizer *s, uint64_t addr, char *buf, size_t len)
{
	if (!buf || len == 0)
		return 0;
	if (s)
		pthread_mutex_lock(&s->lock);
	size_t n = describe(s, addr, addr, buf, len);
	if (s)
		pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- Unwinding ---- */

struct regs {
	uint64_t v[DW_NREGS];
	uint32_t known; /* bit per register */
};

struct unwind {
	mote_guest_read_u64 read;
	void *ctx;
};

static bool reg_get(const struct regs *r, uint64_t reg, uint64_t *v)
{
	if (reg >= DW_NREGS || !(r->known & (1u << reg)))
		return false;
	*v = r->v[reg];
	return true;
}

static void reg_set(struct regs *r, unsigned reg, uint64_t v)
{
	r->v[reg] = v;
	r->known |= 1u << reg;
}

/* One switch over the DWARF operations CFI uses, hence its length. Evaluate a CFI expression (the
 * CFA's, or a register rule's) over the registers we know; cfa is NULL while computing the CFA
 * itself. *value: it ended in DW_OP_stack_value (a value, not the address of one). Only the
 * operations CFI uses; anything else fails the frame. */
static bool eval(const struct unwind *u, const Dwarf_Op *ops, size_t nops, const struct regs *r,
                 const uint64_t *cfa, uint64_t *out, bool *value)
{
	uint64_t st[EXPR_STACK], a, b;
	size_t sp = 0;
	*value = false;
	if (!ops || nops == 0 || nops > EXPR_MAX_OPS)
		return false;
#define PUSH(x)                                                                                    \
	do {                                                                                       \
		if (sp == EXPR_STACK)                                                              \
			return false;                                                              \
		st[sp++] = (x);                                                                    \
	} while (0)
#define POP(x)                                                                                     \
	do {                                                                                       \
		if (sp == 0)                                                                       \
			return false;                                                              \
		(x) = st[--sp];                                                                    \
	} while (0)
	for (size_t i = 0; i < nops; i++) {
		unsigned op = ops[i].atom;
		if (op >= DW_OP_lit0 && op <= DW_OP_lit31) {
			PUSH(op - DW_OP_lit0);
			continue;
		}
		if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
			if (!reg_get(r, op - DW_OP_breg0, &a))
				return false;
			PUSH(a + ops[i].number); /* the signed offset, as wrapping unsigned */
			continue;
		}
		switch (op) {
		case DW_OP_stack_value:
			if (i + 1 != nops)
				return false;
			*value = true;
			break;
		case DW_OP_nop:
			break;
		case DW_OP_addr:
		case DW_OP_const1u:
		case DW_OP_const1s:
		case DW_OP_const2u:
		case DW_OP_const2s:
		case DW_OP_const4u:
		case DW_OP_const4s:
		case DW_OP_const8u:
		case DW_OP_const8s:
		case DW_OP_constu:
		case DW_OP_consts:
			PUSH(ops[i].number);
			break;
		case DW_OP_bregx:
			if (!reg_get(r, ops[i].number, &a))
				return false;
			PUSH(a + ops[i].number2);
			break;
		case DW_OP_call_frame_cfa:
			if (!cfa)
				return false;
			PUSH(*cfa);
			break;
		case DW_OP_dup:
			if (sp == 0)
				return false;
			a = st[sp - 1];
			PUSH(a);
			break;
		case DW_OP_over:
			if (sp < 2)
				return false;
			a = st[sp - 2];
			PUSH(a);
			break;
		case DW_OP_drop:
			POP(a);
			break;
		case DW_OP_swap:
			POP(a);
			POP(b);
			PUSH(a);
			PUSH(b);
			break;
		case DW_OP_deref:
		case DW_OP_deref_size: {
			uint64_t size = op == DW_OP_deref ? 8 : ops[i].number;
			POP(a);
			if (size == 0 || size > 8 || u->read(u->ctx, a, &b) != 0)
				return false;
			PUSH(size == 8 ? b : b & ((1ull << (size * 8)) - 1));
			break;
		}
		case DW_OP_plus_uconst:
			POP(a);
			PUSH(a + ops[i].number);
			break;
		case DW_OP_neg:
			POP(a);
			PUSH(0 - a);
			break;
		case DW_OP_not:
			POP(a);
			PUSH(~a);
			break;
		case DW_OP_plus:
		case DW_OP_minus:
		case DW_OP_mul:
		case DW_OP_and:
		case DW_OP_or:
		case DW_OP_xor:
		case DW_OP_shl:
		case DW_OP_shr:
		case DW_OP_shra:
			POP(b);
			POP(a);
			switch (op) {
			case DW_OP_plus:
				PUSH(a + b);
				break;
			case DW_OP_minus:
				PUSH(a - b);
				break;
			case DW_OP_mul:
				PUSH(a * b);
				break;
			case DW_OP_and:
				PUSH(a & b);
				break;
			case DW_OP_or:
				PUSH(a | b);
				break;
			case DW_OP_xor:
				PUSH(a ^ b);
				break;
			case DW_OP_shl:
				PUSH(b < 64 ? a << b : 0);
				break;
			case DW_OP_shr:
				PUSH(b < 64 ? a >> b : 0);
				break;
			default: /* shra: shift in copies of the sign bit, without signed UB */
				b = b < 64 ? b : 63;
				PUSH((a >> b) | ((a >> 63) && b ? ~(UINT64_MAX >> b) : 0));
				break;
			}
			break;
		default:
			return false;
		}
	}
#undef PUSH
#undef POP
	if (sp == 0)
		return false;
	*out = st[sp - 1];
	return true;
}

enum rule { RULE_VALUE, RULE_SAME, RULE_UNDEFINED, RULE_FAIL };

/* The caller's value of register regno under frame fr, the callee's registers being r. */
static enum rule reg_rule(const struct unwind *u, Dwarf_Frame *fr, int regno, const struct regs *r,
                          uint64_t cfa, uint64_t *out)
{
	Dwarf_Op mem[3], *ops = NULL;
	size_t nops = 0;
	if (dwarf_frame_register(fr, regno, mem, &ops, &nops) != 0)
		return RULE_FAIL;
	if (nops == 0) /* libdw.h: ops NULL for "same value", ops_mem for "undefined" */
		return ops ? RULE_UNDEFINED : RULE_SAME;
	if (nops == 1 && ops[0].atom == DW_OP_regx) /* "register(R)": the callee's R */
		return reg_get(r, ops[0].number, out) ? RULE_VALUE : RULE_FAIL;
	uint64_t a;
	bool value;
	if (!eval(u, ops, nops, r, &cfa, &a, &value))
		return RULE_FAIL;
	if (value) {
		*out = a;
		return RULE_VALUE;
	}
	return u->read(u->ctx, a, out) == 0 ? RULE_VALUE : RULE_FAIL;
}

enum step { STEP_OK, STEP_STOP, STEP_NO_CFI };

/* One frame up by the CFI row for `at`. */
static enum step cfi_step(const struct unwind *u, Dwarf_CFI *cfi, uint64_t at, const struct regs *r,
                          struct regs *up)
{
	Dwarf_Frame *fr = NULL;
	if (dwarf_cfi_addrframe(cfi, at, &fr) != 0 || !fr)
		return STEP_NO_CFI;
	enum step ret = STEP_STOP;
	Dwarf_Op *ops = NULL;
	size_t nops = 0;
	uint64_t cfa, v;
	bool value;
	if (dwarf_frame_cfa(fr, &ops, &nops) != 0 || !eval(u, ops, nops, r, NULL, &cfa, &value))
		goto out;
	int ra = dwarf_frame_info(fr, NULL, NULL, NULL);
	if (ra < 0 || ra >= DW_NREGS)
		goto out;
	*up = (struct regs){.known = 0};
	/* An undefined return address marks the outermost frame; "same value" would be this pc
	 * again. Either way there is no caller to report. */
	if (reg_rule(u, fr, ra, r, cfa, &v) != RULE_VALUE)
		goto out;
	reg_set(up, DW_REG_RA, v);
	reg_set(up, DW_REG_RSP, cfa); /* on x86-64 the CFA is the caller's rsp by definition */
	switch (reg_rule(u, fr, DW_REG_RBP, r, cfa, &v)) {
	case RULE_VALUE:
		reg_set(up, DW_REG_RBP, v);
		break;
	case RULE_SAME:
		if (reg_get(r, DW_REG_RBP, &v))
			reg_set(up, DW_REG_RBP, v);
		break;
	default: /* unknown from here on: the rbp chain cannot be used above */
		break;
	}
	ret = STEP_OK;
out:
	free(fr); /* malloc'd by libdw */
	return ret;
}

/* One frame up by the frame-pointer chain: [rbp] the caller's rbp, [rbp + 8] the return. */
static enum step fp_step(const struct unwind *u, const struct regs *r, struct regs *up)
{
	uint64_t rbp, rsp, saved, ra;
	if (!reg_get(r, DW_REG_RBP, &rbp) || !reg_get(r, DW_REG_RSP, &rsp))
		return STEP_STOP;
	/* A frame record is 8-aligned and at or above the stack pointer. */
	if ((rbp & 7) || rbp < rsp || rbp > UINT64_MAX - 16)
		return STEP_STOP;
	if (u->read(u->ctx, rbp, &saved) != 0 || u->read(u->ctx, rbp + 8, &ra) != 0)
		return STEP_STOP;
	*up = (struct regs){.known = 0};
	reg_set(up, DW_REG_RBP, saved);
	reg_set(up, DW_REG_RSP, rbp + 16);
	reg_set(up, DW_REG_RA, ra);
	return STEP_OK;
}

size_t mote_backtrace(struct mote_symbolizer *s, uint64_t rip, uint64_t rsp, uint64_t rbp,
                      mote_guest_read_u64 read, void *ctx, uint64_t *pcs, size_t max)
{
	if (!pcs || max == 0)
		return 0;
	pcs[0] = rip;
	size_t n = 1;
	if (!s || !read)
		return n;
	struct unwind u = {read, ctx};
	struct regs r = {.known = 0};
	reg_set(&r, DW_REG_RA, rip);
	reg_set(&r, DW_REG_RSP, rsp);
	reg_set(&r, DW_REG_RBP, rbp);
	pthread_mutex_lock(&s->lock);
	/* Each round stores one pc or stops, and the stack pointer must grow: bounded twice. */
	while (n < max) {
		uint64_t pc = r.v[DW_REG_RA];
		/* Above frame 0 pc is a return address: the call, and the CFI row describing the
		 * frame during it, is at pc - 1 (pc may already be the next function's). */
		uint64_t at = n == 1 ? pc : pc - 1;
		if (pc == 0 || !sym_at(s, at))
			break;
		struct regs up;
		enum step st = STEP_NO_CFI;
		if (s->debug_cfi)
			st = cfi_step(&u, s->debug_cfi, at, &r, &up);
		if (st == STEP_NO_CFI && s->eh_cfi)
			st = cfi_step(&u, s->eh_cfi, at, &r, &up);
		if (st == STEP_NO_CFI)
			st = fp_step(&u, &r, &up);
		if (st != STEP_OK)
			break;
		uint64_t ret = up.v[DW_REG_RA];
		if (up.v[DW_REG_RSP] <= r.v[DW_REG_RSP] || ret == 0 || !sym_at(s, ret - 1))
			break;
		pcs[n++] = ret;
		r = up;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t mote_backtrace_format(struct mote_symbolizer *s, const uint64_t *pcs, size_t n, char *buf,
                             size_t len)
{
	static const char sep[] = ", called from ", more[] = ", ...";
	if (!buf || len == 0)
		return 0;
	buf[0] = 0;
	if (!pcs)
		return 0;
	struct out o = {buf, len, 0};
	char entry[ENTRY_MAX];
	if (s)
		pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		/* Return addresses: function and line of the call (pc - 1), offset of pc itself. */
		uint64_t at = i > 0 && pcs[i] > 0 ? pcs[i] - 1 : pcs[i];
		size_t el = describe(s, pcs[i], at, entry, sizeof(entry));
		size_t need = (i ? sizeof(sep) - 1 : 0) + el;
		/* Keep room for ", ..." after every entry but the last, so a cut is always clean.
		 */
		size_t reserve = i + 1 < n ? sizeof(more) - 1 : 0;
		if (o.pos + need + reserve < len) {
			put(&o, "%s%s", i ? sep : "", entry);
			continue;
		}
		if (i > 0) {
			put(&o, "%s", more);
		} else {
			/* Not even the first entry fits: as much of it as leaves room for "...". */
			size_t keep = len > 4 ? len - 4 : 0;
			put(&o, "%.*s...", (int)(keep < el ? keep : el), entry);
		}
		break;
	}
	if (s)
		pthread_mutex_unlock(&s->lock);
	return o.pos;
}
