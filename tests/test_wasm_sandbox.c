/* Wasm sandboxes (include/mote/wasm.h): modules built with clang from
 * tests/wasm-modules/ run inside a sandbox by mote's engine. Loads, calls
 * with every value type, signature checks, traps, malformed modules,
 * imports, unload, snapshots, memory isolation, WASI and the CLI.
 *
 * Built twice. test_wasm_sandbox interprets the modules. test_wasm_compiled
 * (MOTE_TEST_COMPILED) runs the same tests on the modules compiled ahead of
 * time (the Makefile runs `mote wasm compile` on each into MODULES/NAME.elf):
 * a sandbox is made for its module with mote_wasm_sandbox_new_compiled,
 * load_again() loads that module again, and a different module loaded into
 * it (WASM_FILE) is interpreted, as it would be for any user. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host/wasm_int.h"
#include "mote.h"
#include "mote/wasm.h"
#include "test.h"
#include "wasm_imports.h"

#define MODULES MOTE_BUILD_DIR "/wasm-modules/"
#ifdef MOTE_TEST_COMPILED
#define MODULE(name) MODULES name ".elf"
#else
#define MODULE(name) MODULES name ".wasm"
#endif
#define WASM_FILE(name) MODULES name ".wasm" /* always the bytes: loaded into a sandbox */
#define ARITH           MODULE("arith")
#define IMPORTS         MODULE("imports")
#define UNKNOWN_IMPORT  MODULE("unknown_import")
#define IMPORT_MEMORY   MODULE("import_memory")
#define WASI_HELLO      MODULE("wasi_hello")
#define WASI_STDIO      MODULE("wasi_stdio")
#define WASI_SLEEP      MODULE("wasi_sleep")
#define MOTE_CLI MOTE_BUILD_DIR "/bin/mote"

/* ---- helpers ---- */
static char captured[8192];
static size_t ncaptured;

static void capture(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	(void)level;
	if (len > sizeof(captured) - 1 - ncaptured)
		len = sizeof(captured) - 1 - ncaptured;
	memcpy(captured + ncaptured, text, len);
	ncaptured += len;
	captured[ncaptured] = 0;
}

/* A Wasm sandbox for MODULE (NULL: none loaded). The error text of a
 * failure is kept in open_error. */
static char open_error[512];

static int open_wasm(const mote_config *cfg, const mote_host_functions *fns, const char *module,
                     mote_sandbox **out)
{
	mote_sandbox *sb = NULL;
	int rc;
	*out = NULL;
#ifdef MOTE_TEST_COMPILED
	/* Without a module: one compiled for ARITH, unloaded (load_again loads it). */
	rc = mote_wasm_sandbox_new_compiled(module ? module : ARITH, cfg, fns, &sb);
	if (rc) {
		snprintf(open_error, sizeof(open_error), "%s", mote_last_error());
		return rc;
	}
	/* Dropped in the guest too, for tests that call the runtime directly. */
	if (!module && ((rc = mote_sandbox_call(sb, "unload", NULL, 0, NULL)) != 0 ||
	                (rc = mote_wasm_unload(sb)) != 0))
		snprintf(open_error, sizeof(open_error), "%s", mote_sandbox_last_error(sb));
#else
	rc = mote_wasm_sandbox_new(cfg, fns, &sb);
	if (rc) {
		snprintf(open_error, sizeof(open_error), "%s", mote_last_error());
		return rc;
	}
	if (module && (rc = mote_wasm_load_file(sb, module)) != 0)
		snprintf(open_error, sizeof(open_error), "%s", mote_sandbox_last_error(sb));
#endif
	if (rc) {
		mote_sandbox_free(sb);
		return rc;
	}
	*out = sb;
	return 0;
}

/* Load MODULE again into SB, which open_wasm made for it (or, with no
 * module, for ARITH). */
static int load_again(mote_sandbox *sb, const char *module)
{
#ifdef MOTE_TEST_COMPILED
	(void)module;
	return mote_wasm_load(sb, NULL, 0); /* the module built in */
#else
	return mote_wasm_load_file(sb, module);
#endif
}

static mote_sandbox *new_wasm(const mote_host_functions *fns, const char *module)
{
	mote_config *cfg;
	mote_sandbox *sb = NULL;
	if (mote_config_new(&cfg))
		return NULL;
	mote_config_set_output(cfg, capture, NULL);
	int rc = open_wasm(cfg, fns, module, &sb);
	mote_config_free(cfg);
	if (rc)
		TEST_FAILF("Wasm sandbox for %s: %s: %s", module ? module : "no module",
		           mote_strerror(rc), open_error);
	return sb;
}

/* Call an export with i32 arguments and one i32 result. */
static int32_t call_i32(mote_sandbox *sb, const char *fn, size_t n, int32_t a, int32_t b)
{
	mote_value args[2] = {mote_i32(a), mote_i32(b)}, r = {0};
	size_t nr = 9;
	int rc = mote_wasm_call(sb, fn, args, n, &r, 1, &nr);
	if (rc) {
		TEST_FAILF("%s: %s: %s", fn, mote_strerror(rc), mote_sandbox_last_error(sb));
		return INT32_MIN;
	}
	if (nr != 1 || r.type != MOTE_I32) {
		TEST_FAILF("%s: %zu results of type %d", fn, nr, r.type);
		return INT32_MIN;
	}
	return r.v.i32;
}

/* ---- loading and calling ---- */
TEST(call_with_every_value_type)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	REQUIRE(mote_wasm_is_sandbox(sb));
	CHECK_EQ_INT(call_i32(sb, "add", 2, 2, 40), 42);
	CHECK_EQ_INT(call_i32(sb, "add", 2, INT32_MAX, 1), INT32_MIN);
	CHECK_EQ_INT(call_i32(sb, "fib", 1, 20, 0), 6765);

	mote_value a64[2] = {mote_i64(1ll << 40), mote_i64(-5)}, r;
	size_t n;
	CHECK_EQ_INT(mote_wasm_call(sb, "add64", a64, 2, &r, 1, &n), 0);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(r.type, MOTE_I64);
	CHECK_EQ_INT(r.v.i64, (1ll << 40) - 5);

	mote_value af[2] = {mote_f32(1.5f), mote_f32(-2.25f)};
	CHECK_EQ_INT(mote_wasm_call(sb, "mulf", af, 2, &r, 1, &n), 0);
	CHECK_EQ_INT(r.type, MOTE_F32);
	CHECK(r.v.f32 == -3.375f);

	mote_value am[4] = {mote_i32(-1), mote_i64(1ll << 33), mote_f32(0.5f), mote_f64(0.25)};
	CHECK_EQ_INT(mote_wasm_call(sb, "mix", am, 4, &r, 1, &n), 0);
	CHECK_EQ_INT(r.type, MOTE_F64);
	CHECK(r.v.f64 == (double)(1ll << 33) - 0.25);

	n = 7;
	CHECK_EQ_INT(mote_wasm_call(sb, "nothing", NULL, 0, NULL, 0, &n), 0);
	CHECK_EQ_INT(n, 0);

	mote_value as[2] = {mote_i32(1000), mote_i32(3)};
	CHECK_EQ_INT(mote_wasm_call(sb, "fill_sum", as, 2, &r, 1, NULL), 0);
	CHECK_EQ_INT(r.v.i64, 3ll * 999 * 1000 / 2);
	mote_sandbox_free(sb);
}

TEST(arguments_are_checked_against_the_signature)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	mote_value r, bad[2] = {mote_i64(1), mote_i32(2)};
	CHECK_EQ_INT(mote_wasm_call(sb, "add", bad, 2, &r, 1, NULL), -MOTE_ESIGNATURE);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "wasm export 'add(i32, i32) -> i32' called with (i64, i32)");
	CHECK_EQ_INT(mote_wasm_call(sb, "add", bad + 1, 1, &r, 1, NULL), -MOTE_ESIGNATURE);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "wasm export 'add(i32, i32) -> i32' called with (i32)");
	mote_value u[2] = {mote_u32(1), mote_i32(2)};
	CHECK_EQ_INT(mote_wasm_call(sb, "add", u, 2, &r, 1, NULL), -MOTE_ESIGNATURE);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "called with (u32, i32)");
	mote_value s[1] = {mote_string("x")};
	CHECK_EQ_INT(mote_wasm_call(sb, "fib", s, 1, &r, 1, NULL), -MOTE_ESIGNATURE);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "'fib(i32) -> i32' called with (string)");
	/* No room for the result: refused before running. */
	mote_value ok[2] = {mote_i32(1), mote_i32(2)};
	CHECK_EQ_INT(mote_wasm_call(sb, "add", ok, 2, NULL, 0, NULL), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "returns 1 values, room for 0");
	CHECK_EQ_INT(call_i32(sb, "add", 2, 1, 2), 3);
	mote_sandbox_free(sb);
}

TEST(unknown_export)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_call(sb, "nope", NULL, 0, NULL, 0, NULL), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "no wasm export 'nope'");
	CHECK_EQ_INT(mote_wasm_call(sb, "memory", NULL, 0, NULL, 0, NULL), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "wasm export 'memory' is a memory, not a function");
	mote_sandbox_free(sb);
}

TEST(trap_reports_the_message_and_the_sandbox_stays_usable)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	mote_value args[2] = {mote_i32(7), mote_i32(0)}, r;
	CHECK_EQ_INT(mote_wasm_call(sb, "divide", args, 2, &r, 1, NULL), -MOTE_EGUEST);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "wasm trap: integer divide by zero");
	CHECK(!mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(call_i32(sb, "divide", 2, 42, 6), 7);
	mote_value ov[2] = {mote_i32(INT32_MIN), mote_i32(-1)};
	CHECK_EQ_INT(mote_wasm_call(sb, "divide", ov, 2, &r, 1, NULL), -MOTE_EGUEST);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "wasm trap: integer overflow");
	CHECK_EQ_INT(call_i32(sb, "fib", 1, 10, 0), 55);
	mote_sandbox_free(sb);
}

TEST(module_cannot_reach_outside_its_linear_memory)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	/* Memory is 2 pages (128 KiB). */
	CHECK_EQ_INT(call_i32(sb, "pages", 0, 0, 0), 2);
	mote_value a[2] = {mote_i32(131072 - 4), mote_i32(0x1234)}, r;
	CHECK_EQ_INT(mote_wasm_call(sb, "poke", a, 2, NULL, 0, NULL), 0);
	CHECK_EQ_INT(call_i32(sb, "peek", 1, 131072 - 4, 0), 0x1234);
	const int32_t outside[] = {131072 - 3, 131072, 1 << 30, -1, INT32_MIN};
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		mote_value p = mote_i32(outside[i]);
		CHECK_EQ_INT(mote_wasm_call(sb, "peek", &p, 1, &r, 1, NULL), -MOTE_EGUEST);
		CHECK_EQ_STR(mote_sandbox_last_error(sb), "wasm trap: out of bounds memory access");
		mote_value w[2] = {mote_i32(outside[i]), mote_i32(1)};
		CHECK_EQ_INT(mote_wasm_call(sb, "poke", w, 2, NULL, 0, NULL), -MOTE_EGUEST);
		CHECK_EQ_STR(mote_sandbox_last_error(sb), "wasm trap: out of bounds memory access");
	}
	/* Growing makes the new pages reachable, and zero. */
	CHECK_EQ_INT(call_i32(sb, "grow", 1, 3, 0), 2);
	CHECK_EQ_INT(call_i32(sb, "pages", 0, 0, 0), 5);
	CHECK_EQ_INT(call_i32(sb, "peek", 1, 131072, 0), 0);
	CHECK_EQ_INT(call_i32(sb, "peek", 1, 5 * 65536 - 4, 0), 0);
	/* Linear memory is limited to half the 256 MiB heap. */
	CHECK_EQ_INT(call_i32(sb, "grow", 1, 4096, 0), -1);
	CHECK_EQ_INT(call_i32(sb, "grow", 1, 2048 - 5, 0), 5);
	CHECK_EQ_INT(call_i32(sb, "grow", 1, 1, 0), -1);
	CHECK_EQ_INT(call_i32(sb, "peek", 1, 2048 * 65536 - 4, 0), 0);
	CHECK(!mote_sandbox_poisoned(sb));
	mote_sandbox_free(sb);
}

/* ---- malformed modules ---- */
TEST(malformed_and_invalid_modules_are_refused_with_the_reason)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_load(sb, "not wasm", 8), -MOTE_EBADWASM);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "malformed wasm module: magic header not detected (at byte 0)");
	CHECK_EQ_INT(mote_wasm_load(sb, "\0asm\2\0\0\0", 8), -MOTE_EBADWASM);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "malformed wasm module: unknown binary version (at byte 8)");
	/* A type section announcing more bytes than there are. */
	static const unsigned char truncated[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 10, 1, 0x60};
	CHECK_EQ_INT(mote_wasm_load(sb, truncated, sizeof(truncated)), -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "malformed wasm module: ");
	/* (func (result i32) (i64.const 0)): type mismatch, caught by validation. */
	static const unsigned char invalid[] = {0,    'a',  's',  'm', 1,    0,    0, 0,
						1,    5,    1,    0x60, 0,   1,    0x7f, 3, 2,
						1,    0,    10,   6,    1,   4,    0,    0x42, 0,
						0x0b};
	CHECK_EQ_INT(mote_wasm_load(sb, invalid, sizeof(invalid)), -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "invalid wasm module: type mismatch");
	CHECK(!mote_sandbox_poisoned(sb));
	/* The sandbox still loads a good module. */
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 20, 22), 42);
	CHECK_EQ_INT(mote_wasm_load_file(sb, "/nonexistent.wasm"), -MOTE_EIO);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "cannot open /nonexistent.wasm");
	mote_sandbox_free(sb);
}

TEST(module_larger_than_the_input_buffer)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	size_t len = (size_t)MOTE_WASM_MIN_INPUT + 1;
	char *big = calloc(1, len);
	REQUIRE(big);
	CHECK_EQ_INT(mote_wasm_load(sb, big, len), -MOTE_ETOOBIG);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "does not fit the sandbox's 16777216-byte input");
	free(big);
	mote_sandbox_free(sb);
}

/* ---- imports ---- */
/* A sandbox with every host function imports.wasm needs, module loaded. */
static mote_sandbox *new_imports_sandbox(void)
{
	mote_host_functions *fns = import_functions(false);
	if (!fns)
		return NULL;
	mote_sandbox *sb = new_wasm(fns, IMPORTS);
	mote_host_functions_free(fns);
	return sb;
}

TEST(env_imports_call_host_functions_with_the_right_values)
{
	mote_sandbox *sb = new_imports_sandbox();
	REQUIRE(sb);
	host_error = 0;
	CHECK_EQ_INT(call_i32(sb, "call_add", 2, 19, 2), 42);
	CHECK_EQ_INT(seen_a, 19);
	CHECK_EQ_INT(seen_b, 2);
	mote_value a[3] = {mote_i64(1ll << 40), mote_f32(0.5f), mote_f64(0.125)}, r;
	CHECK_EQ_INT(mote_wasm_call(sb, "call_mix", a, 3, &r, 1, NULL), 0);
	CHECK(r.v.f64 == (double)(1ll << 41) + 0.625);
	/* Strings and bytes come out of linear memory, bounds-checked. */
	seen_log[0] = 0;
	CHECK_EQ_INT(call_i32(sb, "say_hello", 0, 0, 0), 15);
	CHECK_EQ_STR(seen_log, "hello from wasm");
	mote_value nb = mote_i32(100);
	CHECK_EQ_INT(mote_wasm_call(sb, "sum_bytes", &nb, 1, &r, 1, NULL), 0);
	CHECK_EQ_INT(r.v.i32, 99 * 100 / 2);
	seen_log[0] = 0;
	CHECK_EQ_INT(mote_wasm_call(sb, "log_bad_pointer", NULL, 0, NULL, 0, NULL), -MOTE_EGUEST);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "wasm trap: out of bounds memory access");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "host function 'host_log'");
	CHECK_EQ_STR(seen_log, ""); /* the host never saw it */
	/* A failing host function traps the call with its own error code. */
	host_error = -MOTE_EIO;
	CHECK_EQ_INT(mote_wasm_call(sb, "call_add", a, 0, &r, 1, NULL), -MOTE_ESIGNATURE);
	mote_value ab[2] = {mote_i32(1), mote_i32(2)};
	CHECK_EQ_INT(mote_wasm_call(sb, "call_add", ab, 2, &r, 1, NULL), -MOTE_EIO);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "wasm trap: host function 'host_add' failed: MOTE_EIO (I/O error)");
	host_error = 0;
	CHECK_EQ_INT(call_i32(sb, "call_add", 2, 1, 2), 6);
	mote_sandbox_free(sb);
}

static uint32_t call_u32(mote_sandbox *sb, const char *name, size_t n, uint32_t a, uint32_t b)
{
	mote_value args[2] = {mote_i32((int32_t)a), mote_i32((int32_t)b)}, r = {0};
	CHECK_EQ_INT(mote_wasm_call(sb, name, args, n, &r, 1, NULL), 0);
	return r.v.u32;
}

/* Host results of type string or bytes are copied into the module's buffer
 * (pointer, capacity after the arguments); the import returns the full
 * length, copying at most the capacity; a bad buffer traps before the host
 * function runs. */
TEST(env_imports_return_strings_and_bytes_into_linear_memory)
{
	mote_sandbox *sb = new_imports_sandbox();
	REQUIRE(sb);
	const char *want = "hello, wasm";
	CHECK_EQ_INT(call_u32(sb, "greet", 2, 64, '#'), 11);
	for (uint32_t i = 0; i < 11; i++)
		CHECK_EQ_INT(call_u32(sb, "reply_byte", 1, i, 0), (uint8_t)want[i]);
	CHECK_EQ_INT(call_u32(sb, "reply_byte", 1, 11, 0), '#'); /* no NUL added */
	/* Too small a buffer: five bytes copied, the full length returned. */
	CHECK_EQ_INT(call_u32(sb, "greet", 2, 5, '*'), 11);
	CHECK_EQ_INT(call_u32(sb, "reply_byte", 1, 4, 0), 'o');
	CHECK_EQ_INT(call_u32(sb, "reply_byte", 1, 5, 0), '*');
	CHECK_EQ_INT(call_u32(sb, "greet", 2, 0, '*'), 11);
	CHECK_EQ_INT(call_u32(sb, "reply_byte", 1, 0, 0), '*');
	CHECK_EQ_INT(call_u32(sb, "reverse_bytes", 1, 200, 0), 200 * 1000 + 199);
	/* Empty result: length 0, the buffer keeps the previous call's bytes. */
	CHECK_EQ_INT(call_u32(sb, "reverse_bytes", 1, 0, 0), 199);
	greet_calls = 0;
	CHECK_EQ_INT(mote_wasm_call(sb, "greet_bad_buffer", NULL, 0, NULL, 0, NULL),
		     -MOTE_EGUEST);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "wasm trap: out of bounds memory access (result buffer of host function "
		     "'host_greet': 64 bytes at 2147483632)");
	CHECK_EQ_INT(greet_calls, 0);
	CHECK_EQ_INT(call_u32(sb, "greet", 2, 64, 0), 11);
	CHECK_EQ_INT(greet_calls, 1);
	mote_sandbox_free(sb);
}

/* A module linked with --import-memory --import-table gets both from the
 * sandbox, sized by its own import limits. */
TEST(env_memory_and_table_imports_are_provided)
{
	mote_sandbox *sb = new_wasm(NULL, IMPORT_MEMORY);
	REQUIRE(sb);
	CHECK_EQ_INT(call_u32(sb, "pages", 0, 0, 0), 2);
	CHECK_EQ_INT(call_u32(sb, "fill_and_sum", 1, 4096, 0), 4095u * 4096 / 2);
	mote_value three[3] = {mote_i32(1), mote_i32(6), mote_i32(7)}, r;
	CHECK_EQ_INT(mote_wasm_call(sb, "apply", three, 3, &r, 1, NULL), 0);
	CHECK_EQ_INT(r.v.i32, 42);
	three[0] = mote_i32(0);
	CHECK_EQ_INT(mote_wasm_call(sb, "apply", three, 3, &r, 1, NULL), 0);
	CHECK_EQ_INT(r.v.i32, 13);
	CHECK_EQ_INT(call_u32(sb, "grow", 1, 3, 0), 2);
	CHECK_EQ_INT(call_u32(sb, "pages", 0, 0, 0), 5);
	CHECK_EQ_INT(call_u32(sb, "fill_and_sum", 1, 10, 0), 45);
	/* Loading again starts from the import's initial size. */
	CHECK_EQ_INT(load_again(sb, IMPORT_MEMORY), 0);
	CHECK_EQ_INT(call_u32(sb, "pages", 0, 0, 0), 2);
	mote_sandbox_free(sb);
}

/* (import "env" "memory" (memory 40000)): more than half the 256 MiB heap;
 * (import "env" "g" (global i32)): globals have no provider. */
static const uint8_t big_memory_import[] = {
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x02, 0x11, 0x01, 0x03, 0x65, 0x6e,
	0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0xc0, 0xb8, 0x02,
};
static const uint8_t global_import[] = {
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x02, 0x0a,
	0x01, 0x03, 0x65, 0x6e, 0x76, 0x01, 0x67, 0x03, 0x7f, 0x00,
};

TEST(env_memory_import_too_big_and_global_imports_are_refused)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_load(sb, big_memory_import, sizeof(big_memory_import)),
		     -MOTE_ETOOBIG);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "import env.memory: a memory of at least 40000 pages, but linear memory is "
		     "limited to 2048 pages, half the guest heap");
	CHECK_EQ_INT(mote_wasm_load(sb, global_import, sizeof(global_import)), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "unknown import env.g (global): only \"env\" functions, memories and tables "
		     "and \"wasi_snapshot_preview1\" functions can be imported");
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 1, 1), 2);
	mote_sandbox_free(sb);
}

TEST(unknown_import_fails_the_load_naming_it)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_load_file(sb, WASM_FILE("unknown_import")), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "unknown import env.no_such_host_fn (i32) -> i32: no such host function");
	/* A sandbox made for the module fails the same way. */
	mote_sandbox *other = NULL;
	CHECK_EQ_INT(open_wasm(NULL, NULL, UNKNOWN_IMPORT, &other), -MOTE_ENOFUNC);
	CHECK_EQ_STR(open_error,
	             "unknown import env.no_such_host_fn (i32) -> i32: no such host function");
	CHECK(other == NULL);
	/* imports.wasm needs six host functions; this sandbox has none. */
	CHECK_EQ_INT(mote_wasm_load_file(sb, WASM_FILE("imports")), -MOTE_ENOFUNC);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "unknown import env.host_add");
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 1, 1), 2);
	mote_sandbox_free(sb);
}

TEST(import_of_the_wrong_type_fails_the_load)
{
	mote_host_functions *fns = import_functions(true);
	REQUIRE(fns);
	mote_sandbox *sb = new_wasm(fns, NULL), *other = NULL;
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_load_file(sb, WASM_FILE("imports")), -MOTE_ESIGNATURE);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "incompatible import type env.host_add: the module imports (i32, i32) -> "
		     "i32, host function 'i64 host_add(i64, i64)' is (i64, i64) -> i64");
	mote_sandbox_free(sb);
	CHECK_EQ_INT(open_wasm(NULL, fns, IMPORTS, &other), -MOTE_ESIGNATURE);
	CHECK_CONTAINS(open_error, "incompatible import type env.host_add: ");
	mote_host_functions_free(fns);
}

/* ---- unload, exports ---- */
TEST(unload_then_load_another_module)
{
	mote_host_functions *fns = import_functions(false);
	REQUIRE(fns);
	mote_sandbox *sb = new_wasm(fns, ARITH);
	REQUIRE(sb);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 1);
	CHECK_EQ_INT(mote_wasm_unload(sb), 0);
	CHECK_EQ_INT(mote_wasm_call(sb, "bump", NULL, 0, NULL, 0, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "no wasm module is loaded");
	CHECK_EQ_INT(mote_wasm_load_file(sb, WASM_FILE("imports")), 0);
	CHECK_EQ_INT(call_i32(sb, "call_add", 2, 1, 2), 6);
	CHECK_EQ_INT(mote_wasm_call(sb, "bump", NULL, 0, NULL, 0, NULL), -MOTE_ENOFUNC);
	/* Loading over a loaded module replaces it, with fresh state. */
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 1);
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 1);
	for (int i = 0; i < 20; i++) { /* no growth across cycles */
		CHECK_EQ_INT(mote_wasm_unload(sb), 0);
		CHECK_EQ_INT(i % 2 ? load_again(sb, ARITH)
		                   : mote_wasm_load_file(sb, WASM_FILE("imports")),
		             0);
	}
	CHECK_EQ_INT(call_i32(sb, "fib", 1, 15, 0), 610);
	mote_sandbox_free(sb);
	mote_host_functions_free(fns);
}

TEST(exports_list_names_and_signatures)
{
	mote_sandbox *sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	mote_wasm_exports *ex;
	REQUIRE(mote_wasm_exports_get(sb, &ex) == 0);
	CHECK(mote_wasm_export_count(ex) > 10);
	mote_wasm_export_info fi;
	REQUIRE(mote_wasm_export_find(ex, "mix", &fi) == 0);
	CHECK_EQ_INT(fi.kind, MOTE_WASM_FUNCTION);
	CHECK_EQ_INT(fi.nparams, 4);
	CHECK_EQ_INT(fi.nresults, 1);
	CHECK_EQ_INT(fi.params[0], MOTE_I32);
	CHECK_EQ_INT(fi.params[1], MOTE_I64);
	CHECK_EQ_INT(fi.params[2], MOTE_F32);
	CHECK_EQ_INT(fi.params[3], MOTE_F64);
	CHECK_EQ_INT(fi.results[0], MOTE_F64);
	CHECK_EQ_STR(fi.signature, "mix(i32, i64, f32, f64) -> f64");
	REQUIRE(mote_wasm_export_find(ex, "nothing", &fi) == 0);
	CHECK_EQ_STR(fi.signature, "nothing() -> ()");
	REQUIRE(mote_wasm_export_find(ex, "memory", &fi) == 0);
	CHECK_EQ_INT(fi.kind, MOTE_WASM_MEMORY);
	REQUIRE(mote_wasm_export_find(ex, "__heap_base", &fi) == 0);
	CHECK_EQ_INT(fi.kind, MOTE_WASM_GLOBAL);
	CHECK_EQ_STR(fi.signature, "__heap_base: i32");
	CHECK_EQ_INT(mote_wasm_export_find(ex, "nope", &fi), -MOTE_ENOFUNC);
	mote_wasm_exports_free(ex);
	/* The runtime's own function works for any mote client too. */
	mote_value r;
	CHECK_EQ_INT(mote_sandbox_call(sb, "exports", NULL, 0, &r), 0);
	CHECK(strstr((const char *)r.v.buf.ptr, "func add(i32, i32) -> i32\n") != NULL);
	mote_sandbox_free(sb);
}

/* The runtime's own functions, as any mote client (mote run) sees them. */
TEST(runtime_functions_work_through_the_plain_api)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	FILE *f = fopen(WASM_FILE("arith"), "rb");
	REQUIRE(f);
	static unsigned char mod[65536];
	size_t len = fread(mod, 1, sizeof(mod), f);
	fclose(f);
	mote_value arg = mote_bytes(mod, len), r;
	CHECK_EQ_INT(mote_sandbox_call(sb, "load", &arg, 1, &r), 0);
	CHECK_EQ_INT(r.v.i32, 0);
	/* Records: type byte + 8 value bytes. */
	const unsigned char recs[18] = {MOTE_I32, 2, 0, 0, 0, 0, 0, 0, 0,
					MOTE_I32, 40, 0, 0, 0, 0, 0, 0, 0};
	mote_value args[2] = {mote_string("add"), mote_bytes(recs, sizeof(recs))};
	CHECK_EQ_INT(mote_sandbox_call(sb, "call", args, 2, &r), 0);
	const unsigned char want[9] = {MOTE_I32, 42, 0, 0, 0, 0, 0, 0, 0};
	CHECK_EQ_INT(r.v.buf.len, 9);
	CHECK(r.v.buf.len == 9 && memcmp(r.v.buf.ptr, want, 9) == 0);
	const unsigned char zero[18] = {MOTE_I32, 2, 0, 0, 0, 0, 0, 0, 0, MOTE_I32, 0, 0, 0, 0, 0, 0, 0, 0};
	mote_value dz[2] = {mote_string("divide"), mote_bytes(zero, sizeof(zero))};
	CHECK_EQ_INT(mote_sandbox_call(sb, "call", dz, 2, &r), -MOTE_EGUEST);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "wasm trap: integer divide by zero");
	CHECK_EQ_INT(mote_sandbox_call(sb, "load", &arg, 1, &r), -MOTE_EGUEST);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "a wasm module is already loaded");
	CHECK_EQ_INT(mote_sandbox_call(sb, "unload", NULL, 0, NULL), 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "call", args, 2, &r), -MOTE_EGUEST);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "no wasm module is loaded");
	/* The guest-side unload frees everything: load again, many times. */
	for (int i = 0; i < 50; i++)
		CHECK_EQ_INT(mote_sandbox_call(sb, "load", &arg, 1, &r) ||
				     mote_sandbox_call(sb, "unload", NULL, 0, NULL),
			     0);
	CHECK_EQ_INT(mote_wasm_load(sb, mod, len), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 5, 6), 11);
	mote_sandbox_free(sb);
}

TEST(plain_sandboxes_are_not_wasm_sandboxes)
{
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(MOTE_BUILD_DIR "/guests/basic.elf", NULL, NULL, &sb) == 0);
	CHECK(!mote_wasm_is_sandbox(sb));
	CHECK_EQ_INT(mote_wasm_call(sb, "add", NULL, 0, NULL, 0, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "not a Wasm sandbox");
	CHECK_EQ_INT(mote_wasm_load(sb, "x", 1), -MOTE_EINVAL);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	CHECK(!mote_wasm_is_snapshot(snap));
	CHECK(!mote_wasm_is_snapshot(NULL));
	mote_sandbox *w = NULL;
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(snap, NULL, NULL, &w), -MOTE_EINVAL);
	CHECK(w == NULL);
	CHECK_CONTAINS(mote_last_error(), "not a snapshot of a Wasm sandbox");
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

/* ---- snapshots ---- */
TEST(snapshot_with_module_loaded_round_trips_through_a_file)
{
	mote_host_functions *fns = import_functions(false);
	REQUIRE(fns);
	mote_sandbox *sb = new_wasm(fns, ARITH);
	REQUIRE(sb);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 1);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 2);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	char path[] = "/tmp/mote-wasm-test-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	close(fd);
	CHECK_EQ_INT(mote_snapshot_save(snap, path, 0), 0);
	mote_snapshot_free(snap);
	CHECK_EQ_INT(call_i32(sb, "bump", 0, 0, 0), 3);
	mote_sandbox_free(sb);

	REQUIRE(mote_snapshot_open(path, 0, &snap) == 0);
	CHECK(mote_wasm_is_snapshot(snap));
	mote_sandbox *a = NULL, *b = NULL;
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(snap, fns, NULL, &a), 0);
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(snap, fns, NULL, &b), 0);
	if (a && b) {
		/* The module is there, with its state, without a load. */
		CHECK_EQ_INT(call_i32(a, "bump", 0, 0, 0), 3);
		CHECK_EQ_INT(call_i32(a, "bump", 0, 0, 0), 4);
		CHECK_EQ_INT(call_i32(b, "bump", 0, 0, 0), 3);
		CHECK_EQ_INT(call_i32(a, "fib", 1, 12, 0), 144);
		mote_value args[2] = {mote_i32(1), mote_i32(0)};
		CHECK_EQ_INT(mote_wasm_call(b, "divide", args, 2, NULL, 1, NULL), -MOTE_EINVAL);
		mote_value r;
		CHECK_EQ_INT(mote_wasm_call(b, "divide", args, 2, &r, 1, NULL), -MOTE_EGUEST);
		CHECK_EQ_STR(mote_sandbox_last_error(b), "wasm trap: integer divide by zero");
		/* Unload returns to the runtime; another module loads. */
		CHECK_EQ_INT(mote_wasm_unload(a), 0);
		CHECK_EQ_INT(mote_wasm_load_file(a, WASM_FILE("imports")), 0);
		CHECK_EQ_INT(call_i32(a, "call_add", 2, 3, 4), 14);
	}
	/* The snapshot requires the host functions the sandbox had. */
	mote_sandbox *c = NULL;
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(snap, NULL, NULL, &c), -MOTE_ENOFUNC);
	CHECK_CONTAINS(mote_last_error(), "host_add");
	mote_sandbox_free(a);
	mote_sandbox_free(b);
	mote_snapshot_free(snap);
	unlink(path);
	mote_host_functions_free(fns);
}

TEST(timeout_poisons_and_unload_recovers)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_timeout_us(cfg, 50000);
	mote_sandbox *sb = NULL;
	CHECK_EQ_INT(open_wasm(cfg, NULL, ARITH, &sb), 0);
	mote_config_free(cfg);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_call(sb, "spin", NULL, 0, NULL, 0, NULL), -MOTE_ETIMEDOUT);
	CHECK(mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(mote_wasm_call(sb, "add", NULL, 0, NULL, 0, NULL), -MOTE_EPOISONED);
	CHECK_EQ_INT(mote_wasm_unload(sb), 0);
	CHECK(!mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 40, 2), 42);
	/* Loading into a poisoned sandbox starts over by itself. */
	CHECK_EQ_INT(mote_wasm_call(sb, "spin", NULL, 0, NULL, 0, NULL), -MOTE_ETIMEDOUT);
	CHECK_EQ_INT(load_again(sb, ARITH), 0);
	CHECK_EQ_INT(call_i32(sb, "add", 2, 1, 2), 3);
	mote_sandbox_free(sb);
}

TEST(larger_sizes_use_their_own_runtime)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_heap_size(cfg, 512ull << 20);
	mote_config_set_input_size(cfg, 20ull << 20);
	mote_sandbox *sb = NULL;
	CHECK_EQ_INT(open_wasm(cfg, NULL, NULL, &sb), 0);
	mote_config_free(cfg);
	REQUIRE(sb);
	mote_memory_info mi;
	mote_sandbox_memory_info(sb, &mi);
	CHECK_EQ_U64(mi.heap_size, 512ull << 20);
	CHECK_EQ_U64(mi.input_size, 20ull << 20);
	REQUIRE(load_again(sb, ARITH) == 0);
	CHECK_EQ_INT(call_i32(sb, "grow", 1, 4000, 0), 2); /* up to 256 MiB now */
	CHECK_EQ_INT(mote_wasm_unload(sb), 0);
	REQUIRE(load_again(sb, ARITH) == 0);
	CHECK_EQ_INT(call_i32(sb, "pages", 0, 0, 0), 2);
	mote_sandbox_free(sb);
}

static void *thread_main(void *arg)
{
	int *ok = arg;
	mote_sandbox *sb;
	*ok = 0;
	if (open_wasm(NULL, NULL, ARITH, &sb))
		return NULL;
	mote_value args[2] = {mote_i32(20), mote_i32(22)}, r;
	if (mote_wasm_call(sb, "add", args, 2, &r, 1, NULL) == 0)
		*ok = r.v.i32 == 42;
	mote_sandbox_free(sb);
	return NULL;
}

TEST(sandboxes_on_several_threads)
{
	pthread_t t[4];
	int ok[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, thread_main, &ok[i]) == 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(ok[i], 1);
	}
}

/* ---- WASI ---- */
TEST(wasi_command_reads_standard_input)
{
	mote_sandbox *sb = new_wasm(NULL, MODULE("wasi_cat"));
	REQUIRE(sb);
	const char *argv[] = {"cat"};
	int code = -1;
	/* No input given: stdin is empty. */
	ncaptured = 0;
	captured[0] = 0;
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 1, NULL, 0, &code), 0);
	CHECK_EQ_INT(code, 0);
	CHECK_EQ_STR(captured, "0 bytes\n");
	mote_sandbox_free(sb);
	sb = new_wasm(NULL, MODULE("wasi_cat"));
	REQUIRE(sb);
	static char big[100000];
	memset(big, 'x', sizeof(big));
	memcpy(big, "hello, stdin\n", 13);
	CHECK_EQ_INT(mote_wasm_set_stdin(sb, big, sizeof(big)), 0);
	ncaptured = 0;
	captured[0] = 0;
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 1, NULL, 0, &code), 0);
	CHECK_EQ_INT(code, 0);
	CHECK(strncmp(captured, "HELLO, STDIN\nXXX", 16) == 0);
	CHECK_EQ_INT(mote_wasm_set_stdin(NULL, "x", 1), -MOTE_EINVAL);
	mote_sandbox_free(sb);
}

TEST(wasi_command_gets_arguments_environment_output_and_exit_code)
{
	mote_sandbox *sb = new_wasm(NULL, WASI_HELLO);
	REQUIRE(sb);
	const char *argv[] = {"hello", "world"};
	const char *envp[] = {"A=1", "GREETING=hi there"};
	int code = -1;
	ncaptured = 0;
	captured[0] = 0;
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 2, envp, 2, &code), 0);
	CHECK_EQ_INT(code, 0);
	/* stdout is no terminal, so libc buffers it after its first line: the
	 * unbuffered stderr line comes before the rest. */
	CHECK_EQ_STR(captured, "argc=2 [hello] [world]\nto stderr\nGREETING=hi there\nclock ok\n"
			       "random ok\n");
	mote_sandbox_free(sb);

	/* exit(7) through proc_exit; return 3 from main. */
	sb = new_wasm(NULL, WASI_HELLO);
	REQUIRE(sb);
	const char *exit7[] = {"hello", "exit7"};
	CHECK_EQ_INT(mote_wasm_run(sb, exit7, 2, NULL, 0, &code), 0);
	CHECK_EQ_INT(code, 7);
	mote_sandbox_free(sb);
	sb = new_wasm(NULL, WASI_HELLO);
	REQUIRE(sb);
	const char *three[] = {"hello", "a", "b"};
	ncaptured = 0;
	CHECK_EQ_INT(mote_wasm_run(sb, three, 3, NULL, 0, &code), 0);
	CHECK_EQ_INT(code, 3);
	CHECK(strstr(captured, "GREETING=(unset)") != NULL);
	mote_sandbox_free(sb);

	/* _start through mote_wasm_call: exit code 0 is success. */
	sb = new_wasm(NULL, WASI_HELLO);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_call(sb, "_start", NULL, 0, NULL, 0, NULL), 0);
	mote_sandbox_free(sb);
	sb = new_wasm(NULL, ARITH);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_run(sb, NULL, 0, NULL, 0, &code), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "no wasm export '_start'");
	mote_sandbox_free(sb);
}

/* ---- WASI files ---- */
#define WASI_FILES MODULE("wasi_files")

/* root/a.txt, root/sub/, root/link -> a.txt, root/escape -> ../outside/s.txt,
 * root/many/ with 300 files (a listing takes several fd_readdir calls),
 * root/big.bin of 3 MiB + 1234 random bytes (several 1 MiB host reads) */
static char *files_tree(char *root, size_t root_len)
{
	static char dir[64];
	strcpy(dir, "/tmp/mote-wasi-XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkdir -p root/sub outside && printf 'hello file' > root/a.txt && "
		 "printf secret > outside/s.txt && ln -s a.txt root/link && "
		 "ln -s ../outside/s.txt root/escape && mkdir root/many && for i in $(seq 300); "
		 "do : > root/many/file-with-a-longish-name-$i; done && "
		 "head -c 3146962 /dev/urandom > root/big.bin",
		 dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(root, root_len, "%s/root", dir);
	return dir;
}

static void remove_tree(const char *dir)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

static int run_files(mote_sandbox *sb, const char *const *ops, size_t n)
{
	const char *argv[24] = {"files"};
	for (size_t i = 0; i < n && i < 23; i++)
		argv[i + 1] = ops[i];
	int code = -1;
	ncaptured = 0;
	captured[0] = 0;
	int rc = mote_wasm_run(sb, argv, n + 1, NULL, 0, &code);
	return rc ? rc : code;
}

/* Files under a preopened directory can be read, statted and seeked; no
 * path leads out of it; nothing can be written. */
TEST(wasi_reads_files_beneath_preopened_directories_only)
{
	char root[128];
	char *dir = files_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = new_wasm(NULL, WASI_FILES);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/data", root), 0);
	const char *ops[] = {"cat:/data/a.txt",     "stat:/data/a.txt",  "stat:/data/sub",
			     "tail:/data/a.txt",    "pread:/data/a.txt", "cat:/data/link",
			     "cat:/data/sub/../a.txt", "write:/data/new.txt",
			     "write:/data/a.txt",   "cat:/data/../outside/s.txt",
			     "cat:/data/escape",    "stat:/data/escape", "open:/etc/passwd",
			     "cat:/data/missing",   "ls:/data",          "ls:/data/sub",
			     "ls:/data/many",       "ls:/data/a.txt"};
	CHECK_EQ_INT(run_files(sb, ops, sizeof(ops) / sizeof(ops[0])), 0);
	CHECK_EQ_STR(captured, "cat /data/a.txt: hello file\n"
			       "stat /data/a.txt: file 10\n"
			       "stat /data/sub: dir\n"
			       "tail /data/a.txt: at 6 file\n"
			       "pread /data/a.txt: llo \n"
			       "cat /data/link: hello file\n"
			       "cat /data/sub/../a.txt: hello file\n"
			       "write /data/new.txt: Read-only file system\n"
			       "write /data/a.txt: Read-only file system\n"
			       "cat /data/../outside/s.txt: Capabilities insufficient\n"
			       "cat /data/escape: Capabilities insufficient\n"
			       "stat /data/escape: Capabilities insufficient\n"
			       "open /etc/passwd: Capabilities insufficient\n"
			       "cat /data/missing: No such file or directory\n"
			       "ls /data: . .. a.txt big.bin escape link many sub\n"
			       "ls /data/sub: . ..\n"
			       "ls /data/many: 302 entries, last file-with-a-longish-name-99\n"
			       "ls /data/a.txt: Not a directory\n");
	char created[160];
	snprintf(created, sizeof(created), "%s/new.txt", root);
	CHECK(access(created, F_OK) != 0);

	/* A big file read to the end: every byte arrives, once. */
	char big[160], want[128];
	snprintf(big, sizeof(big), "%s/big.bin", root);
	FILE *f = fopen(big, "rb");
	REQUIRE(f);
	unsigned sum = 0;
	long long total = 0;
	for (int ch; (ch = fgetc(f)) != EOF; total++)
		sum += (unsigned)ch;
	fclose(f);
	snprintf(want, sizeof(want), "size /data/big.bin: %lld bytes, sum %u\n", total, sum);
	const char *size_op[] = {"size:/data/big.bin"};
	CHECK_EQ_INT(run_files(sb, size_op, 1), 0);
	CHECK_EQ_STR(captured, want);
	CHECK_EQ_INT(total, 3146962);
	mote_sandbox_free(sb);

	/* Without a preopen there is nothing to open (wasi-libc finds no
	 * directory the path could be under). */
	sb = new_wasm(NULL, WASI_FILES);
	REQUIRE(sb);
	const char *none[] = {"cat:/data/a.txt", "cat:a.txt"};
	CHECK_EQ_INT(run_files(sb, none, 2), 0);
	CHECK_EQ_STR(captured, "cat /data/a.txt: Capabilities insufficient\n"
			       "cat a.txt: Capabilities insufficient\n");
	mote_sandbox_free(sb);

	remove_tree(dir);
}

/* Files a module leaves open are closed when another module is loaded and
 * when the sandbox is freed; preopens stay for the next module. */
TEST(wasi_files_are_closed_with_their_module)
{
	char root[128];
	char *dir = files_tree(root, sizeof(root));
	REQUIRE(dir);
	int before = count_fds();
	mote_sandbox *sb = new_wasm(NULL, WASI_FILES);
	REQUIRE(sb);
	/* Counted from a sandbox loaded again once: one made from a compiled
	 * module's ELF lets go of the ELF's files at its first restore, which
	 * starts it over from its snapshot (the process backend). */
	CHECK_EQ_INT(load_again(sb, WASI_FILES), 0);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/data", root), 0);
	int with_preopen = count_fds();
	const char *keep[] = {"keep:/data/a.txt", "keep:/data/link", "keep:/data/sub"};
	CHECK_EQ_INT(run_files(sb, keep, 3), 0);
	CHECK_EQ_STR(captured, "keep /data/a.txt: kept\nkeep /data/link: kept\n"
			       "keep /data/sub: kept\n");
	CHECK_EQ_INT(count_fds(), with_preopen + 3);
	CHECK_EQ_INT(load_again(sb, WASI_FILES), 0);
	CHECK_EQ_INT(count_fds(), with_preopen);
	const char *cat[] = {"cat:/data/a.txt"};
	CHECK_EQ_INT(run_files(sb, cat, 1), 0);
	CHECK_EQ_STR(captured, "cat /data/a.txt: hello file\n");
	CHECK_EQ_INT(run_files(sb, keep, 1), 0);
	mote_sandbox_free(sb);
	CHECK_EQ_INT(count_fds(), before);
	remove_tree(dir);
}

/* The host side alone, as a hostile guest could drive it: handles from
 * nowhere, closed or reused slots, paths out of the directory, embedded
 * NULs and absurd offsets all come back as WASI errors. */
static uint32_t reply_errno(const mote_value *r)
{
	uint32_t e = 0xffffffff;
	if (r->v.buf.len >= 4)
		memcpy(&e, r->v.buf.ptr, 4);
	return e;
}

static uint64_t host_open(mote_sandbox *sb, uint32_t dir, const char *path, size_t len,
			  uint32_t *err)
{
	mote_value a[3] = {mote_u32(dir), mote_string(path), mote_u32(0)}, r = {0};
	a[1].v.buf.len = len;
	uint64_t h = 0;
	CHECK_EQ_INT(mote_wasi_host_open(NULL, sb, a, 3, &r), 0);
	*err = reply_errno(&r);
	if (*err == 0 && r.v.buf.len == 12)
		memcpy(&h, (const uint8_t *)r.v.buf.ptr + 4, 8);
	return h;
}

static uint32_t host_pread(mote_sandbox *sb, uint64_t h, uint64_t off, char *out, size_t cap)
{
	mote_value a[3] = {mote_u64(h), mote_u64(off), mote_u32((uint32_t)cap)}, r = {0};
	CHECK_EQ_INT(mote_wasi_host_pread(NULL, sb, a, 3, &r), 0);
	size_t n = r.v.buf.len >= 4 ? r.v.buf.len - 4 : 0;
	if (out && n <= cap)
		memcpy(out, (const uint8_t *)r.v.buf.ptr + 4, n);
	return reply_errno(&r);
}

TEST(wasi_host_functions_refuse_what_a_hostile_guest_sends)
{
	char root[128];
	char *dir = files_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	uint32_t err;
	/* No preopens yet. */
	host_open(sb, 0, "a.txt", 5, &err);
	CHECK_EQ_INT(err, 8); /* EBADF */
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/d", root), 0);
	uint64_t h = host_open(sb, 0, "a.txt", 5, &err);
	CHECK_EQ_INT(err, 0);
	char buf[16] = {0};
	CHECK_EQ_INT(host_pread(sb, h, 0, buf, 5), 0);
	CHECK_EQ_STR(buf, "hello");
	CHECK_EQ_INT(host_pread(sb, h, 1ull << 63, NULL, 5), 28);  /* EINVAL */
	CHECK_EQ_INT(host_pread(sb, h ^ 0x100, 0, NULL, 5), 8);    /* another serial */
	CHECK_EQ_INT(host_pread(sb, (h & ~0xffull) | 200, 0, NULL, 5), 8); /* no such slot */
	mote_value c = mote_u64(h), r = {0};
	CHECK_EQ_INT(mote_wasi_host_close(NULL, sb, &c, 1, &r), 0);
	CHECK_EQ_INT(r.v.u32, 0);
	CHECK_EQ_INT(mote_wasi_host_close(NULL, sb, &c, 1, &r), 0);
	CHECK_EQ_INT(r.v.u32, 8);
	/* The slot is reused; the old handle still names nothing. */
	uint64_t h2 = host_open(sb, 0, "link", 4, &err);
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(h2 & 0xff, h & 0xff);
	CHECK(h2 != h);
	CHECK_EQ_INT(host_pread(sb, h, 0, NULL, 5), 8);
	CHECK_EQ_INT(host_pread(sb, h2, 6, buf, 4), 0);
	buf[4] = 0;
	CHECK_EQ_STR(buf, "file");
	host_open(sb, 1, "a.txt", 5, &err);
	CHECK_EQ_INT(err, 8); /* no second preopen */
	host_open(sb, 0, "../outside/s.txt", 16, &err);
	CHECK_EQ_INT(err, 76); /* ENOTCAPABLE */
	host_open(sb, 0, "/etc/passwd", 11, &err);
	CHECK_EQ_INT(err, 76);
	host_open(sb, 0, "escape", 6, &err);
	CHECK_EQ_INT(err, 76);
	host_open(sb, 0, "a.txt\0x", 7, &err);
	CHECK_EQ_INT(err, 28); /* EINVAL: a NUL inside */
	/* Opening until the table is full: EMFILE, then nothing leaks. */
	int opened = 1;
	for (; opened < 100; opened++) {
		host_open(sb, 0, "a.txt", 5, &err);
		if (err)
			break;
	}
	CHECK_EQ_INT(err, 33); /* EMFILE */
	CHECK_EQ_INT(opened, 64);
	mote_sandbox_free(sb);
	remove_tree(dir);
}

TEST(wasm_preopen_refuses_bad_requests)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/d", "/nonexistent-mote-dir"), -MOTE_EIO);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "cannot open directory /nonexistent-mote-dir: No such file or directory");
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/d", "/etc/hostname"), -MOTE_EIO);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "Not a directory");
	CHECK_EQ_INT(mote_wasm_preopen(sb, "", "/tmp"), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
		     "preopen guest path must be 1 to 255 bytes, not 0");
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/t", "/tmp"), 0);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/t", "/"), -MOTE_EEXIST);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "'/t' is already preopened");
	char name[8];
	for (int i = 1; i < 16; i++) {
		snprintf(name, sizeof(name), "/t%d", i);
		CHECK_EQ_INT(mote_wasm_preopen(sb, name, "/tmp"), 0);
	}
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/more", "/tmp"), -MOTE_ETOOBIG);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "at most 16 preopened directories");
	CHECK_EQ_INT(mote_wasm_preopen(NULL, "/d", "/tmp"), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_preopen(sb, NULL, "/tmp"), -MOTE_EINVAL);
	mote_sandbox_free(sb);
}

/* ---- the CLI ---- */
TEST(cli_runs_modules_and_snapshots)
{
	char out[4096];
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run " ARITH " --invoke add 2 40 2>&1", out, sizeof(out)),
		     0);
	CHECK_EQ_STR(out, "42\n");
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run " ARITH " --invoke mix -- -1 8589934592 0.5 0.25",
			     out, sizeof(out)),
		     0);
	CHECK_EQ_STR(out, "8589934591.75\n");
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run " ARITH " --invoke divide 1 0 2>&1", out,
			     sizeof(out)),
		     1);
	CHECK_EQ_STR(out, "mote: MOTE_EGUEST: wasm trap: integer divide by zero\n");
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run " ARITH " --invoke add 1 2>&1", out, sizeof(out)),
		     2);
	CHECK_CONTAINS(out, "add(i32, i32) -> i32");
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run " WASI_HELLO " x y 2>&1", out, sizeof(out)), 3);
	CHECK_CONTAINS(out, "argc=3 [" WASI_HELLO "] [x] [y]\n");
	/* --dir GUEST=HOST */
	char root[128];
	char *tree = files_tree(root, sizeof(root));
	REQUIRE(tree);
	char dcmd[512];
	snprintf(dcmd, sizeof(dcmd),
		 MOTE_CLI " wasm run --dir /in=%s " WASI_FILES " cat:/in/a.txt write:/in/x 2>&1",
		 root);
	CHECK_EQ_INT(run_cli(dcmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "cat /in/a.txt: hello file\nwrite /in/x: Read-only file system\n");
	CHECK_EQ_INT(run_cli(MOTE_CLI " wasm run --dir nodir " WASI_FILES " 2>&1", out, sizeof(out)),
		     2);
	CHECK_EQ_STR(out, "mote wasm run: --dir wants GUEST=HOST, not 'nodir'\n");
	remove_tree(tree);

	char path[] = "/tmp/mote-wasm-cli-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm snapshot " ARITH " -o %s 2>&1", path);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run %s --invoke fib 20 2>&1", path);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "6765\n");
	/* mote run recognises a Wasm snapshot and calls the module's export. */
	snprintf(cmd, sizeof(cmd), MOTE_CLI " run %s fib 20 2>&1", path);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "6765\n");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm exports %s 2>&1", path);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_CONTAINS(out, "fib(i32) -> i32\n");
	unlink(path);
}

/* ---- Standard output and standard error; what stdio is ---- */
static char streams[2][1024]; /* [0] MOTE_LOG_PRINT, [1] MOTE_LOG_STDERR */
static char order[64];        /* 'o' or 'e' per record, in arrival order */

static void capture_streams(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	int i = level == MOTE_LOG_STDERR;
	size_t have = strlen(streams[i]);
	if (len > sizeof(streams[i]) - 1 - have)
		len = sizeof(streams[i]) - 1 - have;
	memcpy(streams[i] + have, text, len);
	streams[i][have + len] = 0;
	size_t k = strlen(order);
	if (k < sizeof(order) - 1)
		order[k] = level == MOTE_LOG_STDERR ? 'e' : level == MOTE_LOG_PRINT ? 'o' : '?';
}

static mote_sandbox *stdio_sandbox(bool separate)
{
	mote_config *cfg;
	mote_sandbox *sb = NULL;
	if (mote_config_new(&cfg))
		return NULL;
	if (separate)
		mote_config_set_output_streams(cfg, capture_streams, NULL);
	else
		mote_config_set_output(cfg, capture_streams, NULL);
	int rc = open_wasm(cfg, NULL, WASI_STDIO, &sb);
	mote_config_free(cfg);
	if (rc)
		TEST_FAILF("stdio sandbox: %s: %s", mote_errname(rc), open_error);
	memset(streams, 0, sizeof(streams));
	memset(order, 0, sizeof(order));
	return sb;
}

TEST(wasi_stdout_and_stderr_are_separate_streams)
{
	mote_sandbox *sb = stdio_sandbox(true);
	REQUIRE(sb);
	const char *argv[] = {"stdio"};
	int code = -1;
	REQUIRE(mote_wasm_run(sb, argv, 1, NULL, 0, &code) == 0);
	CHECK_EQ_INT(code, 0);
	/* Nothing said of stdio: not a terminal. */
	CHECK_EQ_STR(streams[0], "tty 000 other other other\nout1\n");
	CHECK_EQ_STR(streams[1], "err1\nerr2\n");
	CHECK_EQ_STR(order, "oeoe"); /* the program's order across both */
	mote_sandbox_free(sb);

	/* A callback set with mote_config_set_output() knows one stream. */
	sb = stdio_sandbox(false);
	REQUIRE(sb);
	REQUIRE(mote_wasm_run(sb, argv, 1, NULL, 0, &code) == 0);
	CHECK_EQ_STR(streams[0], "tty 000 other other other\nerr1\nout1\nerr2\n");
	CHECK_EQ_STR(streams[1], "");
	CHECK_EQ_STR(order, "oooo");
	mote_sandbox_free(sb);
}

TEST(wasi_stdio_is_what_the_embedder_says)
{
	mote_sandbox *sb = stdio_sandbox(true);
	REQUIRE(sb);
	REQUIRE(mote_wasm_set_stdio_type(sb, 0, MOTE_WASM_STDIO_FILE) == 0);
	REQUIRE(mote_wasm_set_stdio_type(sb, 1, MOTE_WASM_STDIO_TERMINAL) == 0);
	REQUIRE(mote_wasm_set_stdio_type(sb, 2, MOTE_WASM_STDIO_TERMINAL) == 0);
	const char *argv[] = {"stdio"};
	int code = -1;
	REQUIRE(mote_wasm_run(sb, argv, 1, NULL, 0, &code) == 0);
	CHECK_EQ_STR(streams[0], "tty 011 reg chr chr\nout1\n");
	REQUIRE(mote_wasm_set_stdio_type(sb, 1, MOTE_WASM_STDIO_UNKNOWN) == 0);
	memset(streams, 0, sizeof(streams));
	REQUIRE(mote_wasm_run(sb, argv, 1, NULL, 0, &code) == 0);
	CHECK_EQ_STR(streams[0], "tty 001 reg other chr\nout1\n");

	CHECK_EQ_INT(mote_wasm_set_stdio_type(NULL, 0, MOTE_WASM_STDIO_FILE), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "mote_wasm_set_stdio_type: no sandbox");
	CHECK_EQ_INT(mote_wasm_set_stdio_type(sb, 3, MOTE_WASM_STDIO_FILE), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "fd 3 is not 0, 1 or 2");
	CHECK_EQ_INT(mote_wasm_set_stdio_type(sb, 1, (mote_wasm_stdio_type)7), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "unknown type 7");
	mote_sandbox_free(sb);
}

TEST(cli_keeps_stderr_apart)
{
	char out[4096], cmd[512];
	/* stdout to the pipe, stderr to a file: each gets its own. */
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run " WASI_STDIO " 2>%s", "/tmp/mote-test-stderr.txt");
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "tty 000 other other reg\nout1\n");
	FILE *f = fopen("/tmp/mote-test-stderr.txt", "r");
	char err[256] = "";
	if (f) {
		size_t n = fread(err, 1, sizeof(err) - 1, f);
		err[n] = 0;
		fclose(f);
	}
	CHECK_EQ_STR(err, "err1\nerr2\n");
	unlink("/tmp/mote-test-stderr.txt");
	/* --stdin FILE: the module's stdin is a file. */
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run --stdin %s " WASI_STDIO " 2>/dev/null",
		 WASI_STDIO);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_CONTAINS(out, "tty 000 reg other ");
}

/* ---- WASI links, read-only writes, descriptor calls ---- */
#define WASI_LINKS MODULE("wasi_links")

/* root/file.txt ("hello"), root/sub/in.txt ("inner"), and links:
 * flink -> file.txt, dlink -> sub, dangling -> missing, outabs ->
 * /etc/hostname, outrel -> ../outside/s.txt, up -> .., sub/back ->
 * ../file.txt (leaves sub, stays beneath root). */
static char *links_tree(char *root, size_t root_len)
{
	static char dir[64];
	strcpy(dir, "/tmp/mote-wasi-links-XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkdir -p root/sub outside && printf hello > root/file.txt && "
		 "printf inner > root/sub/in.txt && printf secret > outside/s.txt && cd root && "
		 "ln -s file.txt flink && ln -s sub dlink && ln -s missing dangling && "
		 "ln -s /etc/hostname outabs && ln -s ../outside/s.txt outrel && ln -s .. up && "
		 "ln -s ../file.txt sub/back",
		 dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(root, root_len, "%s/root", dir);
	return dir;
}

static mote_sandbox *links_sandbox(const char *root)
{
	mote_sandbox *sb = new_wasm(NULL, WASI_LINKS);
	if (sb && mote_wasm_preopen(sb, "/data", root) != 0) {
		TEST_FAILF("preopen: %s", mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		return NULL;
	}
	return sb;
}

static int run_links(mote_sandbox *sb, const char *const *ops, size_t n)
{
	const char *argv[64] = {"links"};
	for (size_t i = 0; i < n && i < 63; i++)
		argv[i + 1] = ops[i];
	int code = -1;
	ncaptured = 0;
	captured[0] = 0;
	int rc = mote_wasm_run(sb, argv, n + 1, NULL, 0, &code);
	return rc ? rc : code;
}

#define NOPS(ops) (sizeof(ops) / sizeof((ops)[0]))

/* lstat sees a link itself, stat follows it beneath the preopen only,
 * readlink returns its text (even one that points out), cut to the
 * buffer; a trailing slash follows the link, as on Linux. */
TEST(wasi_symlinks_are_statted_and_read_beneath_the_preopen)
{
	char root[128];
	char *dir = links_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = links_sandbox(root);
	REQUIRE(sb);
	const char *ops[] = {
		"lstat:/data/flink", "stat:/data/flink", "lstat:/data/dlink", "stat:/data/dlink",
		"lstat:/data/dangling", "stat:/data/dangling", "lstat:/data/outabs",
		"stat:/data/outabs", "lstat:/data/outrel", "stat:/data/outrel", "lstat:/data/up",
		"stat:/data/up", "lstat:/data/sub/back", "stat:/data/sub/back",
		"lstat:/data/file.txt", "lstat:/data/sub", "lstat:/data/dlink/",
		"lstat:/data/flink/", "lstat:/data/dlink/in.txt", "lstat:/data/missing",
		"nofollow:/data/flink", "nofollow:/data/file.txt", "readlink:/data/flink",
		"readlink:/data/outabs", "readlink:/data/outrel", "readlink:/data/dangling",
		"readlink:/data/up", "readlink:/data/file.txt", "readlink:/data/sub",
		"readlink:/data/missing", "readlink:/data/sub/../flink",
		"readlink:/data/dlink/../flink", "readlink:/data/flink/", "readlink:/data/dlink/",
		"readlink:/data/.", "readlink4:/data/flink", "readlink4:/data/up"
	};
	CHECK_EQ_INT(run_links(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "lstat /data/flink: link 8\n"
			       "stat /data/flink: file 5\n"
			       "lstat /data/dlink: link 3\n"
			       "stat /data/dlink: dir\n"
			       "lstat /data/dangling: link 7\n"
			       "stat /data/dangling: ENOENT\n"
			       "lstat /data/outabs: link 13\n"
			       "stat /data/outabs: ENOTCAPABLE\n"
			       "lstat /data/outrel: link 16\n"
			       "stat /data/outrel: ENOTCAPABLE\n"
			       "lstat /data/up: link 2\n"
			       "stat /data/up: ENOTCAPABLE\n"
			       "lstat /data/sub/back: link 11\n"
			       "stat /data/sub/back: file 5\n"
			       "lstat /data/file.txt: file 5\n"
			       "lstat /data/sub: dir\n"
			       "lstat /data/dlink/: dir\n"
			       "lstat /data/flink/: ENOTDIR\n"
			       "lstat /data/dlink/in.txt: file 5\n"
			       "lstat /data/missing: ENOENT\n"
			       "nofollow /data/flink: ELOOP\n"
			       "nofollow /data/file.txt: ok\n"
			       "readlink /data/flink: \"file.txt\" (8)\n"
			       "readlink /data/outabs: \"/etc/hostname\" (13)\n"
			       "readlink /data/outrel: \"../outside/s.txt\" (16)\n"
			       "readlink /data/dangling: \"missing\" (7)\n"
			       "readlink /data/up: \"..\" (2)\n"
			       "readlink /data/file.txt: EINVAL\n"
			       "readlink /data/sub: EINVAL\n"
			       "readlink /data/missing: ENOENT\n"
			       "readlink /data/sub/../flink: \"file.txt\" (8)\n"
			       "readlink /data/dlink/../flink: \"file.txt\" (8)\n"
			       "readlink /data/flink/: ENOTDIR\n"
			       "readlink /data/dlink/: EINVAL\n"
			       "readlink /data/.: EINVAL\n"
			       "readlink4 /data/flink: \"file\" (4)\n"
			       "readlink4 /data/up: \"..\" (2)\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* Paths that lead out of the preopen, or that no kernel would take, as a
 * module can pass them with raw WASI calls (wasi-libc resolves "/etc" and
 * "" against the preopens itself and never asks). */
TEST(wasi_link_calls_refuse_paths_that_lead_out)
{
	char root[128];
	char *dir = links_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = links_sandbox(root);
	REQUIRE(sb);
	const char *ops[] = {
		"rawlstat:../x", "rawlstat:/etc", "rawlstat:sub/../../x", "rawlstat:nodir/../../x",
		"rawlstat:", "rawlstat:.", "rawlstat:..", "rawlstat:sub/..", "rawlstat:up/x",
		"rawlstat:up/", "rawlstat:outabs/x", "rawlstat:dlink/back", "rawstat:up",
		"rawstat:", "rawstat:/etc", "rawreadlink:../x", "rawreadlink:/etc",
		"rawreadlink:sub/../../x", "rawreadlink:", "rawreadlink:..", "rawreadlink:/",
		"rawreadlink:up/..", "rawreadlink:sub//back", "rawreadlink:./flink",
		"longlstat:255", "longlstat:256", "longlstat:4095", "longlstat:4096",
		"longreadlink:255", "longreadlink:4096", "longmkdir:255", "longmkdir:256",
		"longmkdir:4096"
	};
	CHECK_EQ_INT(run_links(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "rawlstat ../x: ENOTCAPABLE\n"
			       "rawlstat /etc: ENOTCAPABLE\n"
			       "rawlstat sub/../../x: ENOTCAPABLE\n"
			       "rawlstat nodir/../../x: ENOENT\n"
			       "rawlstat : ENOENT\n"
			       "rawlstat .: dir\n"
			       "rawlstat ..: ENOTCAPABLE\n"
			       "rawlstat sub/..: dir\n"
			       "rawlstat up/x: ENOTCAPABLE\n"
			       "rawlstat up/: ENOTCAPABLE\n"
			       "rawlstat outabs/x: ENOTCAPABLE\n"
			       "rawlstat dlink/back: link 11\n"
			       "rawstat up: ENOTCAPABLE\n"
			       "rawstat : ENOENT\n"
			       "rawstat /etc: ENOTCAPABLE\n"
			       "rawreadlink ../x: ENOTCAPABLE\n"
			       "rawreadlink /etc: ENOTCAPABLE\n"
			       "rawreadlink sub/../../x: ENOTCAPABLE\n"
			       "rawreadlink : ENOENT\n"
			       "rawreadlink ..: ENOTCAPABLE\n"
			       "rawreadlink /: ENOTCAPABLE\n"
			       "rawreadlink up/..: ENOTCAPABLE\n"
			       "rawreadlink sub//back: \"../file.txt\"\n"
			       "rawreadlink ./flink: \"file.txt\"\n"
			       "longlstat 255: ENOENT\n"
			       "longlstat 256: ENAMETOOLONG\n"
			       "longlstat 4095: ENAMETOOLONG\n"
			       "longlstat 4096: ENAMETOOLONG\n"
			       "longreadlink 255: ENOENT\n"
			       "longreadlink 4096: ENAMETOOLONG\n"
			       "longmkdir 255: EROFS\n"
			       "longmkdir 256: ENAMETOOLONG\n"
			       "longmkdir 4096: ENAMETOOLONG\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* Every write beneath a read-only preopen is EROFS, once its path is
 * known to stay beneath (ENOTCAPABLE if it leads out, ENOENT or ENOTDIR
 * if its directory is missing); nothing on the host changes. */
TEST(wasi_writes_beneath_read_only_preopens_fail_with_erofs)
{
	char root[128];
	char *dir = links_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = links_sandbox(root);
	REQUIRE(sb);
	const char *ops[] = {
		"mkdir:/data/newdir", "mkdir:/data/newdir/", "mkdir:/data/sub",
		"mkdir:/data/nodir/x", "mkdir:/data/file.txt/x", "mkdir:/data/../x",
		"mkdir:/data/up/x", "unlink:/data/file.txt", "unlink:/data/flink",
		"unlink:/data/missing", "unlink:/data/../outside/s.txt", "unlink:/data/outrel",
		"rmdir:/data/sub", "rmdir:/data/../outside", "rename:/data/file.txt,/data/new.txt",
		"rename:/data/file.txt,/data/../x", "rename:/data/../outside/s.txt,/data/s.txt",
		"rename:/data/file.txt,/elsewhere", "link:/data/file.txt,/data/hard",
		"link:/data/../outside/s.txt,/data/hard", "symlink:file.txt,/data/newlink",
		"symlink:/etc/passwd,/data/newlink", "symlink:x,/data/../newlink",
		"rawutimes:file.txt", "rawutimes:outabs", "rawutimes:missing", "rawutimes:../x"
	};
	CHECK_EQ_INT(run_links(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "mkdir /data/newdir: EROFS\n"
			       "mkdir /data/newdir/: EROFS\n"
			       "mkdir /data/sub: EROFS\n"
			       "mkdir /data/nodir/x: ENOENT\n"
			       "mkdir /data/file.txt/x: ENOTDIR\n"
			       "mkdir /data/../x: ENOTCAPABLE\n"
			       "mkdir /data/up/x: ENOTCAPABLE\n"
			       "unlink /data/file.txt: EROFS\n"
			       "unlink /data/flink: EROFS\n"
			       "unlink /data/missing: EROFS\n"
			       "unlink /data/../outside/s.txt: ENOTCAPABLE\n"
			       "unlink /data/outrel: EROFS\n"
			       "rmdir /data/sub: EROFS\n"
			       "rmdir /data/../outside: ENOTCAPABLE\n"
			       "rename /data/file.txt,/data/new.txt: EROFS\n"
			       "rename /data/file.txt,/data/../x: ENOTCAPABLE\n"
			       "rename /data/../outside/s.txt,/data/s.txt: ENOTCAPABLE\n"
			       "rename /data/file.txt,/elsewhere: ENOTCAPABLE\n"
			       "link /data/file.txt,/data/hard: EROFS\n"
			       "link /data/../outside/s.txt,/data/hard: ENOTCAPABLE\n"
			       "symlink file.txt,/data/newlink: EROFS\n"
			       "symlink /etc/passwd,/data/newlink: EROFS\n"
			       "symlink x,/data/../newlink: ENOTCAPABLE\n"
			       "rawutimes file.txt: EROFS\n"
			       "rawutimes outabs: EROFS\n"
			       "rawutimes missing: ENOENT\n"
			       "rawutimes ../x: ENOTCAPABLE\n");
	/* The host tree is as it was. */
	char cmd[256], out[512];
	snprintf(cmd, sizeof(cmd), "cd %s && ls -A . sub .. | tr '\\n' ' ' && cat file.txt", root);
	FILE *p = popen(cmd, "r");
	REQUIRE(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	pclose(p);
	CHECK_EQ_STR(out, ".: dangling dlink file.txt flink outabs outrel sub up  "
			  "..: outside root  sub: back in.txt hello");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* Standard I/O, a preopen, a file and a directory opened from it each
 * answer every descriptor call for what they are: EBADF only for a
 * descriptor that does not exist (and fd_prestat_get's "not a preopen").
 * fd_fdstat_get's rights say what works. */
TEST(wasi_descriptor_calls_answer_for_what_each_descriptor_is)
{
	char root[128];
	char *dir = links_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = links_sandbox(root);
	REQUIRE(sb);
	/* Through wasi-libc, as programs call it. */
	const char *libc_ops[] = {
		"fcntl:1", "fcntl:0", "fcntl:2", "fcntl:3", "fcntl:/data/file.txt", "fcntl:42",
		"fcntlsync:1", "fadvise:/data/file.txt", "fadvise:/data/sub", "fadvise:1",
		"fadvise:42", "fsync:/data/file.txt", "fsync:1", "fsync:2", "fsync:0", "fsync:3",
		"fsync:42", "at:1", "at:/data/file.txt", "at:/data/sub", "at:42", "ls3:",
		"renumber:/data/file.txt,/data/sub/in.txt"
	};
	CHECK_EQ_INT(run_links(sb, libc_ops, NOPS(libc_ops)), 0);
	CHECK_EQ_STR(captured,
		     "fcntl 1: ok, then nonblock\n"
		     "fcntl 0: ok, then nonblock\n"
		     "fcntl 2: ok, then nonblock\n"
		     "fcntl 3: ok, then nonblock\n"
		     "fcntl /data/file.txt: ok, then nonblock\n"
		     "fcntl 42: EBADF, then EBADF\n"
		     "fcntlsync 1: ENOTSUP\n"
		     "fadvise /data/file.txt: ok\n"
		     "fadvise /data/sub: ok\n"
		     "fadvise 1: ESPIPE\n"
		     "fadvise 42: EBADF\n"
		     "fsync /data/file.txt: ok, fdatasync ok\n"
		     "fsync 1: ok, fdatasync ok\n"
		     "fsync 2: ok, fdatasync ok\n"
		     "fsync 0: ok, fdatasync ok\n"
		     "fsync 3: ok, fdatasync ok\n"
		     "fsync 42: EBADF, fdatasync EBADF\n"
		     "at 1: fstatat=ENOTDIR openat=ENOTDIR readlinkat=ENOTDIR mkdirat=ENOTDIR\n"
		     "at /data/file.txt: fstatat=ENOTDIR openat=ENOTDIR readlinkat=ENOTDIR "
		     "mkdirat=ENOTDIR\n"
		     "at /data/sub: fstatat=ENOTSUP openat=ENOTSUP readlinkat=ENOTSUP "
		     "mkdirat=EROFS\n"
		     "at 42: fstatat=EBADF openat=EBADF readlinkat=EBADF mkdirat=EBADF\n"
		     "ls3 : . .. dangling dlink file.txt flink outabs outrel sub up\n"
		     "renumber /data/file.txt,/data/sub/in.txt: ok read new ok \"hello\" read old "
		     "EBADF stdio ENOTSUP\n");

	/* Raw calls, each descriptor in a fresh run (fd_fdstat_set_flags
	 * leaves nonblock set, which rights then shows). */
	const char *rights_ops[] = {
		"rights:0", "rights:1", "rights:3", "rights:/data/file.txt", "rights:/data/sub",
		"rights:42"
	};
	CHECK_EQ_INT(load_again(sb, WASI_LINKS), 0);
	CHECK_EQ_INT(run_links(sb, rights_ops, NOPS(rights_ops)), 0);
	/* 0x1b: fd_read, fd_datasync, fd_sync, fd_fdstat_set_flags; 0x59
	 * the same with fd_write for fd_read; a file adds seek, tell,
	 * advise, fd_filestat_get (0x2000bf); a directory has readdir for
	 * read, seek and tell (0x204099); the preopen adds path_open,
	 * path_readlink and path_filestat_get (0x24e099) and lets files
	 * ask for every right (writes fail with EROFS at path_open). */
	CHECK_EQ_STR(captured, "rights 0: type 0 flags 0 base 0x1b inheriting 0\n"
			       "rights 1: type 0 flags 0 base 0x59 inheriting 0\n"
			       "rights 3: type 3 flags 0 base 0x24e099 inheriting 0x1fffffff\n"
			       "rights /data/file.txt: type 4 flags 0 base 0x2000bf inheriting 0\n"
			       "rights /data/sub: type 3 flags 0 base 0x204099 inheriting 0\n"
			       "rights 42: EBADF\n");
	static const struct {
		const char *op, *want;
	} fdops[] = {
		{"fdops:0",
		 "fdops 0: read=ok write=ENOTCAPABLE pread=ESPIPE pwrite=ESPIPE seek=ESPIPE "
		 "readdir=ENOTDIR allocate=ESPIPE set_size=ENOTSUP set_times=ENOTSUP "
		 "bad_times=EINVAL advise=ESPIPE bad_advice=ESPIPE sync=ok datasync=ok "
		 "nonblock=ok dsync=ENOTSUP bad_flags=EINVAL set_rights=ENOTSUP prestat=EBADF\n"},
		{"fdops:1",
		 "fdops 1: read=ENOTCAPABLE write=ok pread=ESPIPE pwrite=ESPIPE seek=ESPIPE "
		 "readdir=ENOTDIR allocate=ESPIPE set_size=ENOTSUP set_times=ENOTSUP "
		 "bad_times=EINVAL advise=ESPIPE bad_advice=ESPIPE sync=ok datasync=ok "
		 "nonblock=ok dsync=ENOTSUP bad_flags=EINVAL set_rights=ENOTSUP prestat=EBADF\n"},
		{"fdops:2",
		 "fdops 2: read=ENOTCAPABLE write=ok pread=ESPIPE pwrite=ESPIPE seek=ESPIPE "
		 "readdir=ENOTDIR allocate=ESPIPE set_size=ENOTSUP set_times=ENOTSUP "
		 "bad_times=EINVAL advise=ESPIPE bad_advice=ESPIPE sync=ok datasync=ok "
		 "nonblock=ok dsync=ENOTSUP bad_flags=EINVAL set_rights=ENOTSUP prestat=EBADF\n"},
		{"fdops:3",
		 "fdops 3: read=EISDIR write=EROFS pread=EISDIR pwrite=EROFS seek=ENOTSUP "
		 "readdir=ok allocate=EROFS set_size=EROFS set_times=EROFS bad_times=EINVAL "
		 "advise=ok bad_advice=EINVAL sync=ok datasync=ok nonblock=ok dsync=ENOTSUP "
		 "bad_flags=EINVAL set_rights=ENOTSUP prestat=ok\n"},
		{"fdops:/data/file.txt",
		 "fdops /data/file.txt: read=ok write=EROFS pread=ok pwrite=EROFS seek=ok "
		 "readdir=ENOTDIR allocate=EROFS set_size=EROFS set_times=EROFS bad_times=EINVAL "
		 "advise=ok bad_advice=EINVAL sync=ok datasync=ok nonblock=ok dsync=ENOTSUP "
		 "bad_flags=EINVAL set_rights=ENOTSUP prestat=EBADF\n"},
		{"fdops:/data/sub",
		 "fdops /data/sub: read=EISDIR write=EROFS pread=EISDIR pwrite=EROFS seek=ok "
		 "readdir=ok allocate=EROFS set_size=EROFS set_times=EROFS bad_times=EINVAL "
		 "advise=ok bad_advice=EINVAL sync=ok datasync=ok nonblock=ok dsync=ENOTSUP "
		 "bad_flags=EINVAL set_rights=ENOTSUP prestat=EBADF\n"},
		{"fdops:42",
		 "fdops 42: read=EBADF write=EBADF pread=EBADF pwrite=EBADF seek=EBADF "
		 "readdir=EBADF allocate=EBADF set_size=EBADF set_times=EBADF bad_times=EBADF "
		 "advise=EBADF bad_advice=EBADF sync=EBADF datasync=EBADF nonblock=EBADF "
		 "dsync=EBADF bad_flags=EBADF set_rights=EBADF prestat=EBADF\n"},
	};
	for (size_t i = 0; i < sizeof(fdops) / sizeof(fdops[0]); i++) {
		CHECK_EQ_INT(run_links(sb, &fdops[i].op, 1), 0);
		CHECK_EQ_STR(captured, fdops[i].want);
	}
	/* fd_fdstat_get reports the flags set; a new module starts without. */
	const char *after[] = {"rights:1", "rights:3"};
	CHECK_EQ_INT(run_links(sb, after, 2), 0);
	CHECK_EQ_STR(captured, "rights 1: type 0 flags 4 base 0x59 inheriting 0\n"
			       "rights 3: type 3 flags 0 base 0x24e099 inheriting 0x1fffffff\n");
	CHECK_EQ_INT(load_again(sb, WASI_LINKS), 0);
	CHECK_EQ_INT(run_links(sb, after, 1), 0);
	CHECK_EQ_STR(captured, "rights 1: type 0 flags 0 base 0x59 inheriting 0\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* The new host functions alone, as a hostile guest could drive them:
 * every path is copied at its length, split so that only the directory
 * that holds the last component is resolved (beneath the preopen), and
 * no descriptor is left open. */
static uint32_t host_path(mote_host_fn fn, mote_sandbox *sb, uint32_t dir, const char *path,
			  size_t len, char *out, size_t cap)
{
	mote_value a[2] = {mote_u32(dir), mote_string(path)}, r = {0};
	a[1].v.buf.len = len;
	r.type = fn == mote_wasi_host_parent ? MOTE_U32 : MOTE_BYTES;
	CHECK_EQ_INT(fn(NULL, sb, a, 2, &r), 0);
	if (fn == mote_wasi_host_parent)
		return r.v.u32;
	size_t n = r.v.buf.len >= 4 ? r.v.buf.len - 4 : 0;
	if (out) {
		n = n < cap - 1 ? n : cap - 1;
		memcpy(out, (const uint8_t *)r.v.buf.ptr + 4, n);
		out[n] = 0;
	}
	return reply_errno(&r);
}

/* lstat's filetype and size, as "type N size M", or the errno. */
static const char *host_lstat(mote_sandbox *sb, uint32_t dir, const char *path, size_t len)
{
	static char text[64];
	char st[65];
	uint32_t err = host_path(mote_wasi_host_lstat, sb, dir, path, len, st, sizeof(st));
	if (err) {
		snprintf(text, sizeof(text), "errno %u", err);
	} else {
		uint64_t size;
		memcpy(&size, st + 32, 8);
		snprintf(text, sizeof(text), "type %u size %llu", (unsigned)(uint8_t)st[16],
			 (unsigned long long)size);
	}
	return text;
}

static const char *host_readlink(mote_sandbox *sb, uint32_t dir, const char *path, size_t len)
{
	static char text[128];
	char target[100];
	uint32_t err = host_path(mote_wasi_host_readlink, sb, dir, path, len, target,
				 sizeof(target));
	if (err)
		snprintf(text, sizeof(text), "errno %u", err);
	else
		snprintf(text, sizeof(text), "\"%s\"", target);
	return text;
}

static uint32_t host_parent(mote_sandbox *sb, uint32_t dir, const char *path, size_t len)
{
	return host_path(mote_wasi_host_parent, sb, dir, path, len, NULL, 0);
}

TEST(wasi_link_host_functions_refuse_what_a_hostile_guest_sends)
{
	char root[128];
	char *dir = links_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	/* No preopens yet: EBADF. */
	CHECK_EQ_STR(host_lstat(sb, 0, "flink", 5), "errno 8");
	CHECK_EQ_STR(host_readlink(sb, 0, "flink", 5), "errno 8");
	CHECK_EQ_INT(host_parent(sb, 0, "x", 1), 8);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/d", root), 0);
	int before = count_fds();
	static char huge[4097];
	memset(huge, 'a', 4096);

	CHECK_EQ_STR(host_lstat(sb, 0, "flink", 5), "type 7 size 8");
	CHECK_EQ_STR(host_lstat(sb, 0, "outabs", 6), "type 7 size 13");
	CHECK_EQ_STR(host_lstat(sb, 0, "file.txt", 8), "type 4 size 5");
	CHECK_EQ_STR(host_lstat(sb, 0, "flink/../../etc", 5), "type 7 size 8"); /* its length */
	CHECK_EQ_STR(host_lstat(sb, 0, "sub/back", 8), "type 7 size 11");
	CHECK_EQ_STR(host_lstat(sb, 0, "dlink/back", 10), "type 7 size 11");
	CHECK_EQ_INT(strncmp(host_lstat(sb, 0, ".", 1), "type 3 size ", 12), 0);
	CHECK_EQ_INT(strncmp(host_lstat(sb, 0, "dlink/", 6), "type 3 size ", 12), 0);
	CHECK_EQ_STR(host_lstat(sb, 0, "../x", 4), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "..", 2), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "/etc", 4), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "/", 1), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "sub/../../x", 11), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "sub/../..", 9), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "up/x", 4), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "outabs/x", 8), "errno 76");
	CHECK_EQ_STR(host_lstat(sb, 0, "", 0), "errno 44");
	CHECK_EQ_STR(host_lstat(sb, 0, "flink\0x", 7), "errno 28");
	CHECK_EQ_STR(host_lstat(sb, 0, huge, 4096), "errno 37");
	CHECK_EQ_STR(host_lstat(sb, 0, huge, 256), "errno 37");
	CHECK_EQ_STR(host_lstat(sb, 1, "flink", 5), "errno 8");

	CHECK_EQ_STR(host_readlink(sb, 0, "flink", 5), "\"file.txt\"");
	CHECK_EQ_STR(host_readlink(sb, 0, "outabs", 6), "\"/etc/hostname\"");
	CHECK_EQ_STR(host_readlink(sb, 0, "outrel", 6), "\"../outside/s.txt\"");
	CHECK_EQ_STR(host_readlink(sb, 0, "file.txt", 8), "errno 28");
	CHECK_EQ_STR(host_readlink(sb, 0, "sub/", 4), "errno 28");
	CHECK_EQ_STR(host_readlink(sb, 0, ".", 1), "errno 28");
	CHECK_EQ_STR(host_readlink(sb, 0, "missing", 7), "errno 44");
	CHECK_EQ_STR(host_readlink(sb, 0, "../x", 4), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "..", 2), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "/etc", 4), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "/etc/", 5), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "sub/../../x", 11), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "up/up", 5), "errno 76");
	CHECK_EQ_STR(host_readlink(sb, 0, "", 0), "errno 44");
	CHECK_EQ_STR(host_readlink(sb, 0, "a\0b", 3), "errno 28");
	CHECK_EQ_STR(host_readlink(sb, 0, huge, 4096), "errno 37");
	CHECK_EQ_STR(host_readlink(sb, 1, "flink", 5), "errno 8");

	CHECK_EQ_INT(host_parent(sb, 0, "new", 3), 0);
	CHECK_EQ_INT(host_parent(sb, 0, "sub/new/", 8), 0);
	CHECK_EQ_INT(host_parent(sb, 0, "dlink/new", 9), 0);
	CHECK_EQ_INT(host_parent(sb, 0, ".", 1), 0);
	CHECK_EQ_INT(host_parent(sb, 0, "../x", 4), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "..", 2), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "/etc", 4), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "/", 1), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "//", 2), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "sub/../../x", 11), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "up/x", 4), 76);
	CHECK_EQ_INT(host_parent(sb, 0, "nodir/x", 7), 44);
	CHECK_EQ_INT(host_parent(sb, 0, "file.txt/x", 10), 54);
	CHECK_EQ_INT(host_parent(sb, 0, "", 0), 44);
	CHECK_EQ_INT(host_parent(sb, 0, "x\0y", 3), 28);
	CHECK_EQ_INT(host_parent(sb, 0, huge, 4096), 37);
	CHECK_EQ_INT(host_parent(sb, 1, "x", 1), 8);
	CHECK_EQ_INT(count_fds(), before); /* every directory opened was closed */
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* ---- poll_oneoff: sleeping and polling ---- */
static mote_sandbox *sleep_sandbox(uint64_t timeout_us)
{
	mote_config *cfg;
	mote_sandbox *sb = NULL;
	if (mote_config_new(&cfg))
		return NULL;
	mote_config_set_output(cfg, capture, NULL);
	if (timeout_us)
		mote_config_set_timeout_us(cfg, timeout_us);
	int rc = open_wasm(cfg, NULL, WASI_SLEEP, &sb);
	mote_config_free(cfg);
	if (rc)
		TEST_FAILF("sleep sandbox: %s: %s", mote_errname(rc), open_error);
	ncaptured = 0;
	captured[0] = 0;
	return sb;
}

static uint64_t ms_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

TEST(wasi_sleeps_and_polls)
{
	mote_sandbox *sb = sleep_sandbox(0);
	REQUIRE(sb);
	const char *argv[] = {"sleep"};
	int code = -1;
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 1, NULL, 0, &code), 0);
	CHECK_EQ_INT(code, 0);
	CHECK_EQ_STR(captured, "usleep 0 ok\nnanosleep 0 ok\nabsolute realtime 0 ok\n"
			       "absolute monotonic 0 ok\npast 0 ok\npoll stdio 2 in=1 out=1 ok\n"
			       "poll timeout 0 ok\npoll bad fd 1 nval=1\n");
	mote_sandbox_free(sb);
}

TEST(wasi_sleep_past_the_timeout_is_stopped)
{
	mote_sandbox *sb = sleep_sandbox(200 * 1000);
	REQUIRE(sb);
	const char *argv[] = {"sleep", "forever"};
	int code = -1;
	uint64_t t0 = ms_now();
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 2, NULL, 0, &code), -MOTE_ETIMEDOUT);
	uint64_t took = ms_now() - t0;
	CHECK(took >= 150 && took < 3000); /* at the deadline, not after the sleep */
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "call exceeded its timeout of 200000 us");
	CHECK_EQ_STR(captured, "sleeping\n");
	mote_sandbox_free(sb);
}

static void *interrupt_later(void *arg)
{
	usleep(100 * 1000);
	mote_sandbox_interrupt(arg);
	return NULL;
}

TEST(wasi_sleep_is_interrupted)
{
	mote_sandbox *sb = sleep_sandbox(0);
	REQUIRE(sb);
	const char *argv[] = {"sleep", "forever"};
	int code = -1;
	pthread_t t;
	uint64_t t0 = ms_now();
	REQUIRE(pthread_create(&t, NULL, interrupt_later, sb) == 0);
	CHECK_EQ_INT(mote_wasm_run(sb, argv, 2, NULL, 0, &code), -MOTE_ECANCELLED);
	pthread_join(t, NULL);
	CHECK(ms_now() - t0 < 3000);
	mote_sandbox_free(sb);
}

/* ---- Writable preopens ---- */
#define WASI_WRITE MODULE("wasi_write")

/* DIR/root (old.txt "old", sub/, esc -> ../outside/s.txt, absesc ->
 * DIR/outside/new.txt), DIR/outside/s.txt ("secret"), DIR/ro/file.txt
 * ("ro"). */
static char *write_tree(char *root, size_t root_len)
{
	static char dir[64];
	strcpy(dir, "/tmp/mote-wasi-write-XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkdir -p root/sub outside ro && printf old > root/old.txt && "
		 "printf secret > outside/s.txt && printf ro > ro/file.txt && "
		 "ln -s ../outside/s.txt root/esc && ln -s %s/outside/new.txt root/absesc",
		 dir, dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(root, root_len, "%s/root", dir);
	return dir;
}

/* What `cmd` prints (at most cap - 1 bytes). */
static const char *shell_out(const char *cmd)
{
	static char out[2048];
	FILE *p = popen(cmd, "r");
	if (!p)
		return "";
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	pclose(p);
	return out;
}

/* Every entry beneath dir: files with mode and size, directories with
 * mode, links with target; sorted. */
static const char *tree_listing(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && find . -mindepth 1 \\( -type d -printf '%%p dir %%m\\n' \\) -o "
		 "\\( -type l -printf '%%p -> %%l\\n' \\) -o -printf '%%p file %%m %%s\\n' | "
		 "LC_ALL=C sort",
		 dir);
	return shell_out(cmd);
}

static mote_sandbox *write_sandbox(const char *root, const char *ro)
{
	mote_sandbox *sb = new_wasm(NULL, WASI_WRITE);
	if (sb && mote_wasm_preopen_flags(sb, "/out", root, MOTE_WASM_PREOPEN_WRITABLE) != 0) {
		TEST_FAILF("preopen: %s", mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		return NULL;
	}
	if (sb && ro && mote_wasm_preopen(sb, "/ro", ro) != 0) {
		TEST_FAILF("preopen: %s", mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		return NULL;
	}
	return sb;
}

static int run_write(mote_sandbox *sb, const char *const *ops, size_t n)
{
	const char *argv[64] = {"write"};
	for (size_t i = 0; i < n && i < 63; i++)
		argv[i + 1] = ops[i];
	int code = -1;
	ncaptured = 0;
	captured[0] = 0;
	int rc = mote_wasm_run(sb, argv, n + 1, NULL, 0, &code);
	return rc ? rc : code;
}

/* Through wasi-libc, as programs do: create, write, append, truncate,
 * allocate, rename, link, symlink, unlink, mkdir, rmdir, fsync; the host
 * tree has what the module did, files 0644 and directories 0755. */
TEST(wasi_writable_preopen_creates_writes_and_removes_beneath_it)
{
	umask(022);
	char root[128];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = write_sandbox(root, NULL);
	REQUIRE(sb);
	const char *ops[] = {
		"put:/out/a.txt,hello", "append:/out/a.txt,+more", "cat:/out/a.txt",
		"excl:/out/a.txt", "excl:/out/b.txt", "trunc:/out/a.txt,3", "alloc:/out/b.txt,100",
		"mkdir:/out/d", "mkdir:/out/d", "rename:/out/a.txt,/out/d/c.txt",
		"link:/out/d/c.txt,/out/h", "symlink:d/c.txt,/out/in", "cat:/out/in",
		"sync:/out/in", "rw:/out/rw.txt", "wronly:/out/rw.txt", "rmdir:/out/d",
		"unlink:/out/old.txt", "unlink:/out/missing", "unlink:/out/sub", "mkdir:/out/gone",
		"rmdir:/out/gone", "rename:/out/sub,/out/sub2", "stat:/out/sub2",
		"mkdirs:/out/md,2", "many:/out/m,2"
	};
	CHECK_EQ_INT(run_write(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "put /out/a.txt,hello: ok\n"
			       "append /out/a.txt,+more: ok\n"
			       "cat /out/a.txt: \"hello+more\"\n"
			       "excl /out/a.txt: EEXIST\n"
			       "excl /out/b.txt: ok\n"
			       "trunc /out/a.txt,3: ok\n"
			       "alloc /out/b.txt,100: ok\n"
			       "mkdir /out/d: ok\n"
			       "mkdir /out/d: EEXIST\n"
			       "rename /out/a.txt,/out/d/c.txt: ok\n"
			       "link /out/d/c.txt,/out/h: ok\n"
			       "symlink d/c.txt,/out/in: ok\n"
			       "cat /out/in: \"hel\"\n"
			       "sync /out/in: ok\n"
			       "rw /out/rw.txt: wrote 5, at 0, read 5 \"hello\", pwrite 1, "
			       "pread \"Jello\"\n"
			       "wronly /out/rw.txt: read EBADF, access wronly\n"
			       "rmdir /out/d: ENOTEMPTY\n"
			       "unlink /out/old.txt: ok\n"
			       "unlink /out/missing: ENOENT\n"
			       "unlink /out/sub: EISDIR\n"
			       "mkdir /out/gone: ok\n"
			       "rmdir /out/gone: ok\n"
			       "rename /out/sub,/out/sub2: ok\n"
			       "stat /out/sub2: dir\n"
			       "mkdirs /out/md,2: 2 made, ok\n"
			       "many /out/m,2: 2 made, ok\n");
	char want[1024];
	snprintf(want, sizeof(want),
		 "./absesc -> %s/outside/new.txt\n"
		 "./b.txt file 644 100\n"
		 "./d dir 755\n"
		 "./d/c.txt file 644 4\n"
		 "./esc -> ../outside/s.txt\n"
		 "./h file 644 4\n"
		 "./in -> d/c.txt\n"
		 "./m0 file 644 0\n"
		 "./m1 file 644 0\n"
		 "./md0 dir 755\n"
		 "./md1 dir 755\n"
		 "./rw.txt file 644 5\n"
		 "./sub2 dir 755\n",
		 dir);
	CHECK_EQ_STR(tree_listing(root), want);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "cd %s && cat d/c.txt rw.txt && od -An -c b.txt | head -1",
		 root);
	CHECK_EQ_STR(shell_out(cmd), "hel+Jello  \\0  \\0  \\0  \\0  \\0  \\0  \\0  \\0  \\0  \\0"
				     "  \\0  \\0  \\0  \\0  \\0  \\0\n");
	snprintf(cmd, sizeof(cmd), "%s/outside", dir);
	CHECK_EQ_STR(tree_listing(cmd), "./s.txt file 644 6\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* Nothing a module does reaches outside the writable preopen: "..",
 * absolute paths, links that lead out (there already, or made by the
 * module: their text is stored, following them stays beneath), renames
 * and links out; a read-only preopen beside it is still EROFS. */
TEST(wasi_writes_stay_beneath_the_writable_preopen)
{
	umask(022);
	char root[128], ro[160], outside[160];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	mote_sandbox *sb = write_sandbox(root, ro);
	REQUIRE(sb);
	const char *ops[] = {
		"put:/out/../x,y", "put:/out/../outside/s.txt,y", "put:/etc/x,y", "put:/out/esc,y",
		"append:/out/esc,y", "put:/out/absesc,y", "excl:/out/absesc",
		"rename:/out/old.txt,/out/../stolen", "rename:/out/../outside/s.txt,/out/s",
		"rename:/out/old.txt,/ro/x", "rename:/ro/file.txt,/out/f",
		"link:/out/../outside/s.txt,/out/hard", "link:/out/old.txt,/out/../hard",
		"symlink:/etc/passwd,/out/pw", "put:/out/pw,x", "cat:/out/pw",
		"symlink:../../outside/s.txt,/out/sub/up", "append:/out/sub/up,x",
		"symlink:x,/out/../y", "mkdir:/out/../newdir", "mkdir:/out/esc/x",
		"unlink:/out/../outside/s.txt", "rmdir:/out/../outside", "put:/ro/file.txt,x",
		"put:/ro/new,x", "mkdir:/ro/d", "unlink:/ro/file.txt", "rename:/ro/file.txt,/ro/g",
		"symlink:x,/ro/l", "excl:/ro/x", "trunc:/ro/file.txt,0", "cat:/ro/file.txt"
	};
	CHECK_EQ_INT(run_write(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "put /out/../x,y: ENOTCAPABLE\n"
			       "put /out/../outside/s.txt,y: ENOTCAPABLE\n"
			       "put /etc/x,y: ENOTCAPABLE\n"
			       "put /out/esc,y: ENOTCAPABLE\n"
			       "append /out/esc,y: ENOTCAPABLE\n"
			       "put /out/absesc,y: ENOTCAPABLE\n"
			       "excl /out/absesc: EEXIST\n"
			       "rename /out/old.txt,/out/../stolen: ENOTCAPABLE\n"
			       "rename /out/../outside/s.txt,/out/s: ENOTCAPABLE\n"
			       "rename /out/old.txt,/ro/x: EROFS\n"
			       "rename /ro/file.txt,/out/f: EROFS\n"
			       "link /out/../outside/s.txt,/out/hard: ENOTCAPABLE\n"
			       "link /out/old.txt,/out/../hard: ENOTCAPABLE\n"
			       "symlink /etc/passwd,/out/pw: ok\n"
			       "put /out/pw,x: ENOTCAPABLE\n"
			       "cat /out/pw: ENOTCAPABLE\n"
			       "symlink ../../outside/s.txt,/out/sub/up: ok\n"
			       "append /out/sub/up,x: ENOTCAPABLE\n"
			       "symlink x,/out/../y: ENOTCAPABLE\n"
			       "mkdir /out/../newdir: ENOTCAPABLE\n"
			       "mkdir /out/esc/x: ENOTCAPABLE\n"
			       "unlink /out/../outside/s.txt: ENOTCAPABLE\n"
			       "rmdir /out/../outside: ENOTCAPABLE\n"
			       "put /ro/file.txt,x: EROFS\n"
			       "put /ro/new,x: EROFS\n"
			       "mkdir /ro/d: EROFS\n"
			       "unlink /ro/file.txt: EROFS\n"
			       "rename /ro/file.txt,/ro/g: EROFS\n"
			       "symlink x,/ro/l: EROFS\n"
			       "excl /ro/x: EROFS\n"
			       "trunc /ro/file.txt,0: EROFS\n"
			       "cat /ro/file.txt: \"ro\"\n");
	/* Outside and the read-only tree are untouched; inside, only the two
	 * links the module made. */
	char want[1024];
	snprintf(want, sizeof(want),
		 "./absesc -> %s/outside/new.txt\n"
		 "./esc -> ../outside/s.txt\n"
		 "./old.txt file 644 3\n"
		 "./pw -> /etc/passwd\n"
		 "./sub dir 755\n"
		 "./sub/up -> ../../outside/s.txt\n",
		 dir);
	CHECK_EQ_STR(tree_listing(root), want);
	CHECK_EQ_STR(tree_listing(outside), "./s.txt file 644 6\n");
	CHECK_EQ_STR(tree_listing(ro), "./file.txt file 644 2\n");
	char cmd2[640];
	snprintf(cmd2, sizeof(cmd2), "cat %s/s.txt %s/file.txt; ls %s; ls /etc/x 2>&- | wc -l",
		 outside, ro, dir);
	CHECK_EQ_STR(shell_out(cmd2), "secretrooutside\nro\nroot\n0\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* The write limits: a write that crosses max_bytes is short, the next
 * fails with ENOSPC; a creation past max_files fails with EDQUOT; the
 * counts stay with the sandbox across module loads; 0 allows nothing. */
TEST(wasi_write_limits_stop_a_module_filling_the_disk)
{
	umask(022);
	char root[128];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	mote_sandbox *sb = write_sandbox(root, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_set_write_limits(sb, 1000, 3), 0);
	const char *ops[] = {"fill:/out/f,1500", "many:/out/m,5", "trunc:/out/f,2000",
			     "trunc:/out/f,10", "alloc:/out/f,20"};
	CHECK_EQ_INT(run_write(sb, ops, NOPS(ops)), 0);
	CHECK_EQ_STR(captured, "fill /out/f,1500: 1000 (ok) then -1 (ENOSPC)\n"
			       "many /out/m,5: 2 made, EDQUOT\n"
			       "trunc /out/f,2000: ENOSPC\n"
			       "trunc /out/f,10: ok\n"
			       "alloc /out/f,20: ENOSPC\n");
	/* Another module: the counts carry on. */
	CHECK_EQ_INT(load_again(sb, WASI_WRITE), 0);
	const char *more[] = {"excl:/out/x", "excl:/out/f", "mkdir:/out/d", "symlink:f,/out/l",
			      "put:/out/f,abc", "cat:/out/f", "unlink:/out/m0", "excl:/out/m0"};
	CHECK_EQ_INT(run_write(sb, more, NOPS(more)), 0);
	CHECK_EQ_STR(captured, "excl /out/x: EDQUOT\n"
			       "excl /out/f: EEXIST\n"
			       "mkdir /out/d: EDQUOT\n"
			       "symlink f,/out/l: EDQUOT\n"
			       "put /out/f,abc: ENOSPC\n"
			       "cat /out/f: \"\"\n"
			       "unlink /out/m0: ok\n"
			       "excl /out/m0: EDQUOT\n");
	/* Raised: room again. */
	CHECK_EQ_INT(mote_wasm_set_write_limits(sb, 1003, 4), 0);
	const char *raised[] = {"put:/out/f,abcdef", "cat:/out/f", "excl:/out/x", "excl:/out/y"};
	CHECK_EQ_INT(run_write(sb, raised, NOPS(raised)), 0);
	CHECK_EQ_STR(captured, "put /out/f,abcdef: ENOSPC\n"
			       "cat /out/f: \"abc\"\n"
			       "excl /out/x: ok\n"
			       "excl /out/y: EDQUOT\n");
	mote_sandbox_free(sb);
	char want[512];
	snprintf(want, sizeof(want),
		 "./absesc -> %s/outside/new.txt\n"
		 "./esc -> ../outside/s.txt\n"
		 "./f file 644 3\n"
		 "./m1 file 644 0\n"
		 "./old.txt file 644 3\n"
		 "./sub dir 755\n"
		 "./x file 644 0\n",
		 dir);
	CHECK_EQ_STR(tree_listing(root), want);

	/* 0: nothing at all. */
	sb = write_sandbox(root, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_set_write_limits(sb, 0, 0), 0);
	const char *none[] = {"fill:/out/f,5", "excl:/out/z", "mkdir:/out/z", "cat:/out/f"};
	CHECK_EQ_INT(run_write(sb, none, NOPS(none)), 0);
	CHECK_EQ_STR(captured, "fill /out/f,5: -1 (ENOSPC) then -1 (ENOSPC)\n"
			       "excl /out/z: EDQUOT\n"
			       "mkdir /out/z: EDQUOT\n"
			       "cat /out/f: \"\"\n");
	mote_sandbox_free(sb);
	remove_tree(dir);
}

/* Files are closed with their module (load, unload, free), whatever they
 * were opened for; snapshots hold no host files: what was written stays
 * written when the sandbox goes back to a snapshot, and a sandbox started
 * from one has no open files and no preopens. */
TEST(wasi_written_files_are_host_state_not_snapshot_state)
{
	umask(022);
	char root[128];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	int before = count_fds();
	mote_sandbox *sb = write_sandbox(root, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(load_again(sb, WASI_WRITE), 0); /* see wasi_files_are_closed_... */
	int with_preopen = count_fds();
	const char *first[] = {"put:/out/a.txt,before"};
	CHECK_EQ_INT(run_write(sb, first, 1), 0);
	mote_snapshot *snap = NULL;
	CHECK_EQ_INT(mote_sandbox_snapshot(sb, &snap), 0);
	REQUIRE(snap);
	with_preopen = count_fds(); /* and the snapshot's */
	const char *second_ops[] = {"put:/out/a.txt,after", "seal:/out/s"};
	CHECK_EQ_INT(run_write(sb, second_ops, 2), 0);
	CHECK_EQ_STR(captured, "put /out/a.txt,after: ok\nseal /out/s: kept\n");
	CHECK_EQ_INT(count_fds(), with_preopen + 1); /* s, left open */
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	CHECK_EQ_INT(count_fds(), with_preopen); /* the restore closed s */
	const char *cat[] = {"cat:/out/a.txt", "cat:/out/s"};
	CHECK_EQ_INT(run_write(sb, cat, 2), 0);
	CHECK_EQ_STR(captured, "cat /out/a.txt: \"after\"\ncat /out/s: \"a\"\n");
	CHECK_EQ_INT(mote_wasm_unload(sb), 0);
	CHECK_EQ_INT(count_fds(), with_preopen);

	mote_sandbox *sb2 = NULL;
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, capture, NULL);
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(snap, NULL, cfg, &sb2), 0);
	mote_config_free(cfg);
	REQUIRE(sb2);
	const char *from_snap[] = {"put:/out/b.txt,x"};
	CHECK_EQ_INT(run_write(sb2, from_snap, 1), 0);
	/* wasi-libc in the snapshot remembers fd 3 as /out: the host has no
	 * such preopen now, and says so. */
	CHECK_EQ_STR(captured, "put /out/b.txt,x: EBADF\n");
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb2, "/out", root, MOTE_WASM_PREOPEN_WRITABLE), 0);
	const char *now[] = {"put:/out/b.txt,x", "cat:/out/a.txt"};
	CHECK_EQ_INT(run_write(sb2, now, 2), 0);
	CHECK_EQ_STR(captured, "put /out/b.txt,x: ok\ncat /out/a.txt: \"after\"\n");
	mote_sandbox_free(sb2);
	mote_sandbox_free(sb);
	mote_snapshot_free(snap);
	CHECK_EQ_INT(count_fds(), before);
	char path[192];
	snprintf(path, sizeof(path), "cd %s && cat a.txt b.txt s", root);
	CHECK_EQ_STR(shell_out(path), "afterxa");
	remove_tree(dir);
}

/* The writing host functions alone, as a hostile guest could call them:
 * bad handles and operations, out-of-range offsets and sizes, huge
 * lengths, NULs in paths, paths and links that lead out; nothing outside
 * changes and no descriptor is left open. */
static uint32_t hpwrite(mote_sandbox *sb, uint64_t h, uint64_t off, const void *data,
			size_t len, uint32_t *written)
{
	mote_value a[3] = {mote_u64(h), mote_u64(off), mote_bytes(data, len)}, r = {0};
	r.type = MOTE_BYTES;
	CHECK_EQ_INT(mote_wasi_host_pwrite(NULL, sb, a, 3, &r), 0);
	*written = 0xffffffff;
	if (r.v.buf.len == 16)
		memcpy(written, (const uint8_t *)r.v.buf.ptr + 4, 4);
	else if (r.v.buf.len != 4)
		TEST_FAILF("pwrite reply of %zu bytes", r.v.buf.len);
	return reply_errno(&r);
}

static uint32_t hfop(mote_sandbox *sb, uint64_t h, uint32_t op, uint64_t x, uint64_t y)
{
	mote_value a[4] = {mote_u64(h), mote_u32(op), mote_u64(x), mote_u64(y)}, r = {0};
	CHECK_EQ_INT(mote_wasi_host_fop(NULL, sb, a, 4, &r), 0);
	return r.v.u32;
}

static uint32_t hpathop(mote_sandbox *sb, uint32_t dir, const char *path, size_t len,
			uint32_t op, const char *text, size_t tlen)
{
	mote_value a[4] = {mote_u32(dir), mote_string(path), mote_u32(op), mote_string(text)},
		   r = {0};
	a[1].v.buf.len = len;
	a[3].v.buf.len = tlen;
	CHECK_EQ_INT(mote_wasi_host_pathop(NULL, sb, a, 4, &r), 0);
	return r.v.u32;
}

static uint32_t hrename(mote_sandbox *sb, uint32_t d1, const char *p1, uint32_t d2,
			const char *p2, uint32_t op)
{
	mote_value a[5] = {mote_u32(d1), mote_string(p1), mote_u32(d2), mote_string(p2),
			   mote_u32(op)},
		   r = {0};
	CHECK_EQ_INT(mote_wasi_host_rename(NULL, sb, a, 5, &r), 0);
	return r.v.u32;
}

static uint64_t hopen(mote_sandbox *sb, uint32_t dir, const char *path, size_t len,
		      uint32_t how, uint32_t *err)
{
	mote_value a[3] = {mote_u32(dir), mote_string(path), mote_u32(how)}, r = {0};
	a[1].v.buf.len = len;
	uint64_t h = 0;
	CHECK_EQ_INT(mote_wasi_host_open(NULL, sb, a, 3, &r), 0);
	*err = reply_errno(&r);
	if (*err == 0 && r.v.buf.len == 12)
		memcpy(&h, (const uint8_t *)r.v.buf.ptr + 4, 8);
	return h;
}

static void hclose(mote_sandbox *sb, uint64_t h)
{
	mote_value c = mote_u64(h), r = {0};
	CHECK_EQ_INT(mote_wasi_host_close(NULL, sb, &c, 1, &r), 0);
	CHECK_EQ_INT(r.v.u32, 0);
}

TEST(wasi_write_host_functions_refuse_what_a_hostile_guest_sends)
{
	umask(022);
	char root[128], ro[160];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	uint32_t err, n;
	/* No preopens yet. */
	CHECK_EQ_INT(hpwrite(sb, 1 << 8, 0, "x", 1, &n), 8);
	CHECK_EQ_INT(hfop(sb, 1 << 8, 2, 0, 0), 8);
	CHECK_EQ_INT(hpathop(sb, 0, "d", 1, 0, "", 0), 8);
	CHECK_EQ_INT(hrename(sb, 0, "a", 0, "b", 0), 8);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/w", root, MOTE_WASM_PREOPEN_WRITABLE), 0);
	CHECK_EQ_INT(mote_wasm_preopen(sb, "/r", ro), 0);
	CHECK_EQ_INT(mote_wasm_set_write_limits(sb, 3u << 20, 100), 0);
	int before = count_fds();

	/* open: unknown bits, read-only, out, NUL. */
	hopen(sb, 0, "n", 1, 128, &err);
	CHECK_EQ_INT(err, 28);
	hopen(sb, 1, "file.txt", 8, 4, &err);
	CHECK_EQ_INT(err, 69); /* EROFS */
	hopen(sb, 1, "../root/x", 9, 4 | 16, &err);
	CHECK_EQ_INT(err, 76);
	hopen(sb, 0, "../x", 4, 4 | 16, &err);
	CHECK_EQ_INT(err, 76);
	hopen(sb, 0, "/tmp/x", 6, 4 | 16, &err);
	CHECK_EQ_INT(err, 76);
	hopen(sb, 0, "esc", 3, 4 | 16, &err);
	CHECK_EQ_INT(err, 76);
	hopen(sb, 0, "absesc", 6, 4 | 16, &err);
	CHECK_EQ_INT(err, 76);
	hopen(sb, 0, "absesc", 6, 4 | 16 | 32, &err);
	CHECK_EQ_INT(err, 20); /* EEXIST: the link itself is there */
	hopen(sb, 0, "n\0x", 3, 4 | 16, &err);
	CHECK_EQ_INT(err, 28);
	hopen(sb, 0, "sub", 3, 4, &err);
	CHECK_EQ_INT(err, 31); /* EISDIR */

	/* pwrite */
	uint64_t w = hopen(sb, 0, "new", 3, 4 | 8 | 16, &err);
	CHECK_EQ_INT(err, 0);
	uint64_t rd = hopen(sb, 0, "old.txt", 7, 0, &err);
	CHECK_EQ_INT(err, 0);
	uint64_t rofile = hopen(sb, 1, "file.txt", 8, 0, &err);
	CHECK_EQ_INT(err, 0);
	uint64_t d = hopen(sb, 0, "sub", 3, 1, &err);
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(hpwrite(sb, w, 0, "abc", 3, &n), 0);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(hpwrite(sb, w, UINT64_MAX, "de", 2, &n), 0); /* at the end */
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(hpwrite(sb, w ^ 0x100, 0, "x", 1, &n), 8); /* another serial */
	CHECK_EQ_INT(hpwrite(sb, (w & ~0xffull) | 200, 0, "x", 1, &n), 8);
	CHECK_EQ_INT(hpwrite(sb, rd, 0, "x", 1, &n), 76);     /* not opened to write */
	CHECK_EQ_INT(hpwrite(sb, rofile, 0, "x", 1, &n), 69); /* read-only preopen */
	CHECK_EQ_INT(hpwrite(sb, d, 0, "x", 1, &n), 31);      /* a directory */
	CHECK_EQ_INT(hpwrite(sb, w, 1ull << 63, "x", 1, &n), 28);
	CHECK_EQ_INT(hpwrite(sb, w, UINT64_MAX - 1, "x", 1, &n), 28);
	CHECK_EQ_INT(hpwrite(sb, w, INT64_MAX, "x", 1, &n), 22); /* EFBIG */
	static char big[2u << 20];
	memset(big, 'b', sizeof(big));
	CHECK_EQ_INT(hpwrite(sb, w, 5, big, sizeof(big), &n), 0);
	CHECK_EQ_INT(n, 1u << 20); /* at most 1 MiB per call: short */
	CHECK_EQ_INT(hpwrite(sb, w, 0, big, sizeof(big), &n), 0);
	CHECK_EQ_INT(n, 1u << 20);
	CHECK_EQ_INT(hpwrite(sb, w, 0, big, sizeof(big), &n), 0);
	CHECK_EQ_INT(n, (3u << 20) - 5 - (2u << 20)); /* up to the limit */
	CHECK_EQ_INT(hpwrite(sb, w, 0, "x", 1, &n), 51); /* ENOSPC */
	CHECK_EQ_INT(hpwrite(sb, w, 0, "", 0, &n), 0);   /* nothing asked: nothing refused */
	CHECK_EQ_INT(n, 0);

	/* fop */
	CHECK_EQ_INT(hfop(sb, w, 2, 0, 0), 0);
	CHECK_EQ_INT(hfop(sb, w, 3, 0, 0), 0);
	CHECK_EQ_INT(hfop(sb, rd, 2, 0, 0), 0);
	CHECK_EQ_INT(hfop(sb, w, 4, 0, 0), 28);
	CHECK_EQ_INT(hfop(sb, w, 0xffffffffu, 0, 0), 28);
	CHECK_EQ_INT(hfop(sb, w ^ 0x100, 0, 0, 0), 8);
	CHECK_EQ_INT(hfop(sb, rd, 0, 0, 0), 76);
	CHECK_EQ_INT(hfop(sb, rofile, 0, 0, 0), 69);
	CHECK_EQ_INT(hfop(sb, rofile, 1, 0, 1), 69);
	CHECK_EQ_INT(hfop(sb, w, 0, 1ull << 63, 0), 28);
	CHECK_EQ_INT(hfop(sb, w, 1, 0, 0), 28);
	CHECK_EQ_INT(hfop(sb, w, 1, INT64_MAX, 2), 28);
	CHECK_EQ_INT(hfop(sb, w, 1, 1ull << 63, 1), 28);
	CHECK_EQ_INT(hfop(sb, w, 0, 1ull << 40, 0), 51); /* growth past the limit */
	CHECK_EQ_INT(hfop(sb, w, 1, 0, 1ull << 40), 51);
	CHECK_EQ_INT(hfop(sb, w, 0, 4, 0), 0); /* shrinking is free */
	CHECK_EQ_INT(hfop(sb, w, 1, 0, 4), 0); /* within the size: no growth */
	hclose(sb, w);
	hclose(sb, rd);
	hclose(sb, rofile);
	hclose(sb, d);
	CHECK_EQ_INT(hpwrite(sb, w, 0, "x", 1, &n), 8); /* closed */

	/* pathop */
	static char huge[4097];
	memset(huge, 'a', 4096);
	CHECK_EQ_INT(hpathop(sb, 0, "d", 1, 4, "", 0), 28);
	CHECK_EQ_INT(hpathop(sb, 0, "d", 1, 0xffffffffu, "", 0), 28);
	CHECK_EQ_INT(hpathop(sb, 0, "d", 1, 0, "x", 1), 28); /* text only for symlink */
	CHECK_EQ_INT(hpathop(sb, 2, "d", 1, 0, "", 0), 8);
	CHECK_EQ_INT(hpathop(sb, 0, "d\0x", 3, 0, "", 0), 28);
	CHECK_EQ_INT(hpathop(sb, 0, "", 0, 0, "", 0), 44);
	CHECK_EQ_INT(hpathop(sb, 0, huge, 4096, 0, "", 0), 37);
	CHECK_EQ_INT(hpathop(sb, 0, huge, 256, 0, "", 0), 37);
	CHECK_EQ_INT(hpathop(sb, 0, "../d", 4, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "/d", 2, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "/", 1, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "esc/d", 5, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "sub/../../d", 11, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "..", 2, 1, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, ".", 1, 0, "", 0), 20);   /* EEXIST */
	CHECK_EQ_INT(hpathop(sb, 0, ".", 1, 1, "", 0), 28);   /* rmdir ".": EINVAL */
	CHECK_EQ_INT(hpathop(sb, 0, "sub/..", 6, 1, "", 0), 55); /* ENOTEMPTY */
	CHECK_EQ_INT(hpathop(sb, 0, "sub/", 4, 2, "", 0), 31);   /* unlink a dir: EISDIR */
	CHECK_EQ_INT(hpathop(sb, 0, "old.txt/", 8, 2, "", 0), 54);
	CHECK_EQ_INT(hpathop(sb, 0, "nodir/x", 7, 0, "", 0), 44);
	CHECK_EQ_INT(hpathop(sb, 0, "old.txt/x", 9, 0, "", 0), 54);
	CHECK_EQ_INT(hpathop(sb, 1, "d", 1, 0, "", 0), 69);
	CHECK_EQ_INT(hpathop(sb, 1, "../root/d", 9, 0, "", 0), 76);
	CHECK_EQ_INT(hpathop(sb, 0, "l", 1, 3, "", 0), 44);       /* empty target */
	CHECK_EQ_INT(hpathop(sb, 0, "l", 1, 3, "a\0b", 3), 28);   /* NUL in target */
	CHECK_EQ_INT(hpathop(sb, 0, "l", 1, 3, huge, 4096), 37);
	CHECK_EQ_INT(hpathop(sb, 0, "l/", 2, 3, "x", 1), 44);
	CHECK_EQ_INT(hpathop(sb, 0, "l", 1, 3, "/etc/shadow", 11), 0); /* only text */
	CHECK_EQ_INT(hpathop(sb, 0, "l", 1, 3, "x", 1), 20);
	CHECK_EQ_INT(hpathop(sb, 0, "nd/", 3, 0, "", 0), 0);
	CHECK_EQ_INT(hpathop(sb, 0, "nd//", 4, 1, "", 0), 0);

	/* rename and link */
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 0, "o2", 3), 28);
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 2, "o2", 0), 8);
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 0, "../o2", 0), 76);
	CHECK_EQ_INT(hrename(sb, 0, "/etc/passwd", 0, "o2", 0), 76);
	CHECK_EQ_INT(hrename(sb, 0, "esc/x", 0, "o2", 0), 76);
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 1, "o2", 0), 69);
	CHECK_EQ_INT(hrename(sb, 1, "file.txt", 0, "o2", 1), 69);
	CHECK_EQ_INT(hrename(sb, 0, ".", 0, "o2", 0), 10); /* EBUSY */
	CHECK_EQ_INT(hrename(sb, 0, "old.txt/", 0, "o2", 0), 54);
	CHECK_EQ_INT(hrename(sb, 0, "esc", 0, "hard", 2), 76); /* following leads out */
	CHECK_EQ_INT(hrename(sb, 0, "absesc", 0, "hard", 2), 76);
	CHECK_EQ_INT(hrename(sb, 0, "esc", 0, "lnk", 1), 0);    /* the link itself */
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 0, "hard", 2), 0);
	CHECK_EQ_INT(hrename(sb, 0, "old.txt", 0, "o2", 0), 0);
	CHECK_EQ_INT(hrename(sb, 0, "o2", 0, "new", 0), 0);
	CHECK_EQ_INT(count_fds(), before);
	mote_sandbox_free(sb);

	char want[1024];
	snprintf(want, sizeof(want),
		 "./absesc -> %s/outside/new.txt\n"
		 "./esc -> ../outside/s.txt\n"
		 "./hard file 644 3\n"
		 "./l -> /etc/shadow\n"
		 "./lnk -> ../outside/s.txt\n"
		 "./new file 644 3\n"
		 "./sub dir 755\n",
		 dir);
	CHECK_EQ_STR(tree_listing(root), want);
	char outside[160];
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	CHECK_EQ_STR(tree_listing(outside), "./s.txt file 644 6\n");
	CHECK_EQ_STR(tree_listing(ro), "./file.txt file 644 2\n");
	remove_tree(dir);
}

TEST(wasm_preopen_flags_and_write_limits_refuse_bad_requests)
{
	mote_sandbox *sb = new_wasm(NULL, NULL);
	REQUIRE(sb);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/d", "/tmp", 2), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "mote_wasm_preopen_flags: unknown flags 0x2 "
						  "(takes MOTE_WASM_PREOPEN_WRITABLE)");
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/d", "/tmp", ~0u), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, NULL, "/tmp", 1), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/d", NULL, 1), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/d", "/tmp", MOTE_WASM_PREOPEN_WRITABLE), 0);
	CHECK_EQ_INT(mote_wasm_preopen_flags(sb, "/d", "/tmp", 0), -MOTE_EEXIST);
	CHECK_EQ_INT(mote_wasm_set_write_limits(sb, UINT64_MAX, UINT64_MAX), 0);
	CHECK_EQ_INT(mote_wasm_preopen_flags(NULL, "/d", "/tmp", 0), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_set_write_limits(NULL, 0, 0), -MOTE_EINVAL);
	mote_sandbox_free(sb);
}

/* `mote wasm run --dir GUEST=HOST:rw` writes; ":ro" (the default) does
 * not; a ":rw" that is not at the end is part of the directory's name. */
TEST(cli_dir_rw_writes)
{
	char root[128], cmd[512], out[1024];
	char *dir = write_tree(root, sizeof(root));
	REQUIRE(dir);
	snprintf(cmd, sizeof(cmd),
		 MOTE_CLI " wasm run --dir /out=%s:rw " WASI_WRITE " put:/out/cli.txt,hi 2>&1",
		 root);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "put /out/cli.txt,hi: ok\n");
	snprintf(cmd, sizeof(cmd),
		 MOTE_CLI " wasm run --dir /out=%s:ro " WASI_WRITE
			  " put:/out/ro.txt,hi cat:/out/cli.txt 2>&1",
		 root);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "put /out/ro.txt,hi: EROFS\ncat /out/cli.txt: \"hi\"\n");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run --dir /out=%s " WASI_WRITE
					    " put:/out/ro.txt,hi 2>&1",
		 root);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "put /out/ro.txt,hi: EROFS\n");
	snprintf(cmd, sizeof(cmd),
		 MOTE_CLI " wasm run --dir /out=%s:rwx " WASI_WRITE " put:/out/x,hi 2>&1", root);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 2);
	CHECK_CONTAINS(out, "rwx");
	snprintf(cmd, sizeof(cmd), "cat %s/cli.txt; ls %s", root, root);
	CHECK_EQ_STR(shell_out(cmd), "hiabsesc\ncli.txt\nesc\nold.txt\nsub\n");
	remove_tree(dir);
}

TEST_MAIN()
