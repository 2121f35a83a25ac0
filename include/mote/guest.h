/* mote guest SDK: what a guest program sees. Freestanding (stdint, stddef,
 * stdbool only). Build a guest with `mote-cc -o guest.elf guest.c`.
 *
 * Define guest functions with MOTE_FN<N>(result, name, type, arg, ...):
 *
 *     MOTE_FN2(i32, add, i32, a, i32, b)
 *     {
 *             return a + b;
 *     }
 *
 * Types: void (result only), i32, u32, i64, u64, f32, f64, bool, str, bytes.
 * `str` arguments arrive as mote_str (NUL-terminated, read-only); `bytes` as
 * mote_buf. Results of type str/bytes are copied out when the function
 * returns, so they may point at static data or at mote_call_alloc() memory.
 *
 * Optional: define `void mote_init(void)`; it runs once when the sandbox is
 * created, before the first call.
 *
 * The CPU is baseline x86-64 (SSE2): CPUID feature leaves 1 and 7 read as
 * zero, so code that picks paths by CPUID takes its generic one.
 */
#ifndef MOTE_GUEST_H
#define MOTE_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mote/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mote_str {
	const char *ptr;
	size_t len;
} mote_str;

typedef struct mote_buf {
	const uint8_t *ptr;
	size_t len;
} mote_buf;

/* Optional one-time initialisation, run when the sandbox is created (and
 * never again for sandboxes started from a snapshot of it). */
void mote_init(void);

/* ---- Output ---- */
void mote_print(const char *text);
void mote_write(const char *text, size_t len);
/* Standard error: kept apart from mote_write()'s standard output for hosts
 * that ask (MOTE_LOG_STDERR), joined to it for the others. */
void mote_write_stderr(const char *text, size_t len);
__attribute__((format(printf, 1, 2))) void mote_printf(const char *fmt, ...);
/* Levels as in mote.h: 1 error, 2 warn, 3 info, 4 debug. */
__attribute__((format(printf, 2, 3))) void mote_log(int level, const char *fmt, ...);
#define MOTE_LOG_ERROR 1
#define MOTE_LOG_WARN 2
#define MOTE_LOG_INFO 3
#define MOTE_LOG_DEBUG 4
#define MOTE_LOG_STDERR 5 /* mote_write_stderr()'s records */

/* Stop the sandbox: the host call fails with "guest aborted: code N: msg". */
__attribute__((noreturn)) void mote_abort(int code, const char *message);

/* Make the current guest function fail: after it returns, the host call
 * returns MOTE_EGUEST with `message` as the error detail. */
void mote_fail(const char *message);

/* ---- Host functions ---- */
/* Call host function `name` with typed arguments; on success *result holds
 * a value of type `ret` (str/bytes results point into a read-only buffer
 * valid until the next host call). Returns 0 or a negative MOTE_E* code:
 * -7 (no such function) or -8 (signature mismatch) if the host has no such
 * function, or the host function's own error. */
int mote_host_call(const char *name, mote_type ret, mote_value *result, const mote_value *args,
		   size_t nargs);

static inline mote_value mote_val_i32(int32_t x)
{
	mote_value v = {MOTE_I32, {.i32 = x}};
	return v;
}
static inline mote_value mote_val_u32(uint32_t x)
{
	mote_value v = {MOTE_U32, {.u32 = x}};
	return v;
}
static inline mote_value mote_val_i64(int64_t x)
{
	mote_value v = {MOTE_I64, {.i64 = x}};
	return v;
}
static inline mote_value mote_val_u64(uint64_t x)
{
	mote_value v = {MOTE_U64, {.u64 = x}};
	return v;
}
static inline mote_value mote_val_f32(float x)
{
	mote_value v = {MOTE_F32, {.f32 = x}};
	return v;
}
static inline mote_value mote_val_f64(double x)
{
	mote_value v = {MOTE_F64, {.f64 = x}};
	return v;
}
static inline mote_value mote_val_bool(bool x)
{
	mote_value v = {MOTE_BOOL, {.b = x}};
	return v;
}
static inline mote_value mote_val_bytes(const void *p, size_t len)
{
	mote_value v = {MOTE_BYTES, {.buf = {p, len}}};
	return v;
}
mote_value mote_val_str(const char *s);

/* ---- Host files mapped into this sandbox ---- */
typedef struct mote_mapping {
	const uint8_t *data; /* the file's bytes, read-only unless writable */
	uint64_t size;
	bool writable; /* copy-on-write: writes stay private to this sandbox */
	const char *name; /* the file's base name */
} mote_mapping;
/* Fill up to `max` entries; returns how many files are mapped. */
size_t mote_mappings(mote_mapping *out, size_t max);

/* ---- Memory ---- */
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
/* Memory freed automatically when the current guest function returns. */
void *mote_call_alloc(size_t size);

/* Heap bytes in use and free (for tests and diagnostics). */
size_t mote_heap_used(void);
size_t mote_heap_size(void);

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *dst, const char *src);
char *strchr(const char *s, int c);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#ifdef __GNUC__
int vsnprintf(char *buf, size_t size, const char *fmt, __builtin_va_list ap);
#endif

/* ---- Function definition macros ---- */
typedef void (*mote_wrapper_fn)(const mote_value *args, mote_value *result);
struct mote_fn_desc {
	const char *name;
	uint8_t ret;
	uint8_t nargs;
	const uint8_t *args;
	mote_wrapper_fn wrapper;
};

#define MOTE_CT_void void
#define MOTE_CT_i32 int32_t
#define MOTE_CT_u32 uint32_t
#define MOTE_CT_i64 int64_t
#define MOTE_CT_u64 uint64_t
#define MOTE_CT_f32 float
#define MOTE_CT_f64 double
#define MOTE_CT_bool bool
#define MOTE_CT_str mote_str
#define MOTE_CT_bytes mote_buf

#define MOTE_TT_void MOTE_VOID
#define MOTE_TT_i32 MOTE_I32
#define MOTE_TT_u32 MOTE_U32
#define MOTE_TT_i64 MOTE_I64
#define MOTE_TT_u64 MOTE_U64
#define MOTE_TT_f32 MOTE_F32
#define MOTE_TT_f64 MOTE_F64
#define MOTE_TT_bool MOTE_BOOL
#define MOTE_TT__Bool MOTE_BOOL /* `bool` may arrive macro-expanded */
#define MOTE_TT_str MOTE_STRING
#define MOTE_TT_bytes MOTE_BYTES

/* Reading argument i of C type t from the value array. */
#define MOTE_ARG_i32(a, i) ((a)[i].v.i32)
#define MOTE_ARG_u32(a, i) ((a)[i].v.u32)
#define MOTE_ARG_i64(a, i) ((a)[i].v.i64)
#define MOTE_ARG_u64(a, i) ((a)[i].v.u64)
#define MOTE_ARG_f32(a, i) ((a)[i].v.f32)
#define MOTE_ARG_f64(a, i) ((a)[i].v.f64)
#define MOTE_ARG_bool(a, i) ((a)[i].v.b)
#define MOTE_ARG_str(a, i) ((mote_str){(const char *)(a)[i].v.buf.ptr, (a)[i].v.buf.len})
#define MOTE_ARG_bytes(a, i) ((mote_buf){(const uint8_t *)(a)[i].v.buf.ptr, (a)[i].v.buf.len})

/* Storing a C result into the result value. */
#define MOTE_RET_void(r, e) (e)
#define MOTE_RET_i32(r, e) ((r)->v.i32 = (e))
#define MOTE_RET_u32(r, e) ((r)->v.u32 = (e))
#define MOTE_RET_i64(r, e) ((r)->v.i64 = (e))
#define MOTE_RET_u64(r, e) ((r)->v.u64 = (e))
#define MOTE_RET_f32(r, e) ((r)->v.f32 = (e))
#define MOTE_RET_f64(r, e) ((r)->v.f64 = (e))
#define MOTE_RET_bool(r, e) ((r)->v.b = (e))
#define MOTE_RET_str(r, e)                                                                         \
	do {                                                                                       \
		mote_str s_ = (e);                                                                 \
		(r)->v.buf.ptr = s_.ptr;                                                           \
		(r)->v.buf.len = s_.len;                                                           \
	} while (0)
#define MOTE_RET_bytes(r, e)                                                                       \
	do {                                                                                       \
		mote_buf b_ = (e);                                                                 \
		(r)->v.buf.ptr = b_.ptr;                                                           \
		(r)->v.buf.len = b_.len;                                                           \
	} while (0)

#define MOTE_FN_REGISTER_(ret, name, ...)                                                          \
	static const uint8_t mote_sig_##name[] = {0, __VA_ARGS__};                               \
	__attribute__((used, section(".mote_fns"), aligned(8))) static const struct mote_fn_desc   \
		mote_desc_##name = {#name, MOTE_TT_##ret,                                          \
				    (uint8_t)(sizeof(mote_sig_##name) - 1), mote_sig_##name + 1,   \
				    mote_wrap_##name}

#define MOTE_FN0(ret, name)                                                                        \
	static MOTE_CT_##ret name(void);                                                           \
	static void mote_wrap_##name(const mote_value *a, mote_value *r)                           \
	{                                                                                          \
		(void)a;                                                                           \
		(void)r;                                                                           \
		MOTE_RET_##ret(r, name());                                                         \
	}                                                                                          \
	MOTE_FN_REGISTER_(ret, name);                                                              \
	static MOTE_CT_##ret name(void)

#define MOTE_FN1(ret, name, t1, a1)                                                                \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1);                                                \
	static void mote_wrap_##name(const mote_value *a, mote_value *r)                           \
	{                                                                                          \
		(void)r;                                                                           \
		MOTE_RET_##ret(r, name(MOTE_ARG_##t1(a, 0)));                                      \
	}                                                                                          \
	MOTE_FN_REGISTER_(ret, name, MOTE_TT_##t1);                                                \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1)

#define MOTE_FN2(ret, name, t1, a1, t2, a2)                                                        \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2);                               \
	static void mote_wrap_##name(const mote_value *a, mote_value *r)                           \
	{                                                                                          \
		(void)r;                                                                           \
		MOTE_RET_##ret(r, name(MOTE_ARG_##t1(a, 0), MOTE_ARG_##t2(a, 1)));                 \
	}                                                                                          \
	MOTE_FN_REGISTER_(ret, name, MOTE_TT_##t1, MOTE_TT_##t2);                                  \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2)

#define MOTE_FN3(ret, name, t1, a1, t2, a2, t3, a3)                                                \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2, MOTE_CT_##t3 a3);              \
	static void mote_wrap_##name(const mote_value *a, mote_value *r)                           \
	{                                                                                          \
		(void)r;                                                                           \
		MOTE_RET_##ret(r, name(MOTE_ARG_##t1(a, 0), MOTE_ARG_##t2(a, 1),                   \
				       MOTE_ARG_##t3(a, 2)));                                      \
	}                                                                                          \
	MOTE_FN_REGISTER_(ret, name, MOTE_TT_##t1, MOTE_TT_##t2, MOTE_TT_##t3);                    \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2, MOTE_CT_##t3 a3)

#define MOTE_FN4(ret, name, t1, a1, t2, a2, t3, a3, t4, a4)                                        \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2, MOTE_CT_##t3 a3,               \
				  MOTE_CT_##t4 a4);                                                \
	static void mote_wrap_##name(const mote_value *a, mote_value *r)                           \
	{                                                                                          \
		(void)r;                                                                           \
		MOTE_RET_##ret(r, name(MOTE_ARG_##t1(a, 0), MOTE_ARG_##t2(a, 1),                   \
				       MOTE_ARG_##t3(a, 2), MOTE_ARG_##t4(a, 3)));                 \
	}                                                                                          \
	MOTE_FN_REGISTER_(ret, name, MOTE_TT_##t1, MOTE_TT_##t2, MOTE_TT_##t3, MOTE_TT_##t4);      \
	static MOTE_CT_##ret name(MOTE_CT_##t1 a1, MOTE_CT_##t2 a2, MOTE_CT_##t3 a3, MOTE_CT_##t4 a4)

/* Any arity up to MOTE_MAX_ARGS: the function receives the checked values. */
#define MOTE_FN_RAW(ret, name, ...)                                                                \
	static void mote_wrap_##name(const mote_value *args, mote_value *result);                  \
	MOTE_FN_REGISTER_(ret, name, __VA_ARGS__);                                                 \
	static void mote_wrap_##name(const mote_value *args, mote_value *result)

#ifdef __cplusplus
}
#endif
#endif
