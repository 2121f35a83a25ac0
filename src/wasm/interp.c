/* mote wasm engine: the interpreter.
 *
 * Direct-threaded: every instruction begins with the address of its handler
 * (labels-as-values), so dispatch is one indirect jump. Operands are byte
 * offsets into the current frame; there is no value-stack pointer at run
 * time. Calls do not recurse on the C stack: frames live in the store's value
 * stack and return addresses in its frame-record array, both bounded and
 * checked once per call. Linear memory base and size are kept in locals;
 * every access is one 64-bit compare.
 */
#include "fmath.h"
#include "wasm_int.h"

typedef uint32_t mu32 __attribute__((may_alias));
typedef int32_t mi32 __attribute__((may_alias));
typedef uint64_t mu64 __attribute__((may_alias));
typedef int64_t mi64 __attribute__((may_alias));
typedef float mf32 __attribute__((may_alias));
typedef double mf64 __attribute__((may_alias));

#define I(k) (ip[2 + (k)])
#define R32(o) (*(const mu32 *)(fp + (o)))
#define RS32(o) (*(const mi32 *)(fp + (o)))
#define R64(o) (*(const mu64 *)(fp + (o)))
#define RS64(o) (*(const mi64 *)(fp + (o)))
#define RF32(o) (*(const mf32 *)(fp + (o)))
#define RF64(o) (*(const mf64 *)(fp + (o)))
#define W32(o, v) (*(mu32 *)(fp + (o)) = (uint32_t)(v))
#define W64(o, v) (*(mu64 *)(fp + (o)) = (uint64_t)(v))
#define WF32(o, v) (*(mf32 *)(fp + (o)) = (v))
#define WF64(o, v) (*(mf64 *)(fp + (o)) = (v))

static inline uint64_t imm64(const uint32_t *p)
{
	return (uint64_t)p[0] | ((uint64_t)p[1] << 32);
}

static inline const void *imm_ptr(const uint32_t *p)
{
	return (const void *)(uintptr_t)imm64(p);
}

#ifdef MW_PROFILE
/* developer builds only: bench/wasm/mwdis.c provides the counter */
void mw__prof(const void *handler);
#define PROF(h) mw__prof(h)
#else
#define PROF(h) ((void)0)
#endif

#define NEXT()                                                                                     \
	do {                                                                                       \
		void *h_;                                                                          \
		__builtin_memcpy(&h_, ip, sizeof h_);                                              \
		PROF(h_);                                                                          \
		goto *h_;                                                                          \
	} while (0)

/* Branch offsets are byte distances relative to the offset word ip[k]. */
#define JUMP(k) (ip = (const uint32_t *)((const char *)(ip + (k)) + (int32_t)ip[k]))

#define TRAP(code)                                                                                 \
	do {                                                                                       \
		trap = (code);                                                                     \
		goto do_trap;                                                                      \
	} while (0)

#define RELOAD_MEM()                                                                               \
	do {                                                                                       \
		mem = inst->mem->data;                                                             \
		msize = inst->mem->size;                                                           \
	} while (0)

static inline uint32_t rotl32(uint32_t a, uint32_t b)
{
	b &= 31;
	return (a << b) | (a >> ((32 - b) & 31));
}
static inline uint32_t rotr32(uint32_t a, uint32_t b)
{
	b &= 31;
	return (a >> b) | (a << ((32 - b) & 31));
}
static inline uint64_t rotl64(uint64_t a, uint64_t b)
{
	b &= 63;
	return (a << b) | (a >> ((64 - b) & 63));
}
static inline uint64_t rotr64(uint64_t a, uint64_t b)
{
	b &= 63;
	return (a >> b) | (a << ((64 - b) & 63));
}

#define MW_L_OP(n) &&L_##n,
#define MW_L_OPI(n) &&L_##n##_i,
#define MW_L_OPAI(n) &&L_##n##_ai,
#define MW_L_OPAS(n) &&L_##n##_as,
#define MW_L_OPK(n) &&L_##n##_k,
#define MW_L_BRC(n) &&L_brc_##n,
#define MW_L_BRCI(n) &&L_brc_##n##_i,
#define MW_L_IBRC(n) &&L_ibrc_##n,
#define MW_L_IBRCI(n) &&L_ibrc_##n##_i,

__attribute__((noinline)) mw_trap mw__interp(mw_store *s, mw_func *f, uint64_t *args,
					     const void *const **labels)
{
	static const void *const tbl[] = {
		MW_OPS_CTRL(MW_L_OP)
		MW_OPS_LOAD(MW_L_OP)
		MW_OPS_LOAD(MW_L_OPAI)
		MW_OPS_LOAD(MW_L_OPAS)
		MW_OPS_STORE(MW_L_OP)
		MW_OPS_STORE(MW_L_OPAI)
		MW_OPS_STORE(MW_L_OPAS)
		MW_OPS_STORE(MW_L_OPK)
		MW_OPS_INTBIN(MW_L_OP, i32)
		MW_OPS_INTBIN(MW_L_OPI, i32)
		MW_OPS_INTBIN(MW_L_OP, i64)
		MW_OPS_INTBIN(MW_L_OPI, i64)
		MW_OPS_FBIN(MW_L_OP, f32)
		MW_OPS_FBIN(MW_L_OP, f64)
		MW_OPS_UN(MW_L_OP)
		MW_OPS_BRC(MW_L_BRC, i32)
		MW_OPS_BRC(MW_L_BRCI, i32)
		MW_OPS_BRC(MW_L_BRC, i64)
		MW_OPS_BRC(MW_L_BRCI, i64)
		MW_OPS_BRC(MW_L_IBRC, i32)
		MW_OPS_BRC(MW_L_IBRCI, i32)
	};
	_Static_assert(sizeof tbl / sizeof tbl[0] == OP_COUNT_, "handler table out of sync");
	if (!s) {
		*labels = tbl;
		return MW_TRAP_NONE;
	}

	mw_trap trap = MW_TRAP_NONE;
	mw_frame_rec *const fr0 = s->fr;
	mw_frame_rec *fr = fr0;
	/* frames_end / stack_end are read from the store on calls: keeping them
	 * in registers costs more (spilled ip/fp/fr) than the L1 loads. */
#define frames_end (s->frames_end)
#define stack_end ((char *)s->stack_end)
	uint32_t exit_code[2];
	{
		const void *h = &&L_exit;
		__builtin_memcpy(exit_code, &h, sizeof h);
	}

	mw_instance *inst = f->inst;
	const mw_fcode *fc = f->fc;
	char *fp = (char *)args;
	const uint32_t *ip;
	uint8_t *mem;
	uint64_t msize;
	if (fr >= frames_end || fp + fc->frame_bytes > stack_end)
		return MW_TRAP_CALL_STACK_EXHAUSTED;
	fr->ip = exit_code;
	fr->fp = (uint64_t *)fp;
	fr->inst = inst;
	fr++;
	if (fc->local_bytes)
		memset(fp + fc->param_bytes, 0, fc->local_bytes);
	RELOAD_MEM();
	ip = fc->code;
	NEXT();

	/* generic call: cf = callee, nfp = its frame, ret = return address */
	mw_func *cf;
	char *nfp;
	const uint32_t *ret;
call_func:
	if (cf->host) {
		s->fr = fr;
		trap = mw__call_host(s, cf, inst, (uint64_t *)nfp);
		if (trap)
			goto do_trap;
		RELOAD_MEM();
		ip = ret;
		NEXT();
	}
	fc = cf->fc;
	if (MW_UNLIKELY(fr >= frames_end || nfp + fc->frame_bytes > stack_end))
		TRAP(MW_TRAP_CALL_STACK_EXHAUSTED);
	fr->ip = ret;
	fr->fp = (uint64_t *)fp;
	fr->inst = inst;
	fr++;
	if (fc->local_bytes)
		memset(nfp + fc->param_bytes, 0, fc->local_bytes);
	fp = nfp;
	if (cf->inst != inst) {
		inst = cf->inst;
		RELOAD_MEM();
	}
	ip = fc->code;
	NEXT();

do_return:
	fr--;
	ip = fr->ip;
	fp = (char *)fr->fp;
	/* mem/msize are already current unless we return into another instance:
	 * memory.grow and host calls reload them where they happen */
	if (MW_UNLIKELY(fr->inst != inst)) {
		inst = fr->inst;
		RELOAD_MEM();
	}
	NEXT();

do_trap:
	s->fr = fr0;
	return trap;

L_exit:
	s->fr = fr0;
	return MW_TRAP_NONE;

L_unreachable:
	TRAP(MW_TRAP_UNREACHABLE);

L_fuel:
	if (MW_UNLIKELY((s->fuel -= I(0)) < 0))
		TRAP(MW_TRAP_FUEL_EXHAUSTED);
	ip += 3;
	NEXT();

L_br:
	JUMP(2);
	NEXT();
L_br_if:
	if (R32(I(0)))
		JUMP(3);
	else
		ip += 4;
	NEXT();
L_br_unless:
	if (!R32(I(0)))
		JUMP(3);
	else
		ip += 4;
	NEXT();
L_br_table: {
	uint32_t i = R32(I(0)), n = I(1);
	if (i > n)
		i = n;
	const uint32_t *w = ip + 4 + i;
	ip = (const uint32_t *)((const char *)w + (int32_t)*w);
	NEXT();
}

L_call: {
	const mw_fcode *c = (const mw_fcode *)imm_ptr(ip + 2);
	char *n = fp + I(2);
	if (MW_UNLIKELY(fr >= frames_end || n + c->frame_bytes > stack_end))
		TRAP(MW_TRAP_CALL_STACK_EXHAUSTED);
	fr->ip = ip + 5;
	fr->fp = (uint64_t *)fp;
	fr->inst = inst;
	fr++;
	if (c->local_bytes) {
		uint64_t *z = (uint64_t *)(n + c->param_bytes);
		for (uint32_t k = 0; k < c->local_bytes / 8; k++)
			z[k] = 0;
	}
	fp = n;
	ip = c->code;
	NEXT();
}
L_call_import:
	cf = inst->funcs[I(0)];
	nfp = fp + I(1);
	ret = ip + 4;
	goto call_func;
L_call_indirect: {
	const mw_table *t = inst->tables[I(0)];
	const mw_ftype *want = (const mw_ftype *)imm_ptr(ip + 3);
	uint32_t i = R32(I(3));
	if (MW_UNLIKELY(i >= t->size))
		TRAP(MW_TRAP_UNDEFINED_ELEMENT);
	cf = (mw_func *)(uintptr_t)t->elems[i];
	if (MW_UNLIKELY(!cf))
		TRAP(MW_TRAP_UNINITIALIZED_ELEMENT);
	if (MW_UNLIKELY(cf->type != want) && !mw__ftype_equal(cf->type, want))
		TRAP(MW_TRAP_INDIRECT_TYPE_MISMATCH);
	nfp = fp + I(4);
	ret = ip + 7;
	goto call_func;
}

L_ret0:
	goto do_return;
L_ret1:
	W64(0, R64(I(0)));
	goto do_return;
L_retn: {
	uint32_t src = I(0), n = I(1);
	for (uint32_t k = 0; k < n; k++)
		W64(8 * k, R64(src + 8 * k));
	goto do_return;
}

L_mov:
	W64(I(0), R64(I(1)));
	ip += 4;
	NEXT();
L_mov2:
	W64(I(0), R64(I(1)));
	W64(I(2), R64(I(3)));
	ip += 6;
	NEXT();
L_const32:
	W32(I(0), I(1));
	ip += 4;
	NEXT();
L_const64:
	W64(I(0), imm64(ip + 3));
	ip += 5;
	NEXT();
L_select:
	W64(I(0), R32(I(1)) ? R64(I(2)) : R64(I(3)));
	ip += 6;
	NEXT();
L_global_get:
	W64(I(0), *inst->globals[I(1)]);
	ip += 4;
	NEXT();
L_global_set:
	*inst->globals[I(0)] = R64(I(1));
	ip += 4;
	NEXT();
L_ref_func:
	W64(I(0), (uintptr_t)inst->funcs[I(1)]);
	ip += 4;
	NEXT();

L_table_get: {
	const mw_table *t = inst->tables[I(1)];
	uint32_t i = R32(I(2));
	if (MW_UNLIKELY(i >= t->size))
		TRAP(MW_TRAP_TABLE_OOB);
	W64(I(0), t->elems[i]);
	ip += 5;
	NEXT();
}
L_table_set: {
	mw_table *t = inst->tables[I(0)];
	uint32_t i = R32(I(1));
	if (MW_UNLIKELY(i >= t->size))
		TRAP(MW_TRAP_TABLE_OOB);
	t->elems[i] = R64(I(2));
	ip += 5;
	NEXT();
}
L_table_size:
	W32(I(0), inst->tables[I(1)]->size);
	ip += 4;
	NEXT();
L_table_grow: {
	int64_t r = mw__table_grow(inst->tables[I(1)], R32(I(3)), R64(I(2)));
	W32(I(0), (uint32_t)r);
	ip += 6;
	NEXT();
}
L_table_fill: {
	mw_table *t = inst->tables[I(0)];
	uint32_t i = R32(I(1)), n = R32(I(3));
	uint64_t v = R64(I(2));
	if (MW_UNLIKELY((uint64_t)i + n > t->size))
		TRAP(MW_TRAP_TABLE_OOB);
	for (uint32_t k = 0; k < n; k++)
		t->elems[i + k] = v;
	ip += 6;
	NEXT();
}
L_table_copy: {
	mw_table *td = inst->tables[I(0)], *ts = inst->tables[I(1)];
	uint32_t d = R32(I(2)), sr = R32(I(3)), n = R32(I(4));
	if (MW_UNLIKELY((uint64_t)d + n > td->size || (uint64_t)sr + n > ts->size))
		TRAP(MW_TRAP_TABLE_OOB);
	if (n)
		memmove(td->elems + d, ts->elems + sr, (size_t)n * 8);
	ip += 7;
	NEXT();
}
L_table_init: {
	mw_table *t = inst->tables[I(0)];
	uint32_t e = I(1);
	uint32_t d = R32(I(2)), sr = R32(I(3)), n = R32(I(4));
	if (MW_UNLIKELY((uint64_t)sr + n > inst->elem_len[e] || (uint64_t)d + n > t->size))
		TRAP(MW_TRAP_TABLE_OOB);
	if (n)
		memcpy(t->elems + d, inst->elem_items[e] + sr, (size_t)n * 8);
	ip += 7;
	NEXT();
}
L_elem_drop:
	inst->elem_len[I(0)] = 0;
	ip += 3;
	NEXT();

L_memory_size:
	W32(I(0), inst->mem->pages);
	ip += 3;
	NEXT();
L_memory_grow: {
	int64_t r = mw__memory_grow(inst->mem, R32(I(1)));
	RELOAD_MEM();
	W32(I(0), (uint32_t)r);
	ip += 4;
	NEXT();
}
L_memory_init: {
	uint32_t seg = I(0);
	uint32_t d = R32(I(1)), sr = R32(I(2)), n = R32(I(3));
	if (MW_UNLIKELY((uint64_t)sr + n > inst->data_len[seg] || (uint64_t)d + n > msize))
		TRAP(MW_TRAP_MEMORY_OOB);
	if (n)
		memcpy(mem + d, inst->mod->datas[seg].bytes + sr, n);
	ip += 6;
	NEXT();
}
L_data_drop:
	inst->data_len[I(0)] = 0;
	ip += 3;
	NEXT();
L_memory_copy: {
	uint32_t d = R32(I(0)), sr = R32(I(1)), n = R32(I(2));
	if (MW_UNLIKELY((uint64_t)d + n > msize || (uint64_t)sr + n > msize))
		TRAP(MW_TRAP_MEMORY_OOB);
	if (n)
		memmove(mem + d, mem + sr, n);
	ip += 5;
	NEXT();
}
L_memory_fill: {
	uint32_t d = R32(I(0)), v = R32(I(1)), n = R32(I(2));
	if (MW_UNLIKELY((uint64_t)d + n > msize))
		TRAP(MW_TRAP_MEMORY_OOB);
	if (n)
		memset(mem + d, (int)(v & 0xff), n);
	ip += 5;
	NEXT();
}

	/* ------------------------------------------------------ memory access */
#define LOAD_BODY(N, T, W, conv, EA, size)                                                         \
	{                                                                                          \
		uint64_t ea = (EA);                                                                \
		if (MW_UNLIKELY(ea + (N) > msize))                                                 \
			TRAP(MW_TRAP_MEMORY_OOB);                                                  \
		T v_;                                                                              \
		__builtin_memcpy(&v_, mem + ea, N);                                                \
		W(I(0), conv v_);                                                                  \
		ip += size;                                                                        \
		NEXT();                                                                            \
	}
#define LOAD(name, N, T, W, conv)                                                                  \
	L_##name: LOAD_BODY(N, T, W, conv, (uint64_t)R32(I(1)) + I(2), 5)                          \
	L_##name##_ai: LOAD_BODY(N, T, W, conv, (uint64_t)(uint32_t)(R32(I(1)) + I(2)) + I(3), 6)  \
	L_##name##_as: LOAD_BODY(N, T, W, conv, (uint64_t)(uint32_t)(R32(I(1)) + R32(I(2))) + I(3), 6)
	LOAD(i32_load, 4, uint32_t, W32, )
	LOAD(i64_load, 8, uint64_t, W64, )
	LOAD(i32_load8_s, 1, int8_t, W32, (int32_t))
	LOAD(i32_load8_u, 1, uint8_t, W32, (uint32_t))
	LOAD(i32_load16_s, 2, int16_t, W32, (int32_t))
	LOAD(i32_load16_u, 2, uint16_t, W32, (uint32_t))
	LOAD(i64_load8_s, 1, int8_t, W64, (int64_t))
	LOAD(i64_load8_u, 1, uint8_t, W64, (uint64_t))
	LOAD(i64_load16_s, 2, int16_t, W64, (int64_t))
	LOAD(i64_load16_u, 2, uint16_t, W64, (uint64_t))
	LOAD(i64_load32_s, 4, int32_t, W64, (int64_t))
	LOAD(i64_load32_u, 4, uint32_t, W64, (uint64_t))

#define STORE_BODY(N, T, EA, VAL, size)                                                            \
	{                                                                                          \
		uint64_t ea = (EA);                                                                \
		if (MW_UNLIKELY(ea + (N) > msize))                                                 \
			TRAP(MW_TRAP_MEMORY_OOB);                                                  \
		T v_ = (T)(VAL);                                                                   \
		__builtin_memcpy(mem + ea, &v_, N);                                                \
		ip += size;                                                                        \
		NEXT();                                                                            \
	}
#define STORE(name, N, T, R)                                                                       \
	L_##name: STORE_BODY(N, T, (uint64_t)R32(I(0)) + I(2), R(I(1)), 5)                         \
	L_##name##_ai: STORE_BODY(N, T, (uint64_t)(uint32_t)(R32(I(0)) + I(1)) + I(3), R(I(2)), 6)  \
	L_##name##_as: STORE_BODY(N, T, (uint64_t)(uint32_t)(R32(I(0)) + R32(I(1))) + I(3),        \
				  R(I(2)), 6)
	STORE(store8, 1, uint8_t, R32)
	STORE(store16, 2, uint16_t, R32)
	STORE(store32, 4, uint32_t, R32)
	STORE(store64, 8, uint64_t, R64)
L_store8_k:
	STORE_BODY(1, uint8_t, (uint64_t)R32(I(0)) + I(2), I(1), 5)
L_store16_k:
	STORE_BODY(2, uint16_t, (uint64_t)R32(I(0)) + I(2), I(1), 5)
L_store32_k:
	STORE_BODY(4, uint32_t, (uint64_t)R32(I(0)) + I(2), I(1), 5)
L_store64_k:
	STORE_BODY(8, uint64_t, (uint64_t)R32(I(0)) + I(3), imm64(ip + 3), 6)

	/* -------------------------------------------------------- integer ops */
#define BIN32(name, expr)                                                                          \
	L_i32_##name: {                                                                            \
		uint32_t a = R32(I(1)), b = R32(I(2));                                             \
		W32(I(0), (expr));                                                                 \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}                                                                                          \
	L_i32_##name##_i: {                                                                        \
		uint32_t a = R32(I(1)), b = I(2);                                                  \
		W32(I(0), (expr));                                                                 \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}
#define BIN32T(name, check, expr)                                                                  \
	L_i32_##name: {                                                                            \
		uint32_t a = R32(I(1)), b = R32(I(2));                                             \
		check;                                                                             \
		W32(I(0), (expr));                                                                 \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}                                                                                          \
	L_i32_##name##_i: {                                                                        \
		uint32_t a = R32(I(1)), b = I(2);                                                  \
		check;                                                                             \
		W32(I(0), (expr));                                                                 \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}
#define BIN64W(name, W, expr)                                                                      \
	L_i64_##name: {                                                                            \
		uint64_t a = R64(I(1)), b = R64(I(2));                                             \
		W(I(0), (expr));                                                                   \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}                                                                                          \
	L_i64_##name##_i: {                                                                        \
		uint64_t a = R64(I(1)), b = imm64(ip + 4);                                         \
		W(I(0), (expr));                                                                   \
		ip += 6;                                                                           \
		NEXT();                                                                            \
	}
#define BIN64(name, expr) BIN64W(name, W64, expr)
#define BIN64T(name, check, expr)                                                                  \
	L_i64_##name: {                                                                            \
		uint64_t a = R64(I(1)), b = R64(I(2));                                             \
		check;                                                                             \
		W64(I(0), (expr));                                                                 \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}                                                                                          \
	L_i64_##name##_i: {                                                                        \
		uint64_t a = R64(I(1)), b = imm64(ip + 4);                                         \
		check;                                                                             \
		W64(I(0), (expr));                                                                 \
		ip += 6;                                                                           \
		NEXT();                                                                            \
	}

#define S32(x) ((int32_t)(x))
#define S64(x) ((int64_t)(x))

	BIN32(add, a + b)
	BIN32(sub, a - b)
	BIN32(mul, a * b)
	BIN32T(div_s,
	       if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO);
	       if (MW_UNLIKELY(a == 0x80000000u && b == 0xffffffffu)) TRAP(MW_TRAP_INT_OVERFLOW),
	       (uint32_t)(S32(a) / S32(b)))
	BIN32T(div_u, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO), a / b)
	BIN32T(rem_s, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO),
	       b == 0xffffffffu ? 0 : (uint32_t)(S32(a) % S32(b)))
	BIN32T(rem_u, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO), a % b)
	BIN32(and, a & b)
	BIN32(or, a | b)
	BIN32(xor, a ^ b)
	BIN32(shl, a << (b & 31))
	BIN32(shr_s, (uint32_t)(S32(a) >> (b & 31)))
	BIN32(shr_u, a >> (b & 31))
	BIN32(rotl, rotl32(a, b))
	BIN32(rotr, rotr32(a, b))
	BIN32(eq, a == b)
	BIN32(ne, a != b)
	BIN32(lt_s, S32(a) < S32(b))
	BIN32(lt_u, a < b)
	BIN32(gt_s, S32(a) > S32(b))
	BIN32(gt_u, a > b)
	BIN32(le_s, S32(a) <= S32(b))
	BIN32(le_u, a <= b)
	BIN32(ge_s, S32(a) >= S32(b))
	BIN32(ge_u, a >= b)

	BIN64(add, a + b)
	BIN64(sub, a - b)
	BIN64(mul, a * b)
	BIN64T(div_s,
	       if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO);
	       if (MW_UNLIKELY(a == 0x8000000000000000ull && b == ~0ull))
		       TRAP(MW_TRAP_INT_OVERFLOW),
	       (uint64_t)(S64(a) / S64(b)))
	BIN64T(div_u, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO), a / b)
	BIN64T(rem_s, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO),
	       b == ~0ull ? 0 : (uint64_t)(S64(a) % S64(b)))
	BIN64T(rem_u, if (MW_UNLIKELY(b == 0)) TRAP(MW_TRAP_DIV_BY_ZERO), a % b)
	BIN64(and, a & b)
	BIN64(or, a | b)
	BIN64(xor, a ^ b)
	BIN64(shl, a << (b & 63))
	BIN64(shr_s, (uint64_t)(S64(a) >> (b & 63)))
	BIN64(shr_u, a >> (b & 63))
	BIN64(rotl, rotl64(a, b))
	BIN64(rotr, rotr64(a, b))
	BIN64W(eq, W32, a == b)
	BIN64W(ne, W32, a != b)
	BIN64W(lt_s, W32, S64(a) < S64(b))
	BIN64W(lt_u, W32, a < b)
	BIN64W(gt_s, W32, S64(a) > S64(b))
	BIN64W(gt_u, W32, a > b)
	BIN64W(le_s, W32, S64(a) <= S64(b))
	BIN64W(le_u, W32, a <= b)
	BIN64W(ge_s, W32, S64(a) >= S64(b))
	BIN64W(ge_u, W32, a >= b)

	/* ------------------------------------------------- compare and branch */
#define BRC32(name, expr)                                                                          \
	L_brc_i32_##name: {                                                                        \
		uint32_t a = R32(I(0)), b = R32(I(1));                                             \
		if (expr)                                                                          \
			JUMP(4);                                                  \
		else                                                                               \
			ip += 5;                                                                   \
		NEXT();                                                                            \
	}                                                                                          \
	L_brc_i32_##name##_i: {                                                                    \
		uint32_t a = R32(I(0)), b = I(1);                                                  \
		if (expr)                                                                          \
			JUMP(4);                                                  \
		else                                                                               \
			ip += 5;                                                                   \
		NEXT();                                                                            \
	}
#define BRC64(name, expr)                                                                          \
	L_brc_i64_##name: {                                                                        \
		uint64_t a = R64(I(0)), b = R64(I(1));                                             \
		if (expr)                                                                          \
			JUMP(4);                                                  \
		else                                                                               \
			ip += 5;                                                                   \
		NEXT();                                                                            \
	}                                                                                          \
	L_brc_i64_##name##_i: {                                                                    \
		uint64_t a = R64(I(0)), b = imm64(ip + 3);                                         \
		if (expr)                                                                          \
			JUMP(5);                                                  \
		else                                                                               \
			ip += 6;                                                                   \
		NEXT();                                                                            \
	}
#define IBRC32(name, expr)                                                                         \
	L_ibrc_i32_##name: {                                                                       \
		uint32_t a = R32(I(1)) + I(2);                                                     \
		W32(I(0), a);                                                                      \
		uint32_t b = R32(I(3));                                                            \
		if (expr)                                                                          \
			JUMP(6);                                                                   \
		else                                                                               \
			ip += 7;                                                                   \
		NEXT();                                                                            \
	}                                                                                          \
	L_ibrc_i32_##name##_i: {                                                                   \
		uint32_t a = R32(I(1)) + I(2);                                                     \
		W32(I(0), a);                                                                      \
		uint32_t b = I(3);                                                                 \
		if (expr)                                                                          \
			JUMP(6);                                                                   \
		else                                                                               \
			ip += 7;                                                                   \
		NEXT();                                                                            \
	}
	IBRC32(eq, a == b)
	IBRC32(ne, a != b)
	IBRC32(lt_s, S32(a) < S32(b))
	IBRC32(lt_u, a < b)
	IBRC32(gt_s, S32(a) > S32(b))
	IBRC32(gt_u, a > b)
	IBRC32(le_s, S32(a) <= S32(b))
	IBRC32(le_u, a <= b)
	IBRC32(ge_s, S32(a) >= S32(b))
	IBRC32(ge_u, a >= b)

	BRC32(eq, a == b)
	BRC32(ne, a != b)
	BRC32(lt_s, S32(a) < S32(b))
	BRC32(lt_u, a < b)
	BRC32(gt_s, S32(a) > S32(b))
	BRC32(gt_u, a > b)
	BRC32(le_s, S32(a) <= S32(b))
	BRC32(le_u, a <= b)
	BRC32(ge_s, S32(a) >= S32(b))
	BRC32(ge_u, a >= b)
	BRC64(eq, a == b)
	BRC64(ne, a != b)
	BRC64(lt_s, S64(a) < S64(b))
	BRC64(lt_u, a < b)
	BRC64(gt_s, S64(a) > S64(b))
	BRC64(gt_u, a > b)
	BRC64(le_s, S64(a) <= S64(b))
	BRC64(le_u, a <= b)
	BRC64(ge_s, S64(a) >= S64(b))
	BRC64(ge_u, a >= b)

	/* ---------------------------------------------------------- float ops */
#define FBIN(name, T, RD, WR, expr)                                                                \
	L_##name: {                                                                                \
		T a = RD(I(1)), b = RD(I(2));                                                      \
		WR(I(0), (expr));                                                                  \
		ip += 5;                                                                           \
		NEXT();                                                                            \
	}
	FBIN(f32_add, float, RF32, WF32, a + b)
	FBIN(f32_sub, float, RF32, WF32, a - b)
	FBIN(f32_mul, float, RF32, WF32, a * b)
	FBIN(f32_div, float, RF32, WF32, a / b)
	FBIN(f32_min, float, RF32, WF32, mw_f32_min(a, b))
	FBIN(f32_max, float, RF32, WF32, mw_f32_max(a, b))
	FBIN(f32_eq, float, RF32, W32, a == b)
	FBIN(f32_ne, float, RF32, W32, a != b)
	FBIN(f32_lt, float, RF32, W32, a < b)
	FBIN(f32_gt, float, RF32, W32, a > b)
	FBIN(f32_le, float, RF32, W32, a <= b)
	FBIN(f32_ge, float, RF32, W32, a >= b)
	FBIN(f64_add, double, RF64, WF64, a + b)
	FBIN(f64_sub, double, RF64, WF64, a - b)
	FBIN(f64_mul, double, RF64, WF64, a * b)
	FBIN(f64_div, double, RF64, WF64, a / b)
	FBIN(f64_min, double, RF64, WF64, mw_f64_min(a, b))
	FBIN(f64_max, double, RF64, WF64, mw_f64_max(a, b))
	FBIN(f64_eq, double, RF64, W32, a == b)
	FBIN(f64_ne, double, RF64, W32, a != b)
	FBIN(f64_lt, double, RF64, W32, a < b)
	FBIN(f64_gt, double, RF64, W32, a > b)
	FBIN(f64_le, double, RF64, W32, a <= b)
	FBIN(f64_ge, double, RF64, W32, a >= b)
	FBIN(f32_copysign, uint32_t, R32, W32, (a & ~F32_SIGN) | (b & F32_SIGN))
	FBIN(f64_copysign, uint64_t, R64, W64, (a & ~F64_SIGN) | (b & F64_SIGN))

	/* ------------------------------------------------------------- unary */
#define UN(name, T, RD, WR, expr)                                                                  \
	L_##name: {                                                                                \
		T a = RD(I(1));                                                                    \
		WR(I(0), (expr));                                                                  \
		ip += 4;                                                                           \
		NEXT();                                                                            \
	}
	UN(i32_eqz, uint32_t, R32, W32, a == 0)
	UN(i32_clz, uint32_t, R32, W32, a ? (uint32_t)__builtin_clz(a) : 32u)
	UN(i32_ctz, uint32_t, R32, W32, a ? (uint32_t)__builtin_ctz(a) : 32u)
	UN(i32_popcnt, uint32_t, R32, W32, mw_popcnt32(a))
	UN(i32_extend8_s, uint32_t, R32, W32, (int32_t)(int8_t)a)
	UN(i32_extend16_s, uint32_t, R32, W32, (int32_t)(int16_t)a)
	UN(i64_eqz, uint64_t, R64, W32, a == 0)
	UN(i64_clz, uint64_t, R64, W64, a ? (uint64_t)__builtin_clzll(a) : 64u)
	UN(i64_ctz, uint64_t, R64, W64, a ? (uint64_t)__builtin_ctzll(a) : 64u)
	UN(i64_popcnt, uint64_t, R64, W64, mw_popcnt64(a))
	UN(i64_extend8_s, uint64_t, R64, W64, (int64_t)(int8_t)a)
	UN(i64_extend16_s, uint64_t, R64, W64, (int64_t)(int16_t)a)
	UN(i64_extend32_s, uint64_t, R64, W64, (int64_t)(int32_t)a)
	UN(i64_extend_i32_s, int32_t, RS32, W64, (int64_t)a)
	UN(i64_extend_i32_u, uint32_t, R32, W64, (uint64_t)a)
	UN(f32_abs, uint32_t, R32, W32, a & ~F32_SIGN)
	UN(f32_neg, uint32_t, R32, W32, a ^ F32_SIGN)
	UN(f32_ceil, float, RF32, WF32, mw_f32_ceil(a))
	UN(f32_floor, float, RF32, WF32, mw_f32_floor(a))
	UN(f32_trunc, float, RF32, WF32, mw_f32_trunc(a))
	UN(f32_nearest, float, RF32, WF32, mw_f32_nearest(a))
	UN(f32_sqrt, float, RF32, WF32, mw_f32_sqrt(a))
	UN(f64_abs, uint64_t, R64, W64, a & ~F64_SIGN)
	UN(f64_neg, uint64_t, R64, W64, a ^ F64_SIGN)
	UN(f64_ceil, double, RF64, WF64, mw_f64_ceil(a))
	UN(f64_floor, double, RF64, WF64, mw_f64_floor(a))
	UN(f64_trunc, double, RF64, WF64, mw_f64_trunc(a))
	UN(f64_nearest, double, RF64, WF64, mw_f64_nearest(a))
	UN(f64_sqrt, double, RF64, WF64, mw_f64_sqrt(a))
	UN(f32_convert_i32_s, int32_t, RS32, WF32, (float)a)
	UN(f32_convert_i32_u, uint32_t, R32, WF32, (float)a)
	UN(f32_convert_i64_s, int64_t, RS64, WF32, (float)a)
	UN(f32_convert_i64_u, uint64_t, R64, WF32, (float)a)
	UN(f32_demote_f64, double, RF64, WF32, (float)a)
	UN(f64_convert_i32_s, int32_t, RS32, WF64, (double)a)
	UN(f64_convert_i32_u, uint32_t, R32, WF64, (double)a)
	UN(f64_convert_i64_s, int64_t, RS64, WF64, (double)a)
	UN(f64_convert_i64_u, uint64_t, R64, WF64, (double)a)
	UN(f64_promote_f32, float, RF32, WF64, (double)a)

	/* float -> int, trapping */
#define TRUNC(name, T, RD, WR, lo_ok, hi_ok, RT)                                                   \
	L_##name: {                                                                                \
		T a = RD(I(1));                                                                    \
		if (MW_UNLIKELY(a != a))                                                           \
			TRAP(MW_TRAP_INVALID_CONVERSION);                                          \
		if (MW_UNLIKELY(!((lo_ok) && (hi_ok))))                                            \
			TRAP(MW_TRAP_INT_OVERFLOW);                                                \
		WR(I(0), (RT)a);                                                                   \
		ip += 4;                                                                           \
		NEXT();                                                                            \
	}
	TRUNC(i32_trunc_f32_s, float, RF32, W32, a >= -2147483648.0f, a < 2147483648.0f, int32_t)
	TRUNC(i32_trunc_f32_u, float, RF32, W32, a > -1.0f, a < 4294967296.0f, uint32_t)
	TRUNC(i32_trunc_f64_s, double, RF64, W32, a > -2147483649.0, a < 2147483648.0, int32_t)
	TRUNC(i32_trunc_f64_u, double, RF64, W32, a > -1.0, a < 4294967296.0, uint32_t)
	TRUNC(i64_trunc_f32_s, float, RF32, W64, a >= -9223372036854775808.0f,
	      a < 9223372036854775808.0f, int64_t)
	TRUNC(i64_trunc_f32_u, float, RF32, W64, a > -1.0f, a < 18446744073709551616.0f, uint64_t)
	TRUNC(i64_trunc_f64_s, double, RF64, W64, a >= -9223372036854775808.0,
	      a < 9223372036854775808.0, int64_t)
	TRUNC(i64_trunc_f64_u, double, RF64, W64, a > -1.0, a < 18446744073709551616.0, uint64_t)

	/* float -> int, saturating */
#define TRUNC_SAT(name, T, RD, WR, lo_ok, hi_ok, RT, LO, HI)                                       \
	L_##name: {                                                                                \
		T a = RD(I(1));                                                                    \
		RT r;                                                                              \
		if (a != a)                                                                        \
			r = 0;                                                                     \
		else if (!(lo_ok))                                                                 \
			r = LO;                                                                    \
		else if (!(hi_ok))                                                                 \
			r = HI;                                                                    \
		else                                                                               \
			r = (RT)a;                                                                 \
		WR(I(0), r);                                                                       \
		ip += 4;                                                                           \
		NEXT();                                                                            \
	}
	TRUNC_SAT(i32_trunc_sat_f32_s, float, RF32, W32, a >= -2147483648.0f, a < 2147483648.0f,
		  int32_t, INT32_MIN, INT32_MAX)
	TRUNC_SAT(i32_trunc_sat_f32_u, float, RF32, W32, a > -1.0f, a < 4294967296.0f, uint32_t, 0,
		  UINT32_MAX)
	TRUNC_SAT(i32_trunc_sat_f64_s, double, RF64, W32, a > -2147483649.0, a < 2147483648.0,
		  int32_t, INT32_MIN, INT32_MAX)
	TRUNC_SAT(i32_trunc_sat_f64_u, double, RF64, W32, a > -1.0, a < 4294967296.0, uint32_t, 0,
		  UINT32_MAX)
	TRUNC_SAT(i64_trunc_sat_f32_s, float, RF32, W64, a >= -9223372036854775808.0f,
		  a < 9223372036854775808.0f, int64_t, INT64_MIN, INT64_MAX)
	TRUNC_SAT(i64_trunc_sat_f32_u, float, RF32, W64, a > -1.0f, a < 18446744073709551616.0f,
		  uint64_t, 0, UINT64_MAX)
	TRUNC_SAT(i64_trunc_sat_f64_s, double, RF64, W64, a >= -9223372036854775808.0,
		  a < 9223372036854775808.0, int64_t, INT64_MIN, INT64_MAX)
	TRUNC_SAT(i64_trunc_sat_f64_u, double, RF64, W64, a > -1.0, a < 18446744073709551616.0,
		  uint64_t, 0, UINT64_MAX)
}

#undef frames_end
#undef stack_end

const void *const *mw__labels(void)
{
	const void *const *l = NULL;
	mw__interp(NULL, NULL, NULL, &l);
	return l;
}
