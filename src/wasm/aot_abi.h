/* The contract between the engine and the C that the ahead-of-time
 * translator (aot.c) writes for a module: the views of runtime objects the
 * compiled code reads, the engine functions it calls, and the inline helpers
 * that give its operators the exact Wasm semantics. Included by the engine
 * (wasm_int.h, with _Static_assert checks that the views are the prefixes of
 * the real structs) and by every translated module. Freestanding. */
#ifndef MOTE_WASM_AOT_ABI_H
#define MOTE_WASM_AOT_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "fmath.h"

/* Bumped whenever anything below changes: the engine refuses compiled code
 * built against another version. */
#define MW_AOT_ABI 1

/* Prefix of struct mw_memory: the linear memory's current base and size. */
typedef struct mw_aot_mem {
	uint8_t *data;
	uint64_t size;
} mw_aot_mem;

/* Prefix of struct mw_table: elements are mw_func pointers or externrefs. */
typedef struct mw_aot_table {
	uint64_t *elems;
	uint32_t size;
} mw_aot_table;

typedef struct mw_aot_inst mw_aot_inst;

/* Prefix of struct mw_func. `direct` is the function's typed C code when it
 * was compiled (NULL otherwise); `key` identifies the compiled module and
 * `canon` the function's type in it, so call_indirect can call `direct`
 * without going through the engine when both match its expectation. */
typedef struct mw_aot_func {
	const void *direct;
	const mw_aot_inst *inst;
	const void *key;
	uint32_t canon;
} mw_aot_func;

/* Prefix of struct mw_instance: what compiled code reads of its instance. */
struct mw_aot_inst {
	mw_aot_mem *mem; /* memory 0 (every instance has one, maybe of 0 pages) */
	uint64_t **globals;
	mw_aot_table **tables;
	mw_aot_func **funcs;
	const uintptr_t *stack_limit; /* the lowest stack address calls may reach */
	const void *key;              /* the compiled module (mw_aot_module) */
};

/* The engine calls a compiled function through its entry: arguments in
 * args[], results to res[] (i32/f32 in the low 32 bits, refs as pointers). */
typedef void (*mw_aot_entry)(const mw_aot_inst *c, const uint64_t *args, uint64_t *res);

/* What a translated module exports: one of these per module. */
typedef struct mw_aot_module {
	uint32_t abi;    /* MW_AOT_ABI */
	uint32_t nfuncs; /* defined (not imported) functions */
	uint64_t module_len;
	uint64_t module_hash;        /* mw_aot_hash() of the binary */
	const mw_aot_entry *entries; /* per defined function; NULL if unreachable from outside */
	const void *const *direct;   /* per defined function: its typed C function */
	const uint8_t *bytes;        /* the binary itself, or NULL */
} mw_aot_module;

/* FNV-1a, 64 bits: ties compiled code to the binary it came from (not a
 * security boundary: both come from the same trusted build). */
static inline uint64_t mw_aot_hash(const uint8_t *p, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- engine functions compiled code calls (aot_rt.c); traps do not return ----
 * Visible even where the engine is built with hidden symbols (libmote):
 * compiled code in a shared object finds them in the program. */
#define MW_AOT_API __attribute__((visibility("default")))
/* A trap: unwinds to where the engine entered compiled code on this thread.
 * It takes no instance so that cold paths keep no register alive for it. */
MW_AOT_API __attribute__((noreturn, cold)) void mw__aot_trap(int trap);
/* The same for "call stack exhausted". Taking no argument matters: with one,
 * gcc no longer shrink-wraps the prologues of recursive functions (fib ran
 * at 2.2x native instead of 1.07x). */
MW_AOT_API __attribute__((noreturn)) void mw__aot_stack_exhausted(void);
MW_AOT_API void mw__aot_call(const mw_aot_inst *c, uint32_t func, const uint64_t *args,
                             uint64_t *res);
MW_AOT_API void mw__aot_call_indirect(const mw_aot_inst *c, uint32_t table, uint32_t elem,
                                      uint32_t type, const uint64_t *args, uint64_t *res);
MW_AOT_API uint32_t mw__aot_memory_grow(const mw_aot_inst *c, uint32_t delta);
MW_AOT_API void mw__aot_memory_init(const mw_aot_inst *c, uint32_t seg, uint32_t d, uint32_t s,
                                    uint32_t n);
MW_AOT_API void mw__aot_data_drop(const mw_aot_inst *c, uint32_t seg);
MW_AOT_API void mw__aot_table_init(const mw_aot_inst *c, uint32_t table, uint32_t seg, uint32_t d,
                                   uint32_t s, uint32_t n);
MW_AOT_API void mw__aot_elem_drop(const mw_aot_inst *c, uint32_t seg);
MW_AOT_API void mw__aot_table_copy(const mw_aot_inst *c, uint32_t dt, uint32_t st, uint32_t d,
                                   uint32_t s, uint32_t n);
MW_AOT_API uint32_t mw__aot_table_grow(const mw_aot_inst *c, uint32_t table, uint64_t init,
                                       uint32_t n);
MW_AOT_API void mw__aot_table_fill(const mw_aot_inst *c, uint32_t table, uint32_t i, uint64_t v,
                                   uint32_t n);

/* Trap codes (mw_trap in wasm.h), repeated for translated code that does not
 * include wasm.h; wasm_int.h checks they agree. */
enum {
	MW_AOT_UNREACHABLE = 1,
	MW_AOT_DIV_BY_ZERO = 2,
	MW_AOT_INT_OVERFLOW = 3,
	MW_AOT_INVALID_CONVERSION = 4,
	MW_AOT_MEMORY_OOB = 5,
	MW_AOT_TABLE_OOB = 6,
	MW_AOT_UNDEFINED_ELEMENT = 8,
	MW_AOT_UNINITIALIZED_ELEMENT = 9,
	MW_AOT_CALL_STACK_EXHAUSTED = 10,
};

#define MW_AOT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MW_AOT_LIKELY(x)   __builtin_expect(!!(x), 1)

/* Functions that call others check the stack on entry: deep recursion traps
 * as "call stack exhausted" instead of overflowing the native stack. */
#define MW_AOT_STACK_CHECK(c)                                                                      \
	do {                                                                                       \
		uintptr_t sp_;                                                                     \
		__asm__ volatile("mov %%rsp, %0" : "=r"(sp_));                                     \
		if (MW_AOT_UNLIKELY(sp_ < *(c)->stack_limit))                                      \
			mw__aot_stack_exhausted();                                                 \
	} while (0)

/* Linear memory: M and MS are the function's cached base and size. */
#define MW_AOT_EA(a, off, n)                                                                       \
	({                                                                                         \
		uint64_t ea_ = (uint64_t)(a) + (off);                                              \
		if (MW_AOT_UNLIKELY(ea_ + (n) > MS))                                               \
			mw__aot_trap(MW_AOT_MEMORY_OOB);                                           \
		ea_;                                                                               \
	})
#define MW_LD(T, a, off)                                                                           \
	({                                                                                         \
		T v_;                                                                              \
		__builtin_memcpy(&v_, M + MW_AOT_EA(a, off, sizeof(T)), sizeof(T));                \
		v_;                                                                                \
	})
#define MW_ST(T, a, off, v)                                                                        \
	do {                                                                                       \
		T v_ = (T)(v);                                                                     \
		__builtin_memcpy(M + MW_AOT_EA(a, off, sizeof(T)), &v_, sizeof(T));                \
	} while (0)

static inline uint32_t mw_i32_div_s(uint32_t a, uint32_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	if (MW_AOT_UNLIKELY(a == 0x80000000u && b == 0xffffffffu))
		mw__aot_trap(MW_AOT_INT_OVERFLOW);
	return (uint32_t)((int32_t)a / (int32_t)b);
}
static inline uint32_t mw_i32_div_u(uint32_t a, uint32_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return a / b;
}
static inline uint32_t mw_i32_rem_s(uint32_t a, uint32_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return b == 0xffffffffu ? 0 : (uint32_t)((int32_t)a % (int32_t)b);
}
static inline uint32_t mw_i32_rem_u(uint32_t a, uint32_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return a % b;
}
static inline uint64_t mw_i64_div_s(uint64_t a, uint64_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	if (MW_AOT_UNLIKELY(a == 0x8000000000000000ull && b == ~0ull))
		mw__aot_trap(MW_AOT_INT_OVERFLOW);
	return (uint64_t)((int64_t)a / (int64_t)b);
}
static inline uint64_t mw_i64_div_u(uint64_t a, uint64_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return a / b;
}
static inline uint64_t mw_i64_rem_s(uint64_t a, uint64_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return b == ~0ull ? 0 : (uint64_t)((int64_t)a % (int64_t)b);
}
static inline uint64_t mw_i64_rem_u(uint64_t a, uint64_t b)
{
	if (MW_AOT_UNLIKELY(b == 0))
		mw__aot_trap(MW_AOT_DIV_BY_ZERO);
	return a % b;
}

static inline uint32_t mw_rotl32(uint32_t a, uint32_t b)
{
	b &= 31;
	return (a << b) | (a >> ((32 - b) & 31));
}
static inline uint32_t mw_rotr32(uint32_t a, uint32_t b)
{
	b &= 31;
	return (a >> b) | (a << ((32 - b) & 31));
}
static inline uint64_t mw_rotl64(uint64_t a, uint64_t b)
{
	b &= 63;
	return (a << b) | (a >> ((64 - b) & 63));
}
static inline uint64_t mw_rotr64(uint64_t a, uint64_t b)
{
	b &= 63;
	return (a >> b) | (a << ((64 - b) & 63));
}
static inline uint32_t mw_clz32(uint32_t a)
{
	return a ? (uint32_t)__builtin_clz(a) : 32;
}
static inline uint32_t mw_ctz32(uint32_t a)
{
	return a ? (uint32_t)__builtin_ctz(a) : 32;
}
static inline uint64_t mw_clz64(uint64_t a)
{
	return a ? (uint64_t)__builtin_clzll(a) : 64;
}
static inline uint64_t mw_ctz64(uint64_t a)
{
	return a ? (uint64_t)__builtin_ctzll(a) : 64;
}

static inline float mw_f32_abs(float a)
{
	return mw_u2f(mw_f2u(a) & ~F32_SIGN);
}
static inline float mw_f32_neg(float a)
{
	return mw_u2f(mw_f2u(a) ^ F32_SIGN);
}
static inline float mw_f32_copysign(float a, float b)
{
	return mw_u2f((mw_f2u(a) & ~F32_SIGN) | (mw_f2u(b) & F32_SIGN));
}
static inline double mw_f64_abs(double a)
{
	return mw_u2d(mw_d2u(a) & ~F64_SIGN);
}
static inline double mw_f64_neg(double a)
{
	return mw_u2d(mw_d2u(a) ^ F64_SIGN);
}
static inline double mw_f64_copysign(double a, double b)
{
	return mw_u2d((mw_d2u(a) & ~F64_SIGN) | (mw_d2u(b) & F64_SIGN));
}

/* Trapping float-to-int conversions (the bounds are the interpreter's). */
#define MW_AOT_TRUNC(name, T, RT, R, lo_ok, hi_ok)                                                 \
	static inline R name(T a)                                                                  \
	{                                                                                          \
		if (MW_AOT_UNLIKELY(a != a))                                                       \
			mw__aot_trap(MW_AOT_INVALID_CONVERSION);                                   \
		if (MW_AOT_UNLIKELY(!((lo_ok) && (hi_ok))))                                        \
			mw__aot_trap(MW_AOT_INT_OVERFLOW);                                         \
		return (R)(RT)a;                                                                   \
	}
MW_AOT_TRUNC(mw_i32_trunc_f32_s, float, int32_t, uint32_t, a >= -2147483648.0f, a < 2147483648.0f)
MW_AOT_TRUNC(mw_i32_trunc_f32_u, float, uint32_t, uint32_t, a > -1.0f, a < 4294967296.0f)
MW_AOT_TRUNC(mw_i32_trunc_f64_s, double, int32_t, uint32_t, a > -2147483649.0, a < 2147483648.0)
MW_AOT_TRUNC(mw_i32_trunc_f64_u, double, uint32_t, uint32_t, a > -1.0, a < 4294967296.0)
MW_AOT_TRUNC(mw_i64_trunc_f32_s, float, int64_t, uint64_t, a >= -9223372036854775808.0f,
             a < 9223372036854775808.0f)
MW_AOT_TRUNC(mw_i64_trunc_f32_u, float, uint64_t, uint64_t, a > -1.0f, a < 18446744073709551616.0f)
MW_AOT_TRUNC(mw_i64_trunc_f64_s, double, int64_t, uint64_t, a >= -9223372036854775808.0,
             a < 9223372036854775808.0)
MW_AOT_TRUNC(mw_i64_trunc_f64_u, double, uint64_t, uint64_t, a > -1.0, a < 18446744073709551616.0)

/* Saturating conversions: NaN is 0, out of range clamps. */
#define MW_AOT_TRUNC_SAT(name, T, RT, R, lo_ok, hi_ok, LO, HI)                                     \
	static inline R name(T a)                                                                  \
	{                                                                                          \
		if (a != a)                                                                        \
			return 0;                                                                  \
		if (!(lo_ok))                                                                      \
			return (R)(LO);                                                            \
		if (!(hi_ok))                                                                      \
			return (R)(HI);                                                            \
		return (R)(RT)a;                                                                   \
	}
MW_AOT_TRUNC_SAT(mw_i32_trunc_sat_f32_s, float, int32_t, uint32_t, a >= -2147483648.0f,
                 a < 2147483648.0f, INT32_MIN, INT32_MAX)
MW_AOT_TRUNC_SAT(mw_i32_trunc_sat_f32_u, float, uint32_t, uint32_t, a > -1.0f, a < 4294967296.0f, 0,
                 UINT32_MAX)
MW_AOT_TRUNC_SAT(mw_i32_trunc_sat_f64_s, double, int32_t, uint32_t, a > -2147483649.0,
                 a < 2147483648.0, INT32_MIN, INT32_MAX)
MW_AOT_TRUNC_SAT(mw_i32_trunc_sat_f64_u, double, uint32_t, uint32_t, a > -1.0, a < 4294967296.0, 0,
                 UINT32_MAX)
MW_AOT_TRUNC_SAT(mw_i64_trunc_sat_f32_s, float, int64_t, uint64_t, a >= -9223372036854775808.0f,
                 a < 9223372036854775808.0f, INT64_MIN, INT64_MAX)
MW_AOT_TRUNC_SAT(mw_i64_trunc_sat_f32_u, float, uint64_t, uint64_t, a > -1.0f,
                 a < 18446744073709551616.0f, 0, UINT64_MAX)
MW_AOT_TRUNC_SAT(mw_i64_trunc_sat_f64_s, double, int64_t, uint64_t, a >= -9223372036854775808.0,
                 a < 9223372036854775808.0, INT64_MIN, INT64_MAX)
MW_AOT_TRUNC_SAT(mw_i64_trunc_sat_f64_u, double, uint64_t, uint64_t, a > -1.0,
                 a < 18446744073709551616.0, 0, UINT64_MAX)

#endif
