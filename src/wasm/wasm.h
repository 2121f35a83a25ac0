/* mote WebAssembly engine: public API (prefix mw_).
 *
 * Supported: WebAssembly 2.0 core without SIMD (MVP, mutable-global
 * import/export, sign-extension ops, non-trapping float-to-int, multi-value,
 * bulk memory, reference types).
 *
 * Life cycle:
 *   mw_module_load()    decode + validate + translate a binary module. A module
 *                       is immutable and can be instantiated any number of times.
 *   mw_store_new()      an execution context: owns instances, host objects,
 *                       memories, tables, globals and the execution stacks. All
 *                       of them are released together by mw_store_free().
 *   mw_instantiate()    link a module against imports (resolver callback),
 *                       run segment initialisation and the start function.
 *   mw_call()/mw_invoke() run a function. A trap returns a typed mw_trap code;
 *                       the store and its instances stay usable afterwards.
 *
 * The engine is freestanding: it only needs the functions declared in
 * wasm_rt.h (memcpy & co, malloc & co). It is not thread-safe per store:
 * one store must be used by one thread at a time; separate stores are
 * independent.
 */
#ifndef MOTE_WASM_ENGINE_H
#define MOTE_WASM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ types */

/* Value types, numbered as in the binary format. */
typedef enum mw_valtype {
	MW_I32 = 0x7f,
	MW_I64 = 0x7e,
	MW_F32 = 0x7d,
	MW_F64 = 0x7c,
	MW_FUNCREF = 0x70,
	MW_EXTERNREF = 0x6f,
} mw_valtype;

/* An untyped value; the type comes from the function/global signature.
 * i32/f32 live in the low 4 bytes. A funcref is an `mw_func *` (NULL = null),
 * an externref is any host pointer (NULL = null). */
typedef union mw_val {
	int32_t i32;
	uint32_t u32;
	int64_t i64;
	uint64_t u64;
	float f32;
	double f64;
	void *ref;
} mw_val;

/* A value with its type, for the checked invoke API. */
typedef struct mw_typed_val {
	mw_valtype type;
	mw_val v;
} mw_typed_val;

typedef struct mw_functype {
	uint32_t nparams, nresults;
	const uint8_t *params;  /* mw_valtype codes */
	const uint8_t *results; /* mw_valtype codes */
} mw_functype;

typedef struct mw_tabletype {
	uint8_t elem; /* MW_FUNCREF or MW_EXTERNREF */
	bool has_max;
	uint32_t min, max;
} mw_tabletype;

typedef struct mw_memtype {
	bool has_max;
	uint32_t min, max; /* in 64 KiB pages */
} mw_memtype;

typedef struct mw_globaltype {
	uint8_t type; /* mw_valtype */
	bool mut;
} mw_globaltype;

typedef enum mw_extern_kind {
	MW_EXTERN_FUNC = 0,
	MW_EXTERN_TABLE = 1,
	MW_EXTERN_MEMORY = 2,
	MW_EXTERN_GLOBAL = 3,
} mw_extern_kind;

typedef struct mw_module mw_module;
typedef struct mw_store mw_store;
typedef struct mw_instance mw_instance;
typedef struct mw_func mw_func;
typedef struct mw_table mw_table;
typedef struct mw_memory mw_memory;
typedef struct mw_global mw_global;

/* A runtime object that can be imported or exported. */
typedef struct mw_extern {
	mw_extern_kind kind;
	union {
		mw_func *func;
		mw_table *table;
		mw_memory *memory;
		mw_global *global;
	} u;
} mw_extern;

/* ------------------------------------------------------------ errors/traps */

/* Trap codes. 0 means "no trap". */
typedef enum mw_trap {
	MW_TRAP_NONE = 0,
	MW_TRAP_UNREACHABLE,            /* "unreachable" */
	MW_TRAP_DIV_BY_ZERO,            /* "integer divide by zero" */
	MW_TRAP_INT_OVERFLOW,           /* "integer overflow" */
	MW_TRAP_INVALID_CONVERSION,     /* "invalid conversion to integer" */
	MW_TRAP_MEMORY_OOB,             /* "out of bounds memory access" */
	MW_TRAP_TABLE_OOB,              /* "out of bounds table access" */
	MW_TRAP_INDIRECT_TYPE_MISMATCH, /* "indirect call type mismatch" */
	MW_TRAP_UNDEFINED_ELEMENT,      /* "undefined element" */
	MW_TRAP_UNINITIALIZED_ELEMENT,  /* "uninitialized element" */
	MW_TRAP_CALL_STACK_EXHAUSTED,   /* "call stack exhausted" */
	MW_TRAP_FUEL_EXHAUSTED,         /* "fuel exhausted" */
	MW_TRAP_HOST,                   /* a host function failed */
	MW_TRAP_OUT_OF_MEMORY,          /* engine could not allocate */
	MW_TRAP_BAD_CALL,               /* API misuse: wrong argument count/types */
	MW_TRAP_COUNT_
} mw_trap;

/* Spec-test style text for a trap code ("integer divide by zero", ...). */
const char *mw_trap_message(mw_trap trap);

typedef enum mw_errcode {
	MW_OK = 0,
	MW_ERR_MALFORMED,  /* binary could not be decoded */
	MW_ERR_INVALID,    /* decoded but failed validation */
	MW_ERR_UNLINKABLE, /* imports missing or of the wrong type */
	MW_ERR_TRAP,       /* instantiation trapped (segments or start); see .trap */
	MW_ERR_LIMIT,      /* a configured limit was exceeded */
	MW_ERR_NOMEM,      /* allocation failed */
	MW_ERR_ARG,        /* bad API argument / not found */
} mw_errcode;

typedef struct mw_error {
	mw_errcode code;
	mw_trap trap;    /* for MW_ERR_TRAP */
	uint32_t offset; /* byte offset in the module for load errors */
	char msg[160];
} mw_error;

/* ------------------------------------------------------------------ limits */

typedef struct mw_limits {
	uint32_t max_memory_pages; /* cap for any linear memory (default 65536 = 4 GiB) */
	uint32_t max_table_size;   /* cap for any table (default 10,000,000 entries) */
	uint32_t max_call_depth;   /* wasm call depth before "call stack exhausted" (default 10000) */
	uint32_t max_stack_bytes;  /* value stack bytes per store (default 4 MiB) */
	/* Fuel: if nonzero at mw_module_load, the module is compiled with fuel
	 * metering (cost charged at function entry and loop headers, roughly one
	 * unit per wasm instruction). mw_store_new uses it as the store's initial
	 * budget; 0 = unlimited. When it runs out the call traps with
	 * MW_TRAP_FUEL_EXHAUSTED. */
	uint64_t fuel;
	uint32_t max_module_bytes; /* largest accepted binary (default 256 MiB) */
	uint32_t max_function_locals; /* per function, params + locals (default 50000) */
	/* Native stack that compiled code (mw_module_set_native) may use below
	 * the point where it is entered, before a call traps as "call stack
	 * exhausted" (default 512 KiB). */
	uint32_t max_native_stack;
} mw_limits;

/* Fill *lim with the defaults above. */
void mw_limits_default(mw_limits *lim);

/* ------------------------------------------------------------------ modules */

/* Decode, validate and translate `len` bytes. `lim` may be NULL (defaults).
 * Returns 0 and sets *out, or -1 and fills *err (err may be NULL). */
int mw_module_load(const uint8_t *bytes, size_t len, const mw_limits *lim, mw_module **out,
		   mw_error *err);
/* Run the module's functions as native code: `aot` is what the module's
 * translation to C (mw_aot_translate, compiled and linked in) defines. It must
 * come from exactly these bytes and this engine's ABI, else -1 with err (code
 * MW_ERR_ARG). Call before instantiating; instances made afterwards run the
 * compiled code, with the same results and traps as the interpreter. */
struct mw_aot_module;
int mw_module_set_native(mw_module *mod, const struct mw_aot_module *aot, mw_error *err);

/* Translate a module to C for ahead-of-time compilation: the C defines a
 * `const mw_aot_module SYMBOL` (aot_abi.h) to give mw_module_set_native()
 * once compiled and linked with the engine. The module is validated first:
 * an invalid one fails with the same error as mw_module_load(). On success
 * *out is a NUL-terminated malloc'd string of *out_len bytes. */
/* The C compiler flags translated code needs besides an optimisation level:
 * without -fno-optimize-sibling-calls gcc turns runaway recursion into a
 * loop instead of exhausting the call stack. */
#define MW_AOT_CFLAGS "-std=gnu11 -fno-optimize-sibling-calls -fno-math-errno"
typedef struct mw_aot_options {
	const char *prefix;     /* of every identifier (default "w_"), for several per file */
	const char *symbol;     /* the descriptor's name (default "mw_aot_module_def") */
	const char *bytes_path; /* if set, the binary is embedded from this file (.incbin) */
	/* Split into `parts` C files to compile in parallel (0 or 1: one):
	 * this call writes part `part`, which has every function whose index
	 * modulo `parts` is `part`; part 0 also has the descriptor. */
	unsigned parts, part;
} mw_aot_options;
int mw_aot_translate(const uint8_t *bytes, size_t len, const mw_aot_options *opt, char **out,
                     size_t *out_len, mw_error *err);

/* Drop the caller's reference; instances keep their own reference. */
void mw_module_free(mw_module *mod);

typedef struct mw_import_info {
	const char *module; /* not NUL-terminated when it contains NULs: use the lengths */
	size_t module_len;
	const char *name;
	size_t name_len;
	mw_extern_kind kind;
	mw_functype func;
	mw_tabletype table;
	mw_memtype memory;
	mw_globaltype global;
} mw_import_info;

typedef struct mw_export_info {
	const char *name;
	size_t name_len;
	mw_extern_kind kind;
	uint32_t index;   /* index in the module's space of that kind */
	mw_functype func; /* for functions */
	mw_tabletype table;
	mw_memtype memory;
	mw_globaltype global;
} mw_export_info;

uint32_t mw_module_num_imports(const mw_module *mod);
int mw_module_import(const mw_module *mod, uint32_t i, mw_import_info *out);
uint32_t mw_module_num_exports(const mw_module *mod);
int mw_module_export(const mw_module *mod, uint32_t i, mw_export_info *out);

/* ------------------------------------------------------------------ stores */

/* `lim` may be NULL (defaults). Returns NULL when out of memory. */
mw_store *mw_store_new(const mw_limits *lim);
void mw_store_free(mw_store *store);
/* Backing store for linear memories. The default uses calloc/realloc/free;
 * a guest can plug in e.g. page-table backed memory. resize() must return a
 * block of new_size bytes whose first old_size bytes are preserved and whose
 * remaining bytes are zero (or NULL, leaving `old` intact); max_size is the
 * largest size this memory may ever reach, so an implementation can reserve
 * address space once and never move. */
typedef struct mw_mem_backend {
	void *(*resize)(void *ctx, void *old, size_t old_size, size_t new_size, size_t max_size);
	void (*release)(void *ctx, void *base, size_t size);
	void *ctx;
} mw_mem_backend;

/* Use `b` (copied) for memories created afterwards in this store. */
void mw_store_set_mem_backend(mw_store *store, const mw_mem_backend *b);

/* Remaining fuel (only consumed by modules compiled with metering). */
void mw_store_set_fuel(mw_store *store, uint64_t fuel);
uint64_t mw_store_fuel(const mw_store *store);

/* ----------------------------------------------------------- host objects */

/* Host function. `caller` is the instance whose code made the call (NULL when
 * called directly through mw_call). Arguments/results follow the function's
 * signature. Return MW_TRAP_NONE (0) or a trap code, which aborts the wasm
 * call with that trap. */
typedef mw_trap (*mw_host_fn)(void *user, mw_instance *caller, const mw_val *args,
			      mw_val *results);

mw_func *mw_func_new_host(mw_store *store, const mw_functype *type, mw_host_fn fn, void *user);
mw_global *mw_global_new(mw_store *store, mw_globaltype type, mw_val init);
mw_table *mw_table_new(mw_store *store, mw_tabletype type, mw_val init);
mw_memory *mw_memory_new(mw_store *store, mw_memtype type);

/* --------------------------------------------------------------- instances */

/* Called once per import, in order. Fill *out and return 0, or return nonzero
 * when the import cannot be satisfied (instantiation fails as unlinkable). */
typedef int (*mw_resolver)(void *user, const mw_import_info *imp, mw_extern *out);

/* Instantiate `mod` in `store`. `resolve` may be NULL when the module has no
 * imports. On failure returns -1 with err->code MW_ERR_UNLINKABLE, MW_ERR_TRAP
 * (err->trap tells which; effects on imported memories/tables persist, as the
 * spec says), MW_ERR_LIMIT or MW_ERR_NOMEM. */
int mw_instantiate(mw_store *store, mw_module *mod, mw_resolver resolve, void *user,
		   mw_instance **out, mw_error *err);

/* Look an export up by name. Return 0 and fill *out, or -1 if absent. */
int mw_instance_export(mw_instance *inst, const char *name, mw_extern *out);
int mw_instance_export_n(mw_instance *inst, const char *name, size_t len, mw_extern *out);
/* The export with index i in the module's export section. */
int mw_instance_export_at(mw_instance *inst, uint32_t i, mw_extern *out);
mw_func *mw_instance_func(mw_instance *inst, const char *name);
/* The instance's memory 0 (NULL if none). */
mw_memory *mw_instance_memory(mw_instance *inst);
const mw_module *mw_instance_module(const mw_instance *inst);

/* --------------------------------------------------------------- execution */

const mw_functype *mw_func_type(const mw_func *f);

/* Call f. nargs/nresults must match the signature (else MW_TRAP_BAD_CALL).
 * Returns MW_TRAP_NONE or the trap. May be called re-entrantly from a host
 * function of the same store. */
mw_trap mw_call(mw_store *store, mw_func *f, const mw_val *args, size_t nargs, mw_val *results,
		size_t nresults);

/* Type-checked convenience: look up export `name` and call it. Argument types
 * must match exactly; result types are filled in. */
mw_trap mw_invoke(mw_instance *inst, const char *name, const mw_typed_val *args, size_t nargs,
		  mw_typed_val *results, size_t nresults);

/* ------------------------------------------------------------------ memory */

uint8_t *mw_memory_data(mw_memory *mem); /* invalidated by grow */
uint64_t mw_memory_size(const mw_memory *mem); /* bytes */
uint32_t mw_memory_pages(const mw_memory *mem);
mw_memtype mw_memory_type(const mw_memory *mem);
/* Bounds-checked copies; return 0, or -1 if [off, off+n) is out of bounds. */
int mw_memory_read(const mw_memory *mem, uint64_t off, void *dst, size_t n);
int mw_memory_write(mw_memory *mem, uint64_t off, const void *src, size_t n);
/* Grow by delta pages. Returns the old page count, or -1 on failure. */
int64_t mw_memory_grow(mw_memory *mem, uint32_t delta);

/* ------------------------------------------------------------------ tables */

uint32_t mw_table_size(const mw_table *t);
mw_tabletype mw_table_type(const mw_table *t);
int mw_table_get(const mw_table *t, uint32_t i, mw_val *out);
int mw_table_set(mw_table *t, uint32_t i, mw_val v);
int64_t mw_table_grow(mw_table *t, uint32_t delta, mw_val init);

/* ----------------------------------------------------------------- globals */

mw_globaltype mw_global_type(const mw_global *g);
mw_val mw_global_get(const mw_global *g);
/* Fails (-1) on an immutable global. */
int mw_global_set(mw_global *g, mw_val v);

#ifdef __cplusplus
}
#endif
#endif
