/* mote wasm engine: internal definitions shared by the decoder, the
 * translator (validate + compile), the interpreter and the runtime. */
#ifndef MOTE_WASM_INT_H
#define MOTE_WASM_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aot_abi.h"
#include "wasm.h"
#include "wasm_rt.h"

#define MW_LIKELY(x) __builtin_expect(!!(x), 1)
#define MW_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MW_PAGE 65536u
#define MW_MAX_PAGES 65536u
/* Implementation limit on parameters/results per function type (as in web
 * engines); keeps per-instruction translation work bounded. */
#define MW_MAX_ARITY 1000u

/* Internal value type codes (binary encoding); 0 = unknown (polymorphic). */
enum { T_UNK = 0, T_I32 = 0x7f, T_I64 = 0x7e, T_F32 = 0x7d, T_F64 = 0x7c, T_FUNCREF = 0x70,
       T_EXTERNREF = 0x6f };

static inline bool mw_is_num(uint8_t t)
{
	return t == T_I32 || t == T_I64 || t == T_F32 || t == T_F64;
}
static inline bool mw_is_ref(uint8_t t)
{
	return t == T_FUNCREF || t == T_EXTERNREF;
}

/* ---------------------------------------------------------------- opcodes */

/* Internal instruction set. Every instruction is a 64-bit handler address
 * (two 32-bit code words) followed by 32-bit operand words. Frame operands are
 * byte offsets from the frame pointer; branch offsets are in words, relative
 * to the offset word itself. */
#define MW_OPS_CTRL(X)                                                                             \
	X(unreachable) X(exit) X(fuel) X(br) X(br_if) X(br_unless) X(br_table) X(call)             \
	X(call_import) X(call_indirect) X(ret0) X(ret1) X(retn) X(mov) X(mov2) X(const32)        \
	X(const64)                                                                                 \
	X(select) X(global_get) X(global_set) X(ref_func) X(table_get) X(table_set) X(table_size)  \
	X(table_grow) X(table_fill) X(table_copy) X(table_init) X(elem_drop) X(memory_size)       \
	X(memory_grow) X(memory_init) X(data_drop) X(memory_copy) X(memory_fill)

/* Loads: base form [d, a, off]; _ai [d, a, K, off] addresses (u32)(a + K) + off;
 * _as [d, a, b, off] addresses (u32)(a + b) + off (fused i32.add + load). */
#define MW_OPS_LOAD(X)                                                                             \
	X(i32_load) X(i64_load) X(i32_load8_s) X(i32_load8_u) X(i32_load16_s) X(i32_load16_u)     \
	X(i64_load8_s) X(i64_load8_u) X(i64_load16_s) X(i64_load16_u) X(i64_load32_s)             \
	X(i64_load32_u)
#define MW_NLOAD 12
/* Stores: [a, v, off]; _ai [a, K, v, off]; _as [a, b, v, off]; _k [a, imm, off]
 * (store64_k: [a, imm64, off]). */
#define MW_OPS_STORE(X) X(store8) X(store16) X(store32) X(store64)
#define MW_NSTORE 4

#define MW_OPS_INTBIN(X, T)                                                                        \
	X(T##_add) X(T##_sub) X(T##_mul) X(T##_div_s) X(T##_div_u) X(T##_rem_s) X(T##_rem_u)       \
	X(T##_and) X(T##_or) X(T##_xor) X(T##_shl) X(T##_shr_s) X(T##_shr_u) X(T##_rotl)            \
	X(T##_rotr) X(T##_eq) X(T##_ne) X(T##_lt_s) X(T##_lt_u) X(T##_gt_s) X(T##_gt_u)             \
	X(T##_le_s) X(T##_le_u) X(T##_ge_s) X(T##_ge_u)

/* Compare-and-branch: (a OP b) ? jump : fall through. */
#define MW_OPS_BRC(X, T)                                                                           \
	X(T##_eq) X(T##_ne) X(T##_lt_s) X(T##_lt_u) X(T##_gt_s) X(T##_gt_u) X(T##_le_s)             \
	X(T##_le_u) X(T##_ge_s) X(T##_ge_u)

#define MW_OPS_FBIN(X, T)                                                                          \
	X(T##_add) X(T##_sub) X(T##_mul) X(T##_div) X(T##_min) X(T##_max) X(T##_copysign)          \
	X(T##_eq) X(T##_ne) X(T##_lt) X(T##_gt) X(T##_le) X(T##_ge)

#define MW_OPS_UN(X)                                                                               \
	X(i32_eqz) X(i32_clz) X(i32_ctz) X(i32_popcnt) X(i32_extend8_s) X(i32_extend16_s)          \
	X(i64_eqz) X(i64_clz) X(i64_ctz) X(i64_popcnt) X(i64_extend8_s) X(i64_extend16_s)          \
	X(i64_extend32_s) X(i64_extend_i32_s) X(i64_extend_i32_u) X(f32_abs) X(f32_neg)            \
	X(f32_ceil) X(f32_floor) X(f32_trunc) X(f32_nearest) X(f32_sqrt) X(f64_abs) X(f64_neg)     \
	X(f64_ceil) X(f64_floor) X(f64_trunc) X(f64_nearest) X(f64_sqrt) X(i32_trunc_f32_s)        \
	X(i32_trunc_f32_u) X(i32_trunc_f64_s) X(i32_trunc_f64_u) X(i64_trunc_f32_s)                \
	X(i64_trunc_f32_u) X(i64_trunc_f64_s) X(i64_trunc_f64_u) X(f32_convert_i32_s)              \
	X(f32_convert_i32_u) X(f32_convert_i64_s) X(f32_convert_i64_u) X(f32_demote_f64)           \
	X(f64_convert_i32_s) X(f64_convert_i32_u) X(f64_convert_i64_s) X(f64_convert_i64_u)        \
	X(f64_promote_f32) X(i32_trunc_sat_f32_s) X(i32_trunc_sat_f32_u) X(i32_trunc_sat_f64_s)    \
	X(i32_trunc_sat_f64_u) X(i64_trunc_sat_f32_s) X(i64_trunc_sat_f32_u)                       \
	X(i64_trunc_sat_f64_s) X(i64_trunc_sat_f64_u)

/* The binary opcodes the decoder and the compiler switch on by name (Wasm
 * core spec 5.4; the numeric ones, 0x45-0xc4, are NUMOPS in compile.c): one
 * table, so a case reads `case W_OP(i32_load):`, not `case 0x28:`. */
#define MW_WASM_OPCODES(X) \
	X(unreachable, 0x00) \
	X(nop, 0x01) \
	X(block, 0x02) \
	X(loop, 0x03) \
	X(if, 0x04) \
	X(else, 0x05) \
	X(end, 0x0b) \
	X(br, 0x0c) \
	X(br_if, 0x0d) \
	X(br_table, 0x0e) \
	X(return, 0x0f) \
	X(call, 0x10) \
	X(call_indirect, 0x11) \
	X(drop, 0x1a) \
	X(select, 0x1b) \
	X(select_t, 0x1c) \
	X(local_get, 0x20) \
	X(local_set, 0x21) \
	X(local_tee, 0x22) \
	X(global_get, 0x23) \
	X(global_set, 0x24) \
	X(table_get, 0x25) \
	X(table_set, 0x26) \
	X(i32_load, 0x28) \
	X(i64_load, 0x29) \
	X(f32_load, 0x2a) \
	X(f64_load, 0x2b) \
	X(i32_load8_s, 0x2c) \
	X(i32_load8_u, 0x2d) \
	X(i32_load16_s, 0x2e) \
	X(i32_load16_u, 0x2f) \
	X(i64_load8_s, 0x30) \
	X(i64_load8_u, 0x31) \
	X(i64_load16_s, 0x32) \
	X(i64_load16_u, 0x33) \
	X(i64_load32_s, 0x34) \
	X(i64_load32_u, 0x35) \
	X(i32_store, 0x36) \
	X(i64_store, 0x37) \
	X(f32_store, 0x38) \
	X(f64_store, 0x39) \
	X(i32_store8, 0x3a) \
	X(i32_store16, 0x3b) \
	X(i64_store8, 0x3c) \
	X(i64_store16, 0x3d) \
	X(i64_store32, 0x3e) \
	X(memory_size, 0x3f) \
	X(memory_grow, 0x40) \
	X(i32_const, 0x41) \
	X(i64_const, 0x42) \
	X(f32_const, 0x43) \
	X(f64_const, 0x44) \
	X(ref_null, 0xd0) \
	X(ref_is_null, 0xd1) \
	X(ref_func, 0xd2) \
	X(prefix_fc, 0xfc)

enum mw_wasm_opcode {
#define MW_OPCODE_ENUM_(name, byte) MW_WOP_##name = byte,
	MW_WASM_OPCODES(MW_OPCODE_ENUM_)
#undef MW_OPCODE_ENUM_
};
#define W_OP(name) MW_WOP_##name

#define MW_X_OP(n) OP_##n,
#define MW_X_OPI(n) OP_##n##_i,
#define MW_X_OPAI(n) OP_##n##_ai,
#define MW_X_OPAS(n) OP_##n##_as,
#define MW_X_OPK(n) OP_##n##_k,
#define MW_X_BRC(n) OP_brc_##n,
#define MW_X_BRCI(n) OP_brc_##n##_i,
#define MW_X_IBRC(n) OP_ibrc_##n,
#define MW_X_IBRCI(n) OP_ibrc_##n##_i,

enum mw_op {
	MW_OPS_CTRL(MW_X_OP)
	MW_OPS_LOAD(MW_X_OP)
	MW_OPS_LOAD(MW_X_OPAI)
	MW_OPS_LOAD(MW_X_OPAS)
	MW_OPS_STORE(MW_X_OP)
	MW_OPS_STORE(MW_X_OPAI)
	MW_OPS_STORE(MW_X_OPAS)
	MW_OPS_STORE(MW_X_OPK)
	MW_OPS_INTBIN(MW_X_OP, i32)
	MW_OPS_INTBIN(MW_X_OPI, i32)
	MW_OPS_INTBIN(MW_X_OP, i64)
	MW_OPS_INTBIN(MW_X_OPI, i64)
	MW_OPS_FBIN(MW_X_OP, f32)
	MW_OPS_FBIN(MW_X_OP, f64)
	MW_OPS_UN(MW_X_OP)
	MW_OPS_BRC(MW_X_BRC, i32)
	MW_OPS_BRC(MW_X_BRCI, i32)
	MW_OPS_BRC(MW_X_BRC, i64)
	MW_OPS_BRC(MW_X_BRCI, i64)
	/* increment-compare-branch: x = a + K; if (x OP b) jump  [x, a, K, b, off] */
	MW_OPS_BRC(MW_X_IBRC, i32)
	MW_OPS_BRC(MW_X_IBRCI, i32)
	OP_COUNT_
};

/* ---------------------------------------------------------------- module */

typedef struct mw_ftype {
	mw_functype pub; /* params/results point into types[] */
	uint32_t canon;  /* index of the first structurally equal type in the module */
	uint8_t types[]; /* params then results */
} mw_ftype;

/* A constant expression (2.0: exactly one instruction). */
enum { CE_I32, CE_I64, CE_F32, CE_F64, CE_REF_NULL, CE_REF_FUNC, CE_GLOBAL_GET };
typedef struct mw_cexpr {
	uint8_t kind;
	uint8_t type;   /* result type */
	uint32_t index; /* func or global index */
	uint64_t bits;
} mw_cexpr;

typedef struct mw_name {
	const char *s; /* points into the module's name arena, NUL-terminated */
	uint32_t len;
} mw_name;

typedef struct mw_import {
	mw_name module, name;
	uint8_t kind;
	uint32_t type; /* function type index */
	mw_tabletype table;
	mw_memtype mem;
	mw_globaltype global;
} mw_import;

typedef struct mw_export {
	mw_name name;
	uint8_t kind;
	uint32_t index;
} mw_export;

/* Compiled code of one function defined in the module. */
typedef struct mw_fcode {
	const uint32_t *code;  /* into mw_module.code */
	uint32_t frame_bytes;  /* params + locals + operand stack, in bytes */
	uint32_t param_bytes;  /* nparams * 8 */
	uint32_t local_bytes;  /* non-param locals * 8 (zeroed on entry) */
	uint32_t nresults;
	uint32_t type;         /* type index */
	uint32_t code_off;     /* word offset while compiling */
	uint32_t body_off, body_len; /* in the module bytes */
} mw_fcode;

typedef struct mw_elem {
	uint8_t mode; /* 0 active, 1 passive, 2 declarative */
	uint8_t type; /* reftype */
	uint32_t table;
	mw_cexpr offset;
	uint32_t count;
	mw_cexpr *items;
} mw_elem;

typedef struct mw_data {
	uint8_t mode; /* 0 active, 1 passive */
	mw_cexpr offset;
	const uint8_t *bytes;
	uint32_t len;
} mw_data;

typedef struct mw_globaldef {
	mw_globaltype type;
	mw_cexpr init;
} mw_globaldef;

struct mw_module {
	int refs;
	mw_limits lim;
	uint8_t *bytes; /* private copy of the binary */
	size_t len;
	char *names;    /* name arena */

	uint32_t ntypes;
	mw_ftype **types;
	uint32_t nimports;
	mw_import *imports;
	uint32_t nfuncs, nfunc_imports; /* total including imports */
	uint32_t *func_types;           /* type index per function (all) */
	mw_fcode *fcode;                /* per defined function */
	uint32_t ntables, ntable_imports;
	mw_tabletype *tables;
	uint32_t nmems, nmem_imports;
	mw_memtype *mems;
	uint32_t nglobals, nglobal_imports;
	mw_globaldef *globals; /* all, imported ones have no init */
	uint32_t nexports;
	mw_export *exports;
	bool has_start;
	uint32_t start;
	uint32_t nelems;
	mw_elem *elems;
	uint32_t ndatas;
	mw_data *datas;
	bool has_datacount;
	uint32_t datacount;
	uint8_t *func_refd; /* C.refs: functions that may be used by ref.func */

	uint32_t *code; /* compiled code of all functions */
	size_t code_len;
	const mw_aot_module *aot; /* native code for the defined functions, or NULL */
};

/* -------------------------------------------------------------- runtime */

struct mw_func {
	mw_aot_func aot;        /* first: what compiled code reads (aot_abi.h) */
	mw_aot_entry aot_entry; /* compiled functions: called through aot_dispatch */
	const mw_ftype *type;
	mw_instance *inst;      /* owning instance; NULL for host functions */
	const mw_fcode *fc;     /* wasm functions */
	mw_host_fn host;
	void *host_user;
	struct mw_func *next;   /* store's list of host functions */
	mw_ftype *own_type;     /* host functions own their type */
};

struct mw_memory {
	uint8_t *data;
	uint64_t size; /* bytes */
	uint32_t pages;
	uint32_t max;  /* effective maximum pages (declared max capped by limits) */
	mw_memtype type;
	mw_mem_backend backend;
	struct mw_memory *next;
};

struct mw_table {
	uint64_t *elems;
	uint32_t size;
	uint32_t max; /* effective maximum */
	mw_tabletype type;
	struct mw_table *next;
};

struct mw_global {
	uint64_t val;
	mw_globaltype type;
	struct mw_global *next;
};

struct mw_instance {
	mw_aot_inst aot; /* first: what compiled code reads (aot_abi.h) */
	mw_module *mod;
	mw_store *store;
	mw_func **funcs;
	mw_func *own_funcs;
	mw_table **tables;
	mw_memory *mem; /* memory 0 or NULL */
	uint64_t **globals; /* pointers to global values */
	mw_global **global_objs;
	uint64_t **elem_items; /* evaluated element segments */
	uint32_t *elem_len;    /* 0 once dropped */
	uint32_t *data_len;    /* 0 once dropped */
	struct mw_instance *next;
};

typedef struct mw_frame_rec {
	const uint32_t *ip;
	uint64_t *fp;
	mw_instance *inst;
} mw_frame_rec;

struct mw_store {
	mw_limits lim;
	int64_t fuel;
	uint64_t *stack, *stack_end;
	uint64_t *sp; /* first free value slot (for nested calls) */
	mw_frame_rec *frames, *frames_end, *fr; /* fr: first free record */
	int nest;
	mw_instance *instances;
	mw_func *host_funcs;
	mw_memory *memories;
	mw_table *tables;
	mw_global *globals;
	mw_mem_backend mem_backend;
	const void *const *labels;
	uintptr_t aot_stack_limit;  /* while compiled code runs: the lowest sp allowed */
	struct mw_aot_jmp *aot_jmp; /* where a trap in compiled code unwinds to */
};

_Static_assert(offsetof(struct mw_memory, data) == offsetof(mw_aot_mem, data) &&
                   offsetof(struct mw_memory, size) == offsetof(mw_aot_mem, size),
               "mw_aot_mem is a prefix of mw_memory");
_Static_assert(offsetof(struct mw_table, elems) == offsetof(mw_aot_table, elems) &&
                   offsetof(struct mw_table, size) == offsetof(mw_aot_table, size),
               "mw_aot_table is a prefix of mw_table");
_Static_assert(MW_AOT_UNREACHABLE == (int)MW_TRAP_UNREACHABLE &&
                   MW_AOT_DIV_BY_ZERO == (int)MW_TRAP_DIV_BY_ZERO &&
                   MW_AOT_INT_OVERFLOW == (int)MW_TRAP_INT_OVERFLOW &&
                   MW_AOT_INVALID_CONVERSION == (int)MW_TRAP_INVALID_CONVERSION &&
                   MW_AOT_MEMORY_OOB == (int)MW_TRAP_MEMORY_OOB &&
                   MW_AOT_TABLE_OOB == (int)MW_TRAP_TABLE_OOB &&
                   MW_AOT_UNDEFINED_ELEMENT == (int)MW_TRAP_UNDEFINED_ELEMENT &&
                   MW_AOT_UNINITIALIZED_ELEMENT == (int)MW_TRAP_UNINITIALIZED_ELEMENT &&
                   MW_AOT_CALL_STACK_EXHAUSTED == (int)MW_TRAP_CALL_STACK_EXHAUSTED,
               "aot_abi.h's trap codes are mw_trap's");

/* ----------------------------------------------------------- internal API */

/* error helpers (decode.c) */
void mw__errf(mw_error *err, mw_errcode code, uint32_t off, const char *fmt, ...);
void mw__vfmt(char *buf, size_t cap, const char *fmt, va_list ap);

/* translation of all function bodies (compile.c) */
int mw__compile_module(mw_module *m, mw_error *err);
int mw__compile_body(mw_module *m, uint32_t fidx, mw_error *err, uint32_t **code, size_t *len,
		     size_t *cap);

/* interpreter (interp.c): run f with arguments already in fp[]. Results are
 * written to fp[0..]. Passing store == NULL returns the handler table in
 * *labels. */
mw_trap mw__interp(mw_store *store, mw_func *f, uint64_t *fp, const void *const **labels);
const void *const *mw__labels(void);

/* runtime helpers (runtime.c) */
bool mw__ftype_equal(const mw_ftype *a, const mw_ftype *b);
int64_t mw__memory_grow(mw_memory *m, uint32_t delta);
int64_t mw__table_grow(mw_table *t, uint32_t delta, uint64_t init);
mw_trap mw__call_host(mw_store *s, mw_func *f, mw_instance *caller, uint64_t *fp);
bool mw__store_stacks(mw_store *s);
/* Run f, any kind, with its arguments in fp[] and its results written to
 * fp[0..], as a call nested in whatever runs: the store's stacks are put
 * back afterwards, trap or not. (The store's stacks must exist.) */
mw_trap mw__call_nested(mw_store *s, mw_func *f, mw_instance *caller, uint64_t *fp);
/* compiled code (aot_rt.c): make f, a function of `in`, run its native code */
void mw__aot_bind(mw_instance *in, mw_func *f, uint32_t defined_index);

static inline uint64_t mw_rd_u64(const void *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v;
}

#endif
