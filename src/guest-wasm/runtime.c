/* The Wasm runtime guest: mote's WebAssembly engine (src/wasm) running
 * inside a mote sandbox. The host loads a module into it, calls its exports
 * and serves its imports:
 *
 *   - "env" function imports become host calls (mote_host_call) by field
 *     name; i32/i64/f32/f64 map to MOTE_I32/I64/F32/F64, and a host function
 *     taking a string or bytes argument receives it from two wasm i32
 *     parameters (pointer, length) into the module's linear memory,
 *     bounds-checked here before the host sees it;
 *   - "wasi_snapshot_preview1" imports are implemented here (a subset: see
 *     wasi_table below);
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
#include "common/wasm_abi.h"
#include "mote/guest.h"
#include "wasm.h"

#define WASI_MODULE "wasi_snapshot_preview1"
#define REC_SIZE MOTE_WASM_REC_SIZE
#define WASM_PAGE 65536u

#define HOST_WASI_CLOCK MOTE_WASI_HOST_CLOCK
#define HOST_WASI_RANDOM MOTE_WASI_HOST_RANDOM
#define HOST_WASI_STDIN MOTE_WASI_HOST_STDIN
#define HOST_WASI_DIRS MOTE_WASI_HOST_DIRS
#define HOST_WASI_OPEN MOTE_WASI_HOST_OPEN
#define HOST_WASI_PREAD MOTE_WASI_HOST_PREAD
#define HOST_WASI_FSTAT MOTE_WASI_HOST_FSTAT
#define HOST_WASI_PATHSTAT MOTE_WASI_HOST_PATHSTAT
#define HOST_WASI_CLOSE MOTE_WASI_HOST_CLOSE
#define HOST_WASI_READDIR MOTE_WASI_HOST_READDIR

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
static bool g_exited;
static int32_t g_exit_code;

/* WASI argv / environ: NUL-terminated strings back to back. */
static char *g_argbuf, *g_envbuf;
static uint32_t g_argc, g_envc, g_arglen, g_envlen;

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

static void format_functype(char *buf, size_t len, const mw_functype *ft)
{
	size_t k = format_types(buf, len, ft->params, ft->nparams, false);
	if (k + 4 < len) {
		memcpy(buf + k, " -> ", 4);
		format_types(buf + k + 4, len - k - 4, ft->results, ft->nresults, true);
	}
}

static bool functype_equal(const mw_functype *a, const uint8_t *params, uint32_t np,
			   const uint8_t *results, uint32_t nr)
{
	return a->nparams == np && a->nresults == nr &&
	       (np == 0 || memcmp(a->params, params, np) == 0) &&
	       (nr == 0 || memcmp(a->results, results, nr) == 0);
}

static bool name_is(const char *s, size_t len, const char *z)
{
	return strlen(z) == len && memcmp(s, z, len) == 0;
}

/* ------------------------------------------------------------ linear memory */

/* [off, off + len) of the caller's memory 0, or NULL when out of bounds. */
static uint8_t *mem_at(mw_instance *caller, uint64_t off, uint64_t len)
{
	mw_memory *m = caller ? mw_instance_memory(caller) : NULL;
	if (!m || off + len < off || off + len > mw_memory_size(m))
		return NULL;
	return mw_memory_data(m) + off;
}

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

/* ------------------------------------------------------------ WASI */

enum {
	WASI_ESUCCESS = 0,
	WASI_EBADF = 8,
	WASI_EFAULT = 21,
	WASI_EINVAL = 28,
	WASI_EIO = 29,
	WASI_EMFILE = 33,
	WASI_ENAMETOOLONG = 37,
	WASI_ENOSYS = 52,
	WASI_EROFS = 69,
	WASI_ESPIPE = 70,
};

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static mw_trap wasi_ret(mw_val *results, int32_t err)
{
	results[0].u64 = 0;
	results[0].i32 = err;
	return MW_TRAP_NONE;
}

/* args_sizes_get / environ_sizes_get */
static mw_trap sizes_get(mw_instance *caller, const mw_val *args, mw_val *results, uint32_t count,
			 uint32_t bytes)
{
	uint8_t *a = mem_at(caller, args[0].u32, 4), *b = mem_at(caller, args[1].u32, 4);
	if (!a || !b)
		return wasi_ret(results, WASI_EFAULT);
	put32(a, count);
	put32(b, bytes);
	return wasi_ret(results, WASI_ESUCCESS);
}

/* args_get / environ_get: pointers at args[0], the strings at args[1]. */
static mw_trap strings_get(mw_instance *caller, const mw_val *args, mw_val *results,
			   const char *buf, uint32_t count, uint32_t bytes)
{
	uint32_t ptrs = args[0].u32, data = args[1].u32;
	uint8_t *pv = mem_at(caller, ptrs, (uint64_t)count * 4), *dv = mem_at(caller, data, bytes);
	if (!pv || !dv)
		return wasi_ret(results, WASI_EFAULT);
	if (bytes)
		memcpy(dv, buf, bytes);
	uint32_t off = 0;
	for (uint32_t i = 0; i < count; i++) {
		put32(pv + 4 * i, data + off);
		off += (uint32_t)strnlen(buf + off, bytes - off) + 1;
	}
	return wasi_ret(results, WASI_ESUCCESS);
}

static mw_trap wasi_args_sizes_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return sizes_get(c, a, r, g_argc, g_arglen);
}

static mw_trap wasi_args_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return strings_get(c, a, r, g_argbuf, g_argc, g_arglen);
}

static mw_trap wasi_environ_sizes_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return sizes_get(c, a, r, g_envc, g_envlen);
}

static mw_trap wasi_environ_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	return strings_get(c, a, r, g_envbuf, g_envc, g_envlen);
}

/* Output to fd 1 and 2 goes to the host's output callback (mote_write). */
static mw_trap wasi_fd_write(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32, iovs = a[1].u32, n = a[2].u32;
	if (fd != 1 && fd != 2)
		return wasi_ret(r, WASI_EBADF);
	const uint8_t *iov = mem_at(c, iovs, (uint64_t)n * 8);
	uint8_t *nw = mem_at(c, a[3].u32, 4);
	if (!iov || !nw)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t p, len;
		memcpy(&p, iov + 8 * i, 4);
		memcpy(&len, iov + 8 * i + 4, 4);
		const char *s = (const char *)mem_at(c, p, len);
		if (!s)
			return wasi_ret(r, WASI_EFAULT);
		if (len > UINT32_MAX - total)
			break; /* a short write: *nwritten says how much */
		/* One log record holds at most 4 KiB. */
		for (uint32_t off = 0; off < len; off += 4096)
			mote_write(s + off, len - off < 4096 ? len - off : 4096);
		total += len;
	}
	put32(nw, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* An open file (below): the host's handle and the read position. */
struct wasi_file {
	bool used;
	uint64_t handle;
	uint64_t pos;
};
static mw_trap file_read(mw_instance *c, uint32_t fd, uint32_t iovs, uint32_t niovs,
			 uint64_t *pos, uint32_t nread, mw_val *r);
static struct wasi_file *file_at(uint32_t fd);

/* Standard input comes from the host (mote_wasm_set_stdin), piece by piece;
 * an empty reply is the end of input. Files are read by file_read. */
static mw_trap wasi_fd_read(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 != 0) {
		struct wasi_file *f = file_at(a[0].u32);
		if (!f)
			return wasi_ret(r, WASI_EBADF);
		return file_read(c, a[0].u32, a[1].u32, a[2].u32, &f->pos, a[3].u32, r);
	}
	uint32_t iovs = a[1].u32, niovs = a[2].u32;
	uint8_t *nr = mem_at(c, a[3].u32, 4);
	const uint8_t *iov = niovs <= 1024 ? mem_at(c, iovs, niovs * 8u) : 0;
	if (!nr || !iov)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < niovs; i++) {
		uint32_t ptr = get32(iov + 8 * i), len = get32(iov + 8 * i + 4);
		uint8_t *dst = mem_at(c, ptr, len);
		if (!dst)
			return wasi_ret(r, WASI_EFAULT);
		uint32_t want = len < 65536 ? len : 65536;
		if (!want)
			continue;
		mote_value n = mote_val_u32(want), got;
		if (mote_host_call(HOST_WASI_STDIN, MOTE_BYTES, &got, &n, 1))
			return wasi_ret(r, WASI_EBADF);
		size_t k = got.v.buf.len < want ? got.v.buf.len : want;
		memcpy(dst, got.v.buf.ptr, k);
		total += (uint32_t)k;
		if (k < len) /* a short read: do not block for more */
			break;
	}
	put32(nr, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* ---- Read-only files under preopened directories ----
 * fd 3 .. 3+ndirs-1 are the preopened directories (wasi-libc scans from 3
 * until EBADF), files opened from them get fd FIRST_FILE_FD + slot. The
 * host keeps the real descriptors; the guest keeps a handle and the
 * position. */
#define MAX_DIRS 16
#define MAX_FILES 64
#define FIRST_DIR_FD 3u
#define FIRST_FILE_FD (FIRST_DIR_FD + MAX_DIRS)
#define RIGHT_FD_READ (1ull << 1)
#define RIGHT_FD_WRITE (1ull << 6)
#define OFLAG_CREAT 1u
#define OFLAG_DIRECTORY 2u
#define OFLAG_EXCL 4u
#define OFLAG_TRUNC 8u
#define FDFLAG_APPEND 1u
#define FILE_READ_MAX (1u << 20) /* bytes per host call; see MAX_READ in wasi_fs.c */

static struct {
	char *name;
	uint32_t len;
} g_dirs[MAX_DIRS];
static uint32_t g_ndirs;
static bool g_dirs_known;
static struct wasi_file g_files[MAX_FILES];

/* The preopened names, asked of the host once per module. */
static void load_dirs(void)
{
	if (g_dirs_known)
		return;
	g_dirs_known = true;
	mote_value got;
	if (mote_host_call(HOST_WASI_DIRS, MOTE_BYTES, &got, NULL, 0) || got.v.buf.len < 4)
		return;
	const uint8_t *p = got.v.buf.ptr;
	size_t len = got.v.buf.len, off = 4;
	uint32_t n = get32(p);
	for (uint32_t i = 0; i < n && i < MAX_DIRS && len - off >= 4; i++) {
		uint32_t nl = get32(p + off);
		if (nl == 0 || nl > len - off - 4)
			break;
		char *name = malloc(nl);
		if (!name)
			break;
		memcpy(name, p + off + 4, nl);
		g_dirs[g_ndirs].name = name;
		g_dirs[g_ndirs].len = nl;
		g_ndirs++;
		off += 4 + nl;
	}
}

/* The host's preopens may differ from those cached (a sandbox started
 * from a snapshot has its own): ask again at the next use. */
static void forget_dirs(void)
{
	for (uint32_t i = 0; i < g_ndirs; i++)
		free(g_dirs[i].name);
	memset(g_dirs, 0, sizeof(g_dirs));
	g_ndirs = 0;
	g_dirs_known = false;
}

static void forget_files(void)
{
	forget_dirs();
	memset(g_files, 0, sizeof(g_files));
}

static bool is_dir_fd(uint32_t fd)
{
	load_dirs();
	return fd >= FIRST_DIR_FD && fd - FIRST_DIR_FD < g_ndirs;
}

static struct wasi_file *file_at(uint32_t fd)
{
	if (fd < FIRST_FILE_FD || fd - FIRST_FILE_FD >= MAX_FILES)
		return NULL;
	struct wasi_file *f = &g_files[fd - FIRST_FILE_FD];
	return f->used ? f : NULL;
}

/* fd names something: standard I/O, a preopen or an open file. */
static bool fd_exists(uint32_t fd)
{
	return fd <= 2 || file_at(fd) || is_dir_fd(fd);
}

/* A host reply: errno first; *payload and *len what follows. */
static uint32_t host_reply(const mote_value *got, const uint8_t **payload, size_t *len)
{
	if (got->v.buf.len < 4)
		return WASI_EIO;
	*payload = (const uint8_t *)got->v.buf.ptr + 4;
	*len = got->v.buf.len - 4;
	return get32(got->v.buf.ptr);
}

/* Reads into the iovecs from *pos on, advancing it. */
static mw_trap file_read(mw_instance *c, uint32_t fd, uint32_t iovs, uint32_t niovs,
			 uint64_t *pos, uint32_t nread, mw_val *r)
{
	struct wasi_file *f = file_at(fd);
	uint8_t *nr = mem_at(c, nread, 4);
	const uint8_t *iov = niovs <= 1024 ? mem_at(c, iovs, niovs * 8u) : 0;
	if (!nr || !iov)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t total = 0;
	for (uint32_t i = 0; i < niovs; i++) {
		uint32_t ptr = get32(iov + 8 * i), len = get32(iov + 8 * i + 4);
		uint8_t *dst = mem_at(c, ptr, len);
		if (!dst)
			return wasi_ret(r, WASI_EFAULT);
		if (len > UINT32_MAX - total)
			break; /* a short read: *nread says how much */
		for (uint32_t done = 0; done < len;) {
			uint32_t want = len - done < FILE_READ_MAX ? len - done : FILE_READ_MAX;
			mote_value args[3] = {mote_val_u64(f->handle), mote_val_u64(*pos),
					      mote_val_u32(want)};
			mote_value got;
			const uint8_t *data;
			size_t k;
			if (mote_host_call(HOST_WASI_PREAD, MOTE_BYTES, &got, args, 3))
				return wasi_ret(r, WASI_EIO);
			uint32_t err = host_reply(&got, &data, &k);
			if (err)
				return wasi_ret(r, (int32_t)err);
			if (k > want)
				k = want;
			memcpy(dst + done, data, k);
			done += (uint32_t)k;
			total += (uint32_t)k;
			*pos += k;
			if (k < want) { /* the end of the file */
				put32(nr, total);
				return wasi_ret(r, WASI_ESUCCESS);
			}
		}
	}
	put32(nr, total);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_pread(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!file_at(a[0].u32))
		return wasi_ret(r, a[0].u32 <= 2 ? WASI_ESPIPE : WASI_EBADF);
	uint64_t pos = a[3].u64;
	return file_read(c, a[0].u32, a[1].u32, a[2].u32, &pos, a[4].u32, r);
}

/* A stat host call: the 64-byte filestat into out, or a WASI errno (out
 * untouched). */
static uint32_t stat_call(const char *fn, const mote_value *args, size_t nargs, uint8_t out[64])
{
	mote_value got;
	const uint8_t *data;
	size_t k;
	if (mote_host_call(fn, MOTE_BYTES, &got, args, nargs))
		return WASI_EIO;
	uint32_t err = host_reply(&got, &data, &k);
	if (!err && k != 64)
		err = WASI_EIO;
	if (!err)
		memcpy(out, data, 64);
	return err;
}

static uint32_t file_stat(uint64_t handle, uint8_t out[64])
{
	mote_value h = mote_val_u64(handle);
	return stat_call(HOST_WASI_FSTAT, &h, 1, out);
}

static uint32_t path_stat(uint32_t dir, const char *path, uint32_t len, uint8_t out[64])
{
	mote_value args[2] = {mote_val_u32(dir), {MOTE_STRING, {.u64 = 0}}};
	args[1].v.buf.ptr = path;
	args[1].v.buf.len = len;
	return stat_call(HOST_WASI_PATHSTAT, args, 2, out);
}

static mw_trap wasi_fd_seek(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, a[0].u32 <= 2 ? WASI_ESPIPE : WASI_EBADF);
	uint8_t *out = mem_at(c, a[3].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	int64_t base;
	switch (a[2].u32) {
	case 0: /* SET */
		base = 0;
		break;
	case 1: /* CUR */
		base = (int64_t)f->pos;
		break;
	case 2: { /* END */
		uint8_t st[64];
		uint32_t err = file_stat(f->handle, st);
		if (err)
			return wasi_ret(r, (int32_t)err);
		uint64_t size;
		memcpy(&size, st + 32, 8);
		base = (int64_t)size;
		break;
	}
	default:
		return wasi_ret(r, WASI_EINVAL);
	}
	int64_t off = a[1].i64;
	if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off))
		return wasi_ret(r, WASI_EINVAL);
	f->pos = (uint64_t)(base + off);
	put64(out, f->pos);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_tell(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, a[0].u32 <= 2 ? WASI_ESPIPE : WASI_EBADF);
	uint8_t *out = mem_at(c, a[1].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	put64(out, f->pos);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_close(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (f) {
		mote_value h = mote_val_u64(f->handle), got;
		mote_host_call(HOST_WASI_CLOSE, MOTE_U32, &got, &h, 1);
		f->used = false;
		return wasi_ret(r, WASI_ESUCCESS);
	}
	return wasi_ret(r, fd_exists(fd) ? WASI_ESUCCESS : WASI_EBADF);
}

static mw_trap wasi_fd_fdstat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *st = mem_at(c, a[1].u32, 24);
	if (!st)
		return wasi_ret(r, WASI_EFAULT);
	memset(st, 0, 24);
	if (fd <= 2) {
		st[0] = 2; /* filetype: character device */
		/* rights: fd_read (bit 1) for stdin, fd_write (bit 6) for the others */
		put64(st + 8, fd == 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE);
	} else if (f) {
		uint8_t fst[64];
		uint32_t err = file_stat(f->handle, fst);
		if (err)
			return wasi_ret(r, (int32_t)err);
		st[0] = fst[16];
		/* read, seek, tell, filestat_get, advise: no writing */
		put64(st + 8, (1ull << 1) | (1ull << 2) | (1ull << 5) | (1ull << 7) | (1ull << 21));
	} else {
		st[0] = 3; /* a preopened directory */
		/* path_open, path_filestat_get, fd_filestat_get; files opened
		 * from it may ask for every right (writing is refused at open,
		 * with EROFS, rather than turning into EBADF later) */
		put64(st + 8, (1ull << 13) | (1ull << 18) | (1ull << 21));
		put64(st + 16, (1ull << 29) - 1);
	}
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_prestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!is_dir_fd(a[0].u32))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *out = mem_at(c, a[1].u32, 8);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	memset(out, 0, 8); /* tag 0: a directory */
	put32(out + 4, g_dirs[a[0].u32 - FIRST_DIR_FD].len);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_prestat_dir_name(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!is_dir_fd(a[0].u32))
		return wasi_ret(r, WASI_EBADF);
	uint32_t n = g_dirs[a[0].u32 - FIRST_DIR_FD].len;
	if (a[2].u32 < n)
		return wasi_ret(r, WASI_ENAMETOOLONG);
	uint8_t *out = mem_at(c, a[1].u32, n);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	memcpy(out, g_dirs[a[0].u32 - FIRST_DIR_FD].name, n);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* path_open(dirfd, dirflags, path, path_len, oflags, rights_base,
 * rights_inheriting, fdflags, *fd): read-only, beneath a preopen. */
static mw_trap wasi_path_open(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t dirfd = a[0].u32, oflags = a[4].u32, fdflags = a[7].u32;
	if (!is_dir_fd(dirfd))
		return wasi_ret(r, WASI_EBADF);
	const char *path = (const char *)mem_at(c, a[2].u32, a[3].u32);
	uint8_t *fd_out = mem_at(c, a[8].u32, 4);
	if (!path || !fd_out)
		return wasi_ret(r, WASI_EFAULT);
	if (oflags & (OFLAG_CREAT | OFLAG_EXCL | OFLAG_TRUNC) || fdflags & FDFLAG_APPEND ||
	    a[5].u64 & RIGHT_FD_WRITE)
		return wasi_ret(r, WASI_EROFS);
	uint32_t slot = 0;
	while (slot < MAX_FILES && g_files[slot].used)
		slot++;
	if (slot == MAX_FILES)
		return wasi_ret(r, WASI_EMFILE);
	mote_value args[3] = {mote_val_u32(dirfd - FIRST_DIR_FD),
			      {MOTE_STRING, {.u64 = 0}},
			      mote_val_u32(oflags & OFLAG_DIRECTORY ? 1 : 0)},
		   got;
	args[1].v.buf.ptr = path;
	args[1].v.buf.len = a[3].u32;
	const uint8_t *data;
	size_t k;
	if (mote_host_call(HOST_WASI_OPEN, MOTE_BYTES, &got, args, 3))
		return wasi_ret(r, WASI_EIO);
	uint32_t err = host_reply(&got, &data, &k);
	if (!err && k != 8)
		err = WASI_EIO;
	if (err)
		return wasi_ret(r, (int32_t)err);
	memcpy(&g_files[slot].handle, data, 8);
	g_files[slot].used = true;
	g_files[slot].pos = 0;
	put32(fd_out, FIRST_FILE_FD + slot);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_fd_filestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t fd = a[0].u32;
	struct wasi_file *f = file_at(fd);
	if (!fd_exists(fd))
		return wasi_ret(r, WASI_EBADF);
	uint8_t *out = mem_at(c, a[1].u32, 64);
	if (!out)
		return wasi_ret(r, WASI_EFAULT);
	uint32_t err = 0;
	if (f) {
		err = file_stat(f->handle, out);
	} else if (fd > 2) {
		err = path_stat(fd - FIRST_DIR_FD, ".", 1, out);
	} else {
		memset(out, 0, 64);
		out[16] = 2; /* a character device */
	}
	return wasi_ret(r, (int32_t)err);
}

/* fd_readdir(fd, buf, buf_len, cookie, *bufused): whole entries while they
 * fit, then as much of the next as fits (bufused == buf_len tells the
 * caller to come back with that entry's cookie); bufused < buf_len is the
 * end of the directory. */
static mw_trap wasi_fd_readdir(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	struct wasi_file *f = file_at(a[0].u32);
	if (!f)
		return wasi_ret(r, WASI_EBADF);
	uint32_t cap = a[2].u32;
	uint8_t *buf = mem_at(c, a[1].u32, cap), *used_out = mem_at(c, a[4].u32, 4);
	if (!buf || !used_out)
		return wasi_ret(r, WASI_EFAULT);
	uint64_t cookie = a[3].u64;
	uint32_t used = 0;
	while (used < cap) {
		/* Ask for a little more than the room left, so a last entry
		 * that only partly fits still comes back. */
		uint32_t room = cap - used, ask = room < 65536 - 280 ? room + 280 : 65536;
		mote_value args[3] = {mote_val_u64(f->handle), mote_val_u64(cookie),
				      mote_val_u32(ask)},
			   got;
		const uint8_t *data;
		size_t k;
		if (mote_host_call(HOST_WASI_READDIR, MOTE_BYTES, &got, args, 3))
			return wasi_ret(r, WASI_EIO);
		uint32_t err = host_reply(&got, &data, &k);
		if (err)
			return wasi_ret(r, (int32_t)err);
		if (k == 0)
			break; /* the end of the directory */
		uint32_t before = used;
		for (size_t off = 0; off + 24 <= k && used < cap;) {
			uint32_t namlen = get32(data + off + 16);
			if (namlen > k - off - 24)
				return wasi_ret(r, WASI_EIO);
			uint32_t whole = 24 + namlen, n = whole < cap - used ? whole : cap - used;
			memcpy(buf + used, data + off, n);
			used += n;
			memcpy(&cookie, data + off, 8);
			off += whole;
		}
		if (used == before)
			return wasi_ret(r, WASI_EIO); /* a reply with no whole entry */
	}
	put32(used_out, used);
	return wasi_ret(r, WASI_ESUCCESS);
}

/* path_filestat_get(dirfd, lookupflags, path, path_len, *filestat) */
static mw_trap wasi_path_filestat_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (!is_dir_fd(a[0].u32))
		return wasi_ret(r, WASI_EBADF);
	const char *path = (const char *)mem_at(c, a[2].u32, a[3].u32);
	uint8_t *out = mem_at(c, a[4].u32, 64);
	if (!path || !out)
		return wasi_ret(r, WASI_EFAULT);
	return wasi_ret(r, (int32_t)path_stat(a[0].u32 - FIRST_DIR_FD, path, a[3].u32, out));
}

/* The rest of fd_* and path_*. */
static mw_trap wasi_ebadf(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)a;
	return wasi_ret(r, WASI_EBADF);
}

static mw_trap wasi_enosys(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)a;
	return wasi_ret(r, WASI_ENOSYS);
}

static mw_trap wasi_sched_yield(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)a;
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_clock_res_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 > 3)
		return wasi_ret(r, WASI_EINVAL);
	uint8_t *p = mem_at(c, a[1].u32, 8);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	put64(p, 1000); /* 1 us: what a host call can resolve, honestly */
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_clock_time_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	if (a[0].u32 > 3)
		return wasi_ret(r, WASI_EINVAL);
	uint8_t *p = mem_at(c, a[2].u32, 8);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	mote_value id = mote_val_i32(a[0].i32), t;
	int rc = mote_host_call(HOST_WASI_CLOCK, MOTE_U64, &t, &id, 1);
	if (rc)
		return wasi_ret(r, WASI_ENOSYS);
	put64(p, t.v.u64);
	return wasi_ret(r, WASI_ESUCCESS);
}

static mw_trap wasi_random_get(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	uint32_t ptr = a[0].u32, len = a[1].u32;
	uint8_t *p = mem_at(c, ptr, len);
	if (!p)
		return wasi_ret(r, WASI_EFAULT);
	for (uint32_t off = 0; off < len;) {
		uint32_t want = len - off < 65536 ? len - off : 65536;
		mote_value n = mote_val_u32(want), got;
		int rc = mote_host_call(HOST_WASI_RANDOM, MOTE_BYTES, &got, &n, 1);
		if (rc || got.v.buf.len == 0)
			return wasi_ret(r, WASI_ENOSYS);
		size_t k = got.v.buf.len < want ? got.v.buf.len : want;
		memcpy(p + off, got.v.buf.ptr, k);
		off += (uint32_t)k;
	}
	return wasi_ret(r, WASI_ESUCCESS);
}

/* Stops the running call: the engine unwinds on the trap, the caller sees
 * g_exited. */
static mw_trap wasi_proc_exit(void *u, mw_instance *c, const mw_val *a, mw_val *r)
{
	(void)u;
	(void)c;
	(void)r;
	g_exited = true;
	g_exit_code = a[0].i32;
	return MW_TRAP_HOST;
}

/* Signatures: i = i32, I = i64, before and after the colon. */
static const struct wasi_fn {
	const char *name;
	const char *type;
	mw_host_fn fn;
} wasi_table[] = {
	{"args_get", "ii:i", wasi_args_get},
	{"args_sizes_get", "ii:i", wasi_args_sizes_get},
	{"environ_get", "ii:i", wasi_environ_get},
	{"environ_sizes_get", "ii:i", wasi_environ_sizes_get},
	{"clock_res_get", "ii:i", wasi_clock_res_get},
	{"clock_time_get", "iIi:i", wasi_clock_time_get},
	{"fd_close", "i:i", wasi_fd_close},
	{"fd_fdstat_get", "ii:i", wasi_fd_fdstat_get},
	{"fd_filestat_get", "ii:i", wasi_fd_filestat_get},
	{"fd_prestat_dir_name", "iii:i", wasi_fd_prestat_dir_name},
	{"fd_prestat_get", "ii:i", wasi_fd_prestat_get},
	{"fd_pread", "iiiIi:i", wasi_fd_pread},
	{"fd_read", "iiii:i", wasi_fd_read},
	{"fd_readdir", "iiiIi:i", wasi_fd_readdir},
	{"fd_seek", "iIii:i", wasi_fd_seek},
	{"fd_tell", "ii:i", wasi_fd_tell},
	{"fd_write", "iiii:i", wasi_fd_write},
	{"path_filestat_get", "iiiii:i", wasi_path_filestat_get},
	{"path_open", "iiiiiIIii:i", wasi_path_open},
	{"proc_exit", "i:", wasi_proc_exit},
	{"random_get", "ii:i", wasi_random_get},
	{"sched_yield", ":i", wasi_sched_yield},
};

static bool wasi_type_matches(const char *spec, const mw_functype *ft)
{
	uint8_t p[12], res[2];
	uint32_t np = 0, nr = 0;
	bool after = false;
	for (const char *s = spec; *s; s++) {
		if (*s == ':') {
			after = true;
			continue;
		}
		uint8_t t = *s == 'I' ? MW_I64 : MW_I32;
		if (after)
			res[nr++] = t;
		else
			p[np++] = t;
	}
	return functype_equal(ft, p, np, res, nr);
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
	char have[160];
	format_functype(have, sizeof(have), &imp->func);
	mw_host_fn fn = NULL;
	for (size_t i = 0; i < sizeof(wasi_table) / sizeof(wasi_table[0]) && !fn; i++) {
		if (!name_is(imp->name, imp->name_len, wasi_table[i].name))
			continue;
		if (!wasi_type_matches(wasi_table[i].type, &imp->func)) {
			rc->status = -MOTE_ESIGNATURE;
			snprintf(rc->reason, sizeof(rc->reason),
				 "incompatible import type " WASI_MODULE ".%s: %s", wasi_table[i].name,
				 have);
			return -1;
		}
		fn = wasi_table[i].fn;
	}
	if (!fn) {
		/* The rest of preview 1: fd_* and path_* fail with EBADF (there
		 * are no other descriptors), everything else with ENOSYS. */
		if (imp->func.nresults != 1 || imp->func.results[0] != MW_I32) {
			rc->status = -MOTE_ENOFUNC;
			snprintf(rc->reason, sizeof(rc->reason),
				 "unknown import " WASI_MODULE ".%.*s %s: not a WASI preview 1 function",
				 (int)(imp->name_len > 64 ? 64 : imp->name_len), imp->name, have);
			return -1;
		}
		bool fd = (imp->name_len >= 3 && !memcmp(imp->name, "fd_", 3)) ||
			  (imp->name_len >= 5 && !memcmp(imp->name, "path_", 5));
		fn = fd ? wasi_ebadf : wasi_enosys;
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
	forget_files(); /* the host closes its side on load and unload */
}

static int trap_status(mw_trap t, const char *what)
{
	if (g_exited)
		return fail(-MOTE_EGUEST, "wasm module exited with code %d%s", g_exit_code, what);
	if (g_trap_detail[0])
		return fail(t == MW_TRAP_HOST && g_trap_status ? g_trap_status : -MOTE_EGUEST,
			    "wasm trap: %s%s", g_trap_detail, what);
	return fail(-MOTE_EGUEST, "wasm trap: %s%s", mw_trap_message(t), what);
}

static void reset_call_state(void)
{
	g_trap_detail[0] = 0;
	g_trap_status = 0;
	g_exited = false;
	g_exit_code = 0;
}

static int do_load(const uint8_t *bytes, size_t len, const struct host_list *hosts)
{
	if (g_mod)
		return fail(-MOTE_EEXIST, "a wasm module is already loaded");
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
			return fail(-MOTE_EINVAL, "%s wasm module: %s (at byte %u)",
				    err.code == MW_ERR_MALFORMED ? "malformed" : "invalid", err.msg,
				    err.offset);
		case MW_ERR_NOMEM:
			return fail(-MOTE_ENOMEM, "out of memory loading the wasm module");
		case MW_ERR_LIMIT:
			return fail(-MOTE_ETOOBIG, "wasm module exceeds a limit: %s", err.msg);
		default:
			return fail(-MOTE_EINVAL, "cannot load the wasm module: %s", err.msg);
		}
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
		if (g_exited && g_exit_code == 0)
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

/* argv_env: u32 argc, u32 envc, then argc + envc NUL-terminated strings. */
static int set_args(const uint8_t *p, size_t len)
{
	uint32_t argc, envc;
	if (len < 8)
		return fail(-MOTE_EINVAL, "malformed argument list");
	memcpy(&argc, p, 4);
	memcpy(&envc, p + 4, 4);
	const char *s = (const char *)p + 8;
	size_t rest = len - 8, off = 0;
	uint32_t split = 0;
	if (argc > rest || envc > rest - argc)
		return fail(-MOTE_EINVAL, "malformed argument list");
	for (uint32_t i = 0; i < argc + envc; i++) {
		if (i == argc)
			split = (uint32_t)off;
		size_t l = strnlen(s + off, rest - off);
		if (l == rest - off)
			return fail(-MOTE_EINVAL, "malformed argument list");
		off += l + 1;
	}
	if (envc == 0)
		split = (uint32_t)off;
	char *a = malloc(split + 1), *e = malloc(off - split + 1);
	if (!a || !e) {
		free(a);
		free(e);
		return fail(-MOTE_ENOMEM, "out of memory");
	}
	memcpy(a, s, split);
	memcpy(e, s + split, off - split);
	free(g_argbuf);
	free(g_envbuf);
	g_argbuf = a;
	g_envbuf = e;
	g_argc = argc;
	g_envc = envc;
	g_arglen = split;
	g_envlen = (uint32_t)(off - split);
	return 0;
}

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
		if (!g_exited)
			return trap_status(t, "");
		*exit_code = g_exit_code;
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
	forget_dirs();
	int st = set_args(argv_env.ptr, argv_env.len);
	if (!st)
		st = do_run(&code);
	r_begin(st);
	if (!st)
		r_u32((uint32_t)code);
	return reply(st);
}

/* For any mote client: failures through mote_fail(). */
MOTE_FN1(i32, load, bytes, module)
{
	int st = do_load(module.ptr, module.len, NULL);
	if (st)
		mote_fail(g_msg);
	return st;
}

MOTE_FN2(bytes, call, str, name, bytes, args)
{
	r_begin(0);
	int st = do_call(name.ptr, name.len, args.ptr, args.len, 0xffffffffu);
	if (st || rfull) {
		mote_fail(st ? g_msg : "out of memory");
		return (mote_buf){0, 0};
	}
	return (mote_buf){rbuf + 4, rlen - 4};
}

MOTE_FN0(str, exports)
{
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
}
