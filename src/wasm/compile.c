/* mote wasm engine: function body validation + translation to the internal
 * register code executed by interp.c.
 *
 * One pass over each body both validates it (operand/control stacks as in the
 * spec's validation algorithm) and emits code. Every operand stack height h
 * has a fixed frame slot ("home", index nlocals + h), so stack instructions
 * become three-address instructions on frame slots. To avoid copies, the
 * compile-time operand stack holds virtual entries: a value that is still in
 * local x (after local.get) or a constant (after *.const) is only materialized
 * into its home slot when something needs it there (control flow joins,
 * calls, a later write to x). Further peepholes:
 *   - `op ...; local.set x` retargets op's destination to x;
 *   - compare + br_if / if become one compare-and-branch instruction;
 *   - integer binops with a constant operand use immediate forms.
 */
#include "leb.h"
#include "wasm_int.h"

_Static_assert(sizeof(void *) == 8, "64-bit targets only");

enum { K_SLOT, K_LOCAL, K_CONST };
#define NONE UINT32_MAX

typedef struct vent {
	uint8_t type;
	uint8_t kind;
	uint32_t local;
	uint64_t k;
	uint32_t prev; /* K_LOCAL: next lower stack entry referring to the same local */
} vent;

enum { C_FUNC, C_BLOCK, C_LOOP, C_IF, C_ELSE };

typedef struct ctrl {
	uint8_t kind;
	bool unreachable; /* validation: rest of the block is polymorphic */
	bool dead;        /* emission: the whole block is dead code */
	uint32_t height;
	uint32_t nin, nout;
	const uint8_t *in, *out;
	uint32_t label;      /* loop header (word index) */
	uint32_t patch;      /* forward branch patch list */
	uint32_t else_patch; /* if: jump to the else arm */
	uint32_t fuel_word;  /* loop: word holding the fuel cost */
	uint32_t saved_icnt;
} ctrl;

typedef struct comp {
	mw_module *m;
	mw_error *err;
	const uint8_t *base, *p, *end;
	const void *const *L;
	bool fuel;
	bool oom;

	const mw_ftype *ft;
	uint32_t nparams, nlocals; /* nlocals includes params */
	uint8_t *ltypes;
	uint32_t *lhead;   /* per local: topmost stack entry referring to it, or NONE */
	uint32_t lref_total;
	uint32_t *lstk;    /* stack indexes of K_LOCAL entries, in push order (lazy) */
	uint32_t lstk_n;
	uint32_t lcap;

	vent *vs;
	uint32_t vh, vcap, vmax;
	ctrl *cs;
	uint32_t ch, ccap;

	uint32_t *code;
	size_t clen, ccap_code;
	uint32_t scratch[16];

	/* peephole state */
	size_t last_end, last_start, cur_start, prev_start;
	uint32_t last_dst, last_h;
	int last_op, cur_op, prev_op;
	size_t mov_start, mov_end; /* last plain mov, for mov pairing */
	size_t label_pos;          /* position of the last jump target */
	size_t cmp_prev_start;     /* instruction before the compare */
	int cmp_prev_op;
	/* locals known to still hold their initial zero: zgen[x] == zcur */
	uint32_t *zgen;
	uint32_t zcur;
	size_t cmp_start, cmp_end;
	uint32_t cmp_h;
	int cmp_k;
	bool cmp_64, cmp_imm;
	uint32_t cmp_a;
	uint64_t cmp_b;

	uint32_t icnt;
	uint32_t func_fuel_word;
	uint32_t *stubs;
	uint32_t stubs_cap;
} comp;

static const uint8_t VT[256] = {
	[T_I32] = T_I32,	 [T_I64] = T_I64,	  [T_F32] = T_F32,
	[T_F64] = T_F64,	 [T_FUNCREF] = T_FUNCREF, [T_EXTERNREF] = T_EXTERNREF,
};

/* ---------------------------------------------------------------- errors */

static bool fail(comp *c, mw_errcode code, const char *msg)
{
	mw__errf(c->err, code, (uint32_t)(c->p - c->base), "%s", msg);
	return false;
}
#define INVALID(msg) return fail(c, MW_ERR_INVALID, msg)
#define MALFORMED(msg) return fail(c, MW_ERR_MALFORMED, msg)

/* ---------------------------------------------------------------- reading */

static bool r_byte(comp *c, uint8_t *b)
{
	if (c->p >= c->end)
		MALFORMED("unexpected end of section or function");
	*b = *c->p++;
	return true;
}

static bool r_uleb(comp *c, unsigned bits, uint64_t *out)
{
	mw_leb_status st = mw_leb_read(&c->p, c->end, bits, 0, out);
	if (st)
		MALFORMED(mw_leb_message(st));
	return true;
}

static bool r_u32(comp *c, uint32_t *out)
{
	uint64_t v;
	if (!r_uleb(c, 32, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool r_sleb(comp *c, unsigned bits, int64_t *out)
{
	uint64_t v;
	mw_leb_status st = mw_leb_read(&c->p, c->end, bits, 1, &v);
	if (st)
		MALFORMED(mw_leb_message(st));
	*out = (int64_t)v;
	return true;
}

/* ------------------------------------------------------------------ code */

static bool reserve(comp *c, size_t n)
{
	if (c->clen + n <= c->ccap_code)
		return true;
	size_t nc = c->ccap_code ? c->ccap_code * 2 : 4096;
	while (nc < c->clen + n)
		nc *= 2;
	uint32_t *p = realloc(c->code, nc * sizeof *p);
	if (!p) {
		c->oom = true;
		return false;
	}
	c->code = p;
	c->ccap_code = nc;
	return true;
}

/* Emit handler for op plus room for nw operand words; returns the operands. */
static uint32_t *put(comp *c, int op, uint32_t nw)
{
	if (c->oom || !reserve(c, 2 + (size_t)nw))
		return c->scratch;
	uint32_t *w = c->code + c->clen;
	const void *h = c->L[op];
	memcpy(w, &h, sizeof h);
	c->prev_start = c->cur_start;
	c->prev_op = c->cur_op;
	c->cur_start = c->clen;
	c->cur_op = op;
	c->clen += 2 + (size_t)nw;
	return w + 2;
}

static inline uint32_t home(const comp *c, uint32_t h)
{
	return (c->nlocals + h) * 8u;
}

static inline uint32_t word_index(const comp *c, const uint32_t *w)
{
	return (uint32_t)(w - c->code);
}

static void put_u64(uint32_t *w, uint64_t v)
{
	w[0] = (uint32_t)v;
	w[1] = (uint32_t)(v >> 32);
}

static void emit_const(comp *c, uint32_t dst, uint8_t type, uint64_t k)
{
	if (type == T_I32 || type == T_F32) {
		uint32_t *w = put(c, OP_const32, 2);
		w[0] = dst;
		w[1] = (uint32_t)k;
	} else {
		uint32_t *w = put(c, OP_const64, 3);
		w[0] = dst;
		put_u64(w + 1, k);
	}
}

static void emit_mov(comp *c, uint32_t dst, uint32_t src)
{
	if (dst == src)
		return;
	if (c->mov_end == c->clen && !c->oom) {
		/* pair with the mov just before (no jump target in between) */
		uint32_t d1 = c->code[c->mov_start + 2], s1 = c->code[c->mov_start + 3];
		c->clen = c->mov_start;
		uint32_t *w = put(c, OP_mov2, 4);
		w[0] = d1;
		w[1] = s1;
		w[2] = dst;
		w[3] = src;
		c->mov_end = NONE;
		return;
	}
	uint32_t *w = put(c, OP_mov, 2);
	w[0] = dst;
	w[1] = src;
	c->mov_start = c->cur_start;
	c->mov_end = c->clen;
}

/* Record that the instruction just emitted wrote its result, held in word
 * dst_word, to the home slot of stack height h. */
static void produced(comp *c, uint32_t *dst_word, uint32_t h)
{
	if (dst_word == c->scratch)
		return;
	c->last_end = c->clen;
	c->last_start = c->cur_start;
	c->last_op = c->cur_op;
	c->last_dst = word_index(c, dst_word);
	c->last_h = h;
}

/* Control flow joins here: forget what we knew about local values. */
static void forget_zero_locals(comp *c)
{
	if (++c->zcur == 0) {
		memset(c->zgen, 0, (size_t)c->nlocals * sizeof *c->zgen);
		c->zcur = 1;
	}
}

static void reset_peephole(comp *c)
{
	c->last_end = NONE;
	c->cmp_end = NONE;
	c->mov_end = NONE;
}

/* Resolve a forward patch list to the current position. */
static void bind(comp *c, uint32_t *head)
{
	uint32_t pos = *head;
	if (pos != NONE) {
		forget_zero_locals(c);
		c->label_pos = c->clen;
	}
	while (pos != NONE) {
		uint32_t next = c->code[pos];
		c->code[pos] = (uint32_t)(int32_t)(((int64_t)c->clen - pos) * 4);
		pos = next;
	}
	*head = NONE;
	reset_peephole(c);
}

/* Point branch offset word `pos` at the label of t. */
static void link(comp *c, ctrl *t, uint32_t pos)
{
	if (c->oom)
		return;
	if (t->kind == C_LOOP) {
		c->code[pos] = (uint32_t)(int32_t)(((int64_t)t->label - pos) * 4);
	} else {
		c->code[pos] = t->patch;
		t->patch = pos;
	}
}

/* ------------------------------------------------------- operand stack */

static bool emitting(const comp *c)
{
	const ctrl *t = &c->cs[c->ch - 1];
	return !t->unreachable && !t->dead && !c->oom;
}

static bool push_e(comp *c, vent e)
{
	if (c->vh == c->vcap) {
		uint32_t nc = c->vcap ? c->vcap * 2 : 64;
		vent *v = realloc(c->vs, nc * sizeof *v);
		if (v)
			c->vs = v;
		uint32_t *ls = realloc(c->lstk, nc * sizeof *ls);
		if (ls)
			c->lstk = ls;
		if (!v || !ls) {
			c->oom = true;
			return fail(c, MW_ERR_NOMEM, "out of memory");
		}
		c->vcap = nc;
	}
	if (e.kind == K_LOCAL) {
		e.prev = c->lhead[e.local];
		c->lhead[e.local] = c->vh;
		c->lref_total++;
		c->lstk[c->lstk_n++] = c->vh;
	}
	c->vs[c->vh++] = e;
	if (c->vh > c->vmax)
		c->vmax = c->vh;
	return true;
}

static bool push(comp *c, uint8_t t)
{
	vent e = {t, K_SLOT, 0, 0, 0};
	return push_e(c, e);
}

static bool pop_any(comp *c, vent *out)
{
	ctrl *t = &c->cs[c->ch - 1];
	if (c->vh == t->height) {
		if (t->unreachable) {
			out->type = T_UNK;
			out->kind = K_SLOT;
			out->local = 0;
			out->k = 0;
			return true;
		}
		INVALID("type mismatch");
	}
	*out = c->vs[--c->vh];
	if (out->kind == K_LOCAL) {
		c->lhead[out->local] = out->prev; /* the topmost reference is the head */
		c->lref_total--;
		while (c->lstk_n && c->lstk[c->lstk_n - 1] >= c->vh)
			c->lstk_n--;
	}
	return true;
}

static bool pop_t(comp *c, uint8_t want, vent *out)
{
	if (!pop_any(c, out))
		return false;
	if (out->type != want && out->type != T_UNK && want != T_UNK)
		INVALID("type mismatch");
	return true;
}

/* Pop n values of the given types (top is types[n-1]) into out[0..n). */
static bool pop_types(comp *c, const uint8_t *types, uint32_t n, vent *out)
{
	for (uint32_t i = n; i-- > 0;)
		if (!pop_t(c, types[i], out ? &out[i] : &(vent){0, 0, 0, 0, 0}))
			return false;
	return true;
}

/* Materialize a stack entry (still on the stack) into its home slot. */
static void mat(comp *c, uint32_t i)
{
	vent *e = &c->vs[i];
	if (e->kind == K_SLOT)
		return;
	if (e->kind == K_LOCAL) {
		emit_mov(c, home(c, i), e->local * 8);
		uint32_t *link = &c->lhead[e->local];
		while (*link != NONE && *link != i)
			link = &c->vs[*link].prev;
		if (*link == i)
			*link = e->prev;
		c->lref_total--;
	} else {
		emit_const(c, home(c, i), e->type, e->k);
	}
	e->kind = K_SLOT;
}

/* Operand source for an entry that was popped from height i: its slot
 * (constants are materialized into the home slot). */
static uint32_t src(comp *c, vent *e, uint32_t i)
{
	if (e->kind == K_LOCAL)
		return e->local * 8;
	if (e->kind == K_CONST) {
		emit_const(c, home(c, i), e->type, e->k);
		e->kind = K_SLOT;
	}
	return home(c, i);
}

/* Same for a popped entry that must end up in its own home slot. */
static void mat_popped(comp *c, vent *e, uint32_t i)
{
	if (e->kind == K_LOCAL)
		emit_mov(c, home(c, i), e->local * 8);
	else if (e->kind == K_CONST)
		emit_const(c, home(c, i), e->type, e->k);
	e->kind = K_SLOT;
}

/* The helpers below visit references top-down, so each one is the head of
 * its local's list and unlinking is O(1): total work stays linear. */
static void mat_local(comp *c, uint32_t x)
{
	while (c->lhead[x] != NONE)
		mat(c, c->lhead[x]);
}

static void mat_all_locals(comp *c)
{
	while (c->lstk_n) {
		uint32_t i = c->lstk[--c->lstk_n];
		if (i < c->vh && c->vs[i].kind == K_LOCAL)
			mat(c, i);
	}
}

static void mat_top(comp *c, uint32_t n)
{
	for (uint32_t i = c->vh; i-- > c->vh - n;)
		mat(c, i);
}

/* ------------------------------------------------------------ branches */

static void label_types(const ctrl *t, uint32_t *n, const uint8_t **types)
{
	if (t->kind == C_LOOP) {
		*n = t->nin;
		*types = t->in;
	} else {
		*n = t->nout;
		*types = t->out;
	}
}

/* Copy the top n stack values to the label slots starting at height dst_h
 * (dst_h <= vh - n, so increasing order never clobbers a pending source). */
static void emit_moves(comp *c, uint32_t dst_h, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = c->vh - n + i;
		const vent *e = &c->vs[s];
		uint32_t d = home(c, dst_h + i);
		if (e->kind == K_SLOT)
			emit_mov(c, d, home(c, s));
		else if (e->kind == K_LOCAL)
			emit_mov(c, d, e->local * 8);
		else
			emit_const(c, d, e->type, e->k);
	}
}

static bool needs_moves(const comp *c, uint32_t dst_h, uint32_t n)
{
	if (n == 0)
		return false;
	if (dst_h != c->vh - n)
		return true;
	for (uint32_t i = c->vh - n; i < c->vh; i++)
		if (c->vs[i].kind != K_SLOT)
			return true;
	return false;
}

/* Return with the top nresults values. */
static void emit_return(comp *c)
{
	uint32_t n = c->ft->pub.nresults;
	if (n == 0) {
		put(c, OP_ret0, 0);
	} else if (n == 1) {
		uint32_t i = c->vh - 1;
		vent *e = &c->vs[i];
		uint32_t s;
		if (e->kind == K_SLOT && c->last_end == c->clen && c->last_h == i) {
			/* the value was just computed: compute it straight into the
			 * result slot (slot 0 is dead once we return) */
			c->code[c->last_dst] = 0;
			reset_peephole(c);
			put(c, OP_ret0, 0);
			return;
		}
		if (e->kind == K_LOCAL) {
			s = e->local * 8;
		} else {
			mat(c, i);
			s = home(c, i);
		}
		uint32_t *w = put(c, OP_ret1, 1);
		w[0] = s;
	} else {
		mat_top(c, n);
		uint32_t *w = put(c, OP_retn, 2);
		w[0] = home(c, c->vh - n);
		w[1] = n;
	}
}

/* Unconditional jump to t carrying the top values (stack unchanged). */
static void emit_br_to(comp *c, ctrl *t)
{
	if (t->kind == C_FUNC) {
		emit_return(c);
		return;
	}
	uint32_t n;
	const uint8_t *ty;
	label_types(t, &n, &ty);
	emit_moves(c, t->height, n);
	uint32_t *w = put(c, OP_br, 1);
	if (w != c->scratch)
		link(c, t, word_index(c, w));
}

static const int CMP_INV[10] = {1, 0, 8, 9, 6, 7, 4, 5, 2, 3};
static const int CMP_SWAP[10] = {0, 1, 4, 5, 2, 3, 8, 9, 6, 7};

/* Emit a conditional jump on the condition entry e (popped from height i):
 * jump when cond != 0 (or == 0 if invert). Returns the offset word index or
 * NONE when nothing was emitted. Uses the preceding compare if possible. */
static uint32_t emit_cond_jump(comp *c, vent *e, uint32_t i, bool invert)
{
	if (e->kind == K_SLOT && c->cmp_end == c->clen && c->cmp_h == i) {
		int k = c->cmp_k;
		if (invert)
			k = CMP_INV[k];
		if (!c->cmp_64 && c->cmp_prev_op == OP_i32_add_i &&
		    c->cmp_prev_start + 5 == c->cmp_start && c->cmp_prev_start >= c->label_pos &&
		    c->code[c->cmp_prev_start + 2] == c->cmp_a) {
			/* x = a + K; if (x OP b): one instruction */
			uint32_t x = c->code[c->cmp_prev_start + 2];
			uint32_t a = c->code[c->cmp_prev_start + 3];
			uint32_t kk = c->code[c->cmp_prev_start + 4];
			c->clen = c->cmp_prev_start;
			reset_peephole(c);
			uint32_t *w = put(c, (c->cmp_imm ? OP_ibrc_i32_eq_i : OP_ibrc_i32_eq) + k, 5);
			w[0] = x;
			w[1] = a;
			w[2] = kk;
			w[3] = (uint32_t)c->cmp_b;
			return w == c->scratch ? NONE : word_index(c, w + 4);
		}
		c->clen = c->cmp_start;
		reset_peephole(c);
		int op;
		uint32_t *w;
		if (c->cmp_64) {
			op = (c->cmp_imm ? OP_brc_i64_eq_i : OP_brc_i64_eq) + k;
			w = put(c, op, c->cmp_imm ? 4 : 3);
			w[0] = c->cmp_a;
			if (c->cmp_imm) {
				put_u64(w + 1, c->cmp_b);
				return w == c->scratch ? NONE : word_index(c, w + 3);
			}
			w[1] = (uint32_t)c->cmp_b;
			return w == c->scratch ? NONE : word_index(c, w + 2);
		}
		op = (c->cmp_imm ? OP_brc_i32_eq_i : OP_brc_i32_eq) + k;
		w = put(c, op, 3);
		w[0] = c->cmp_a;
		w[1] = (uint32_t)c->cmp_b;
		return w == c->scratch ? NONE : word_index(c, w + 2);
	}
	uint32_t s = src(c, e, i);
	if (c->clen == c->cur_start + 5 && c->cur_start >= c->label_pos &&
	    (c->cur_op == OP_i32_add_i || c->cur_op == OP_i32_sub_i) &&
	    c->code[c->cur_start + 2] == s) {
		/* x = a +/- K; br_if x  ->  x = a + K'; if (x != 0) jump */
		uint32_t a = c->code[c->cur_start + 3], kk = c->code[c->cur_start + 4];
		if (c->cur_op == OP_i32_sub_i)
			kk = 0u - kk;
		c->clen = c->cur_start;
		reset_peephole(c);
		uint32_t *w = put(c, invert ? OP_ibrc_i32_eq_i : OP_ibrc_i32_ne_i, 5);
		w[0] = s;
		w[1] = a;
		w[2] = kk;
		w[3] = 0;
		return w == c->scratch ? NONE : word_index(c, w + 4);
	}
	uint32_t *w = put(c, invert ? OP_br_unless : OP_br_if, 2);
	w[0] = s;
	return w == c->scratch ? NONE : word_index(c, w + 1);
}

/* ---------------------------------------------------------------- blocks */

static bool read_blocktype(comp *c, uint32_t *nin, const uint8_t **in, uint32_t *nout,
			   const uint8_t **out)
{
	if (c->p >= c->end)
		MALFORMED("unexpected end");
	uint8_t b = *c->p;
	*nin = 0;
	*in = NULL;
	if (b == 0x40) {
		c->p++;
		*nout = 0;
		*out = NULL;
		return true;
	}
	if (VT[b]) {
		c->p++;
		*nout = 1;
		*out = &VT[b];
		return true;
	}
	int64_t x;
	if (!r_sleb(c, 33, &x))
		return false;
	if (x < 0)
		MALFORMED("malformed value type");
	if ((uint64_t)x >= c->m->ntypes)
		INVALID("unknown type");
	const mw_ftype *ft = c->m->types[x];
	*nin = ft->pub.nparams;
	*in = ft->pub.params;
	*nout = ft->pub.nresults;
	*out = ft->pub.results;
	return true;
}

static bool push_ctrl(comp *c, uint8_t kind, uint32_t nin, const uint8_t *in, uint32_t nout,
		      const uint8_t *out)
{
	if (c->ch == c->ccap) {
		uint32_t nc = c->ccap ? c->ccap * 2 : 16;
		ctrl *n = realloc(c->cs, nc * sizeof *n);
		if (!n) {
			c->oom = true;
			return fail(c, MW_ERR_NOMEM, "out of memory");
		}
		c->cs = n;
		c->ccap = nc;
	}
	ctrl *t = &c->cs[c->ch];
	bool dead = false;
	if (c->ch) {
		const ctrl *p = &c->cs[c->ch - 1];
		dead = p->unreachable || p->dead;
	}
	c->ch++;
	t->kind = kind;
	t->unreachable = false;
	t->dead = dead || c->oom;
	t->height = c->vh - nin;
	t->nin = nin;
	t->in = in;
	t->nout = nout;
	t->out = out;
	t->label = NONE;
	t->patch = NONE;
	t->else_patch = NONE;
	t->fuel_word = NONE;
	t->saved_icnt = 0;
	return true;
}

static void set_unreachable(comp *c)
{
	ctrl *t = &c->cs[c->ch - 1];
	while (c->vh > t->height) {
		vent e;
		pop_any(c, &e);
	}
	t->unreachable = true;
}

/* ------------------------------------------------------------ numeric ops */

enum { F_IMM = 1, F_COMM = 2, F_CMP = 4, F_NOP = 8 };

typedef struct numop {
	uint16_t op;
	uint8_t a, b, r; /* operand types (b == 0: unary), result type */
	uint8_t flags;
} numop;

#define I3 T_I32
#define I6 T_I64
#define F3 T_F32
#define F6 T_F64
#define IBIN(code, name, fl) [code] = {OP_i32_##name, I3, I3, I3, F_IMM | (fl)}
#define LBIN(code, name, fl) [code] = {OP_i64_##name, I6, I6, I6, F_IMM | (fl)}
#define ICMP(code, name, fl) [code] = {OP_i32_##name, I3, I3, I3, F_IMM | F_CMP | F_COMM | (fl)}
#define LCMP(code, name, fl) [code] = {OP_i64_##name, I6, I6, I3, F_IMM | F_CMP | F_COMM | (fl)}
#define UN(code, name, ta, tr) [code] = {OP_##name, ta, 0, tr, 0}
#define FBIN(code, name, t, tr, fl) [code] = {OP_##name, t, t, tr, (fl)}

static const numop NUMOPS[256] = {
	UN(0x45, i32_eqz, I3, I3),
	ICMP(0x46, eq, F_COMM), ICMP(0x47, ne, F_COMM), ICMP(0x48, lt_s, 0), ICMP(0x49, lt_u, 0),
	ICMP(0x4a, gt_s, 0), ICMP(0x4b, gt_u, 0), ICMP(0x4c, le_s, 0), ICMP(0x4d, le_u, 0),
	ICMP(0x4e, ge_s, 0), ICMP(0x4f, ge_u, 0),
	UN(0x50, i64_eqz, I6, I3),
	LCMP(0x51, eq, F_COMM), LCMP(0x52, ne, F_COMM), LCMP(0x53, lt_s, 0), LCMP(0x54, lt_u, 0),
	LCMP(0x55, gt_s, 0), LCMP(0x56, gt_u, 0), LCMP(0x57, le_s, 0), LCMP(0x58, le_u, 0),
	LCMP(0x59, ge_s, 0), LCMP(0x5a, ge_u, 0),
	FBIN(0x5b, f32_eq, F3, I3, F_COMM), FBIN(0x5c, f32_ne, F3, I3, F_COMM),
	FBIN(0x5d, f32_lt, F3, I3, 0), FBIN(0x5e, f32_gt, F3, I3, 0),
	FBIN(0x5f, f32_le, F3, I3, 0), FBIN(0x60, f32_ge, F3, I3, 0),
	FBIN(0x61, f64_eq, F6, I3, F_COMM), FBIN(0x62, f64_ne, F6, I3, F_COMM),
	FBIN(0x63, f64_lt, F6, I3, 0), FBIN(0x64, f64_gt, F6, I3, 0),
	FBIN(0x65, f64_le, F6, I3, 0), FBIN(0x66, f64_ge, F6, I3, 0),
	UN(0x67, i32_clz, I3, I3), UN(0x68, i32_ctz, I3, I3), UN(0x69, i32_popcnt, I3, I3),
	IBIN(0x6a, add, F_COMM), IBIN(0x6b, sub, 0), IBIN(0x6c, mul, F_COMM), IBIN(0x6d, div_s, 0),
	IBIN(0x6e, div_u, 0), IBIN(0x6f, rem_s, 0), IBIN(0x70, rem_u, 0), IBIN(0x71, and, F_COMM),
	IBIN(0x72, or, F_COMM), IBIN(0x73, xor, F_COMM), IBIN(0x74, shl, 0), IBIN(0x75, shr_s, 0),
	IBIN(0x76, shr_u, 0), IBIN(0x77, rotl, 0), IBIN(0x78, rotr, 0),
	UN(0x79, i64_clz, I6, I6), UN(0x7a, i64_ctz, I6, I6), UN(0x7b, i64_popcnt, I6, I6),
	LBIN(0x7c, add, F_COMM), LBIN(0x7d, sub, 0), LBIN(0x7e, mul, F_COMM), LBIN(0x7f, div_s, 0),
	LBIN(0x80, div_u, 0), LBIN(0x81, rem_s, 0), LBIN(0x82, rem_u, 0), LBIN(0x83, and, F_COMM),
	LBIN(0x84, or, F_COMM), LBIN(0x85, xor, F_COMM), LBIN(0x86, shl, 0), LBIN(0x87, shr_s, 0),
	LBIN(0x88, shr_u, 0), LBIN(0x89, rotl, 0), LBIN(0x8a, rotr, 0),
	UN(0x8b, f32_abs, F3, F3), UN(0x8c, f32_neg, F3, F3), UN(0x8d, f32_ceil, F3, F3),
	UN(0x8e, f32_floor, F3, F3), UN(0x8f, f32_trunc, F3, F3), UN(0x90, f32_nearest, F3, F3),
	UN(0x91, f32_sqrt, F3, F3),
	FBIN(0x92, f32_add, F3, F3, F_COMM), FBIN(0x93, f32_sub, F3, F3, 0),
	FBIN(0x94, f32_mul, F3, F3, F_COMM), FBIN(0x95, f32_div, F3, F3, 0),
	FBIN(0x96, f32_min, F3, F3, 0), FBIN(0x97, f32_max, F3, F3, 0),
	FBIN(0x98, f32_copysign, F3, F3, 0),
	UN(0x99, f64_abs, F6, F6), UN(0x9a, f64_neg, F6, F6), UN(0x9b, f64_ceil, F6, F6),
	UN(0x9c, f64_floor, F6, F6), UN(0x9d, f64_trunc, F6, F6), UN(0x9e, f64_nearest, F6, F6),
	UN(0x9f, f64_sqrt, F6, F6),
	FBIN(0xa0, f64_add, F6, F6, F_COMM), FBIN(0xa1, f64_sub, F6, F6, 0),
	FBIN(0xa2, f64_mul, F6, F6, F_COMM), FBIN(0xa3, f64_div, F6, F6, 0),
	FBIN(0xa4, f64_min, F6, F6, 0), FBIN(0xa5, f64_max, F6, F6, 0),
	FBIN(0xa6, f64_copysign, F6, F6, 0),
	[0xa7] = {0, I6, 0, I3, F_NOP},
	UN(0xa8, i32_trunc_f32_s, F3, I3), UN(0xa9, i32_trunc_f32_u, F3, I3),
	UN(0xaa, i32_trunc_f64_s, F6, I3), UN(0xab, i32_trunc_f64_u, F6, I3),
	UN(0xac, i64_extend_i32_s, I3, I6), UN(0xad, i64_extend_i32_u, I3, I6),
	UN(0xae, i64_trunc_f32_s, F3, I6), UN(0xaf, i64_trunc_f32_u, F3, I6),
	UN(0xb0, i64_trunc_f64_s, F6, I6), UN(0xb1, i64_trunc_f64_u, F6, I6),
	UN(0xb2, f32_convert_i32_s, I3, F3), UN(0xb3, f32_convert_i32_u, I3, F3),
	UN(0xb4, f32_convert_i64_s, I6, F3), UN(0xb5, f32_convert_i64_u, I6, F3),
	UN(0xb6, f32_demote_f64, F6, F3),
	UN(0xb7, f64_convert_i32_s, I3, F6), UN(0xb8, f64_convert_i32_u, I3, F6),
	UN(0xb9, f64_convert_i64_s, I6, F6), UN(0xba, f64_convert_i64_u, I6, F6),
	UN(0xbb, f64_promote_f32, F3, F6),
	[0xbc] = {0, F3, 0, I3, F_NOP}, [0xbd] = {0, F6, 0, I6, F_NOP},
	[0xbe] = {0, I3, 0, F3, F_NOP}, [0xbf] = {0, I6, 0, F6, F_NOP},
	UN(0xc0, i32_extend8_s, I3, I3), UN(0xc1, i32_extend16_s, I3, I3),
	UN(0xc2, i64_extend8_s, I6, I6), UN(0xc3, i64_extend16_s, I6, I6),
	UN(0xc4, i64_extend32_s, I6, I6),
};

static const numop SATOPS[8] = {
	{OP_i32_trunc_sat_f32_s, F3, 0, I3, 0}, {OP_i32_trunc_sat_f32_u, F3, 0, I3, 0},
	{OP_i32_trunc_sat_f64_s, F6, 0, I3, 0}, {OP_i32_trunc_sat_f64_u, F6, 0, I3, 0},
	{OP_i64_trunc_sat_f32_s, F3, 0, I6, 0}, {OP_i64_trunc_sat_f32_u, F3, 0, I6, 0},
	{OP_i64_trunc_sat_f64_s, F6, 0, I6, 0}, {OP_i64_trunc_sat_f64_u, F6, 0, I6, 0},
};

#define INTBIN_COUNT 25

static bool do_unop(comp *c, const numop *n)
{
	vent a;
	if (!pop_t(c, n->a, &a))
		return false;
	uint32_t h = c->vh;
	if (n->flags & F_NOP) {
		a.type = n->r;
		if (a.kind == K_CONST && n->r == T_I32)
			a.k &= 0xffffffffu;
		return push_e(c, a);
	}
	if (emitting(c)) {
		uint32_t s = src(c, &a, h);
		uint32_t *w = put(c, n->op, 2);
		w[0] = home(c, h);
		w[1] = s;
		produced(c, w, h);
		if (n->op == OP_i32_eqz || n->op == OP_i64_eqz) {
			/* remember as "x == 0" for compare-and-branch fusion */
			c->cmp_prev_start = c->prev_start;
			c->cmp_prev_op = c->prev_op;
			c->cmp_start = c->clen - 4;
			c->cmp_end = c->clen;
			c->cmp_h = h;
			c->cmp_k = 0;
			c->cmp_64 = n->op == OP_i64_eqz;
			c->cmp_imm = true;
			c->cmp_a = s;
			c->cmp_b = 0;
		}
	}
	return push(c, n->r);
}

static bool do_binop(comp *c, const numop *n)
{
	vent a, b;
	if (!pop_t(c, n->b, &b) || !pop_t(c, n->a, &a))
		return false;
	uint32_t h = c->vh;
	if (emitting(c)) {
		bool is64 = n->a == T_I64;
		uint32_t *w;
		size_t start;
		int op = n->op;
		int cmpk = (n->flags & F_CMP) ? op - (is64 ? OP_i64_eq : OP_i32_eq) : -1;
		if ((n->flags & F_IMM) && (b.kind == K_CONST || (a.kind == K_CONST &&
								 (n->flags & F_COMM)))) {
			vent *v = &a;
			uint64_t k = b.k;
			uint32_t vh = h;
			if (b.kind != K_CONST) { /* constant on the left of a commutative op */
				v = &b;
				k = a.k;
				vh = h + 1;
			}
			uint32_t s = src(c, v, vh);
			if (cmpk >= 0 && v == &b) {
				cmpk = CMP_SWAP[cmpk];
				op = (is64 ? OP_i64_eq : OP_i32_eq) + cmpk;
			}
			start = c->clen;
			w = put(c, op + INTBIN_COUNT, is64 ? 4 : 3);
			w[0] = home(c, h);
			w[1] = s;
			if (is64)
				put_u64(w + 2, k);
			else
				w[2] = (uint32_t)k;
			produced(c, w, h);
			if (cmpk >= 0) {
				c->cmp_prev_start = c->prev_start;
				c->cmp_prev_op = c->prev_op;
				c->cmp_start = start;
				c->cmp_end = c->clen;
				c->cmp_h = h;
				c->cmp_k = cmpk;
				c->cmp_64 = is64;
				c->cmp_imm = true;
				c->cmp_a = s;
				c->cmp_b = k;
			}
		} else {
			uint32_t sa = src(c, &a, h), sb = src(c, &b, h + 1);
			start = c->clen;
			w = put(c, op, 3);
			w[0] = home(c, h);
			w[1] = sa;
			w[2] = sb;
			produced(c, w, h);
			if (cmpk >= 0) {
				c->cmp_prev_start = c->prev_start;
				c->cmp_prev_op = c->prev_op;
				c->cmp_start = start;
				c->cmp_end = c->clen;
				c->cmp_h = h;
				c->cmp_k = cmpk;
				c->cmp_64 = is64;
				c->cmp_imm = false;
				c->cmp_a = sa;
				c->cmp_b = sb;
			}
		}
	}
	return push(c, n->r);
}

/* ------------------------------------------------------------- the body */

static bool read_memarg(comp *c, uint32_t natural, uint32_t *offset)
{
	uint32_t align;
	if (!r_u32(c, &align) || !r_u32(c, offset))
		return false;
	if (c->m->nmems == 0)
		INVALID("unknown memory 0");
	if (align > natural)
		INVALID("alignment must not be larger than natural");
	return true;
}

static bool need_table(comp *c, uint32_t x)
{
	if (x >= c->m->ntables)
		INVALID("unknown table");
	return true;
}

static bool do_load(comp *c, int op, uint32_t natural, uint8_t rt)
{
	uint32_t off;
	vent a;
	if (!read_memarg(c, natural, &off) || !pop_t(c, T_I32, &a))
		return false;
	uint32_t h = c->vh;
	if (emitting(c)) {
		uint32_t *w;
		if (a.kind == K_SLOT && c->last_end == c->clen && c->last_h == h &&
		    (c->last_op == OP_i32_add_i || c->last_op == OP_i32_add)) {
			/* i32.add (+imm) computing the address: fold into the load */
			const uint32_t *lw = c->code + c->last_start + 2;
			uint32_t fa = lw[1], fb = lw[2];
			int fop = op + (c->last_op == OP_i32_add_i ? MW_NLOAD : 2 * MW_NLOAD);
			c->clen = c->last_start;
			reset_peephole(c);
			w = put(c, fop, 4);
			w[0] = home(c, h);
			w[1] = fa;
			w[2] = fb;
			w[3] = off;
		} else {
			uint32_t s = src(c, &a, h);
			w = put(c, op, 3);
			w[0] = home(c, h);
			w[1] = s;
			w[2] = off;
		}
		produced(c, w, h);
	}
	return push(c, rt);
}

static bool do_store(comp *c, int op, uint32_t natural, uint8_t vt)
{
	uint32_t off;
	vent a, v;
	if (!read_memarg(c, natural, &off) || !pop_t(c, vt, &v) || !pop_t(c, T_I32, &a))
		return false;
	uint32_t h = c->vh;
	if (emitting(c)) {
		bool fuse = a.kind == K_SLOT && c->last_end == c->clen && c->last_h == h &&
			    (c->last_op == OP_i32_add_i ||
			     (c->last_op == OP_i32_add && v.kind != K_CONST));
		if (fuse) {
			const uint32_t *lw = c->code + c->last_start + 2;
			uint32_t fa = lw[1], fb = lw[2];
			bool imm = c->last_op == OP_i32_add_i;
			c->clen = c->last_start;
			reset_peephole(c);
			/* add_i reads no home slot above h, so v may be materialized */
			uint32_t sv = src(c, &v, h + 1);
			uint32_t *w = put(c, op + (imm ? MW_NSTORE : 2 * MW_NSTORE), 4);
			w[0] = fa;
			w[1] = fb;
			w[2] = sv;
			w[3] = off;
		} else if (v.kind == K_CONST) {
			uint32_t sa = src(c, &a, h);
			if (op == OP_store64) {
				uint32_t *w = put(c, OP_store64_k, 4);
				w[0] = sa;
				put_u64(w + 1, v.k);
				w[3] = off;
			} else {
				uint32_t *w = put(c, op + 3 * MW_NSTORE, 3);
				w[0] = sa;
				w[1] = (uint32_t)v.k;
				w[2] = off;
			}
		} else {
			uint32_t sa = src(c, &a, h), sv = src(c, &v, h + 1);
			uint32_t *w = put(c, op, 3);
			w[0] = sa;
			w[1] = sv;
			w[2] = off;
		}
	}
	return true;
}

/* Generic "pop n operands of given types, emit op with [dst?] srcs... extra". */
static bool do_generic(comp *c, int op, const uint8_t *in, uint32_t nin, uint8_t rt,
		       const uint32_t *pre, uint32_t npre)
{
	vent v[5];
	if (!pop_types(c, in, nin, v))
		return false;
	uint32_t h = c->vh;
	if (emitting(c)) {
		uint32_t s[5];
		for (uint32_t i = 0; i < nin; i++)
			s[i] = src(c, &v[i], h + i);
		uint32_t *w = put(c, op, (rt ? 1 : 0) + npre + nin);
		uint32_t k = 0;
		if (rt)
			w[k++] = home(c, h);
		for (uint32_t i = 0; i < npre; i++)
			w[k++] = pre[i];
		for (uint32_t i = 0; i < nin; i++)
			w[k++] = s[i];
		if (rt)
			produced(c, w, h);
	}
	return rt ? push(c, rt) : true;
}

static bool do_call(comp *c, const mw_ftype *ft, int op, const uint32_t *pre, uint32_t npre,
		    bool indirect)
{
	uint32_t np = ft->pub.nparams;
	vent idx = {0, 0, 0, 0, 0};
	if (indirect && !pop_t(c, T_I32, &idx))
		return false;
	if (!pop_types(c, ft->pub.params, np, NULL))
		return false;
	uint32_t h = c->vh;
	if (emitting(c)) {
		for (uint32_t i = 0; i < np; i++)
			mat_popped(c, &c->vs[h + i], h + i);
		uint32_t *w;
		if (indirect) {
			uint32_t s = src(c, &idx, h + np);
			w = put(c, op, npre + 2);
			for (uint32_t i = 0; i < npre; i++)
				w[i] = pre[i];
			w[npre] = s;
			w[npre + 1] = home(c, h);
		} else {
			w = put(c, op, npre + 1);
			for (uint32_t i = 0; i < npre; i++)
				w[i] = pre[i];
			w[npre] = home(c, h);
		}
	}
	/* the callee frame overlaps our stack from h upward */
	if (c->vh + ft->pub.nresults > c->vmax)
		c->vmax = c->vh + ft->pub.nresults;
	for (uint32_t i = 0; i < ft->pub.nresults; i++)
		if (!push(c, ft->pub.results[i]))
			return false;
	return true;
}

static bool do_local_set(comp *c, uint32_t x, bool tee)
{
	if (x >= c->nlocals)
		INVALID("unknown local");
	vent e;
	if (!pop_t(c, c->ltypes[x], &e))
		return false;
	uint32_t i = c->vh;
	if (emitting(c) && e.kind == K_CONST && e.k == 0 && c->zgen[x] == c->zcur) {
		/* storing zero into a local that still holds its initial zero */
	} else if (emitting(c)) {
		c->zgen[x] = 0;
		if (e.kind == K_SLOT && c->last_end == c->clen && c->last_h == i &&
		    c->lhead[x] == NONE) {
			c->code[c->last_dst] = x * 8;
			reset_peephole(c);
		} else {
			mat_local(c, x);
			if (e.kind == K_LOCAL)
				emit_mov(c, x * 8, e.local * 8);
			else if (e.kind == K_CONST)
				emit_const(c, x * 8, e.type, e.k);
			else
				emit_mov(c, x * 8, home(c, i));
		}
	}
	if (tee) {
		vent n = {c->ltypes[x], K_LOCAL, x, 0, 0};
		if (!emitting(c))
			n.kind = K_SLOT;
		return push_e(c, n);
	}
	return true;
}

static bool do_select(comp *c, uint8_t want)
{
	vent cond, b, a;
	if (!pop_t(c, T_I32, &cond) || !pop_t(c, want, &b) || !pop_t(c, want, &a))
		return false;
	uint8_t t = want;
	if (t == T_UNK) {
		if (a.type != T_UNK && b.type != T_UNK && a.type != b.type)
			INVALID("type mismatch");
		t = a.type != T_UNK ? a.type : b.type;
		if (t != T_UNK && !mw_is_num(t))
			INVALID("type mismatch");
	}
	uint32_t h = c->vh;
	if (emitting(c)) {
		uint32_t sa = src(c, &a, h), sb = src(c, &b, h + 1), sc = src(c, &cond, h + 2);
		uint32_t *w = put(c, OP_select, 4);
		w[0] = home(c, h);
		w[1] = sc;
		w[2] = sa;
		w[3] = sb;
		produced(c, w, h);
	}
	return push(c, t);
}

/* Validate that the top n values have the given types, without popping. */
static bool check_top(comp *c, const uint8_t *types, uint32_t n)
{
	const ctrl *t = &c->cs[c->ch - 1];
	for (uint32_t i = 0; i < n; i++) {
		int64_t pos = (int64_t)c->vh - n + i;
		if (pos < (int64_t)t->height) {
			if (!t->unreachable)
				INVALID("type mismatch");
			continue;
		}
		uint8_t st = c->vs[pos].type;
		if (st != T_UNK && st != types[i])
			INVALID("type mismatch");
	}
	return true;
}

static ctrl *label_at(comp *c, uint32_t depth)
{
	if (depth >= c->ch)
		return NULL;
	return &c->cs[c->ch - 1 - depth];
}

static bool do_br_table(comp *c)
{
	uint32_t n;
	if (!r_u32(c, &n))
		return false;
	if (n > (uint32_t)(c->end - c->p))
		MALFORMED("unexpected end");
	uint32_t *depths = malloc(((size_t)n + 1) * sizeof *depths);
	if (!depths)
		return fail(c, MW_ERR_NOMEM, "out of memory");
	bool ok = false;
	for (uint32_t i = 0; i <= n; i++)
		if (!r_u32(c, &depths[i]))
			goto out;
	vent idx;
	if (!pop_t(c, T_I32, &idx))
		goto out;
	ctrl *def = label_at(c, depths[n]);
	if (!def) {
		fail(c, MW_ERR_INVALID, "unknown label");
		goto out;
	}
	uint32_t arity;
	const uint8_t *dty;
	label_types(def, &arity, &dty);
	for (uint32_t i = 0; i <= n; i++) {
		ctrl *t = label_at(c, depths[i]);
		if (!t) {
			fail(c, MW_ERR_INVALID, "unknown label");
			goto out;
		}
		uint32_t la;
		const uint8_t *lty;
		label_types(t, &la, &lty);
		if (la != arity) {
			fail(c, MW_ERR_INVALID, "type mismatch");
			goto out;
		}
		if (!check_top(c, lty, la))
			goto out;
	}
	uint32_t h = c->vh;
	if (emitting(c)) {
		mat_top(c, arity);
		uint32_t s = src(c, &idx, h);
		if (!reserve(c, (size_t)n + 8)) {
			fail(c, MW_ERR_NOMEM, "out of memory");
			goto out;
		}
		uint32_t *w = put(c, OP_br_table, 3 + n);
		w[0] = s;
		w[1] = n;
		uint32_t base = word_index(c, w + 2);
		if (c->stubs_cap < c->ch) {
			uint32_t *st = realloc(c->stubs, c->ch * sizeof *st);
			if (!st) {
				fail(c, MW_ERR_NOMEM, "out of memory");
				goto out;
			}
			c->stubs = st;
			c->stubs_cap = c->ch;
		}
		for (uint32_t i = 0; i < c->ch; i++)
			c->stubs[i] = NONE;
		bool any_stub = false;
		for (uint32_t i = 0; i <= n; i++) {
			ctrl *t = label_at(c, depths[i]);
			if (t->kind != C_FUNC && !needs_moves(c, t->height, arity)) {
				link(c, t, base + i);
			} else {
				any_stub = true;
			}
		}
		if (any_stub) {
			for (uint32_t i = 0; i <= n && !c->oom; i++) {
				ctrl *t = label_at(c, depths[i]);
				if (!(t->kind == C_FUNC || needs_moves(c, t->height, arity)))
					continue;
				if (c->stubs[depths[i]] == NONE) {
					c->stubs[depths[i]] = (uint32_t)c->clen;
					emit_br_to(c, t);
				}
				c->code[base + i] =
					(uint32_t)(int32_t)(((int64_t)c->stubs[depths[i]] - (base + i)) * 4);
			}
		}
		reset_peephole(c);
	}
	set_unreachable(c);
	ok = true;
out:
	free(depths);
	return ok;
}

static bool do_br_if(comp *c, uint32_t depth)
{
	vent cond;
	if (!pop_t(c, T_I32, &cond))
		return false;
	uint32_t ci = c->vh;
	ctrl *t = label_at(c, depth);
	if (!t)
		INVALID("unknown label");
	uint32_t n;
	const uint8_t *ty;
	label_types(t, &n, &ty);
	vent vals[16], *vp = n <= 16 ? vals : malloc(n * sizeof *vp);
	if (!vp)
		return fail(c, MW_ERR_NOMEM, "out of memory");
	bool ok = pop_types(c, ty, n, vp);
	for (uint32_t i = 0; ok && i < n; i++) {
		if (vp[i].type == T_UNK)
			vp[i].type = ty[i];
		ok = push_e(c, vp[i]);
	}
	if (vp != vals)
		free(vp);
	if (!ok)
		return false;
	if (!emitting(c))
		return true;
	if (cond.kind == K_CONST) {
		if (cond.k & 0xffffffffu) {
			emit_br_to(c, t);
			reset_peephole(c);
		}
		return true;
	}
	if (t->kind != C_FUNC && !needs_moves(c, t->height, n)) {
		uint32_t pos = emit_cond_jump(c, &cond, ci, false);
		if (pos != NONE)
			link(c, t, pos);
	} else {
		uint32_t skip = emit_cond_jump(c, &cond, ci, true);
		emit_br_to(c, t);
		if (skip != NONE)
			c->code[skip] = NONE;
		bind(c, &skip);
	}
	return true;
}

static bool do_block_start(comp *c, uint8_t kind)
{
	uint32_t nin, nout;
	const uint8_t *in, *out;
	if (!read_blocktype(c, &nin, &in, &nout, &out))
		return false;
	vent cond = {0, 0, 0, 0, 0};
	if (kind == C_IF && !pop_t(c, T_I32, &cond))
		return false;
	uint32_t ci = c->vh;
	/* check the params (they stay on the stack, owned by the new block) */
	vent vals[16], *vp = nin <= 16 ? vals : malloc(nin * sizeof *vp);
	if (!vp)
		return fail(c, MW_ERR_NOMEM, "out of memory");
	bool ok = pop_types(c, in, nin, vp);
	for (uint32_t i = 0; ok && i < nin; i++) {
		if (vp[i].type == T_UNK)
			vp[i].type = in[i];
		ok = push_e(c, vp[i]);
	}
	if (vp != vals)
		free(vp);
	if (!ok)
		return false;
	bool em = emitting(c);
	if (em) {
		mat_all_locals(c);
		mat_top(c, nin);
	}
	uint32_t else_pos = NONE;
	if (kind == C_IF && em) {
		if (cond.kind == K_CONST) {
			if (!(cond.k & 0xffffffffu)) {
				uint32_t *w = put(c, OP_br, 1);
				else_pos = w == c->scratch ? NONE : word_index(c, w);
			}
		} else {
			else_pos = emit_cond_jump(c, &cond, ci, true);
		}
	}
	if (!push_ctrl(c, kind, nin, in, nout, out))
		return false;
	ctrl *t = &c->cs[c->ch - 1];
	if (else_pos != NONE) {
		c->code[else_pos] = NONE;
		t->else_patch = else_pos;
	}
	if (kind == C_LOOP) {
		reset_peephole(c);
		forget_zero_locals(c);
		t->label = (uint32_t)c->clen;
		c->label_pos = c->clen;
		if (c->fuel && !t->dead) {
			uint32_t *w = put(c, OP_fuel, 1);
			t->fuel_word = w == c->scratch ? NONE : word_index(c, w);
			t->saved_icnt = c->icnt;
			c->icnt = 0;
		}
	}
	return true;
}

/* Check that the stack holds exactly the block's results. */
static bool check_results(comp *c, const ctrl *t)
{
	int64_t have = (int64_t)c->vh - t->height;
	if (have > t->nout)
		INVALID("type mismatch");
	return check_top(c, t->out, t->nout);
}

static bool do_else(comp *c)
{
	ctrl *t = &c->cs[c->ch - 1];
	if (t->kind != C_IF)
		INVALID("else without if");
	if (!check_results(c, t))
		return false;
	if (emitting(c)) {
		mat_top(c, t->nout);
		uint32_t *w = put(c, OP_br, 1);
		if (w != c->scratch) {
			c->code[word_index(c, w)] = t->patch;
			t->patch = word_index(c, w);
		}
	}
	bind(c, &t->else_patch);
	forget_zero_locals(c);
	while (c->vh > t->height) {
		vent e;
		pop_any(c, &e);
	}
	for (uint32_t i = 0; i < t->nin; i++)
		if (!push(c, t->in[i]))
			return false;
	t->kind = C_ELSE;
	t->unreachable = false;
	/* dead stays: the else arm is live iff the if was live */
	return true;
}

static bool do_end(comp *c)
{
	ctrl *t = &c->cs[c->ch - 1];
	if (!check_results(c, t))
		return false;
	if (t->kind == C_IF) {
		if (t->nin != t->nout || (t->nin && memcmp(t->in, t->out, t->nin) != 0))
			INVALID("type mismatch");
	}
	bool em = emitting(c);
	if (t->kind == C_FUNC) {
		if (em)
			emit_return(c);
		c->ch--;
		return true;
	}
	if (t->kind == C_LOOP && t->fuel_word != NONE && !c->oom) {
		c->code[t->fuel_word] = c->icnt + 1;
		c->icnt = t->saved_icnt;
	}
	bool joined = t->patch != NONE || (t->kind == C_IF && t->else_patch != NONE);
	uint32_t nout = t->nout;
	vent vals[16], *vp = nout <= 16 ? vals : malloc(nout * sizeof *vp);
	if (!vp)
		return fail(c, MW_ERR_NOMEM, "out of memory");
	if (em && joined)
		mat_top(c, nout);
	if (!pop_types(c, t->out, nout, vp)) {
		if (vp != vals)
			free(vp);
		return false;
	}
	bind(c, &t->patch);
	if (t->kind == C_IF)
		bind(c, &t->else_patch);
	bool reach_fall = !t->unreachable && !t->dead;
	c->ch--;
	bool ok = true;
	for (uint32_t i = 0; ok && i < nout; i++) {
		vent e = vp[i];
		e.type = t->out[i];
		if (joined || !reach_fall)
			e.kind = K_SLOT;
		ok = push_e(c, e);
	}
	if (vp != vals)
		free(vp);
	return ok;
}


/* The body's instructions, one switch case per opcode (named in wasm_int.h's
 * MW_WASM_OPCODES; the numeric ones, 0x45-0xc4, come from NUMOPS in the
 * default case), each a few lines that hand off to a do_* helper. It is as
 * long as the instruction set is wide; one switch keeps every opcode the
 * compiler accepts in one place. */
static bool compile_body(comp *c)
{
	const mw_module *m = c->m;
	for (;;) {
		uint8_t op;
		if (c->oom)
			return fail(c, MW_ERR_NOMEM, "out of memory");
		if (!r_byte(c, &op))
			return false;
		c->icnt++;
		if (!reserve(c, 64))
			return fail(c, MW_ERR_NOMEM, "out of memory");
		switch (op) {
		case W_OP(unreachable):
			if (emitting(c))
				put(c, OP_unreachable, 0);
			set_unreachable(c);
			break;
		case W_OP(nop):
			break;
		case W_OP(block):
			if (!do_block_start(c, C_BLOCK))
				return false;
			break;
		case W_OP(loop):
			if (!do_block_start(c, C_LOOP))
				return false;
			break;
		case W_OP(if):
			if (!do_block_start(c, C_IF))
				return false;
			break;
		case W_OP(else):
			if (!do_else(c))
				return false;
			break;
		case W_OP(end):
			if (!do_end(c))
				return false;
			if (c->ch == 0) {
				if (c->p != c->end)
					MALFORMED("section size mismatch");
				return true;
			}
			break;
		case W_OP(br): {
			uint32_t d;
			if (!r_u32(c, &d))
				return false;
			ctrl *t = label_at(c, d);
			if (!t)
				INVALID("unknown label");
			uint32_t n;
			const uint8_t *ty;
			label_types(t, &n, &ty);
			if (!check_top(c, ty, n))
				return false;
			if (emitting(c))
				emit_br_to(c, t);
			reset_peephole(c);
			set_unreachable(c);
			break;
		}
		case W_OP(br_if): {
			uint32_t d;
			if (!r_u32(c, &d) || !do_br_if(c, d))
				return false;
			break;
		}
		case W_OP(br_table):
			if (!do_br_table(c))
				return false;
			break;
		case W_OP(return): {
			const mw_ftype *ft = c->ft;
			if (!check_top(c, ft->pub.results, ft->pub.nresults))
				return false;
			if (emitting(c))
				emit_return(c);
			set_unreachable(c);
			break;
		}
		case W_OP(call): {
			uint32_t f;
			if (!r_u32(c, &f))
				return false;
			if (f >= m->nfuncs)
				INVALID("unknown function");
			const mw_ftype *ft = m->types[m->func_types[f]];
			if (f < m->nfunc_imports) {
				uint32_t pre[1] = {f};
				if (!do_call(c, ft, OP_call_import, pre, 1, false))
					return false;
			} else {
				uint64_t p = (uint64_t)(uintptr_t)&m->fcode[f - m->nfunc_imports];
				uint32_t pre[2] = {(uint32_t)p, (uint32_t)(p >> 32)};
				if (!do_call(c, ft, OP_call, pre, 2, false))
					return false;
			}
			break;
		}
		case W_OP(call_indirect): {
			uint32_t ti, tab;
			if (!r_u32(c, &ti) || !r_u32(c, &tab))
				return false;
			if (!need_table(c, tab))
				return false;
			if (ti >= m->ntypes)
				INVALID("unknown type");
			if (m->tables[tab].elem != T_FUNCREF)
				INVALID("type mismatch");
			const mw_ftype *ft = m->types[ti];
			/* compare against the canonical (first equal) type of the module */
			uint64_t p = (uint64_t)(uintptr_t)m->types[ft->canon];
			uint32_t pre[3] = {tab, (uint32_t)p, (uint32_t)(p >> 32)};
			if (!do_call(c, ft, OP_call_indirect, pre, 3, true))
				return false;
			break;
		}
		case W_OP(drop): {
			vent e;
			if (!pop_any(c, &e))
				return false;
			break;
		}
		case W_OP(select):
			if (!do_select(c, T_UNK))
				return false;
			break;
		case W_OP(select_t): {
			uint32_t n;
			uint8_t t;
			if (!r_u32(c, &n))
				return false;
			if (n != 1)
				INVALID("invalid result arity");
			if (c->p >= c->end)
				MALFORMED("unexpected end");
			t = *c->p++;
			if (!VT[t])
				MALFORMED("malformed value type");
			if (!do_select(c, t))
				return false;
			break;
		}
		case W_OP(local_get): {
			uint32_t x;
			if (!r_u32(c, &x))
				return false;
			if (x >= c->nlocals)
				INVALID("unknown local");
			vent e = {c->ltypes[x], K_LOCAL, x, 0, 0};
			if (!emitting(c))
				e.kind = K_SLOT;
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(local_set):
		case W_OP(local_tee): {
			uint32_t x;
			if (!r_u32(c, &x) || !do_local_set(c, x, op == W_OP(local_tee)))
				return false;
			break;
		}
		case W_OP(global_get): {
			uint32_t x;
			if (!r_u32(c, &x))
				return false;
			if (x >= m->nglobals)
				INVALID("unknown global");
			uint32_t h = c->vh;
			if (emitting(c)) {
				uint32_t *w = put(c, OP_global_get, 2);
				w[0] = home(c, h);
				w[1] = x;
				produced(c, w, h);
			}
			if (!push(c, m->globals[x].type.type))
				return false;
			break;
		}
		case W_OP(global_set): {
			uint32_t x;
			if (!r_u32(c, &x))
				return false;
			if (x >= m->nglobals)
				INVALID("unknown global");
			if (!m->globals[x].type.mut)
				INVALID("global is immutable");
			uint8_t in[1] = {m->globals[x].type.type};
			uint32_t pre[1] = {x};
			if (!do_generic(c, OP_global_set, in, 1, 0, pre, 1))
				return false;
			break;
		}
		case W_OP(table_get): {
			uint32_t x;
			if (!r_u32(c, &x) || !need_table(c, x))
				return false;
			static const uint8_t in[1] = {T_I32};
			uint32_t pre[1] = {x};
			if (!do_generic(c, OP_table_get, in, 1, m->tables[x].elem, pre, 1))
				return false;
			break;
		}
		case W_OP(table_set): {
			uint32_t x;
			if (!r_u32(c, &x) || !need_table(c, x))
				return false;
			uint8_t in[2] = {T_I32, m->tables[x].elem};
			uint32_t pre[1] = {x};
			if (!do_generic(c, OP_table_set, in, 2, 0, pre, 1))
				return false;
			break;
		}
		case W_OP(i32_load): if (!do_load(c, OP_i32_load, 2, T_I32)) return false; break;
		case W_OP(i64_load): if (!do_load(c, OP_i64_load, 3, T_I64)) return false; break;
		case W_OP(f32_load): if (!do_load(c, OP_i32_load, 2, T_F32)) return false; break;
		case W_OP(f64_load): if (!do_load(c, OP_i64_load, 3, T_F64)) return false; break;
		case W_OP(i32_load8_s): if (!do_load(c, OP_i32_load8_s, 0, T_I32)) return false; break;
		case W_OP(i32_load8_u): if (!do_load(c, OP_i32_load8_u, 0, T_I32)) return false; break;
		case W_OP(i32_load16_s): if (!do_load(c, OP_i32_load16_s, 1, T_I32)) return false; break;
		case W_OP(i32_load16_u): if (!do_load(c, OP_i32_load16_u, 1, T_I32)) return false; break;
		case W_OP(i64_load8_s): if (!do_load(c, OP_i64_load8_s, 0, T_I64)) return false; break;
		case W_OP(i64_load8_u): if (!do_load(c, OP_i64_load8_u, 0, T_I64)) return false; break;
		case W_OP(i64_load16_s): if (!do_load(c, OP_i64_load16_s, 1, T_I64)) return false; break;
		case W_OP(i64_load16_u): if (!do_load(c, OP_i64_load16_u, 1, T_I64)) return false; break;
		case W_OP(i64_load32_s): if (!do_load(c, OP_i64_load32_s, 2, T_I64)) return false; break;
		case W_OP(i64_load32_u): if (!do_load(c, OP_i64_load32_u, 2, T_I64)) return false; break;
		case W_OP(i32_store): if (!do_store(c, OP_store32, 2, T_I32)) return false; break;
		case W_OP(i64_store): if (!do_store(c, OP_store64, 3, T_I64)) return false; break;
		case W_OP(f32_store): if (!do_store(c, OP_store32, 2, T_F32)) return false; break;
		case W_OP(f64_store): if (!do_store(c, OP_store64, 3, T_F64)) return false; break;
		case W_OP(i32_store8): if (!do_store(c, OP_store8, 0, T_I32)) return false; break;
		case W_OP(i32_store16): if (!do_store(c, OP_store16, 1, T_I32)) return false; break;
		case W_OP(i64_store8): if (!do_store(c, OP_store8, 0, T_I64)) return false; break;
		case W_OP(i64_store16): if (!do_store(c, OP_store16, 1, T_I64)) return false; break;
		case W_OP(i64_store32): if (!do_store(c, OP_store32, 2, T_I64)) return false; break;
		case W_OP(memory_size):
		case W_OP(memory_grow): {
			uint8_t z;
			if (!r_byte(c, &z))
				return false;
			if (z != 0)
				MALFORMED("zero byte expected");
			if (m->nmems == 0)
				INVALID("unknown memory");
			static const uint8_t in[1] = {T_I32};
			if (!do_generic(c, op == W_OP(memory_size) ? OP_memory_size : OP_memory_grow,
					in, op == W_OP(memory_size) ? 0 : 1, T_I32, NULL, 0))
				return false;
			break;
		}
		case W_OP(i32_const): {
			int64_t v;
			if (!r_sleb(c, 32, &v))
				return false;
			vent e = {T_I32, K_CONST, 0, (uint32_t)v, 0};
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(i64_const): {
			int64_t v;
			if (!r_sleb(c, 64, &v))
				return false;
			vent e = {T_I64, K_CONST, 0, (uint64_t)v, 0};
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(f32_const): {
			if (c->end - c->p < 4)
				MALFORMED("unexpected end");
			uint32_t v;
			memcpy(&v, c->p, 4);
			c->p += 4;
			vent e = {T_F32, K_CONST, 0, v, 0};
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(f64_const): {
			if (c->end - c->p < 8)
				MALFORMED("unexpected end");
			uint64_t v;
			memcpy(&v, c->p, 8);
			c->p += 8;
			vent e = {T_F64, K_CONST, 0, v, 0};
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(ref_null): {
			uint8_t t;
			if (!r_byte(c, &t))
				return false;
			if (t != T_FUNCREF && t != T_EXTERNREF)
				MALFORMED("malformed reference type");
			vent e = {t, K_CONST, 0, 0, 0};
			if (!push_e(c, e))
				return false;
			break;
		}
		case W_OP(ref_is_null): {
			vent e;
			if (!pop_any(c, &e))
				return false;
			if (e.type != T_UNK && !mw_is_ref(e.type))
				INVALID("type mismatch");
			uint32_t h = c->vh;
			if (emitting(c)) {
				uint32_t s = src(c, &e, h);
				uint32_t *w = put(c, OP_i64_eqz, 2);
				w[0] = home(c, h);
				w[1] = s;
				produced(c, w, h);
			}
			if (!push(c, T_I32))
				return false;
			break;
		}
		case W_OP(ref_func): {
			uint32_t x;
			if (!r_u32(c, &x))
				return false;
			if (x >= m->nfuncs)
				INVALID("unknown function");
			if (!m->func_refd[x])
				INVALID("undeclared function reference");
			uint32_t pre[1] = {x};
			if (!do_generic(c, OP_ref_func, NULL, 0, T_FUNCREF, pre, 1))
				return false;
			break;
		}
		case W_OP(prefix_fc): {
			uint32_t sub;
			if (!r_u32(c, &sub))
				return false;
			if (sub < 8) {
				if (!do_unop(c, &SATOPS[sub]))
					return false;
				break;
			}
			static const uint8_t i3[3] = {T_I32, T_I32, T_I32};
			switch (sub) {
			case 8: { /* memory.init */
				uint32_t d;
				uint8_t z;
				if (!r_u32(c, &d) || !r_byte(c, &z))
					return false;
				if (z != 0)
					MALFORMED("zero byte expected");
				if (m->nmems == 0)
					INVALID("unknown memory 0");
				if (!m->has_datacount && m->ndatas)
					MALFORMED("data count section required");
				if (d >= (m->has_datacount ? m->datacount : m->ndatas))
					INVALID("unknown data segment");
				uint32_t pre[1] = {d};
				if (!do_generic(c, OP_memory_init, i3, 3, 0, pre, 1))
					return false;
				break;
			}
			case 9: { /* data.drop */
				uint32_t d;
				if (!r_u32(c, &d))
					return false;
				if (!m->has_datacount && m->ndatas)
					MALFORMED("data count section required");
				if (d >= (m->has_datacount ? m->datacount : m->ndatas))
					INVALID("unknown data segment");
				uint32_t pre[1] = {d};
				if (!do_generic(c, OP_data_drop, NULL, 0, 0, pre, 1))
					return false;
				break;
			}
			case 10: { /* memory.copy */
				uint8_t z1, z2;
				if (!r_byte(c, &z1) || !r_byte(c, &z2))
					return false;
				if (z1 || z2)
					MALFORMED("zero byte expected");
				if (m->nmems == 0)
					INVALID("unknown memory 0");
				if (!do_generic(c, OP_memory_copy, i3, 3, 0, NULL, 0))
					return false;
				break;
			}
			case 11: { /* memory.fill */
				uint8_t z;
				if (!r_byte(c, &z))
					return false;
				if (z)
					MALFORMED("zero byte expected");
				if (m->nmems == 0)
					INVALID("unknown memory 0");
				if (!do_generic(c, OP_memory_fill, i3, 3, 0, NULL, 0))
					return false;
				break;
			}
			case 12: { /* table.init elem table */
				uint32_t e, t;
				if (!r_u32(c, &e) || !r_u32(c, &t) || !need_table(c, t))
					return false;
				if (e >= m->nelems)
					INVALID("unknown elem segment");
				if (m->elems[e].type != m->tables[t].elem)
					INVALID("type mismatch");
				uint32_t pre[2] = {t, e};
				if (!do_generic(c, OP_table_init, i3, 3, 0, pre, 2))
					return false;
				break;
			}
			case 13: { /* elem.drop */
				uint32_t e;
				if (!r_u32(c, &e))
					return false;
				if (e >= m->nelems)
					INVALID("unknown elem segment");
				uint32_t pre[1] = {e};
				if (!do_generic(c, OP_elem_drop, NULL, 0, 0, pre, 1))
					return false;
				break;
			}
			case 14: { /* table.copy dst src */
				uint32_t td, ts;
				if (!r_u32(c, &td) || !r_u32(c, &ts) || !need_table(c, td) ||
				    !need_table(c, ts))
					return false;
				if (m->tables[td].elem != m->tables[ts].elem)
					INVALID("type mismatch");
				uint32_t pre[2] = {td, ts};
				if (!do_generic(c, OP_table_copy, i3, 3, 0, pre, 2))
					return false;
				break;
			}
			case 15: { /* table.grow */
				uint32_t t;
				if (!r_u32(c, &t) || !need_table(c, t))
					return false;
				uint8_t in[2] = {m->tables[t].elem, T_I32};
				uint32_t pre[1] = {t};
				if (!do_generic(c, OP_table_grow, in, 2, T_I32, pre, 1))
					return false;
				break;
			}
			case 16: { /* table.size */
				uint32_t t;
				if (!r_u32(c, &t) || !need_table(c, t))
					return false;
				uint32_t pre[1] = {t};
				if (!do_generic(c, OP_table_size, NULL, 0, T_I32, pre, 1))
					return false;
				break;
			}
			case 17: { /* table.fill */
				uint32_t t;
				if (!r_u32(c, &t) || !need_table(c, t))
					return false;
				uint8_t in[3] = {T_I32, m->tables[t].elem, T_I32};
				uint32_t pre[1] = {t};
				if (!do_generic(c, OP_table_fill, in, 3, 0, pre, 1))
					return false;
				break;
			}
			default:
				MALFORMED("illegal opcode");
			}
			break;
		}
		default: {
			const numop *n = &NUMOPS[op];
			if (op < 0x45 || op > 0xc4 || (!n->op && !(n->flags & F_NOP)))
				MALFORMED("illegal opcode");
			if (n->b) {
				if (!do_binop(c, n))
					return false;
			} else if (!do_unop(c, n)) {
				return false;
			}
			break;
		}
		}
	}
}

/* ------------------------------------------------------------- functions */

static bool compile_function(comp *c, uint32_t di)
{
	mw_module *m = c->m;
	mw_fcode *fc = &m->fcode[di];
	const mw_ftype *ft = m->types[fc->type];
	c->ft = ft;
	c->p = m->bytes + fc->body_off;
	c->end = c->p + fc->body_len;

	/* locals */
	uint32_t ngroups;
	if (!r_u32(c, &ngroups))
		return false;
	uint64_t total = ft->pub.nparams;
	const uint8_t *save = c->p;
	for (uint32_t i = 0; i < ngroups; i++) {
		uint32_t cnt;
		uint8_t t;
		if (!r_u32(c, &cnt) || !r_byte(c, &t))
			return false;
		if (!VT[t])
			MALFORMED("malformed value type");
		total += cnt;
		if (total > 0xffffffffu)
			MALFORMED("too many locals");
	}
	if (total > m->lim.max_function_locals)
		return fail(c, MW_ERR_LIMIT, "too many locals for the configured limit");
	c->nparams = ft->pub.nparams;
	c->nlocals = (uint32_t)total;
	if (c->lcap < total + 1) {
		uint8_t *lt = realloc(c->ltypes, total + 1);
		if (lt)
			c->ltypes = lt;
		uint32_t *lr = realloc(c->lhead, (total + 1) * sizeof *lr);
		if (lr)
			c->lhead = lr;
		uint32_t *zg = realloc(c->zgen, (total + 1) * sizeof *zg);
		if (zg)
			c->zgen = zg;
		if (!lt || !lr || !zg)
			return fail(c, MW_ERR_NOMEM, "out of memory");
		c->lcap = (uint32_t)total + 1;
	}
	memcpy(c->ltypes, ft->pub.params, ft->pub.nparams);
	c->p = save;
	uint32_t k = ft->pub.nparams;
	for (uint32_t i = 0; i < ngroups; i++) {
		uint32_t cnt = 0;
		uint8_t t = 0;
		r_u32(c, &cnt);
		r_byte(c, &t);
		memset(c->ltypes + k, t, cnt);
		k += cnt;
	}
	for (uint32_t i = 0; i <= total; i++)
		c->lhead[i] = NONE;
	c->lstk_n = 0;
	c->zcur = 1;
	for (uint32_t i = 0; i < total; i++)
		c->zgen[i] = i < c->nparams ? 0 : 1;
	c->lref_total = 0;
	c->vh = 0;
	c->vmax = 0;
	c->ch = 0;
	c->icnt = 0;
	reset_peephole(c);

	fc->code_off = (uint32_t)c->clen;
	if (!push_ctrl(c, C_FUNC, 0, NULL, ft->pub.nresults, ft->pub.results))
		return false;
	c->func_fuel_word = NONE;
	if (c->fuel) {
		uint32_t *w = put(c, OP_fuel, 1);
		if (w != c->scratch)
			c->func_fuel_word = word_index(c, w);
	}
	if (!compile_body(c))
		return false;
	if (c->oom)
		return fail(c, MW_ERR_NOMEM, "out of memory");
	if (c->clen - fc->code_off > (1u << 28)) /* branch offsets are 32-bit byte offsets */
		return fail(c, MW_ERR_LIMIT, "function too large");
	if (c->func_fuel_word != NONE)
		c->code[c->func_fuel_word] = c->icnt + 1;
	uint64_t slots = (uint64_t)c->nlocals + c->vmax;
	if (slots < ft->pub.nresults)
		slots = ft->pub.nresults;
	if (slots * 8 > 0x7fffffffu)
		return fail(c, MW_ERR_LIMIT, "function frame too large");
	fc->frame_bytes = (uint32_t)(slots * 8);
	fc->param_bytes = c->nparams * 8;
	fc->local_bytes = (c->nlocals - c->nparams) * 8;
	fc->nresults = ft->pub.nresults;
	return true;
}

int mw__compile_module(mw_module *m, mw_error *err)
{
	comp cc;
	memset(&cc, 0, sizeof cc);
	comp *c = &cc;
	c->m = m;
	c->err = err;
	c->base = m->bytes;
	c->L = mw__labels();
	c->fuel = m->lim.fuel != 0;
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	bool ok = true;
	for (uint32_t i = 0; i < ndef && ok; i++)
		ok = compile_function(c, i);
	free(c->ltypes);
	free(c->lhead);
	free(c->lstk);
	free(c->zgen);
	free(c->vs);
	free(c->cs);
	free(c->stubs);
	if (!ok) {
		free(c->code);
		return -1;
	}
	m->code = c->code;
	m->code_len = c->clen;
	for (uint32_t i = 0; i < ndef; i++)
		m->fcode[i].code = m->code + m->fcode[i].code_off;
	return 0;
}
