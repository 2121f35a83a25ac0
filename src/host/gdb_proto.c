/* The GDB Remote Serial Protocol engine (gdb_proto.h). The protocol is the GDB manual's
 * "Remote Protocol" appendix; the register layout is this file's target description, which
 * gdb reads with qXfer:features:read and which fixes the numbers in g/G/p/P and stop replies. */
#include "host/gdb_proto.h"

#include <string.h>

#include "common/abi.h"

enum { RX_IDLE, RX_DATA, RX_SUM1, RX_SUM2 };

/* What one input byte may add to the output at most: an ack and a whole framed reply. */
#define STEP_ROOM (1 + MOTE_GDB_PACKET_MAX + 4)
#define PAGE      4096u

static const char hexdig[] = "0123456789abcdef";

/* ---- The target description ---- */

#define REG(name, bits, type) "<reg name=\"" name "\" bitsize=\"" #bits "\" type=\"" type "\"/>"
#define REGN(name, bits, type, num)                                                                \
	"<reg name=\"" name "\" bitsize=\"" #bits "\" type=\"" type "\" regnum=\"" #num "\"/>"
#define FREG(name)       "<reg name=\"" name "\" bitsize=\"32\" type=\"int\" group=\"float\"/>"
#define FIELD(name, bit) "<field name=\"" name "\" start=\"" #bit "\" end=\"" #bit "\"/>"
#define XMM(n)           REG("xmm" #n, 128, "vec128")

/* gdb's amd64 order (rax rbx rcx rdx rsi rdi rbp rsp), not the hardware's. One self-contained
 * document (no xi:include); only types every gdb with XML support knows. */
// clang-format off
static const char target_xml[] =
	"<?xml version=\"1.0\"?>\n"
	"<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
	"<target version=\"1.0\">\n"
	"<architecture>i386:x86-64</architecture>\n"
	"<feature name=\"org.gnu.gdb.i386.core\">\n"
	"<flags id=\"i386_eflags\" size=\"4\">"
	FIELD("CF", 0) FIELD("", 1) FIELD("PF", 2) FIELD("AF", 4) FIELD("ZF", 6) FIELD("SF", 7)
	FIELD("TF", 8) FIELD("IF", 9) FIELD("DF", 10) FIELD("OF", 11) FIELD("NT", 14)
	FIELD("RF", 16) FIELD("VM", 17) FIELD("AC", 18) FIELD("VIF", 19) FIELD("VIP", 20)
	FIELD("ID", 21)
	"</flags>\n"
	REGN("rax", 64, "int64", 0) REG("rbx", 64, "int64") REG("rcx", 64, "int64")
	REG("rdx", 64, "int64") REG("rsi", 64, "int64") REG("rdi", 64, "int64")
	REG("rbp", 64, "data_ptr") REG("rsp", 64, "data_ptr") "\n"
	REG("r8", 64, "int64") REG("r9", 64, "int64") REG("r10", 64, "int64")
	REG("r11", 64, "int64") REG("r12", 64, "int64") REG("r13", 64, "int64")
	REG("r14", 64, "int64") REG("r15", 64, "int64") "\n"
	REG("rip", 64, "code_ptr") REG("eflags", 32, "i386_eflags")
	REG("cs", 32, "int32") REG("ss", 32, "int32") REG("ds", 32, "int32")
	REG("es", 32, "int32") REG("fs", 32, "int32") REG("gs", 32, "int32") "\n"
	REG("st0", 80, "i387_ext") REG("st1", 80, "i387_ext") REG("st2", 80, "i387_ext")
	REG("st3", 80, "i387_ext") REG("st4", 80, "i387_ext") REG("st5", 80, "i387_ext")
	REG("st6", 80, "i387_ext") REG("st7", 80, "i387_ext") "\n"
	FREG("fctrl") FREG("fstat") FREG("ftag") FREG("fiseg") FREG("fioff") FREG("foseg")
	FREG("fooff") FREG("fop") "\n"
	"</feature>\n"
	"<feature name=\"org.gnu.gdb.i386.sse\">\n"
	"<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
	"<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
	"<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
	"<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
	"<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
	"<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
	"<union id=\"vec128\">"
	"<field name=\"v4_float\" type=\"v4f\"/>"
	"<field name=\"v2_double\" type=\"v2d\"/>"
	"<field name=\"v16_int8\" type=\"v16i8\"/>"
	"<field name=\"v8_int16\" type=\"v8i16\"/>"
	"<field name=\"v4_int32\" type=\"v4i32\"/>"
	"<field name=\"v2_int64\" type=\"v2i64\"/>"
	"<field name=\"uint128\" type=\"uint128\"/>"
	"</union>\n"
	"<flags id=\"i386_mxcsr\" size=\"4\">"
	FIELD("IE", 0) FIELD("DE", 1) FIELD("ZE", 2) FIELD("OE", 3) FIELD("UE", 4) FIELD("PE", 5)
	FIELD("DAZ", 6) FIELD("IM", 7) FIELD("DM", 8) FIELD("ZM", 9) FIELD("OM", 10)
	FIELD("UM", 11) FIELD("PM", 12) FIELD("FZ", 15)
	"</flags>\n"
	REGN("xmm0", 128, "vec128", 40) XMM(1) XMM(2) XMM(3) XMM(4) XMM(5) XMM(6) XMM(7) "\n"
	XMM(8) XMM(9) XMM(10) XMM(11) XMM(12) XMM(13) XMM(14) XMM(15) "\n"
	"<reg name=\"mxcsr\" bitsize=\"32\" type=\"i386_mxcsr\" group=\"vector\"/>\n"
	"</feature>\n"
	"<feature name=\"org.gnu.gdb.i386.segments\">\n"
	REGN("fs_base", 64, "int", 57) REG("gs_base", 64, "int") "\n"
	"</feature>\n"
	"</target>\n";
// clang-format on

const char *mote_gdb_target_xml(void)
{
	return target_xml;
}

/* ---- Registers: gdb's numbers, as in target_xml, to struct mote_cpu_state ---- */

enum reg_kind {
	K_GPR,   /* gpr[arg] */
	K_RIP,   /* rip */
	K_FLAGS, /* rflags, 32 bits */
	K_SEL,   /* a constant selector (arg); writes are ignored */
	K_FX,    /* fxsave[arg], `width` bytes, zero-extended to the register's size */
	K_FTAG,  /* the full tag word, from the abridged one at fxsave[4] */
	K_FOP,   /* fxsave[6], 11 bits */
	K_FSB,   /* fs_base */
	K_GSB,   /* gs_base */
};

struct reg_desc {
	uint8_t size, kind, width;
	uint16_t arg;
};

/* gdb register number -> where it lives; gpr[] is in hardware order. */
static const struct reg_desc regs[MOTE_GDB_NREGS] = {
    [0] = {8, K_GPR, 8, 0},               /* rax */
    [1] = {8, K_GPR, 8, 3},               /* rbx */
    [2] = {8, K_GPR, 8, 1},               /* rcx */
    [3] = {8, K_GPR, 8, 2},               /* rdx */
    [4] = {8, K_GPR, 8, 6},               /* rsi */
    [5] = {8, K_GPR, 8, 7},               /* rdi */
    [6] = {8, K_GPR, 8, 5},               /* rbp */
    [7] = {8, K_GPR, 8, 4},               /* rsp */
    [8] = {8, K_GPR, 8, 8},               /* r8 */
    [9] = {8, K_GPR, 8, 9},               /* r9 */
    [10] = {8, K_GPR, 8, 10},             /* r10 */
    [11] = {8, K_GPR, 8, 11},             /* r11 */
    [12] = {8, K_GPR, 8, 12},             /* r12 */
    [13] = {8, K_GPR, 8, 13},             /* r13 */
    [14] = {8, K_GPR, 8, 14},             /* r14 */
    [15] = {8, K_GPR, 8, 15},             /* r15 */
    [16] = {8, K_RIP, 8, 0},              /* rip */
    [17] = {4, K_FLAGS, 4, 0},            /* eflags */
    [18] = {4, K_SEL, 4, MOTE_SEL_UCODE}, /* cs */
    [19] = {4, K_SEL, 4, MOTE_SEL_UDATA}, /* ss */
    [20] = {4, K_SEL, 4, MOTE_SEL_UDATA}, /* ds */
    [21] = {4, K_SEL, 4, MOTE_SEL_UDATA}, /* es */
    [22] = {4, K_SEL, 4, MOTE_SEL_UDATA}, /* fs */
    [23] = {4, K_SEL, 4, MOTE_SEL_UDATA}, /* gs */
    [24] = {10, K_FX, 10, 32},            /* st0 */
    [25] = {10, K_FX, 10, 48},            /* st1 */
    [26] = {10, K_FX, 10, 64},            /* st2 */
    [27] = {10, K_FX, 10, 80},            /* st3 */
    [28] = {10, K_FX, 10, 96},            /* st4 */
    [29] = {10, K_FX, 10, 112},           /* st5 */
    [30] = {10, K_FX, 10, 128},           /* st6 */
    [31] = {10, K_FX, 10, 144},           /* st7 */
    [32] = {4, K_FX, 2, 0},               /* fctrl: FCW */
    [33] = {4, K_FX, 2, 2},               /* fstat: FSW */
    [34] = {4, K_FTAG, 4, 4},             /* ftag */
    [35] = {4, K_FX, 2, 12},              /* fiseg: FCS */
    [36] = {4, K_FX, 4, 8},               /* fioff: FIP */
    [37] = {4, K_FX, 2, 20},              /* foseg: FDS */
    [38] = {4, K_FX, 4, 16},              /* fooff: FDP */
    [39] = {4, K_FOP, 2, 6},              /* fop */
    [40] = {16, K_FX, 16, 160},           /* xmm0 */
    [41] = {16, K_FX, 16, 176},           /* xmm1 */
    [42] = {16, K_FX, 16, 192},           /* xmm2 */
    [43] = {16, K_FX, 16, 208},           /* xmm3 */
    [44] = {16, K_FX, 16, 224},           /* xmm4 */
    [45] = {16, K_FX, 16, 240},           /* xmm5 */
    [46] = {16, K_FX, 16, 256},           /* xmm6 */
    [47] = {16, K_FX, 16, 272},           /* xmm7 */
    [48] = {16, K_FX, 16, 288},           /* xmm8 */
    [49] = {16, K_FX, 16, 304},           /* xmm9 */
    [50] = {16, K_FX, 16, 320},           /* xmm10 */
    [51] = {16, K_FX, 16, 336},           /* xmm11 */
    [52] = {16, K_FX, 16, 352},           /* xmm12 */
    [53] = {16, K_FX, 16, 368},           /* xmm13 */
    [54] = {16, K_FX, 16, 384},           /* xmm14 */
    [55] = {16, K_FX, 16, 400},           /* xmm15 */
    [56] = {4, K_FX, 4, 24},              /* mxcsr */
    [57] = {8, K_FSB, 8, 0},              /* fs_base */
    [58] = {8, K_GSB, 8, 0},              /* gs_base */
};

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* FXSAVE keeps one "not empty" bit per physical register; gdb wants the x87 tag word, two
 * bits each: valid 0, zero 1, special 2, empty 3, classified as the Intel SDM's FXSAVE
 * description says. Physical register r is ST((r - TOP) mod 8), stored at 32 + 16 * ST. */
static uint32_t ftag_from_fxsave(const uint8_t *fx)
{
	unsigned top = (get_le(fx + 2, 2) >> 11) & 7;
	uint32_t tag = 0;
	for (unsigned r = 0; r < 8; r++) {
		uint32_t t = 3;
		if (fx[4] & (1u << r)) {
			const uint8_t *v = fx + 32 + 16 * ((r - top) & 7);
			uint64_t mant = get_le(v, 8);
			unsigned exp = get_le(v + 8, 2) & 0x7fff;
			if (exp == 0x7fff)
				t = 2;
			else if (exp == 0)
				t = mant ? 2 : 1;
			else
				t = (mant >> 63) ? 0 : 2; /* an unnormal lacks the integer bit */
		}
		tag |= t << (2 * r);
	}
	return tag;
}

static uint8_t ftag_to_abridged(uint32_t tag)
{
	uint8_t ab = 0;
	for (unsigned r = 0; r < 8; r++)
		if (((tag >> (2 * r)) & 3) != 3)
			ab |= (uint8_t)(1u << r);
	return ab;
}

static void reg_get(const struct mote_cpu_state *st, unsigned n, uint8_t *b)
{
	const struct reg_desc *d = &regs[n];
	memset(b, 0, d->size);
	switch (d->kind) {
	case K_GPR:
		put_le(b, st->gpr[d->arg], 8);
		break;
	case K_RIP:
		put_le(b, st->rip, 8);
		break;
	case K_FLAGS:
		put_le(b, (st->rflags & 0xffffffffu) | 2, 4); /* bit 1 always reads as 1 */
		break;
	case K_SEL:
		put_le(b, d->arg, 4);
		break;
	case K_FX:
		memcpy(b, st->fxsave + d->arg, d->width);
		break;
	case K_FTAG:
		put_le(b, ftag_from_fxsave(st->fxsave), 4);
		break;
	case K_FOP:
		put_le(b, get_le(st->fxsave + d->arg, 2) & 0x7ff, 4);
		break;
	case K_FSB:
		put_le(b, st->fs_base, 8);
		break;
	case K_GSB:
		put_le(b, st->gs_base, 8);
		break;
	}
}

static void reg_set(struct mote_cpu_state *st, unsigned n, const uint8_t *b)
{
	const struct reg_desc *d = &regs[n];
	switch (d->kind) {
	case K_GPR:
		st->gpr[d->arg] = get_le(b, 8);
		break;
	case K_RIP:
		st->rip = get_le(b, 8);
		break;
	case K_FLAGS: /* the struct holds only what a CPL 3 program controls */
		st->rflags = get_le(b, 4) & MOTE_RFLAGS_GUEST;
		break;
	case K_SEL:
		break;
	case K_FX:
		memcpy(st->fxsave + d->arg, b, d->width);
		break;
	case K_FTAG:
		st->fxsave[4] = ftag_to_abridged((uint32_t)get_le(b, 4));
		break;
	case K_FOP:
		put_le(st->fxsave + d->arg, get_le(b, 2) & 0x7ff, 2);
		break;
	case K_FSB:
		st->fs_base = get_le(b, 8);
		break;
	case K_GSB:
		st->gs_base = get_le(b, 8);
		break;
	}
}

/* ---- Output ---- */

static size_t out_room(const struct mote_gdb_buf *out)
{
	return out->len < MOTE_GDB_OUT_MAX ? MOTE_GDB_OUT_MAX - out->len : 0;
}

static void out_put(struct mote_gdb_buf *out, const void *p, size_t n)
{
	if (n > out_room(out)) {
		out->truncated = true;
		return;
	}
	memcpy(out->data + out->len, p, n);
	out->len += n;
}

/* A reply's data, built in place in s->last after the '$'. */
struct reply {
	uint8_t *p;
	size_t len, cap;
	bool over;
};

static void r_bytes(struct reply *r, const void *src, size_t n)
{
	if (r->over || n > r->cap - r->len) {
		r->over = true;
		return;
	}
	memcpy(r->p + r->len, src, n);
	r->len += n;
}

static void r_str(struct reply *r, const char *str)
{
	r_bytes(r, str, strlen(str));
}

static void r_hex(struct reply *r, const uint8_t *src, size_t n)
{
	if (r->over || n > (r->cap - r->len) / 2) {
		r->over = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		r->p[r->len++] = (uint8_t)hexdig[src[i] >> 4];
		r->p[r->len++] = (uint8_t)hexdig[src[i] & 15];
	}
}

static void r_byte_hex(struct reply *r, unsigned v)
{
	uint8_t b = (uint8_t)v;
	r_hex(r, &b, 1);
}

static struct reply reply_start(struct mote_gdb_session *s)
{
	return (struct reply){s->last + 1, 0, MOTE_GDB_PACKET_MAX, false};
}

/* Frames the reply and appends it to out. It cannot overflow by construction; if it did, an
 * error goes out rather than a cut packet. */
static void reply_send(struct mote_gdb_session *s, struct reply *r, struct mote_gdb_buf *out)
{
	if (r->over) {
		*r = reply_start(s);
		r_str(r, "E01");
	}
	uint8_t sum = 0;
	for (size_t i = 0; i < r->len; i++)
		sum = (uint8_t)(sum + r->p[i]);
	s->last[0] = '$';
	s->last[1 + r->len] = '#';
	s->last[2 + r->len] = (uint8_t)hexdig[sum >> 4];
	s->last[3 + r->len] = (uint8_t)hexdig[sum & 15];
	s->last_len = r->len + 4;
	out_put(out, s->last, s->last_len);
}

/* ---- Parsing a packet ---- */

struct cur {
	const uint8_t *p, *end;
};

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool c_end(const struct cur *c)
{
	return c->p == c->end;
}

static bool c_eat(struct cur *c, char ch)
{
	if (c->p < c->end && *c->p == (uint8_t)ch) {
		c->p++;
		return true;
	}
	return false;
}

/* Consumes `lit` if the packet continues with it. */
static bool c_lit(struct cur *c, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* The whole rest of the packet is `lit`. */
static bool c_is(struct cur *c, const char *lit)
{
	struct cur t = *c;
	return c_lit(&t, lit) && c_end(&t);
}

/* A hex number of at least one digit that fits 64 bits. */
static bool c_hex(struct cur *c, uint64_t *v)
{
	uint64_t x = 0;
	const uint8_t *start = c->p;
	int d;
	while (c->p < c->end && (d = hexval(*c->p)) >= 0) {
		if (x >> 60)
			return false;
		x = x << 4 | (uint64_t)d;
		c->p++;
	}
	*v = x;
	return c->p != start;
}

/* One part of a thread-id: -1 (all), 0 (any) or a positive hex number. */
static bool c_id(struct cur *c, int64_t *v)
{
	uint64_t u;
	if (c_eat(c, '-')) {
		*v = -1;
		return c_eat(c, '1');
	}
	if (!c_hex(c, &u))
		return false;
	*v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
	return true;
}

/* A thread-id, "TID" or (multiprocess syntax) "pPID[.TID]"; we are process 1, thread 1. */
static bool c_thread(struct cur *c, int64_t *pid, int64_t *tid)
{
	*pid = 1;
	*tid = -1;
	if (c_eat(c, 'p')) {
		if (!c_id(c, pid))
			return false;
		return !c_eat(c, '.') || c_id(c, tid);
	}
	return c_id(c, tid);
}

static bool id_covers_us(int64_t id)
{
	return id == -1 || id == 0 || id == 1;
}

/* ---- Packets ---- */

struct ctx {
	struct mote_gdb_session *s;
	struct reply r;
	struct cur c;
	bool send; /* false: no reply (k, and resumes, answered by the stop reply) */
};

static bool target_ready(const struct mote_gdb_session *s)
{
	const struct mote_gdb_target_ops *o = s->ops;
	return s->run == MOTE_GDB_STOPPED && o && o->get_regs && o->set_regs && o->read_mem &&
	       o->write_mem && o->insert_breakpoint && o->remove_breakpoint;
}

static enum mote_gdb_action err(struct ctx *x, const char *code)
{
	x->r = reply_start(x->s);
	r_str(&x->r, code);
	return MOTE_GDB_NONE;
}

static enum mote_gdb_action ok(struct ctx *x)
{
	r_str(&x->r, "OK");
	return MOTE_GDB_NONE;
}

static enum mote_gdb_action pkt_g(struct ctx *x)
{
	struct mote_cpu_state st;
	if (!c_end(&x->c))
		return err(x, "E01");
	if (!target_ready(x->s) || x->s->ops->get_regs(x->s->ctx, &st) < 0)
		return err(x, "E01");
	for (unsigned n = 0; n < MOTE_GDB_NREGS; n++) {
		uint8_t b[16];
		reg_get(&st, n, b);
		r_hex(&x->r, b, regs[n].size);
	}
	return MOTE_GDB_NONE;
}

/* Decodes exactly n bytes of hex ending the packet into dst. */
static bool c_hex_bytes(struct cur *c, uint8_t *dst, size_t n)
{
	if ((size_t)(c->end - c->p) / 2 != n || (size_t)(c->end - c->p) % 2)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(c->p[2 * i]), lo = hexval(c->p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	c->p = c->end;
	return true;
}

static enum mote_gdb_action pkt_G(struct ctx *x)
{
	struct mote_cpu_state st;
	uint8_t *b = x->s->mem;
	if (!c_hex_bytes(&x->c, b, MOTE_GDB_REGS_SIZE))
		return err(x, "E01");
	if (!target_ready(x->s) || x->s->ops->get_regs(x->s->ctx, &st) < 0)
		return err(x, "E01");
	for (unsigned n = 0; n < MOTE_GDB_NREGS; b += regs[n].size, n++)
		reg_set(&st, n, b);
	if (x->s->ops->set_regs(x->s->ctx, &st) < 0)
		return err(x, "E01");
	return ok(x);
}

static enum mote_gdb_action pkt_p(struct ctx *x, bool write)
{
	struct mote_cpu_state st;
	uint64_t n;
	uint8_t b[16];
	if (!c_hex(&x->c, &n) || n >= MOTE_GDB_NREGS)
		return err(x, "E01");
	if (write ? !c_eat(&x->c, '=') || !c_hex_bytes(&x->c, b, regs[n].size) : !c_end(&x->c))
		return err(x, "E01");
	if (!target_ready(x->s) || x->s->ops->get_regs(x->s->ctx, &st) < 0)
		return err(x, "E01");
	if (!write) {
		reg_get(&st, (unsigned)n, b);
		r_hex(&x->r, b, regs[n].size);
		return MOTE_GDB_NONE;
	}
	reg_set(&st, (unsigned)n, b);
	if (x->s->ops->set_regs(x->s->ctx, &st) < 0)
		return err(x, "E01");
	return ok(x);
}

/* "addr,len" then `sep` (or the end if sep is 0). */
static bool c_addr_len(struct cur *c, uint64_t *addr, uint64_t *len, char sep)
{
	if (!c_hex(c, addr) || !c_eat(c, ',') || !c_hex(c, len))
		return false;
	return sep ? c_eat(c, sep) : c_end(c);
}

static enum mote_gdb_action pkt_m(struct ctx *x)
{
	struct mote_gdb_session *s = x->s;
	uint64_t addr, len;
	if (!c_addr_len(&x->c, &addr, &len, 0))
		return err(x, "E01");
	if (!target_ready(s))
		return err(x, "E01");
	/* As much as fits a reply, and never past the top of the address space. */
	if (len > sizeof(s->mem))
		len = sizeof(s->mem);
	if (addr && len > 0 - addr)
		len = 0 - addr;
	size_t done = 0;
	if (len && s->ops->read_mem(s->ctx, addr, s->mem, len) == 0) {
		done = len;
	} else {
		/* Page by page up to the first hole: gdb takes a short read and asks again. */
		while (done < len) {
			uint64_t a = addr + done;
			size_t n = PAGE - (a & (PAGE - 1));
			if (n > len - done)
				n = len - done;
			if (s->ops->read_mem(s->ctx, a, s->mem + done, n) < 0)
				break;
			done += n;
		}
		if (len && !done)
			return err(x, "E14");
	}
	r_hex(&x->r, s->mem, done);
	return MOTE_GDB_NONE;
}

static enum mote_gdb_action write_mem(struct ctx *x, uint64_t addr, const uint8_t *p, size_t n)
{
	if (!target_ready(x->s))
		return err(x, "E01");
	if (n && addr + (n - 1) < addr)
		return err(x, "E01");
	if (n && x->s->ops->write_mem(x->s->ctx, addr, p, n) < 0)
		return err(x, "E14");
	return ok(x);
}

static enum mote_gdb_action pkt_M(struct ctx *x)
{
	uint64_t addr, len;
	if (!c_addr_len(&x->c, &addr, &len, ':') || len > sizeof(x->s->mem) ||
	    !c_hex_bytes(&x->c, x->s->mem, len))
		return err(x, "E01");
	return write_mem(x, addr, x->s->mem, len);
}

/* X: the data is binary, already unescaped on receipt. */
static enum mote_gdb_action pkt_X(struct ctx *x)
{
	uint64_t addr, len;
	if (!c_addr_len(&x->c, &addr, &len, ':') || len != (uint64_t)(x->c.end - x->c.p))
		return err(x, "E01");
	return write_mem(x, addr, x->c.p, len);
}

/* c/s [addr], C/S sig[;addr]: resume, from addr if given. */
static enum mote_gdb_action pkt_resume(struct ctx *x, bool step, bool sig)
{
	struct mote_gdb_session *s = x->s;
	struct mote_cpu_state st;
	uint64_t v, addr = 0;
	bool has_addr = false;
	if (sig && (!c_hex(&x->c, &v) || v > 0xff))
		return err(x, "E01");
	if (!c_end(&x->c)) {
		if ((sig && !c_eat(&x->c, ';')) || !c_hex(&x->c, &addr) || !c_end(&x->c))
			return err(x, "E01");
		has_addr = true;
	}
	if (!target_ready(s))
		return err(x, "E01");
	if (has_addr) {
		if (s->ops->get_regs(s->ctx, &st) < 0)
			return err(x, "E01");
		st.rip = addr;
		if (s->ops->set_regs(s->ctx, &st) < 0)
			return err(x, "E01");
	}
	x->send = false;
	s->run = MOTE_GDB_RUNNING;
	return step ? MOTE_GDB_STEP : MOTE_GDB_CONTINUE;
}

/* vCont;action[:thread]...: the first action for thread 1 (or all) wins; 't' does not resume
 * anything and is skipped. */
static enum mote_gdb_action pkt_vcont(struct ctx *x)
{
	char chosen = 0;
	do {
		uint64_t v;
		int64_t pid, tid;
		bool ours = true;
		if (x->c.p == x->c.end)
			return err(x, "E01");
		char a = (char)*x->c.p++;
		if (a == 'C' || a == 'S') {
			if (!c_hex(&x->c, &v) || v > 0xff)
				return err(x, "E01");
		} else if (a != 'c' && a != 's' && a != 't') {
			return err(x, "E01");
		}
		if (c_eat(&x->c, ':')) {
			if (!c_thread(&x->c, &pid, &tid))
				return err(x, "E01");
			ours = id_covers_us(pid) && id_covers_us(tid);
		}
		if (!chosen && ours && a != 't')
			chosen = a;
	} while (c_eat(&x->c, ';'));
	if (!c_end(&x->c) || !chosen)
		return err(x, "E01");
	if (!target_ready(x->s))
		return err(x, "E01");
	x->send = false;
	x->s->run = MOTE_GDB_RUNNING;
	return chosen == 's' || chosen == 'S' ? MOTE_GDB_STEP : MOTE_GDB_CONTINUE;
}

/* Z/z type,addr,kind: only software breakpoints (type 0) of kind 1 (the int3's length). */
static enum mote_gdb_action pkt_z(struct ctx *x, bool insert)
{
	struct mote_gdb_session *s = x->s;
	uint64_t type, addr, kind;
	if (!c_hex(&x->c, &type) || !c_eat(&x->c, ','))
		return err(x, "E01");
	if (type != 0)
		return MOTE_GDB_NONE; /* hardware breakpoints and watchpoints: unsupported */
	if (!c_addr_len(&x->c, &addr, &kind, 0) || kind != 1 || !target_ready(s))
		return err(x, "E01");
	int rc = insert ? s->ops->insert_breakpoint(s->ctx, addr)
	                : s->ops->remove_breakpoint(s->ctx, addr);
	return rc < 0 ? err(x, "E01") : ok(x);
}

/* qXfer:features:read:ANNEX:OFFSET,LENGTH -> 'm' or 'l' (the last piece), then binary data. */
static enum mote_gdb_action pkt_xfer_features(struct ctx *x)
{
	uint64_t off, len;
	if (!c_lit(&x->c, "target.xml:"))
		return err(x, "E00");
	if (!c_addr_len(&x->c, &off, &len, 0) || len == 0)
		return err(x, "E01");
	const size_t size = sizeof(target_xml) - 1;
	size_t i = off < size ? (size_t)off : size, n = 0;
	r_str(&x->r, "l");
	/* Escaped bytes take two: stop while the whole packet still fits. */
	while (i < size && n < len) {
		uint8_t b = (uint8_t)target_xml[i];
		bool esc = b == '$' || b == '#' || b == '}' || b == '*';
		if (x->r.len + (esc ? 2 : 1) > x->r.cap)
			break;
		if (esc) {
			x->r.p[x->r.len++] = '}';
			b ^= 0x20;
		}
		x->r.p[x->r.len++] = b;
		i++, n++;
	}
	if (i < size)
		x->r.p[0] = 'm';
	return MOTE_GDB_NONE;
}

static enum mote_gdb_action pkt_q(struct ctx *x)
{
	struct cur *c = &x->c;
	if (c_is(c, "qSupported") || c_lit(c, "qSupported:")) {
		r_str(&x->r, "PacketSize=4000;qXfer:features:read+;swbreak+;vContSupported+;"
		             "QStartNoAckMode+");
	} else if (c_lit(c, "qXfer:features:read:")) {
		return pkt_xfer_features(x);
	} else if (c_is(c, "qC")) {
		r_str(&x->r, "QC1");
	} else if (c_is(c, "qfThreadInfo")) {
		r_str(&x->r, "m1");
	} else if (c_is(c, "qsThreadInfo")) {
		r_str(&x->r, "l");
	} else if (c_is(c, "qAttached") || c_lit(c, "qAttached:")) {
		r_str(&x->r, "1");
	} else if (c_is(c, "qOffsets")) {
		r_str(&x->r, "Text=0;Data=0;Bss=0");
	} else if (c_lit(c, "qSymbol:")) {
		return ok(x); /* no symbols wanted */
	}
	return MOTE_GDB_NONE;
}

static enum mote_gdb_action dispatch(struct ctx *x)
{
	struct mote_gdb_session *s = x->s;
	struct cur *c = &x->c;
	int64_t pid, tid;
	if (c_end(c))
		return MOTE_GDB_NONE;
	switch (*c->p) {
	case '?':
		if (c_is(c, "?"))
			r_bytes(&x->r, s->stop, s->stop_len);
		return MOTE_GDB_NONE;
	case 'q':
		return pkt_q(x);
	case 'Q':
		if (c_is(c, "QStartNoAckMode")) {
			s->noack = true; /* this packet was acked already; its reply is not */
			return ok(x);
		}
		return MOTE_GDB_NONE;
	case 'H': /* one thread: whatever gdb selects is it */
		c->p++;
		if (c_eat(c, 'g') || c_eat(c, 'c'))
			return ok(x);
		return MOTE_GDB_NONE;
	case 'T':
		c->p++;
		if (!c_thread(c, &pid, &tid) || !c_end(c) || pid != 1 || tid != 1)
			return err(x, "E01");
		return ok(x);
	case 'k':
		if (!c_is(c, "k"))
			return MOTE_GDB_NONE;
		x->send = false;
		s->run = MOTE_GDB_ENDED;
		return MOTE_GDB_KILL;
	case 'D':
		if (!c_is(c, "D") && !c_lit(c, "D;"))
			return MOTE_GDB_NONE;
		s->run = MOTE_GDB_ENDED;
		ok(x);
		return MOTE_GDB_DETACH;
	case 'v':
		if (c_is(c, "vCont?")) {
			r_str(&x->r, "vCont;c;C;s;S");
			return MOTE_GDB_NONE;
		}
		if (c_lit(c, "vCont;"))
			return pkt_vcont(x);
		if (c_is(c, "vKill") || c_lit(c, "vKill;")) {
			s->run = MOTE_GDB_ENDED;
			ok(x);
			return MOTE_GDB_KILL;
		}
		return MOTE_GDB_NONE;
	}
	uint8_t op = *c->p++;
	switch (op) {
	case 'g':
		return pkt_g(x);
	case 'G':
		return pkt_G(x);
	case 'p':
	case 'P':
		return pkt_p(x, op == 'P');
	case 'm':
		return pkt_m(x);
	case 'M':
		return pkt_M(x);
	case 'X':
		return pkt_X(x);
	case 'c':
	case 's':
	case 'C':
	case 'S':
		return pkt_resume(x, op == 's' || op == 'S', op == 'C' || op == 'S');
	case 'Z':
	case 'z':
		return pkt_z(x, op == 'Z');
	}
	return MOTE_GDB_NONE; /* unknown: the empty reply */
}

/* ---- Framing ---- */

static void rx_start(struct mote_gdb_session *s)
{
	s->rx_state = RX_DATA;
	s->rx_escape = s->rx_bad = false;
	s->rx_sum = 0;
	s->rx_raw = 0;
	s->pkt_len = 0;
}

static enum mote_gdb_action rx_complete(struct mote_gdb_session *s, bool sum_ok,
                                        struct mote_gdb_buf *out)
{
	s->rx_state = RX_IDLE;
	/* Without acks the checksum may be ignored, and gdb would wait forever for an answer. */
	if (!s->noack) {
		out_put(out, sum_ok ? "+" : "-", 1);
		if (!sum_ok)
			return MOTE_GDB_NONE;
	}
	struct ctx x = {s, reply_start(s), {s->pkt, s->pkt + s->pkt_len}, true};
	enum mote_gdb_action a = MOTE_GDB_NONE;
	if (s->rx_bad || s->rx_escape) /* too long, run-length encoded, or a dangling '}' */
		err(&x, "E01");
	else
		a = dispatch(&x);
	if (x.send)
		reply_send(s, &x.r, out);
	return a;
}

/* A checksum that is not two hex digits: the packet is lost; a '$' starts the next one. */
static void rx_garbled(struct mote_gdb_session *s, uint8_t c, struct mote_gdb_buf *out)
{
	if (!s->noack)
		out_put(out, "-", 1);
	s->rx_state = RX_IDLE;
	if (c == '$')
		rx_start(s);
}

static enum mote_gdb_action rx_byte(struct mote_gdb_session *s, uint8_t c, struct mote_gdb_buf *out)
{
	int v;
	switch (s->rx_state) {
	case RX_DATA:
		if (c == '$') { /* the previous packet was cut short: take the new one */
			rx_start(s);
		} else if (c == '#') {
			s->rx_state = RX_SUM1;
		} else {
			s->rx_sum = (uint8_t)(s->rx_sum + c);
			/* Too long: keep summing up to '#' to answer it, store nothing. */
			if (++s->rx_raw > MOTE_GDB_PACKET_MAX) {
				s->rx_bad = true;
			} else if (s->rx_escape) {
				s->pkt[s->pkt_len++] = (uint8_t)(c ^ 0x20);
				s->rx_escape = false;
			} else if (c == '}') {
				s->rx_escape = true;
			} else if (c == '*') {
				s->rx_bad = true; /* run-length encoding: gdb never sends it */
			} else {
				s->pkt[s->pkt_len++] = c;
			}
		}
		return MOTE_GDB_NONE;
	case RX_SUM1:
		if ((v = hexval(c)) < 0) {
			rx_garbled(s, c, out);
		} else {
			s->rx_hi = (uint8_t)v;
			s->rx_state = RX_SUM2;
		}
		return MOTE_GDB_NONE;
	case RX_SUM2:
		if ((v = hexval(c)) < 0) {
			rx_garbled(s, c, out);
			return MOTE_GDB_NONE;
		}
		return rx_complete(s, (uint8_t)(s->rx_hi << 4 | v) == s->rx_sum, out);
	default: /* between packets: acks, a stray 0x03 while stopped, garbage */
		if (c == '$')
			rx_start(s);
		else if (c == '-' && !s->noack && s->last_len)
			out_put(out, s->last, s->last_len); /* gdb asks for the last packet again */
		return MOTE_GDB_NONE;
	}
}

void mote_gdb_session_init(struct mote_gdb_session *s, const struct mote_gdb_target_ops *ops,
                           void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->ctx = ctx;
	s->run = MOTE_GDB_STOPPED;
	s->rx_state = RX_IDLE;
	memcpy(s->stop, "T05thread:1;", 12);
	s->stop_len = 12;
}

enum mote_gdb_action mote_gdb_feed(struct mote_gdb_session *s, const uint8_t *in, size_t len,
                                   size_t *consumed, struct mote_gdb_buf *out)
{
	enum mote_gdb_action a = MOTE_GDB_NONE;
	size_t i = 0;
	if (!in || !out)
		len = 0;
	while (i < len && a == MOTE_GDB_NONE) {
		uint8_t c = in[i];
		if (s->run == MOTE_GDB_RUNNING) {
			i++;
			if (c == 0x03)
				a = MOTE_GDB_INTERRUPT;
			continue;
		}
		if (out_room(out) < STEP_ROOM)
			break;
		i++;
		a = rx_byte(s, c, out);
	}
	if (consumed)
		*consumed = i;
	return a;
}

/* Sends s->stop as a packet. */
static void send_stop(struct mote_gdb_session *s, struct mote_gdb_buf *out)
{
	struct reply r = reply_start(s);
	r_bytes(&r, s->stop, s->stop_len);
	reply_send(s, &r, out);
}

void mote_gdb_stop_reply(struct mote_gdb_session *s, int signo, bool swbreak,
                         struct mote_gdb_buf *out)
{
	struct mote_cpu_state st;
	/* Built in s->stop, which '?' repeats. */
	struct reply r = {(uint8_t *)s->stop, 0, sizeof(s->stop), false};
	r.p[r.len++] = 'T';
	r_byte_hex(&r, (unsigned)signo);
	r_str(&r, "thread:1;");
	if (s->ops && s->ops->get_regs && s->ops->get_regs(s->ctx, &st) == 0) {
		static const uint8_t expedite[] = {6, 7, 16}; /* rbp rsp rip: enough to unwind */
		for (size_t i = 0; i < sizeof(expedite); i++) {
			uint8_t b[8];
			r_byte_hex(&r, expedite[i]);
			r_str(&r, ":");
			reg_get(&st, expedite[i], b);
			r_hex(&r, b, 8);
			r_str(&r, ";");
		}
	}
	if (swbreak)
		r_str(&r, "swbreak:;");
	s->stop_len = r.len;
	s->run = MOTE_GDB_STOPPED;
	if (out)
		send_stop(s, out);
}

void mote_gdb_exit_reply(struct mote_gdb_session *s, int status, struct mote_gdb_buf *out)
{
	struct reply r = {(uint8_t *)s->stop, 0, sizeof(s->stop), false};
	r_str(&r, status >= 0 ? "W" : "X");
	r_byte_hex(&r, status >= 0 ? (unsigned)status : 0u - (unsigned)status);
	s->stop_len = r.len;
	s->run = MOTE_GDB_ENDED;
	if (out)
		send_stop(s, out);
}
