/* The Wasm runtime guest: mote's WebAssembly engine (src/wasm) running
 * inside a mote sandbox. The host loads a module into it, calls its exports
 * and serves its imports:
 *
 *   - "env" function imports become host calls (mote_host_call) by field
 *     name; i32/i64/f32/f64 map to MOTE_I32/I64/F32/F64, and a host function
 *     taking a string or bytes argument receives it from two wasm i32
 *     parameters (pointer, length) into the module's linear memory,
 *     bounds-checked here before the host sees it;
 *   - "wasi_snapshot_preview1" imports are implemented in wasi.c (a
 *     subset: see its table);
 *   - anything else makes the load fail naming the import.
 *
 * Two sets of guest functions share one implementation:
 *
 *   load(bytes) -> i32, call(string, bytes) -> bytes, exports() -> string,
 *   unload() -> void
 *       for any mote client (`mote run` on a snapshot, mote_sandbox_call):
 *       failures are reported with mote_fail(), e.g. "wasm trap: integer
 *       divide by zero". `load` resolves "env" imports from their wasm types.
 *
 *   wasm_load(bytes module, bytes host_functions), wasm_call(string, bytes),
 *   wasm_exports(), wasm_run(bytes argv_env), all -> bytes
 *       the protocol of the host library (src/host/wasm_sandbox.c): every
 *       reply starts with an i32 status (0 or -MOTE_E*), followed by the
 *       payload or, on failure, the error text. wasm_load resolves "env"
 *       imports against the host functions the sandbox really has.
 *
 * Values travel as 9-byte records: one type byte (MOTE_I32/I64/F32/F64)
 * and 8 little-endian bytes of bits (i32 and f32 in the low 4 bytes).
 * wasm_call's argument blob starts with a u32: the most results the caller
 * can take.
 *
 * Linear memory comes from an arena reserved at boot (half of the heap):
 * it never moves when the memory grows, and pages never used are never
 * touched, so they cost nothing in the sandbox or in its snapshots.
 */
#include "aot_abi.h"
#include "common/wasm_abi.h"
#include "guest-wasm/wasi.h"
#include "mote/guest.h"
#include "wasm.h"

/* A module compiled ahead of time (mote wasm compile) links its translation
 * into this runtime: the module's bytes and its native code, loaded when a
 * load names no bytes. The plain runtime has none. */
extern const mw_aot_module mote_wasm_builtin __attribute__((weak));

#define REC_SIZE MOTE_WASM_REC_SIZE
#define WASM_PAGE 65536u

/* ------------------------------------------------------------------ state */

static mw_module *g_mod;
static mw_store *g_store;
static mw_instance *g_inst;

struct env_import {
	char *field; /* NUL-terminated: the host function's name */
	mote_type ret;
	uint8_t nargs;
	mote_type args[MOTE_MAX_ARGS];
};
static struct env_import *g_env; /* one per resolved "env" import */
static uint32_t g_nenv;

/* Set by import implementations that fail, read when a call traps. */
static char g_trap_detail[320];
static int g_trap_status;

static char g_msg[512]; /* the current failure's text */

/* ------------------------------------------------------------------ arena */

static uint8_t *arena;
static size_t arena_size;   /* bytes, a multiple of 64 KiB */
static size_t arena_dirty;  /* bytes from the start that may be non-zero */
static bool arena_in_use;

void mote_init(void)
{
	size_t heap = mote_heap_size();
	/* Half the heap, in whole wasm pages (the heap's own headers make
	 * mote_heap_size() a few bytes short of the configured size). */
	size_t want = (heap / 2 + WASM_PAGE / 2) & ~(size_t)(WASM_PAGE - 1);
	while (want >= WASM_PAGE && !(arena = malloc(want)))
		want /= 2;
	arena_size = arena ? want : 0;
}

static void zero_range(uint8_t *base, size_t from, size_t to)
{
	/* Past arena_dirty the arena is untouched, hence zero already. */
	size_t end = to < arena_dirty ? to : arena_dirty;
	if (from < end)
		memset(base + from, 0, end - from);
	if (to > arena_dirty)
		arena_dirty = to;
}

static void *mem_resize(void *ctx, void *old, size_t old_size, size_t new_size, size_t max_size)
{
	(void)ctx;
	(void)max_size;
	if (old == arena && arena) {
		if (new_size > arena_size)
			return NULL;
		if (new_size > old_size)
			zero_range(arena, old_size, new_size);
		return arena;
	}
	if (!old && !arena_in_use && arena && new_size <= arena_size) {
		arena_in_use = true;
		zero_range(arena, 0, new_size);
		return arena;
	}
	/* A second memory at the same time: the engine has no multi-memory,
	 * but stay correct (plain heap memory, zeroed). */
	uint8_t *p = old ? realloc(old, new_size ? new_size : 1) : calloc(1, new_size ? new_size : 1);
	if (p && old && new_size > old_size)
		memset(p + old_size, 0, new_size - old_size);
	return p;
}

static void mem_release(void *ctx, void *base, size_t size)
{
	(void)ctx;
	(void)size;
	if (base && base == arena)
		arena_in_use = false;
	else
		free(base);
}

/* ------------------------------------------------------------------ replies */

static uint8_t *rbuf;
static size_t rlen, rcap;
static bool rfull;

static void r_put(const void *p, size_t n)
{
	if (rfull)
		return;
	if (rlen + n > rcap) {
		size_t cap = rcap ? rcap : 1024;
		while (cap < rlen + n)
			cap *= 2;
		uint8_t *q = realloc(rbuf, cap);
		if (!q) {
			rfull = true;
			return;
		}
		rbuf = q;
		rcap = cap;
	}
	memcpy(rbuf + rlen, p, n);
	rlen += n;
}

static void r_u8(uint8_t v)
{
	r_put(&v, 1);
}

static void r_u16(uint16_t v)
{
	r_put(&v, 2);
}

static void r_u32(uint32_t v)
{
	r_put(&v, 4);
}

static void r_begin(int32_t status)
{
	rlen = 0;
	rfull = false;
	r_put(&status, 4);
}

/* The reply as a bytes result: a status and the payload, or the error. */
static mote_buf reply(int status)
{
	if (status) {
		r_begin(status);
		r_put(g_msg, strnlen(g_msg, sizeof(g_msg)));
	}
	if (rfull) { /* out of guest memory: report it in a static reply */
		static uint8_t nomem[4 + 13];
		int32_t st = -MOTE_ENOMEM;
		memcpy(nomem, &st, 4);
		memcpy(nomem + 4, "out of memory", 13);
		return (mote_buf){nomem, sizeof(nomem)};
	}
	return (mote_buf){rbuf, rlen};
}

__attribute__((format(printf, 2, 3))) static int fail(int status, const char *fmt, ...)
{
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	vsnprintf(g_msg, sizeof(g_msg), fmt, ap);
	__builtin_va_end(ap);
	return status;
}

/* ------------------------------------------------------------------ types */

static const char *wasm_type_name(uint8_t t)
{
	switch (t) {
	case MW_I32:
		return "i32";
	case MW_I64:
		return "i64";
	case MW_F32:
		return "f32";
	case MW_F64:
		return "f64";
	case MW_FUNCREF:
		return "funcref";
	case MW_EXTERNREF:
		return "externref";
	default:
		return "?";
	}
}

static const char *mote_type_text(mote_type t)
{
	static const char *const names[] = {"void", "i32", "u32",    "i64",   "u64",
					    "f32",  "f64", "bool",   "string", "bytes"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static mote_type wasm_to_mote(uint8_t t)
{
	switch (t) {
	case MW_I32:
		return MOTE_I32;
	case MW_I64:
		return MOTE_I64;
	case MW_F32:
		return MOTE_F32;
	case MW_F64:
		return MOTE_F64;
	default:
		return MOTE_VOID;
	}
}

/* "(i32, i64) -> f64", "() -> ()", "(i32) -> (i32, i32)". */
static size_t format_types(char *buf, size_t len, const uint8_t *t, uint32_t n, bool single)
{
	size_t k = 0;
	if (single && n == 1)
		return (size_t)snprintf(buf, len, "%s", wasm_type_name(t[0]));
	k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "(");
	for (uint32_t i = 0; i < n; i++)
		k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "%s%s", i ? ", " : "",
				      wasm_type_name(t[i]));
	k += (size_t)snprintf(buf + k, k < len ? len - k : 0, ")");
	return k;
}

void format_functype(char *buf, size_t len, const mw_functype *ft)
{
	size_t k = format_types(buf, len, ft->params, ft->nparams, false);
	if (k + 4 < len) {
		memcpy(buf + k, " -> ", 4);
		format_types(buf + k + 4, len - k - 4, ft->results, ft->nresults, true);
	}
}


static bool name_is(const char *s, size_t len, const char *z)
{
	return strlen(z) == len && memcmp(s, z, len) == 0;
}

/* ------------------------------------------------------------ linear memory */


/* ------------------------------------------------------------ env imports */

static const char *errname(int code)
{
	switch (-code) {
#define MOTE_ERRNAME_(name, num, text)                                                             \
	case num:                                                                                  \
		return "MOTE_" #name " (" text ")";
		MOTE_ERRNO_MAP(MOTE_ERRNAME_)
#undef MOTE_ERRNAME_
	default:
		return "unknown error";
	}
}

static mw_trap env_trampoline(void *user, mw_instance *caller, const mw_val *args, mw_val *results)
{
	const struct env_import *im = user;
	mote_value v[MOTE_MAX_ARGS];
	uint32_t w = 0;
	for (uint8_t i = 0; i < im->nargs; i++) {
		v[i].type = im->args[i];
		switch (im->args[i]) {
		case MOTE_I32:
		case MOTE_U32:
			v[i].v.u32 = args[w++].u32;
			break;
		case MOTE_BOOL:
			v[i].v.b = args[w++].u32 != 0;
			break;
		case MOTE_I64:
		case MOTE_U64:
			v[i].v.u64 = args[w++].u64;
			break;
		case MOTE_F32:
			v[i].v.f32 = args[w++].f32;
			break;
		case MOTE_F64:
			v[i].v.f64 = args[w++].f64;
			break;
		default: { /* string / bytes: (pointer, length) in linear memory */
			uint32_t ptr = args[w].u32, len = args[w + 1].u32;
			w += 2;
			const uint8_t *p = mem_at(caller, ptr, len);
			if (!p) {
				snprintf(g_trap_detail, sizeof(g_trap_detail),
					 "out of bounds memory access (argument %u of host function "
					 "'%s': %u bytes at %u)",
					 i + 1, im->field, len, ptr);
				return MW_TRAP_MEMORY_OOB;
			}
			v[i].v.buf.ptr = p;
			v[i].v.buf.len = len;
			break;
		}
		}
	}
	/* A string or bytes result goes into a buffer the caller passes after
	 * the arguments, (pointer, capacity); checked before the host runs. */
	uint8_t *dst = NULL;
	uint32_t cap = 0;
	if (im->ret == MOTE_STRING || im->ret == MOTE_BYTES) {
		uint32_t ptr = args[w].u32;
		cap = args[w + 1].u32;
		dst = mem_at(caller, ptr, cap);
		if (!dst) {
			snprintf(g_trap_detail, sizeof(g_trap_detail),
				 "out of bounds memory access (result buffer of host function "
				 "'%s': %u bytes at %u)",
				 im->field, cap, ptr);
			return MW_TRAP_MEMORY_OOB;
		}
	}
	mote_value r;
	int rc = mote_host_call(im->field, im->ret, &r, v, im->nargs);
	if (rc) {
		g_trap_status = rc;
		snprintf(g_trap_detail, sizeof(g_trap_detail), "host function '%s' failed: %s",
			 im->field, errname(rc));
		return MW_TRAP_HOST;
	}
	switch (im->ret) {
	case MOTE_VOID:
		break;
	case MOTE_I32:
	case MOTE_U32:
		results[0].u64 = 0;
		results[0].u32 = r.v.u32;
		break;
	case MOTE_BOOL:
		results[0].u64 = 0;
		results[0].u32 = r.v.b ? 1 : 0;
		break;
	case MOTE_I64:
	case MOTE_U64:
		results[0].u64 = r.v.u64;
		break;
	case MOTE_F32:
		results[0].u64 = 0;
		results[0].f32 = r.v.f32;
		break;
	case MOTE_F64:
		results[0].f64 = r.v.f64;
		break;
	case MOTE_STRING:
	case MOTE_BYTES: {
		/* The full length comes back, so a caller whose buffer was
		 * too small sees it and can ask again with a bigger one. */
		size_t n = r.v.buf.len;
		memcpy(dst, r.v.buf.ptr, n < cap ? n : cap);
		results[0].u64 = 0;
		results[0].u32 = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		break;
	}
	default:
		break;
	}
	return MW_TRAP_NONE;
}

/* A host function the sandbox has, as the host listed it in wasm_load. */
struct host_fn {
	const char *name;
	uint8_t name_len;
	mote_type ret;
	uint8_t nargs;
	const uint8_t *args;
};
struct host_list {
	struct host_fn *v;
	uint32_t n;
};

/* The wasm function type a host function has when imported. */
static bool host_fn_wasm_type(const struct host_fn *h, uint8_t *params, uint32_t *np,
			      uint8_t *results, uint32_t *nr)
{
	*np = *nr = 0;
	for (uint8_t i = 0; i < h->nargs; i++) {
		switch (h->args[i]) {
		case MOTE_I32:
		case MOTE_U32:
		case MOTE_BOOL:
			params[(*np)++] = MW_I32;
			break;
		case MOTE_I64:
		case MOTE_U64:
			params[(*np)++] = MW_I64;
			break;
		case MOTE_F32:
			params[(*np)++] = MW_F32;
			break;
		case MOTE_F64:
			params[(*np)++] = MW_F64;
			break;
		case MOTE_STRING:
		case MOTE_BYTES:
			params[(*np)++] = MW_I32;
			params[(*np)++] = MW_I32;
			break;
		default:
			return false;
		}
	}
	switch (h->ret) {
	case MOTE_VOID:
		break;
	case MOTE_I32:
	case MOTE_U32:
	case MOTE_BOOL:
		results[(*nr)++] = MW_I32;
		break;
	case MOTE_I64:
	case MOTE_U64:
		results[(*nr)++] = MW_I64;
		break;
	case MOTE_F32:
		results[(*nr)++] = MW_F32;
		break;
	case MOTE_F64:
		results[(*nr)++] = MW_F64;
		break;
	case MOTE_STRING:
	case MOTE_BYTES: /* (..., dst pointer, capacity) -> full length */
		params[(*np)++] = MW_I32;
		params[(*np)++] = MW_I32;
		results[(*nr)++] = MW_I32;
		break;
	default:
		return false;
	}
	return true;
}

static void host_fn_text(const struct host_fn *h, char *buf, size_t len)
{
	size_t k = (size_t)snprintf(buf, len, "%s %.*s(", mote_type_text(h->ret), h->name_len,
				    h->name);
	for (uint8_t i = 0; i < h->nargs; i++)
		k += (size_t)snprintf(buf + k, k < len ? len - k : 0, "%s%s", i ? ", " : "",
				      mote_type_text((mote_type)h->args[i]));
	snprintf(buf + k, k < len ? len - k : 0, ")");
}

/* ------------------------------------------------------------ resolution */

struct resolve_ctx {
	const struct host_list *hosts; /* NULL: derive host signatures from wasm types */
	int status;                    /* why resolution failed */
	char reason[400];
};

static int resolve_env(struct resolve_ctx *rc, const mw_import_info *imp, mw_extern *out)
{
	char have[160];
	format_functype(have, sizeof(have), &imp->func);
	if (imp->name_len > MOTE_MAX_NAME || strnlen(imp->name, imp->name_len) != imp->name_len) {
		rc->status = -MOTE_ENOFUNC;
		snprintf(rc->reason, sizeof(rc->reason),
			 "unknown import env.%.*s: not a valid host function name",
			 (int)(imp->name_len > 64 ? 64 : imp->name_len), imp->name);
		return -1;
	}
	struct env_import *im = &g_env[g_nenv];
	memset(im, 0, sizeof(*im));
	if (rc->hosts) {
		const struct host_fn *h = NULL;
		for (uint32_t i = 0; i < rc->hosts->n && !h; i++)
			if (rc->hosts->v[i].name_len == imp->name_len &&
			    memcmp(rc->hosts->v[i].name, imp->name, imp->name_len) == 0)
				h = &rc->hosts->v[i];
		if (!h) {
			rc->status = -MOTE_ENOFUNC;
			snprintf(rc->reason, sizeof(rc->reason),
				 "unknown import env.%.*s %s: no such host function",
				 (int)imp->name_len, imp->name, have);
			return -1;
		}
		uint8_t params[2 * MOTE_MAX_ARGS + 2], results[1];
		uint32_t np, nr;
		char hs[200];
		host_fn_text(h, hs, sizeof(hs));
		if (!host_fn_wasm_type(h, params, &np, results, &nr) ||
		    !functype_equal(&imp->func, params, np, results, nr)) {
			char want[160] = "(none: a type wasm cannot express)";
			if (host_fn_wasm_type(h, params, &np, results, &nr)) {
				mw_functype ft = {np, nr, params, results};
				format_functype(want, sizeof(want), &ft);
			}
			rc->status = -MOTE_ESIGNATURE;
			snprintf(rc->reason, sizeof(rc->reason),
				 "incompatible import type env.%.*s: the module imports %s, host "
				 "function '%s' is %s",
				 (int)imp->name_len, imp->name, have, hs, want);
			return -1;
		}
		im->ret = h->ret;
		im->nargs = h->nargs;
		for (uint8_t i = 0; i < h->nargs; i++)
			im->args[i] = (mote_type)h->args[i];
	} else {
		bool ok = imp->func.nresults <= 1 && imp->func.nparams <= MOTE_MAX_ARGS;
		for (uint32_t i = 0; ok && i < imp->func.nparams; i++)
			ok = (im->args[i] = wasm_to_mote(imp->func.params[i])) != MOTE_VOID;
		im->ret = imp->func.nresults ? wasm_to_mote(imp->func.results[0]) : MOTE_VOID;
		ok = ok && (imp->func.nresults == 0 || im->ret != MOTE_VOID);
		if (!ok) {
			rc->status = -MOTE_ESIGNATURE;
			snprintf(rc->reason, sizeof(rc->reason),
				 "incompatible import type env.%.*s: %s cannot be a host function "
				 "(at most %d i32/i64/f32/f64 parameters and one result)",
				 (int)imp->name_len, imp->name, have, MOTE_MAX_ARGS);
			return -1;
		}
		im->nargs = (uint8_t)imp->func.nparams;
	}
	im->field = malloc(imp->name_len + 1);
	if (!im->field) {
		rc->status = -MOTE_ENOMEM;
		snprintf(rc->reason, sizeof(rc->reason), "out of memory");
		return -1;
	}
	memcpy(im->field, imp->name, imp->name_len);
	im->field[imp->name_len] = 0;
	g_nenv++;
	out->kind = MW_EXTERN_FUNC;
	out->u.func = mw_func_new_host(g_store, &imp->func, env_trampoline, im);
	if (!out->u.func) {
		rc->status = -MOTE_ENOMEM;
		snprintf(rc->reason, sizeof(rc->reason), "out of memory");
		return -1;
	}
	return 0;
}

static int resolve_wasi(struct resolve_ctx *rc, const mw_import_info *imp, mw_extern *out)
{
	mw_host_fn fn = NULL;
	int st = wasi_resolve(imp, &fn, rc->reason, sizeof(rc->reason));
	if (st) {
		rc->status = st;
		return -1;
	}
	out->kind = MW_EXTERN_FUNC;
	out->u.func = mw_func_new_host(g_store, &imp->func, fn, NULL);
	if (!out->u.func) {
		rc->status = -MOTE_ENOMEM;
		snprintf(rc->reason, sizeof(rc->reason), "out of memory");
		return -1;
	}
	return 0;
}

static const char *kind_name(mw_extern_kind k)
{
	switch (k) {
	case MW_EXTERN_FUNC:
		return "function";
	case MW_EXTERN_TABLE:
		return "table";
	case MW_EXTERN_MEMORY:
		return "memory";
	default:
		return "global";
	}
}

/* A memory or table imported from "env" (as modules linked with
 * --import-memory or --import-table have) is created here with the
 * import's own limits: the sandbox is the module's only provider. */
static int resolve_env_storage(struct resolve_ctx *rc, const mw_import_info *imp,
			       mw_extern *out)
{
	int nl = (int)(imp->name_len > 64 ? 64 : imp->name_len);
	if (imp->kind == MW_EXTERN_MEMORY) {
		uint32_t cap = (uint32_t)(arena_size / WASM_PAGE);
		if (imp->memory.min > cap) {
			rc->status = -MOTE_ETOOBIG;
			snprintf(rc->reason, sizeof(rc->reason),
				 "import env.%.*s: a memory of at least %u pages, but linear memory "
				 "is limited to %u pages, half the guest heap",
				 nl, imp->name, imp->memory.min, cap);
			return -1;
		}
		out->kind = MW_EXTERN_MEMORY;
		out->u.memory = mw_memory_new(g_store, imp->memory);
		if (out->u.memory)
			return 0;
	} else {
		mw_val null_ref = {.ref = NULL};
		out->kind = MW_EXTERN_TABLE;
		out->u.table = mw_table_new(g_store, imp->table, null_ref);
		if (out->u.table)
			return 0;
	}
	rc->status = -MOTE_ENOMEM;
	snprintf(rc->reason, sizeof(rc->reason), "out of memory for import env.%.*s (%s)", nl,
		 imp->name, kind_name(imp->kind));
	return -1;
}

static int resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	struct resolve_ctx *rc = user;
	bool env = name_is(imp->module, imp->module_len, "env");
	if (imp->kind == MW_EXTERN_FUNC && env)
		return resolve_env(rc, imp, out);
	if ((imp->kind == MW_EXTERN_MEMORY || imp->kind == MW_EXTERN_TABLE) && env)
		return resolve_env_storage(rc, imp, out);
	if (imp->kind == MW_EXTERN_FUNC && name_is(imp->module, imp->module_len, WASI_MODULE))
		return resolve_wasi(rc, imp, out);
	rc->status = -MOTE_ENOFUNC;
	snprintf(rc->reason, sizeof(rc->reason),
		 "unknown import %.*s.%.*s (%s): only \"env\" functions, memories and tables "
		 "and \"" WASI_MODULE "\" functions can be imported",
		 (int)(imp->module_len > 64 ? 64 : imp->module_len), imp->module,
		 (int)(imp->name_len > 64 ? 64 : imp->name_len), imp->name, kind_name(imp->kind));
	return -1;
}

/* ------------------------------------------------------------ load/unload */

/* Set by `unload`, cleared by a load: after an explicit unload, calls do
 * not load the compiled module built in by themselves. */
static bool unloaded;

static void do_unload(void)
{
	if (g_store)
		mw_store_free(g_store); /* instances, host functions, memories */
	if (g_mod)
		mw_module_free(g_mod);
	for (uint32_t i = 0; i < g_nenv; i++)
		free(g_env[i].field);
	free(g_env);
	g_env = NULL;
	g_nenv = 0;
	g_store = NULL;
	g_mod = NULL;
	g_inst = NULL;
	wasi_forget_files(); /* the host closes its side on load and unload */
}

static int trap_status(mw_trap t, const char *what)
{
	if (wasi_exited)
		return fail(-MOTE_EGUEST, "wasm module exited with code %d%s", wasi_exit_code, what);
	if (g_trap_detail[0])
		return fail(t == MW_TRAP_HOST && g_trap_status ? g_trap_status : -MOTE_EGUEST,
			    "wasm trap: %s%s", g_trap_detail, what);
	return fail(-MOTE_EGUEST, "wasm trap: %s%s", mw_trap_message(t), what);
}

static void reset_call_state(void)
{
	g_trap_detail[0] = 0;
	g_trap_status = 0;
	wasi_exited = false;
	wasi_exit_code = 0;
}

static int do_load(const uint8_t *bytes, size_t len, const struct host_list *hosts)
{
	if (g_mod)
		return fail(-MOTE_EEXIST, "a wasm module is already loaded");
	const mw_aot_module *aot = NULL;
	if (len == 0 && &mote_wasm_builtin && mote_wasm_builtin.bytes) {
		aot = &mote_wasm_builtin;
		bytes = aot->bytes;
		len = (size_t)aot->module_len;
	} else if (len == 0) {
		return fail(-MOTE_EBADWASM,
		            "no wasm module: the load has no bytes and this runtime "
		            "has no compiled module built in");
	}
	mw_limits lim;
	mw_limits_default(&lim);
	lim.max_memory_pages = (uint32_t)(arena_size / WASM_PAGE);
	mw_error err;
	memset(&err, 0, sizeof(err));
	if (mw_module_load(bytes, len, &lim, &g_mod, &err)) {
		g_mod = NULL;
		switch (err.code) {
		case MW_ERR_MALFORMED:
		case MW_ERR_INVALID:
			return fail(-MOTE_EBADWASM, "%s wasm module: %s (at byte %u)",
				    err.code == MW_ERR_MALFORMED ? "malformed" : "invalid", err.msg,
				    err.offset);
		case MW_ERR_NOMEM:
			return fail(-MOTE_ENOMEM, "out of memory loading the wasm module");
		case MW_ERR_LIMIT:
			return fail(-MOTE_ETOOBIG, "wasm module exceeds a limit: %s", err.msg);
		default:
			return fail(-MOTE_EBADWASM, "cannot load the wasm module: %s", err.msg);
		}
	}
	if (aot && mw_module_set_native(g_mod, aot, &err)) {
		mw_module_free(g_mod);
		g_mod = NULL;
		return fail(-MOTE_EABI, "compiled wasm module: %s", err.msg);
	}
	uint32_t nimports = mw_module_num_imports(g_mod);
	g_store = mw_store_new(&lim);
	g_env = calloc(nimports ? nimports : 1, sizeof(*g_env));
	if (!g_store || !g_env) {
		do_unload();
		return fail(-MOTE_ENOMEM, "out of memory loading the wasm module");
	}
	mw_mem_backend backend = {mem_resize, mem_release, NULL};
	mw_store_set_mem_backend(g_store, &backend);
	struct resolve_ctx rc = {hosts, 0, ""};
	reset_call_state();
	if (mw_instantiate(g_store, g_mod, resolve, &rc, &g_inst, &err)) {
		int st;
		if (rc.status)
			st = fail(rc.status, "%s", rc.reason);
		else if (err.code == MW_ERR_TRAP)
			st = trap_status(err.trap, " (while instantiating)");
		else if (err.code == MW_ERR_LIMIT)
			st = fail(-MOTE_ETOOBIG,
				  "%s (linear memory is limited to %u pages, half the guest heap)",
				  err.msg, lim.max_memory_pages);
		else if (err.code == MW_ERR_NOMEM)
			st = fail(-MOTE_ENOMEM, "out of memory instantiating the wasm module");
		else
			st = fail(err.code == MW_ERR_UNLINKABLE ? -MOTE_ENOFUNC : -MOTE_EINVAL, "%s",
				  err.msg);
		do_unload();
		return st;
	}
	unloaded = false;
	return 0;
}

/* Parse wasm_load's host-function list: per function u8 ret, u8 nargs,
 * nargs type bytes, u8 name length, the name. */
static int parse_hosts(const uint8_t *p, size_t len, struct host_list *out)
{
	uint32_t n = 0;
	for (size_t off = 0; off < len; n++) {
		if (len - off < 2 || len - off - 2 < (size_t)p[off + 1] + 1)
			return -1;
		size_t nl = p[off + 2 + p[off + 1]];
		off += 3 + p[off + 1];
		if (len - off < nl)
			return -1;
		off += nl;
	}
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v)
		return -1;
	out->n = n;
	size_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct host_fn *h = &out->v[i];
		h->ret = (mote_type)p[off];
		h->nargs = p[off + 1];
		h->args = p + off + 2;
		h->name_len = p[off + 2 + h->nargs];
		h->name = (const char *)p + off + 3 + h->nargs;
		off += 3 + (size_t)h->nargs + h->name_len;
		if (h->nargs > MOTE_MAX_ARGS)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ calls */

static mw_func *find_func(const char *name, size_t len, int *st)
{
	mw_extern ext;
	if (!g_inst) {
		*st = fail(-MOTE_EINVAL, "no wasm module is loaded");
		return NULL;
	}
	if (mw_instance_export_n(g_inst, name, len, &ext) != 0) {
		*st = fail(-MOTE_ENOFUNC, "no wasm export '%.*s'", (int)(len > 200 ? 200 : len),
			   name);
		return NULL;
	}
	if (ext.kind != MW_EXTERN_FUNC) {
		*st = fail(-MOTE_ENOFUNC, "wasm export '%.*s' is a %s, not a function",
			   (int)(len > 200 ? 200 : len), name, kind_name(ext.kind));
		return NULL;
	}
	return ext.u.func;
}

/* Call export `name` with the value records in `recs`; results are
 * appended to the reply as records. */
static int do_call(const char *name, size_t name_len, const uint8_t *recs, size_t len,
		   uint32_t max_results)
{
	int st = 0;
	mw_func *f = find_func(name, name_len, &st);
	if (!f)
		return st;
	const mw_functype *ft = mw_func_type(f);
	char sig[200];
	uint32_t nargs = (uint32_t)(len / REC_SIZE);
	bool ok = len % REC_SIZE == 0 && nargs == ft->nparams;
	for (uint32_t i = 0; ok && i < nargs; i++)
		ok = wasm_to_mote(ft->params[i]) != MOTE_VOID &&
		     recs[i * REC_SIZE] == wasm_to_mote(ft->params[i]);
	for (uint32_t i = 0; ok && i < ft->nresults; i++)
		ok = wasm_to_mote(ft->results[i]) != MOTE_VOID;
	if (!ok || ft->nresults > max_results) {
		size_t k = (size_t)snprintf(sig, sizeof(sig), "%.*s",
					    (int)(name_len > 80 ? 80 : name_len), name);
		format_functype(sig + k, sizeof(sig) - k, ft);
	}
	if (!ok) {
		char got[200] = "(";
		size_t n = 1;
		for (uint32_t i = 0; i < nargs && n < sizeof(got); i++)
			n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? ", " : "",
					      mote_type_text((mote_type)recs[i * REC_SIZE]));
		if (n < sizeof(got))
			snprintf(got + n, sizeof(got) - n, ")");
		return fail(-MOTE_ESIGNATURE, "wasm export '%s' called with %s", sig, got);
	}
	if (ft->nresults > max_results)
		return fail(-MOTE_EINVAL, "wasm export '%s' returns %u values, room for %u", sig,
			    ft->nresults, max_results);
	mw_val small[2 * 16];
	mw_val *args = small, *res;
	if (ft->nparams + ft->nresults > 32) {
		args = calloc((size_t)ft->nparams + ft->nresults, sizeof(mw_val));
		if (!args)
			return fail(-MOTE_ENOMEM, "out of memory");
	}
	res = args + ft->nparams;
	for (uint32_t i = 0; i < nargs; i++) {
		uint64_t bits;
		memcpy(&bits, recs + i * REC_SIZE + 1, 8);
		args[i].u64 = bits;
	}
	reset_call_state();
	mw_trap t = mw_call(g_store, f, args, nargs, res, ft->nresults);
	if (t != MW_TRAP_NONE) {
		if (args != small)
			free(args);
		/* proc_exit(0) ends a call normally, without results. */
		if (wasi_exited && wasi_exit_code == 0)
			return 0;
		return trap_status(t, "");
	}
	for (uint32_t i = 0; i < ft->nresults; i++) {
		uint64_t bits = res[i].u64;
		if (ft->results[i] == MW_I32 || ft->results[i] == MW_F32)
			bits &= 0xffffffffu;
		r_u8((uint8_t)wasm_to_mote(ft->results[i]));
		r_put(&bits, 8);
	}
	if (args != small)
		free(args);
	return 0;
}

/* ------------------------------------------------------------ exports */

static uint32_t export_count(void)
{
	return g_mod ? mw_module_num_exports(g_mod) : 0;
}

/* Binary: per export u8 kind, u16 name length, name, u16 nparams,
 * u16 nresults, the value types (wasm codes). */
static void exports_binary(void)
{
	uint32_t n = export_count();
	r_u32(n);
	for (uint32_t i = 0; i < n; i++) {
		mw_export_info e;
		if (mw_module_export(g_mod, i, &e) != 0)
			continue;
		size_t nl = e.name_len > 65535 ? 65535 : e.name_len;
		r_u8((uint8_t)e.kind);
		r_u16((uint16_t)nl);
		r_put(e.name, nl);
		bool fn = e.kind == MW_EXTERN_FUNC;
		uint32_t np = fn ? e.func.nparams : 0, nr = fn ? e.func.nresults : 0;
		if (!fn && e.kind == MW_EXTERN_GLOBAL)
			nr = 1;
		r_u16((uint16_t)np);
		r_u16((uint16_t)nr);
		if (fn) {
			r_put(e.func.params, np);
			r_put(e.func.results, nr);
		} else if (e.kind == MW_EXTERN_GLOBAL) {
			r_u8(e.global.type);
		}
	}
}

static void exports_text(void)
{
	uint32_t n = export_count();
	char line[400];
	for (uint32_t i = 0; i < n; i++) {
		mw_export_info e;
		if (mw_module_export(g_mod, i, &e) != 0)
			continue;
		int nl = (int)(e.name_len > 200 ? 200 : e.name_len);
		size_t k;
		switch (e.kind) {
		case MW_EXTERN_FUNC:
			k = (size_t)snprintf(line, sizeof(line), "func %.*s", nl, e.name);
			format_functype(line + k, sizeof(line) - k, &e.func);
			break;
		case MW_EXTERN_MEMORY:
			snprintf(line, sizeof(line), "memory %.*s (%u pages)", nl, e.name,
				 e.memory.min);
			break;
		case MW_EXTERN_TABLE:
			snprintf(line, sizeof(line), "table %.*s (%u %s)", nl, e.name, e.table.min,
				 wasm_type_name(e.table.elem));
			break;
		default:
			snprintf(line, sizeof(line), "global %.*s: %s%s", nl, e.name,
				 e.global.mut ? "mut " : "", wasm_type_name(e.global.type));
			break;
		}
		if (rlen > 4)
			r_u8('\n');
		r_put(line, strlen(line));
	}
}

/* ------------------------------------------------------------ WASI run */

static int do_run(int32_t *exit_code)
{
	int st = 0;
	mw_func *f = find_func("_start", 6, &st);
	if (!f)
		return st;
	const mw_functype *ft = mw_func_type(f);
	if (ft->nparams || ft->nresults) {
		char sig[120];
		format_functype(sig, sizeof(sig), ft);
		return fail(-MOTE_ESIGNATURE, "wasm export '_start%s' is not a WASI command entry",
			    sig);
	}
	reset_call_state();
	mw_trap t = mw_call(g_store, f, NULL, 0, NULL, 0);
	*exit_code = 0;
	if (t != MW_TRAP_NONE) {
		if (!wasi_exited)
			return trap_status(t, "");
		*exit_code = wasi_exit_code;
	}
	return 0;
}

/* ------------------------------------------------------------ functions */

/* Host protocol (src/host/wasm_sandbox.c). */
MOTE_FN2(bytes, wasm_load, bytes, module, bytes, host_functions)
{
	struct host_list hosts = {NULL, 0};
	int st;
	if (parse_hosts(host_functions.ptr, host_functions.len, &hosts))
		st = fail(-MOTE_EINVAL, "malformed host function list");
	else
		st = do_load(module.ptr, module.len, &hosts);
	free(hosts.v);
	r_begin(st);
	return reply(st);
}

MOTE_FN2(bytes, wasm_call, str, name, bytes, args)
{
	uint32_t max_results = 0;
	int st;
	r_begin(0);
	if (args.len < 4) {
		st = fail(-MOTE_EINVAL, "malformed call arguments");
	} else {
		memcpy(&max_results, args.ptr, 4);
		st = do_call(name.ptr, name.len, args.ptr + 4, args.len - 4, max_results);
	}
	return reply(st);
}

MOTE_FN0(bytes, wasm_exports)
{
	r_begin(0);
	exports_binary();
	return reply(0);
}

MOTE_FN1(bytes, wasm_run, bytes, argv_env)
{
	int32_t code = 0;
	wasi_forget_dirs();
	int st = wasi_set_args(argv_env.ptr, argv_env.len);
	if (st)
		fail(st, st == -MOTE_ENOMEM ? "out of memory" : "malformed argument list");
	if (!st)
		st = do_run(&code);
	r_begin(st);
	if (!st)
		r_u32((uint32_t)code);
	return reply(st);
}

/* A compiled module is there without a load: the first call or listing
 * loads it, resolving "env" imports from their wasm types as `load` does. */
static int load_builtin(void)
{
	if (g_mod || unloaded || !&mote_wasm_builtin)
		return 0;
	return do_load(NULL, 0, NULL);
}

/* For any mote client: failures through mote_fail(). No bytes: the compiled
 * module built in. */
MOTE_FN1(i32, load, bytes, module)
{
	int st = do_load(module.ptr, module.len, NULL);
	if (st)
		mote_fail(g_msg);
	return st;
}

MOTE_FN2(bytes, call, str, name, bytes, args)
{
	int st = load_builtin();
	if (st) {
		mote_fail(g_msg);
		return (mote_buf){0, 0};
	}
	r_begin(0);
	st = do_call(name.ptr, name.len, args.ptr, args.len, 0xffffffffu);
	if (st || rfull) {
		mote_fail(st ? g_msg : "out of memory");
		return (mote_buf){0, 0};
	}
	return (mote_buf){rbuf + 4, rlen - 4};
}

MOTE_FN0(str, exports)
{
	if (load_builtin()) {
		mote_fail(g_msg);
		return (mote_str){0, 0};
	}
	r_begin(0);
	exports_text();
	if (rfull) {
		mote_fail("out of memory");
		return (mote_str){0, 0};
	}
	return (mote_str){(const char *)rbuf + 4, rlen - 4};
}

MOTE_FN0(void, unload)
{
	do_unload();
	unloaded = true;
}
