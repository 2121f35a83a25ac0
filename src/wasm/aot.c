/* Ahead-of-time translation of a module to C (the approach of wasm2c): one
 * C function per Wasm function, operand-stack slots and locals as C local
 * variables (so the C compiler allocates them to registers), blocks as
 * labels and gotos. The module is validated first (mw_module_load), so the
 * walk below trusts types and indices; it only tracks the operand stack's
 * types and the control stack. What compiled code reads of the runtime and
 * calls in the engine is aot_abi.h; the operators' exact semantics are its
 * inline helpers, shared with nothing else but written to the interpreter's
 * bounds.
 *
 * Linear memory is bounds-checked explicitly: each function caches the base
 * and size in locals (M, MS) and reloads them after anything that may grow
 * memory (calls, memory.grow). */
#include "leb.h"
#include "wasm_int.h"

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void put_n(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void put(sbuf *b, const char *s)
{
	put_n(b, s, strlen(s));
}

static void put_u(sbuf *b, uint64_t v, unsigned base)
{
	char tmp[24];
	int i = 24;
	do {
		tmp[--i] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	put_n(b, tmp + i, (size_t)(24 - i));
}

/* ---------------------------------------------------------------- state */

enum { K_FUNC, K_BLOCK, K_LOOP, K_IF };

typedef struct ctl {
	uint8_t kind;
	bool targeted; /* some branch goes to its end label */
	bool had_else;
	uint8_t single; /* storage for a one-valtype block type */
	uint32_t label;
	uint32_t base; /* stack height under the block's parameters */
	uint32_t np, nr;
	const uint8_t *pt, *rt;
} ctl;

typedef struct tr {
	const mw_module *m;
	const char *pfx;
	sbuf out;   /* the whole file */
	sbuf body;  /* the current function's statements */
	sbuf decls; /* the current function's extra declarations */
	const uint8_t *p, *end;
	/* operand stack */
	uint8_t *st;
	uint32_t h, st_cap;
	uint8_t *used; /* per depth: bit per class of slot variable declared */
	uint32_t used_cap;
	/* control stack */
	ctl *cs;
	uint32_t nc, cs_cap;
	uint32_t nlabels;
	bool dead;
	uint32_t dead_depth;
	bool calls; /* the function calls something: check the stack at entry */
	const mw_ftype *ftype; /* the function's type, for returns */
	uint8_t *ltypes;
	uint32_t nlocals;
	bool oom;
} tr;

static char cls(uint8_t t)
{
	switch (t) {
	case T_I32:
		return 'i';
	case T_F32:
		return 'f';
	case T_F64:
		return 'd';
	default:
		return 'l'; /* i64, funcref, externref */
	}
}

static const char *ctype(uint8_t t)
{
	switch (t) {
	case T_I32:
		return "uint32_t";
	case T_F32:
		return "float";
	case T_F64:
		return "double";
	default:
		return "uint64_t";
	}
}

static unsigned cls_bit(char c)
{
	return c == 'i' ? 1 : c == 'l' ? 2 : c == 'f' ? 4 : 8;
}

/* Formatting into `b`: %s string, %u uint32, %U uint64, %x uint32 hex,
 * %X uint64 hex, %S stack slot at depth (uint32), %T slot at depth
 * (uint32) holding a value of type (unsigned), %L local (uint32),
 * %P the identifier prefix. */
static void emitv(tr *t, sbuf *b, const char *fmt, va_list ap)
{
	for (const char *f = fmt; *f; f++) {
		const char *q = f;
		while (*q && *q != '%')
			q++;
		if (q != f) {
			put_n(b, f, (size_t)(q - f));
			f = q;
			if (!*f)
				break;
		}
		f++;
		switch (*f) {
		case 's':
			put(b, va_arg(ap, const char *));
			break;
		case 'u':
			put_u(b, va_arg(ap, uint32_t), 10);
			break;
		case 'U':
			put_u(b, va_arg(ap, uint64_t), 10);
			break;
		case 'x':
			put(b, "0x");
			put_u(b, va_arg(ap, uint32_t), 16);
			break;
		case 'X':
			put(b, "0x");
			put_u(b, va_arg(ap, uint64_t), 16);
			break;
		case 'S': {
			uint32_t d = va_arg(ap, uint32_t);
			char c = cls(t->st[d]);
			put(b, "s");
			put_u(b, d, 10);
			put_n(b, &c, 1);
			t->used[d] |= (uint8_t)cls_bit(c);
			break;
		}
		case 'T': { /* slot at a depth, as a value of the given type */
			uint32_t d = va_arg(ap, uint32_t);
			char c = cls((uint8_t)va_arg(ap, unsigned));
			put(b, "s");
			put_u(b, d, 10);
			put_n(b, &c, 1);
			t->used[d] |= (uint8_t)cls_bit(c);
			break;
		}
		case 'L':
			put(b, "l");
			put_u(b, va_arg(ap, uint32_t), 10);
			break;
		case 'P':
			put(b, t->pfx);
			break;
		case '%':
			put(b, "%");
			break;
		default:
			put(b, "?");
			break;
		}
	}
}

static void emit(tr *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emitv(t, &t->body, fmt, ap);
	va_end(ap);
}

static void out(tr *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emitv(t, &t->out, fmt, ap);
	va_end(ap);
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	uint32_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, (size_t)n * elem);
	if (!q)
		return false;
	if (elem == 1 && p)
		memset((uint8_t *)q + *cap, 0, n - *cap);
	*p = q;
	*cap = n;
	return true;
}

/* Push a value of type ty; returns its depth. */
static uint32_t push(tr *t, uint8_t ty)
{
	uint32_t st_cap = t->st_cap;
	if (!grow((void **)&t->st, &st_cap, t->h + 1, 1) ||
	    !grow((void **)&t->used, &t->used_cap, t->h + 1, 1)) {
		t->oom = true;
		return 0;
	}
	t->st_cap = st_cap;
	t->st[t->h] = ty;
	return t->h++;
}

static uint32_t pop(tr *t)
{
	return --t->h;
}

/* ------------------------------------------------------------ reading */

static uint32_t rd_u32(tr *t)
{
	uint64_t v = 0;
	mw_leb_read(&t->p, t->end, 32, 0, &v);
	return (uint32_t)v;
}

static uint64_t rd_s(tr *t, unsigned bits)
{
	uint64_t v = 0;
	mw_leb_read(&t->p, t->end, bits, 1, &v);
	return v;
}

static uint8_t rd_byte(tr *t)
{
	return t->p < t->end ? *t->p++ : 0;
}

/* The block type at t->p into c (np/nr/pt/rt). */
static void rd_blocktype(tr *t, ctl *c)
{
	c->np = c->nr = 0;
	c->pt = c->rt = NULL;
	if (t->p < t->end && *t->p == 0x40) {
		t->p++;
		return;
	}
	if (t->p < t->end && (mw_is_num(*t->p) || mw_is_ref(*t->p))) {
		c->single = *t->p++;
		c->nr = 1;
		c->rt = &c->single;
		return;
	}
	uint32_t ti = (uint32_t)rd_s(t, 33);
	const mw_ftype *ft = t->m->types[ti];
	c->np = ft->pub.nparams;
	c->nr = ft->pub.nresults;
	c->pt = ft->pub.params;
	c->rt = ft->pub.results;
}

/* Skip the immediates of `op` (dead code). */
static void skip_imm(tr *t, uint8_t op)
{
	switch (op) {
	case W_OP(br):
	case W_OP(br_if):
	case W_OP(call):
	case W_OP(local_get):
	case W_OP(local_set):
	case W_OP(local_tee):
	case W_OP(global_get):
	case W_OP(global_set):
	case W_OP(table_get):
	case W_OP(table_set):
	case W_OP(ref_func):
		rd_u32(t);
		break;
	case W_OP(br_table): {
		uint32_t n = rd_u32(t);
		for (uint32_t i = 0; i <= n; i++)
			rd_u32(t);
		break;
	}
	case W_OP(call_indirect):
		rd_u32(t);
		rd_u32(t);
		break;
	case W_OP(select_t): {
		uint32_t n = rd_u32(t);
		t->p += n;
		break;
	}
	case W_OP(memory_size):
	case W_OP(memory_grow):
	case W_OP(ref_null):
		t->p++;
		break;
	case W_OP(i32_const):
		rd_s(t, 32);
		break;
	case W_OP(i64_const):
		rd_s(t, 64);
		break;
	case W_OP(f32_const):
		t->p += 4;
		break;
	case W_OP(f64_const):
		t->p += 8;
		break;
	case W_OP(prefix_fc): {
		uint32_t sub = rd_u32(t);
		switch (sub) {
		case 8:
		case 12:
		case 14:
			rd_u32(t);
			rd_u32(t);
			break;
		case 9:
		case 13:
		case 15:
		case 16:
		case 17:
			rd_u32(t);
			break;
		case 10:
			t->p += 2;
			break;
		case 11:
			t->p += 1;
			break;
		default:
			break;
		}
		break;
	}
	default:
		if (op >= W_OP(i32_load) && op <= W_OP(i64_store32)) {
			rd_u32(t);
			rd_u32(t);
		}
		break;
	}
}

/* -------------------------------------------------------- conversions */

/* C expression turning u64 slot `a[k]` into a value of type ty. */
static void from_u64(tr *t, sbuf *b, uint8_t ty, const char *arr, uint32_t k)
{
	(void)t;
	switch (ty) {
	case T_I32:
		put(b, "(uint32_t)");
		break;
	case T_F32:
		put(b, "mw_u2f((uint32_t)");
		break;
	case T_F64:
		put(b, "mw_u2d(");
		break;
	default:
		put(b, "(");
		break;
	}
	put(b, arr);
	put(b, "[");
	put_u(b, k, 10);
	put(b, "]");
	if (ty != T_I32)
		put(b, ")");
}

static const char *to_u64_open(uint8_t ty)
{
	switch (ty) {
	case T_I32:
		return "(uint64_t)(";
	case T_F32:
		return "(uint64_t)mw_f2u(";
	case T_F64:
		return "mw_d2u(";
	default:
		return "(";
	}
}

/* ------------------------------------------------------ control flow */

/* Copy the top n values to depths base.. (a branch's values). */
static void copy_down(tr *t, uint32_t base, uint32_t n)
{
	uint32_t from = t->h - n;
	if (from == base)
		return;
	for (uint32_t k = 0; k < n; k++)
		emit(t, "%T = %S; ", base + k, (unsigned)t->st[from + k], from + k);
}

static void emit_return(tr *t);

/* Branch to the label `depth` levels out; values are on top of the stack. */
static void branch(tr *t, uint32_t depth)
{
	ctl *c = &t->cs[t->nc - 1 - depth];
	if (c->kind == K_FUNC) {
		emit_return(t);
		return;
	}
	copy_down(t, c->base, c->kind == K_LOOP ? c->np : c->nr);
	if (c->kind == K_LOOP) {
		emit(t, "goto C%u;\n", c->label);
	} else {
		c->targeted = true;
		emit(t, "goto L%u;\n", c->label);
	}
}

static void emit_return(tr *t)
{
	const mw_ftype *ft = t->ftype;
	uint32_t nr = ft->pub.nresults;
	uint32_t from = t->h - nr;
	if (nr == 0) {
		emit(t, "return;\n");
	} else if (nr == 1) {
		emit(t, "return %S;\n", from);
	} else {
		emit(t, "return (%Pr%u){", ft->canon);
		for (uint32_t k = 0; k < nr; k++)
			emit(t, "%s%S", k ? ", " : "", from + k);
		emit(t, "};\n");
	}
}

static void set_dead(tr *t)
{
	t->dead = true;
	t->dead_depth = 0;
}

static ctl *push_ctl(tr *t, uint8_t kind)
{
	if (!grow((void **)&t->cs, &t->cs_cap, t->nc + 1, sizeof(ctl))) {
		t->oom = true;
		return NULL;
	}
	ctl *c = &t->cs[t->nc++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->label = t->nlabels++;
	return c;
}

/* Declare the temporaries that keep an if's parameters for its else. */
static void save_if_params(tr *t, ctl *c)
{
	for (uint32_t k = 0; k < c->np; k++) {
		uint8_t ty = c->pt[k];
		sbuf *d = &t->decls;
		put(d, "\t");
		put(d, ctype(ty));
		put(d, " ip");
		put_u(d, c->label, 10);
		put(d, "_");
		put_u(d, k, 10);
		put(d, " = 0;\n");
		emit(t, "ip%u_%u = %S; ", c->label, k, c->base + k);
	}
}

static void restore_if_params(tr *t, ctl *c)
{
	for (uint32_t k = 0; k < c->np; k++) {
		t->st[c->base + k] = c->pt[k];
		emit(t, "%S = ip%u_%u; ", c->base + k, c->label, k);
	}
}

/* ------------------------------------------------------------ calls */

/* Results of a call with type ft: assign the call expression already
 * written as `call` to new stack slots. */
static void call_results(tr *t, const mw_ftype *ft)
{
	uint32_t nr = ft->pub.nresults;
	if (nr <= 1)
		return;
	for (uint32_t k = 0; k < nr; k++) {
		uint32_t d = push(t, ft->pub.results[k]);
		emit(t, " %S = r_.v%u;", d, k);
	}
	emit(t, " }");
}

static void emit_call(tr *t, const char *fn, uint32_t idx, const mw_ftype *ft, const char *extra)
{
	uint32_t np = ft->pub.nparams, nr = ft->pub.nresults;
	uint32_t from = t->h - np;
	t->h = from;
	if (nr == 1) {
		uint32_t d = push(t, ft->pub.results[0]);
		emit(t, "%S = ", d);
	} else if (nr > 1) {
		emit(t, "{ %Pr%u r_ = ", ft->canon);
	}
	emit(t, "%P%s%u(c%s", fn, idx, extra);
	/* the arguments were at from.. before the results were pushed */
	for (uint32_t k = 0; k < np; k++) {
		put(&t->body, ", s");
		put_u(&t->body, from + k, 10);
		char cc = cls(ft->pub.params[k]);
		put_n(&t->body, &cc, 1);
		t->used[from + k] |= (uint8_t)cls_bit(cc);
	}
	emit(t, ");");
	call_results(t, ft);
	emit(t, " M = c->mem->data; MS = c->mem->size;\n");
	t->calls = true;
}

/* ------------------------------------------------------------ numerics */

enum { A_I32 = T_I32, A_I64 = T_I64, A_F32 = T_F32, A_F64 = T_F64 };

typedef struct numop {
	uint8_t in, out, n;
	const char *fmt; /* $a, $b: the operands; $c: the instance */
} numop;

#define U1(o, i, r, f) [o] = {i, r, 1, f}
#define B2(o, i, r, f) [o] = {i, r, 2, f}
static const numop NUM[256] = {
    U1(0x45, A_I32, A_I32, "(uint32_t)($a == 0)"),
    B2(0x46, A_I32, A_I32, "(uint32_t)($a == $b)"),
    B2(0x47, A_I32, A_I32, "(uint32_t)($a != $b)"),
    B2(0x48, A_I32, A_I32, "(uint32_t)((int32_t)$a < (int32_t)$b)"),
    B2(0x49, A_I32, A_I32, "(uint32_t)($a < $b)"),
    B2(0x4a, A_I32, A_I32, "(uint32_t)((int32_t)$a > (int32_t)$b)"),
    B2(0x4b, A_I32, A_I32, "(uint32_t)($a > $b)"),
    B2(0x4c, A_I32, A_I32, "(uint32_t)((int32_t)$a <= (int32_t)$b)"),
    B2(0x4d, A_I32, A_I32, "(uint32_t)($a <= $b)"),
    B2(0x4e, A_I32, A_I32, "(uint32_t)((int32_t)$a >= (int32_t)$b)"),
    B2(0x4f, A_I32, A_I32, "(uint32_t)($a >= $b)"),
    U1(0x50, A_I64, A_I32, "(uint32_t)($a == 0)"),
    B2(0x51, A_I64, A_I32, "(uint32_t)($a == $b)"),
    B2(0x52, A_I64, A_I32, "(uint32_t)($a != $b)"),
    B2(0x53, A_I64, A_I32, "(uint32_t)((int64_t)$a < (int64_t)$b)"),
    B2(0x54, A_I64, A_I32, "(uint32_t)($a < $b)"),
    B2(0x55, A_I64, A_I32, "(uint32_t)((int64_t)$a > (int64_t)$b)"),
    B2(0x56, A_I64, A_I32, "(uint32_t)($a > $b)"),
    B2(0x57, A_I64, A_I32, "(uint32_t)((int64_t)$a <= (int64_t)$b)"),
    B2(0x58, A_I64, A_I32, "(uint32_t)($a <= $b)"),
    B2(0x59, A_I64, A_I32, "(uint32_t)((int64_t)$a >= (int64_t)$b)"),
    B2(0x5a, A_I64, A_I32, "(uint32_t)($a >= $b)"),
    B2(0x5b, A_F32, A_I32, "(uint32_t)($a == $b)"),
    B2(0x5c, A_F32, A_I32, "(uint32_t)($a != $b)"),
    B2(0x5d, A_F32, A_I32, "(uint32_t)($a < $b)"),
    B2(0x5e, A_F32, A_I32, "(uint32_t)($a > $b)"),
    B2(0x5f, A_F32, A_I32, "(uint32_t)($a <= $b)"),
    B2(0x60, A_F32, A_I32, "(uint32_t)($a >= $b)"),
    B2(0x61, A_F64, A_I32, "(uint32_t)($a == $b)"),
    B2(0x62, A_F64, A_I32, "(uint32_t)($a != $b)"),
    B2(0x63, A_F64, A_I32, "(uint32_t)($a < $b)"),
    B2(0x64, A_F64, A_I32, "(uint32_t)($a > $b)"),
    B2(0x65, A_F64, A_I32, "(uint32_t)($a <= $b)"),
    B2(0x66, A_F64, A_I32, "(uint32_t)($a >= $b)"),
    U1(0x67, A_I32, A_I32, "mw_clz32($a)"),
    U1(0x68, A_I32, A_I32, "mw_ctz32($a)"),
    U1(0x69, A_I32, A_I32, "mw_popcnt32($a)"),
    B2(0x6a, A_I32, A_I32, "$a + $b"),
    B2(0x6b, A_I32, A_I32, "$a - $b"),
    B2(0x6c, A_I32, A_I32, "$a * $b"),
    B2(0x6d, A_I32, A_I32, "mw_i32_div_s($a, $b)"),
    B2(0x6e, A_I32, A_I32, "mw_i32_div_u($a, $b)"),
    B2(0x6f, A_I32, A_I32, "mw_i32_rem_s($a, $b)"),
    B2(0x70, A_I32, A_I32, "mw_i32_rem_u($a, $b)"),
    B2(0x71, A_I32, A_I32, "$a & $b"),
    B2(0x72, A_I32, A_I32, "$a | $b"),
    B2(0x73, A_I32, A_I32, "$a ^ $b"),
    B2(0x74, A_I32, A_I32, "$a << ($b & 31)"),
    B2(0x75, A_I32, A_I32, "(uint32_t)((int32_t)$a >> ($b & 31))"),
    B2(0x76, A_I32, A_I32, "$a >> ($b & 31)"),
    B2(0x77, A_I32, A_I32, "mw_rotl32($a, $b)"),
    B2(0x78, A_I32, A_I32, "mw_rotr32($a, $b)"),
    U1(0x79, A_I64, A_I64, "mw_clz64($a)"),
    U1(0x7a, A_I64, A_I64, "mw_ctz64($a)"),
    U1(0x7b, A_I64, A_I64, "mw_popcnt64($a)"),
    B2(0x7c, A_I64, A_I64, "$a + $b"),
    B2(0x7d, A_I64, A_I64, "$a - $b"),
    B2(0x7e, A_I64, A_I64, "$a * $b"),
    B2(0x7f, A_I64, A_I64, "mw_i64_div_s($a, $b)"),
    B2(0x80, A_I64, A_I64, "mw_i64_div_u($a, $b)"),
    B2(0x81, A_I64, A_I64, "mw_i64_rem_s($a, $b)"),
    B2(0x82, A_I64, A_I64, "mw_i64_rem_u($a, $b)"),
    B2(0x83, A_I64, A_I64, "$a & $b"),
    B2(0x84, A_I64, A_I64, "$a | $b"),
    B2(0x85, A_I64, A_I64, "$a ^ $b"),
    B2(0x86, A_I64, A_I64, "$a << ($b & 63)"),
    B2(0x87, A_I64, A_I64, "(uint64_t)((int64_t)$a >> ($b & 63))"),
    B2(0x88, A_I64, A_I64, "$a >> ($b & 63)"),
    B2(0x89, A_I64, A_I64, "mw_rotl64($a, $b)"),
    B2(0x8a, A_I64, A_I64, "mw_rotr64($a, $b)"),
    U1(0x8b, A_F32, A_F32, "mw_f32_abs($a)"),
    U1(0x8c, A_F32, A_F32, "mw_f32_neg($a)"),
    U1(0x8d, A_F32, A_F32, "mw_f32_ceil($a)"),
    U1(0x8e, A_F32, A_F32, "mw_f32_floor($a)"),
    U1(0x8f, A_F32, A_F32, "mw_f32_trunc($a)"),
    U1(0x90, A_F32, A_F32, "mw_f32_nearest($a)"),
    U1(0x91, A_F32, A_F32, "mw_f32_sqrt($a)"),
    B2(0x92, A_F32, A_F32, "$a + $b"),
    B2(0x93, A_F32, A_F32, "$a - $b"),
    B2(0x94, A_F32, A_F32, "$a * $b"),
    B2(0x95, A_F32, A_F32, "$a / $b"),
    B2(0x96, A_F32, A_F32, "mw_f32_min($a, $b)"),
    B2(0x97, A_F32, A_F32, "mw_f32_max($a, $b)"),
    B2(0x98, A_F32, A_F32, "mw_f32_copysign($a, $b)"),
    U1(0x99, A_F64, A_F64, "mw_f64_abs($a)"),
    U1(0x9a, A_F64, A_F64, "mw_f64_neg($a)"),
    U1(0x9b, A_F64, A_F64, "mw_f64_ceil($a)"),
    U1(0x9c, A_F64, A_F64, "mw_f64_floor($a)"),
    U1(0x9d, A_F64, A_F64, "mw_f64_trunc($a)"),
    U1(0x9e, A_F64, A_F64, "mw_f64_nearest($a)"),
    U1(0x9f, A_F64, A_F64, "mw_f64_sqrt($a)"),
    B2(0xa0, A_F64, A_F64, "$a + $b"),
    B2(0xa1, A_F64, A_F64, "$a - $b"),
    B2(0xa2, A_F64, A_F64, "$a * $b"),
    B2(0xa3, A_F64, A_F64, "$a / $b"),
    B2(0xa4, A_F64, A_F64, "mw_f64_min($a, $b)"),
    B2(0xa5, A_F64, A_F64, "mw_f64_max($a, $b)"),
    B2(0xa6, A_F64, A_F64, "mw_f64_copysign($a, $b)"),
    U1(0xa7, A_I64, A_I32, "(uint32_t)$a"),
    U1(0xa8, A_F32, A_I32, "mw_i32_trunc_f32_s($a)"),
    U1(0xa9, A_F32, A_I32, "mw_i32_trunc_f32_u($a)"),
    U1(0xaa, A_F64, A_I32, "mw_i32_trunc_f64_s($a)"),
    U1(0xab, A_F64, A_I32, "mw_i32_trunc_f64_u($a)"),
    U1(0xac, A_I32, A_I64, "(uint64_t)(int64_t)(int32_t)$a"),
    U1(0xad, A_I32, A_I64, "(uint64_t)$a"),
    U1(0xae, A_F32, A_I64, "mw_i64_trunc_f32_s($a)"),
    U1(0xaf, A_F32, A_I64, "mw_i64_trunc_f32_u($a)"),
    U1(0xb0, A_F64, A_I64, "mw_i64_trunc_f64_s($a)"),
    U1(0xb1, A_F64, A_I64, "mw_i64_trunc_f64_u($a)"),
    U1(0xb2, A_I32, A_F32, "(float)(int32_t)$a"),
    U1(0xb3, A_I32, A_F32, "(float)$a"),
    U1(0xb4, A_I64, A_F32, "(float)(int64_t)$a"),
    U1(0xb5, A_I64, A_F32, "(float)$a"),
    U1(0xb6, A_F64, A_F32, "(float)$a"),
    U1(0xb7, A_I32, A_F64, "(double)(int32_t)$a"),
    U1(0xb8, A_I32, A_F64, "(double)$a"),
    U1(0xb9, A_I64, A_F64, "(double)(int64_t)$a"),
    U1(0xba, A_I64, A_F64, "(double)$a"),
    U1(0xbb, A_F32, A_F64, "(double)$a"),
    U1(0xbc, A_F32, A_I32, "mw_f2u($a)"),
    U1(0xbd, A_F64, A_I64, "mw_d2u($a)"),
    U1(0xbe, A_I32, A_F32, "mw_u2f($a)"),
    U1(0xbf, A_I64, A_F64, "mw_u2d($a)"),
    U1(0xc0, A_I32, A_I32, "(uint32_t)(int32_t)(int8_t)$a"),
    U1(0xc1, A_I32, A_I32, "(uint32_t)(int32_t)(int16_t)$a"),
    U1(0xc2, A_I64, A_I64, "(uint64_t)(int64_t)(int8_t)$a"),
    U1(0xc3, A_I64, A_I64, "(uint64_t)(int64_t)(int16_t)$a"),
    U1(0xc4, A_I64, A_I64, "(uint64_t)(int64_t)(int32_t)$a"),
};

static const char *const SAT[8] = {
    "mw_i32_trunc_sat_f32_s", "mw_i32_trunc_sat_f32_u", "mw_i32_trunc_sat_f64_s",
    "mw_i32_trunc_sat_f64_u", "mw_i64_trunc_sat_f32_s", "mw_i64_trunc_sat_f32_u",
    "mw_i64_trunc_sat_f64_s", "mw_i64_trunc_sat_f64_u",
};

static void slot_name(tr *t, char buf[24], uint32_t d)
{
	char c = cls(t->st[d]);
	char tmp[12];
	int i = 12;
	uint32_t v = d;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf[0] = 's';
	memcpy(buf + 1, tmp + i, (size_t)(12 - i));
	buf[1 + 12 - i] = c;
	buf[2 + 12 - i] = 0;
	t->used[d] |= (uint8_t)cls_bit(c);
}

static void emit_numop(tr *t, const numop *n)
{
	char an[24], bn[24] = "";
	if (n->n == 2)
		slot_name(t, bn, pop(t));
	slot_name(t, an, pop(t));
	uint32_t d = push(t, n->out);
	emit(t, "%S = ", d);
	for (const char *f = n->fmt; *f; f++) {
		if (f[0] == '$' && (f[1] == 'a' || f[1] == 'b')) {
			put(&t->body, f[1] == 'a' ? an : bn);
			f++;
		} else {
			put_n(&t->body, f, 1);
		}
	}
	emit(t, ";\n");
}

/* ------------------------------------------------------------ memory */

static void emit_load(tr *t, uint8_t op, uint32_t off)
{
	static const struct {
		uint8_t ty;
		const char *ct, *cast;
	} L[] = {
	    [0] = {T_I32, "uint32_t", ""},
	    [1] = {T_I64, "uint64_t", ""},
	    [2] = {T_F32, "float", ""},
	    [3] = {T_F64, "double", ""},
	    [4] = {T_I32, "int8_t", "(uint32_t)(int32_t)"},
	    [5] = {T_I32, "uint8_t", "(uint32_t)"},
	    [6] = {T_I32, "int16_t", "(uint32_t)(int32_t)"},
	    [7] = {T_I32, "uint16_t", "(uint32_t)"},
	    [8] = {T_I64, "int8_t", "(uint64_t)(int64_t)"},
	    [9] = {T_I64, "uint8_t", "(uint64_t)"},
	    [10] = {T_I64, "int16_t", "(uint64_t)(int64_t)"},
	    [11] = {T_I64, "uint16_t", "(uint64_t)"},
	    [12] = {T_I64, "int32_t", "(uint64_t)(int64_t)"},
	    [13] = {T_I64, "uint32_t", "(uint64_t)"},
	};
	unsigned k = op - W_OP(i32_load);
	uint32_t a = pop(t);
	/* type the address slot before the result may reuse its depth */
	emit(t, "{ uint32_t a_ = %S; ", a);
	uint32_t d = push(t, L[k].ty);
	emit(t, "%S = %sMW_LD(%s, a_, %xu); }\n", d, L[k].cast, L[k].ct, off);
}

static void emit_store(tr *t, uint8_t op, uint32_t off)
{
	static const char *const S[] = {"uint32_t", "uint64_t", "float",    "double",  "uint8_t",
	                                "uint16_t", "uint8_t",  "uint16_t", "uint32_t"};
	unsigned k = op - W_OP(i32_store);
	uint32_t v = pop(t);
	uint32_t a = pop(t);
	emit(t, "MW_ST(%s, %S, %xu, %S);\n", S[k], a, off, v);
}

/* table.get/set: open a block with T_ (the table) and i_ (the index, in
 * bounds or trapped); the caller closes it. */
static void open_table_access(tr *t, uint32_t tab, uint32_t index_slot)
{
	emit(t, "{ const mw_aot_table *T_ = c->tables[%u]; uint32_t i_ = %S; ", tab, index_slot);
	emit(t, "if (MW_AOT_UNLIKELY(i_ >= T_->size)) mw__aot_trap(MW_AOT_TABLE_OOB); ");
}

/* ------------------------------------------------------------ bodies */

static bool translate_body(tr *t, uint32_t fidx)
{
	const mw_module *m = t->m;
	uint32_t di = fidx - m->nfunc_imports;
	const mw_fcode *fc = &m->fcode[di];
	const mw_ftype *ft = m->types[fc->type];
	t->p = m->bytes + fc->body_off;
	t->end = t->p + fc->body_len;
	t->body.len = 0;
	t->decls.len = 0;
	t->h = 0;
	t->nc = 0;
	t->nlabels = 0;
	t->dead = false;
	t->calls = false;
	if (t->used)
		memset(t->used, 0, t->used_cap);

	/* locals */
	uint32_t np = ft->pub.nparams;
	uint32_t ngroups = rd_u32(t);
	uint64_t total = np;
	const uint8_t *save = t->p;
	for (uint32_t i = 0; i < ngroups; i++) {
		total += rd_u32(t);
		rd_byte(t);
	}
	t->p = save;
	uint8_t *lt = realloc(t->ltypes, total + 1);
	if (!lt)
		return false;
	t->ltypes = lt;
	t->nlocals = (uint32_t)total;
	memcpy(lt, ft->pub.params, np);
	uint32_t li = np;
	for (uint32_t i = 0; i < ngroups; i++) {
		uint32_t cnt = rd_u32(t);
		uint8_t ty = rd_byte(t);
		for (uint32_t k = 0; k < cnt; k++)
			lt[li++] = ty;
	}

	ctl *fcl = push_ctl(t, K_FUNC);
	if (!fcl)
		return false;
	t->ftype = ft;
	fcl->nr = ft->pub.nresults;
	fcl->rt = ft->pub.results;

	while (t->p < t->end && t->nc && !t->oom && !t->body.oom) {
		uint8_t op = rd_byte(t);
		if (t->dead) {
			if (op == W_OP(block) || op == W_OP(loop) || op == W_OP(if)) {
				ctl tmp;
				rd_blocktype(t, &tmp);
				t->dead_depth++;
				continue;
			}
			if (op == W_OP(end) && t->dead_depth) {
				t->dead_depth--;
				continue;
			}
			if (op == W_OP(else) && t->dead_depth)
				continue;
			if (op != W_OP(end) && op != W_OP(else)) {
				skip_imm(t, op);
				continue;
			}
		}
		switch (op) {
		case W_OP(unreachable):
			emit(t, "mw__aot_trap(MW_AOT_UNREACHABLE);\n");
			set_dead(t);
			break;
		case W_OP(nop):
			break;
		case W_OP(block):
		case W_OP(loop):
		case W_OP(if): {
			ctl tmp;
			rd_blocktype(t, &tmp);
			uint32_t cond = 0;
			if (op == W_OP(if))
				cond = pop(t);
			ctl *c = push_ctl(t, op == W_OP(block)  ? K_BLOCK
			                     : op == W_OP(loop) ? K_LOOP
			                                        : K_IF);
			if (!c)
				return false;
			c->np = tmp.np;
			c->nr = tmp.nr;
			c->single = tmp.single;
			c->pt = tmp.pt;
			c->rt = tmp.nr == 1 && tmp.rt == &tmp.single ? &c->single : tmp.rt;
			c->base = t->h - c->np;
			if (op == W_OP(loop)) {
				emit(t, "C%u:;\n", c->label);
			} else if (op == W_OP(if)) {
				save_if_params(t, c); /* before the branch: the else needs them */
				emit(t, "if (!%S) goto E%u;\n", cond, c->label);
			}
			break;
		}
		case W_OP(else): {
			ctl *c = &t->cs[t->nc - 1];
			if (!t->dead) { /* the then-branch's end */
				emit(t, "goto L%u;\n", c->label);
				c->targeted = true;
			}
			emit(t, "E%u:;\n", c->label);
			c->had_else = true;
			t->h = c->base + c->np;
			restore_if_params(t, c);
			t->dead = false;
			break;
		}
		case W_OP(end): {
			ctl *c = &t->cs[t->nc - 1];
			bool live = !t->dead || c->targeted;
			if (c->kind == K_FUNC) {
				if (!t->dead) {
					t->h = c->base + c->nr;
					emit_return(t);
				}
				t->nc--;
				break;
			}
			if (c->kind == K_IF && !c->had_else) {
				if (!t->dead)
					emit(t, "goto L%u;\n", c->label);
				emit(t, "E%u:;\n", c->label);
				restore_if_params(t, c);
				live = true;
			}
			emit(t, "L%u:;\n", c->label);
			t->h = c->base;
			for (uint32_t k = 0; k < c->nr; k++)
				push(t, c->rt[k]);
			t->nc--;
			t->dead = !live;
			t->dead_depth = 0;
			break;
		}
		case W_OP(br): {
			uint32_t depth = rd_u32(t);
			branch(t, depth);
			set_dead(t);
			break;
		}
		case W_OP(br_if): {
			uint32_t depth = rd_u32(t);
			uint32_t cond = pop(t);
			emit(t, "if (%S) { ", cond);
			branch(t, depth);
			emit(t, "}\n");
			break;
		}
		case W_OP(br_table): {
			uint32_t n = rd_u32(t);
			const uint8_t *vec = t->p;
			for (uint32_t i = 0; i <= n; i++)
				rd_u32(t);
			const uint8_t *after = t->p;
			uint32_t idx = pop(t);
			emit(t, "switch (%S) {\n", idx);
			t->p = vec;
			for (uint32_t i = 0; i <= n; i++) {
				uint32_t depth = rd_u32(t);
				if (i < n)
					emit(t, "case %u: ", i);
				else
					emit(t, "default: ");
				branch(t, depth);
			}
			t->p = after;
			emit(t, "}\n");
			set_dead(t);
			break;
		}
		case W_OP(return ):
			emit_return(t);
			set_dead(t);
			break;
		case W_OP(call): {
			uint32_t f = rd_u32(t);
			const mw_ftype *cft = m->types[m->func_types[f]];
			emit_call(t, f < m->nfunc_imports ? "im" : "f", f, cft, "");
			break;
		}
		case W_OP(call_indirect): {
			uint32_t ti = rd_u32(t);
			uint32_t tab = rd_u32(t);
			const mw_ftype *cft = m->types[ti];
			uint32_t e = pop(t);
			sbuf x = {0};
			put(&x, ", ");
			put_u(&x, tab, 10);
			put(&x, ", s");
			put_u(&x, e, 10);
			put(&x, "i");
			t->used[e] |= 1;
			if (x.oom)
				return false;
			emit_call(t, "ci", cft->canon, cft, x.p);
			free(x.p);
			break;
		}
		case W_OP(drop):
			pop(t);
			break;
		case W_OP(select):
		case W_OP(select_t): {
			if (op == W_OP(select_t)) {
				uint32_t n = rd_u32(t);
				t->p += n;
			}
			uint32_t cnd = pop(t);
			uint32_t b = pop(t);
			uint32_t a = t->h - 1;
			emit(t, "if (!%S) %S = %S;\n", cnd, a, b);
			break;
		}
		case W_OP(local_get): {
			uint32_t l = rd_u32(t);
			uint32_t d = push(t, t->ltypes[l]);
			emit(t, "%S = %L;\n", d, l);
			break;
		}
		case W_OP(local_set): {
			uint32_t l = rd_u32(t);
			uint32_t a = pop(t);
			emit(t, "%L = %S;\n", l, a);
			break;
		}
		case W_OP(local_tee): {
			uint32_t l = rd_u32(t);
			emit(t, "%L = %S;\n", l, t->h - 1);
			break;
		}
		case W_OP(global_get): {
			uint32_t g = rd_u32(t);
			uint8_t ty = m->globals[g].type.type;
			uint32_t d = push(t, ty);
			if (ty == T_I32)
				emit(t, "%S = (uint32_t)*c->globals[%u];\n", d, g);
			else if (ty == T_F32)
				emit(t, "%S = mw_u2f((uint32_t)*c->globals[%u]);\n", d, g);
			else if (ty == T_F64)
				emit(t, "%S = mw_u2d(*c->globals[%u]);\n", d, g);
			else
				emit(t, "%S = *c->globals[%u];\n", d, g);
			break;
		}
		case W_OP(global_set): {
			uint32_t g = rd_u32(t);
			uint8_t ty = m->globals[g].type.type;
			uint32_t a = pop(t);
			emit(t, "*c->globals[%u] = %s%S);\n", g, to_u64_open(ty), a);
			break;
		}
		case W_OP(table_get): {
			uint32_t tab = rd_u32(t);
			open_table_access(t, tab, pop(t));
			uint32_t d = push(t, m->tables[tab].elem);
			emit(t, "%S = T_->elems[i_]; }\n", d);
			break;
		}
		case W_OP(table_set): {
			uint32_t tab = rd_u32(t);
			uint32_t v = pop(t);
			open_table_access(t, tab, pop(t));
			emit(t, "T_->elems[i_] = %S; }\n", v);
			break;
		}
		case W_OP(memory_size): {
			t->p++;
			uint32_t d = push(t, T_I32);
			emit(t, "%S = (uint32_t)(MS >> 16);\n", d);
			break;
		}
		case W_OP(memory_grow): {
			t->p++;
			uint32_t a = t->h - 1;
			emit(t,
			     "%S = mw__aot_memory_grow(c, %S); M = c->mem->data; MS = "
			     "c->mem->size;\n",
			     a, a);
			break;
		}
		case W_OP(i32_const): {
			uint32_t v = (uint32_t)rd_s(t, 32);
			emit(t, "%S = %xu;\n", push(t, T_I32), v);
			break;
		}
		case W_OP(i64_const): {
			uint64_t v = rd_s(t, 64);
			emit(t, "%S = %Xull;\n", push(t, T_I64), v);
			break;
		}
		case W_OP(f32_const): {
			uint32_t v;
			memcpy(&v, t->p, 4);
			t->p += 4;
			emit(t, "%S = mw_u2f(%xu);\n", push(t, T_F32), v);
			break;
		}
		case W_OP(f64_const): {
			uint64_t v;
			memcpy(&v, t->p, 8);
			t->p += 8;
			emit(t, "%S = mw_u2d(%Xull);\n", push(t, T_F64), v);
			break;
		}
		case W_OP(ref_null): {
			uint8_t ty = rd_byte(t);
			emit(t, "%S = 0;\n", push(t, ty));
			break;
		}
		case W_OP(ref_is_null): {
			uint32_t a = pop(t);
			emit(t, "{ uint64_t r_ = %S; ", a);
			emit(t, "%S = (uint32_t)(r_ == 0); }\n", push(t, T_I32));
			break;
		}
		case W_OP(ref_func): {
			uint32_t f = rd_u32(t);
			emit(t, "%S = (uint64_t)(uintptr_t)c->funcs[%u];\n", push(t, T_FUNCREF), f);
			break;
		}
		case W_OP(prefix_fc): {
			uint32_t sub = rd_u32(t);
			if (sub < 8) {
				uint8_t o = sub < 4 ? T_I32 : T_I64;
				uint32_t a = pop(t);
				emit(t, "{ %s x_ = %S; ", ctype(t->st[a]), a);
				emit(t, "%S = %s(x_); }\n", push(t, o), SAT[sub]);
				break;
			}
			switch (sub) {
			case 8: { /* memory.init */
				uint32_t seg = rd_u32(t);
				t->p++;
				uint32_t n = pop(t), s = pop(t), d = pop(t);
				emit(t, "mw__aot_memory_init(c, %u, %S, %S, %S);\n", seg, d, s, n);
				break;
			}
			case 9:
				emit(t, "mw__aot_data_drop(c, %u);\n", rd_u32(t));
				break;
			case 10: { /* memory.copy */
				t->p += 2;
				uint32_t n = pop(t), s = pop(t), d = pop(t);
				emit(t, "{ uint64_t d_ = %S, s_ = %S, n_ = %S; ", d, s, n);
				emit(t, "if (MW_AOT_UNLIKELY(s_ + n_ > MS || d_ + n_ > MS)) "
				        "mw__aot_trap(MW_AOT_MEMORY_OOB); ");
				emit(t, "__builtin_memmove(M + d_, M + s_, n_); }\n");
				break;
			}
			case 11: { /* memory.fill */
				t->p += 1;
				uint32_t n = pop(t), v = pop(t), d = pop(t);
				emit(t, "{ uint64_t d_ = %S, n_ = %S; ", d, n);
				emit(t, "if (MW_AOT_UNLIKELY(d_ + n_ > MS)) mw__aot_trap("
				        "MW_AOT_MEMORY_OOB); ");
				emit(t, "__builtin_memset(M + d_, (int)%S, n_); }\n", v);
				break;
			}
			case 12: { /* table.init */
				uint32_t seg = rd_u32(t), tab = rd_u32(t);
				uint32_t n = pop(t), s = pop(t), d = pop(t);
				emit(t, "mw__aot_table_init(c, %u, %u, %S, %S, %S);\n", tab, seg, d,
				     s, n);
				break;
			}
			case 13:
				emit(t, "mw__aot_elem_drop(c, %u);\n", rd_u32(t));
				break;
			case 14: { /* table.copy */
				uint32_t dt = rd_u32(t), stb = rd_u32(t);
				uint32_t n = pop(t), s = pop(t), d = pop(t);
				emit(t, "mw__aot_table_copy(c, %u, %u, %S, %S, %S);\n", dt, stb, d,
				     s, n);
				break;
			}
			case 15: { /* table.grow */
				uint32_t tab = rd_u32(t);
				uint32_t n = pop(t), v = pop(t);
				emit(t, "{ uint64_t v_ = %S; uint32_t n_ = %S; ", v, n);
				emit(t, "%S = mw__aot_table_grow(c, %u, v_, n_); }\n",
				     push(t, T_I32), tab);
				break;
			}
			case 16: { /* table.size */
				uint32_t tab = rd_u32(t);
				emit(t, "%S = c->tables[%u]->size;\n", push(t, T_I32), tab);
				break;
			}
			case 17: { /* table.fill */
				uint32_t tab = rd_u32(t);
				uint32_t n = pop(t), v = pop(t), i = pop(t);
				emit(t, "mw__aot_table_fill(c, %u, %S, %S, %S);\n", tab, i, v, n);
				break;
			}
			default:
				return false;
			}
			break;
		}
		default:
			if (op >= W_OP(i32_load) && op <= W_OP(i64_load32_u)) {
				rd_u32(t);
				emit_load(t, op, rd_u32(t));
			} else if (op >= W_OP(i32_store) && op <= W_OP(i64_store32)) {
				rd_u32(t);
				emit_store(t, op, rd_u32(t));
			} else if (NUM[op].fmt) {
				emit_numop(t, &NUM[op]);
			} else {
				return false; /* validated modules have no other opcodes */
			}
			break;
		}
	}
	return !t->oom && !t->body.oom && !t->decls.oom;
}

/* ---------------------------------------------------------- the file */

static void out_sig(tr *t, const char *kind, uint32_t idx, const mw_ftype *ft, bool names)
{
	uint32_t nr = ft->pub.nresults;
	if (nr == 0)
		out(t, "void");
	else if (nr == 1)
		out(t, "%s", ctype(ft->pub.results[0]));
	else
		out(t, "%Pr%u", ft->canon);
	out(t, " %P%s%u(const mw_aot_inst *c", kind, idx);
	if (kind[0] == 'c' && kind[1] == 'i')
		out(t, ", uint32_t tab, uint32_t elem");
	for (uint32_t k = 0; k < ft->pub.nparams; k++) {
		out(t, ", %s", ctype(ft->pub.params[k]));
		if (names)
			out(t, " l%u", k);
	}
	out(t, ")");
}

/* Marshal l0.. into a_[] and call `how`, then return from r_[]. */
static void out_slow_call(tr *t, const mw_ftype *ft, const char *how)
{
	uint32_t np = ft->pub.nparams, nr = ft->pub.nresults;
	out(t, "\tuint64_t a_[%u], r_[%u];\n", np + 1, nr + 1);
	for (uint32_t k = 0; k < np; k++)
		out(t, "\ta_[%u] = %sl%u);\n", k, to_u64_open(ft->pub.params[k]), k);
	out(t, "\t%s;\n", how);
	if (nr == 1) {
		out(t, "\treturn ");
		from_u64(t, &t->out, ft->pub.results[0], "r_", 0);
		out(t, ";\n");
	} else if (nr > 1) {
		out(t, "\treturn (%Pr%u){", ft->canon);
		for (uint32_t k = 0; k < nr; k++) {
			out(t, "%s", k ? ", " : "");
			from_u64(t, &t->out, ft->pub.results[k], "r_", k);
		}
		out(t, "};\n");
	}
}

static bool translate_module(tr *t, const mw_aot_options *opt)
{
	const mw_module *m = t->m;
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	out(t, "/* Generated by mote's Wasm ahead-of-time translator. */\n");
	out(t, "#include \"aot_abi.h\"\n\n");

	/* multi-value result structs, one per canonical type */
	for (uint32_t i = 0; i < m->ntypes; i++) {
		const mw_ftype *ft = m->types[i];
		if (ft->canon != i || ft->pub.nresults < 2)
			continue;
		out(t, "typedef struct { ");
		for (uint32_t k = 0; k < ft->pub.nresults; k++)
			out(t, "%s v%u; ", ctype(ft->pub.results[k]), k);
		out(t, "} %Pr%u;\n", i);
	}
	/* prototypes: with parts, functions are shared between them (hidden
	 * from anything outside the guest) */
	unsigned parts = opt && opt->parts > 1 ? opt->parts : 1;
	unsigned part = parts > 1 ? opt->part : 0;
	for (uint32_t f = m->nfunc_imports; f < m->nfuncs; f++) {
		out(t, parts > 1 ? "__attribute__((visibility(\"hidden\"))) " : "static ");
		out_sig(t, "f", f, m->types[m->func_types[f]], false);
		out(t, ";\n");
	}
	/* imported functions: through the engine */
	for (uint32_t f = 0; f < m->nfunc_imports; f++) {
		const mw_ftype *ft = m->types[m->func_types[f]];
		out(t, "__attribute__((unused)) static ");
		out_sig(t, "im", f, ft, true);
		out(t, "\n{\n");
		sbuf how = {0};
		put(&how, "mw__aot_call(c, ");
		put_u(&how, f, 10);
		put(&how, ", a_, r_)");
		if (how.oom)
			return false;
		out_slow_call(t, ft, how.p);
		free(how.p);
		out(t, "}\n");
	}
	/* call_indirect, one per canonical type: direct when the callee is
	 * compiled code of this module with this type, else through the engine */
	for (uint32_t i = 0; i < m->ntypes; i++) {
		const mw_ftype *ft = m->types[i];
		if (ft->canon != i)
			continue;
		out(t, "__attribute__((unused)) static ");
		out_sig(t, "ci", i, ft, true);
		out(t, "\n{\n\tconst mw_aot_table *T_ = c->tables[tab];\n");
		out(t, "\tif (MW_AOT_UNLIKELY(elem >= T_->size))\n"
		       "\t\tmw__aot_trap(MW_AOT_UNDEFINED_ELEMENT);\n");
		out(t,
		    "\tconst mw_aot_func *F_ = (const mw_aot_func *)(uintptr_t)T_->elems[elem];\n");
		out(t, "\tif (MW_AOT_UNLIKELY(!F_))\n"
		       "\t\tmw__aot_trap(MW_AOT_UNINITIALIZED_ELEMENT);\n");
		out(t, "\tif (MW_AOT_LIKELY(F_->key == c->key && F_->canon == %u)) {\n", i);
		out(t, "\t\t");
		if (ft->pub.nresults)
			out(t, "return ");
		out(t, "((");
		uint32_t nr = ft->pub.nresults;
		if (nr == 0)
			out(t, "void");
		else if (nr == 1)
			out(t, "%s", ctype(ft->pub.results[0]));
		else
			out(t, "%Pr%u", i);
		out(t, " (*)(const mw_aot_inst *");
		for (uint32_t k = 0; k < ft->pub.nparams; k++)
			out(t, ", %s", ctype(ft->pub.params[k]));
		out(t, "))F_->direct)(F_->inst");
		for (uint32_t k = 0; k < ft->pub.nparams; k++)
			out(t, ", l%u", k);
		out(t, ");\n");
		if (!nr)
			out(t, "\t\treturn;\n");
		out(t, "\t}\n");
		sbuf how = {0};
		put(&how, "mw__aot_call_indirect(c, tab, elem, ");
		put_u(&how, i, 10);
		put(&how, ", a_, r_)");
		if (how.oom)
			return false;
		out_slow_call(t, ft, how.p);
		free(how.p);
		out(t, "}\n");
	}
	/* the functions */
	for (uint32_t f = m->nfunc_imports; f < m->nfuncs; f++) {
		if (f % parts != part)
			continue;
		const mw_ftype *ft = m->types[m->func_types[f]];
		if (!translate_body(t, f))
			return false;
		out(t, parts > 1 ? "\n" : "\nstatic ");
		out_sig(t, "f", f, ft, true);
		out(t, "\n{\n");
		for (uint32_t l = ft->pub.nparams; l < t->nlocals; l++)
			out(t, "\t%s l%u = 0;\n", ctype(t->ltypes[l]), l);
		for (uint32_t d = 0; d < t->used_cap; d++) {
			static const struct {
				unsigned bit;
				const char *ct;
				char c;
			} K[] = {{1, "uint32_t", 'i'},
			         {2, "uint64_t", 'l'},
			         {4, "float", 'f'},
			         {8, "double", 'd'}};
			for (unsigned k = 0; k < 4; k++)
				if (t->used[d] & K[k].bit) {
					char cc[2] = {K[k].c, 0};
					out(t, "\t%s s%u%s = 0;\n", K[k].ct, d, cc);
				}
		}
		if (t->decls.len)
			put(&t->out, t->decls.p);
		out(t, "\tuint8_t *M = c->mem->data;\n\tuint64_t MS = c->mem->size;\n");
		out(t, "\t(void)M;\n\t(void)MS;\n");
		if (t->calls)
			out(t, "\tMW_AOT_STACK_CHECK(c);\n");
		if (t->body.len)
			put(&t->out, t->body.p);
		out(t, "}\n");
		if (t->out.oom)
			return false;
	}
	if (part != 0)
		return !t->out.oom;
	/* entries for the functions the engine may call */
	bool *entry = calloc(ndef + 1, 1);
	if (!entry)
		return false;
	for (uint32_t i = 0; i < ndef; i++)
		entry[i] = m->func_refd && m->func_refd[m->nfunc_imports + i];
	if (m->has_start && m->start >= m->nfunc_imports)
		entry[m->start - m->nfunc_imports] = true;
	for (uint32_t i = 0; i < ndef; i++) {
		if (!entry[i])
			continue;
		uint32_t f = m->nfunc_imports + i;
		const mw_ftype *ft = m->types[m->func_types[f]];
		out(t,
		    "\nstatic void %Pe%u(const mw_aot_inst *c, const uint64_t *a, uint64_t "
		    "*r)\n{\n",
		    f);
		uint32_t nr = ft->pub.nresults;
		out(t, "\t");
		if (nr == 1)
			out(t, "%s x_ = ", ctype(ft->pub.results[0]));
		else if (nr > 1)
			out(t, "%Pr%u x_ = ", ft->canon);
		out(t, "%Pf%u(c", f);
		for (uint32_t k = 0; k < ft->pub.nparams; k++) {
			out(t, ", ");
			from_u64(t, &t->out, ft->pub.params[k], "a", k);
		}
		out(t, ");\n");
		if (nr == 0)
			out(t, "\t(void)r;\n");
		for (uint32_t k = 0; k < nr; k++) {
			out(t, "\tr[%u] = %sx_", k, to_u64_open(ft->pub.results[k]));
			if (nr > 1)
				out(t, ".v%u", k);
			out(t, ");\n");
		}
		out(t, "}\n");
	}
	out(t, "\nstatic const mw_aot_entry %Pentries[%u] = {", ndef + 1);
	for (uint32_t i = 0; i < ndef; i++) {
		if (entry[i])
			out(t, "%s%Pe%u", i ? ", " : "", m->nfunc_imports + i);
		else
			out(t, "%s0", i ? ", " : "");
	}
	out(t, "%s0};\n", ndef ? ", " : "");
	free(entry);
	out(t, "static const void *const %Pdirect[%u] = {", ndef + 1);
	for (uint32_t i = 0; i < ndef; i++)
		out(t, "%s(const void *)%Pf%u", i ? ", " : "", m->nfunc_imports + i);
	out(t, "%s0};\n", ndef ? ", " : "");
	if (opt && opt->bytes_path) {
		/* The binary, for a guest that starts the module by itself. */
		out(t, "extern const uint8_t %Pbytes[];\n");
		out(t,
		    "__asm__(\".section .rodata\\n.balign 16\\n%Pbytes:\\n.incbin \\\"%s\\\"\\n"
		    ".previous\\n\");\n",
		    opt->bytes_path);
	}
	out(t, "const mw_aot_module %s = {MW_AOT_ABI, %u, %Uull, %Xull, %Pentries, %Pdirect, ",
	    opt && opt->symbol ? opt->symbol : "mw_aot_module_def", ndef, (uint64_t)m->len,
	    mw_aot_hash(m->bytes, m->len));
	if (opt && opt->bytes_path)
		out(t, "%Pbytes};\n");
	else
		out(t, "0};\n");
	return !t->out.oom;
}

int mw_aot_translate(const uint8_t *bytes, size_t len, const mw_aot_options *opt, char **out_c,
                     size_t *out_len, mw_error *err)
{
	*out_c = NULL;
	*out_len = 0;
	if (opt && opt->parts > 1 && opt->part >= opt->parts) {
		mw__errf(err, MW_ERR_ARG, 0, "part %u of %u", opt->part, opt->parts);
		return -1;
	}
	if (opt && opt->bytes_path) {
		for (const char *q = opt->bytes_path; *q; q++)
			if (*q == '"' || *q == '\\' || *q == '\n' || (unsigned char)*q < 0x20) {
				mw__errf(err, MW_ERR_ARG, 0,
				         "unusable path for the module's bytes");
				return -1;
			}
	}
	mw_module *m;
	if (mw_module_load(bytes, len, NULL, &m, err))
		return -1;
	tr t;
	memset(&t, 0, sizeof(t));
	t.m = m;
	t.pfx = opt && opt->prefix ? opt->prefix : "w_";
	bool ok = translate_module(&t, opt);
	/* the descriptor's name defaults to the prefix's */
	free(t.body.p);
	free(t.decls.p);
	free(t.st);
	free(t.used);
	free(t.cs);
	free(t.ltypes);
	mw_module_free(m);
	if (!ok) {
		free(t.out.p);
		mw__errf(err, MW_ERR_NOMEM, 0, "out of memory translating the module");
		return -1;
	}
	*out_c = t.out.p;
	*out_len = t.out.len;
	return 0;
}
