/* Wasm modules compiled ahead of time (mote_wasm_compile, include/mote/wasm.h):
 * the same results, traps and errors as the interpreter, host functions,
 * WASI, snapshots and snapshot files, unload and recovery after a timeout,
 * the compile cache, and the compiler's errors. Each module is compiled once
 * into a private cache ($MOTE_CACHE_DIR points into a temporary directory). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mote.h"
#include "mote/wasm.h"
#include "test.h"
#include "wasm_imports.h"

#define MODULES    MOTE_BUILD_DIR "/wasm-modules/"
#define ARITH      MODULES "arith.wasm"
#define IMPORTS    MODULES "imports.wasm"
#define WASI_HELLO MODULES "wasi_hello.wasm"
#define WASI_STDIO MODULES "wasi_stdio.wasm"
#define MOTE_CLI   MOTE_BUILD_DIR "/bin/mote"

static char tmp_dir[64];

/* The temporary directory, with the cache inside it. */
static const char *tmp(void)
{
	if (!tmp_dir[0]) {
		snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/mote-test-aot-XXXXXX");
		if (!mkdtemp(tmp_dir)) {
			fprintf(stderr, "cannot make a temporary directory\n");
			exit(1);
		}
		char cache[128];
		snprintf(cache, sizeof(cache), "%s/cache", tmp_dir);
		setenv("MOTE_CACHE_DIR", cache, 1);
	}
	return tmp_dir;
}

/* MODULE compiled to TMP/NAME.elf (the cache makes repeats cheap). */
static const char *compiled(const char *module, const char *name)
{
	static char path[8][160];
	static int next;
	char *p = path[next++ % 8];
	snprintf(p, sizeof(path[0]), "%s/%s.elf", tmp(), name);
	int rc = mote_wasm_compile_file(module, p, 0);
	if (rc) {
		fprintf(stderr, "compiling %s: %s: %s\n", module, mote_errname(rc),
		        mote_last_error());
		return NULL;
	}
	return p;
}

static mote_sandbox *new_compiled(const char *elf, const mote_host_functions *fns)
{
	mote_sandbox *sb = NULL;
	int rc = elf ? mote_wasm_sandbox_new_compiled(elf, NULL, fns, &sb) : -MOTE_EINVAL;
	if (rc)
		fprintf(stderr, "mote_wasm_sandbox_new_compiled: %s: %s\n", mote_errname(rc),
		        mote_last_error());
	return sb;
}

static mote_sandbox *new_interpreted(const char *module, const mote_host_functions *fns)
{
	mote_sandbox *sb = NULL;
	if (mote_wasm_sandbox_new(NULL, fns, &sb))
		return NULL;
	if (mote_wasm_load_file(sb, module)) {
		mote_sandbox_free(sb);
		return NULL;
	}
	return sb;
}

/* Call `fn`; the status, the first result in *out, the detail in err. */
static int call(mote_sandbox *sb, const char *fn, const mote_value *args, size_t n, mote_value *out,
                char *err, size_t errcap)
{
	size_t nres = 0;
	mote_value res[4];
	memset(res, 0, sizeof(res));
	int rc = mote_wasm_call(sb, fn, args, n, res, 4, &nres);
	*out = nres ? res[0] : (mote_value){.type = MOTE_VOID};
	snprintf(err, errcap, "%s", rc ? mote_sandbox_last_error(sb) : "");
	return rc;
}

TEST(results_and_traps_match_the_interpreter)
{
	mote_sandbox *c = new_compiled(compiled(ARITH, "arith"), NULL);
	mote_sandbox *i = new_interpreted(ARITH, NULL);
	REQUIRE(c && i);
	struct {
		const char *fn;
		size_t n;
		mote_value a[4];
	} cases[] = {
	    {"add", 2, {mote_i32(2), mote_i32(40)}},
	    {"add", 2, {mote_i32(INT32_MAX), mote_i32(1)}},
	    {"add64", 2, {mote_i64(INT64_MIN), mote_i64(-1)}},
	    {"mulf", 2, {mote_f32(1.5f), mote_f32(-0.0f)}},
	    {"mix", 4, {mote_i32(-1), mote_i64(8589934592), mote_f32(0.5f), mote_f64(0.25)}},
	    {"fib", 1, {mote_i32(20)}},
	    {"divide", 2, {mote_i32(7), mote_i32(-2)}},
	    {"divide", 2, {mote_i32(1), mote_i32(0)}},
	    {"divide", 2, {mote_i32(INT32_MIN), mote_i32(-1)}},
	    {"fill_sum", 2, {mote_i32(1000), mote_i32(3)}},
	    {"peek", 1, {mote_i32(1024)}},
	    {"peek", 1, {mote_i32(-1)}},
	    {"poke", 2, {mote_i32(0x7ffffffc), mote_i32(1)}},
	    {"bump", 0, {{0}}},
	    {"bump", 0, {{0}}},
	    {"pages", 0, {{0}}},
	    {"grow", 1, {mote_i32(1)}},
	    {"pages", 0, {{0}}},
	    {"grow", 1, {mote_i32(100000)}},
	    {"nothing", 0, {{0}}},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		mote_value rc_, ri;
		char ec[400], ei[400];
		int sc = call(c, cases[k].fn, cases[k].a, cases[k].n, &rc_, ec, sizeof(ec));
		int si = call(i, cases[k].fn, cases[k].a, cases[k].n, &ri, ei, sizeof(ei));
		CHECK_EQ_INT(sc, si);
		CHECK_EQ_STR(ec, ei);
		CHECK_EQ_INT(rc_.type, ri.type);
		CHECK_EQ_U64(rc_.v.u64, ri.v.u64);
		if (sc != si || strcmp(ec, ei))
			fprintf(stderr, "  case %zu (%s)\n", k, cases[k].fn);
	}
	/* the traps are the interpreter's, word for word */
	mote_value r;
	char e[400];
	CHECK_EQ_INT(
	    call(c, "divide", (mote_value[]){mote_i32(1), mote_i32(0)}, 2, &r, e, sizeof(e)),
	    -MOTE_EGUEST);
	CHECK_EQ_STR(e, "wasm trap: integer divide by zero");
	CHECK_EQ_INT(call(c, "peek", (mote_value[]){mote_i32(-1)}, 1, &r, e, sizeof(e)),
	             -MOTE_EGUEST);
	CHECK_EQ_STR(e, "wasm trap: out of bounds memory access");
	/* and the module keeps working after a trap */
	CHECK_EQ_INT(call(c, "add", (mote_value[]){mote_i32(1), mote_i32(2)}, 2, &r, e, sizeof(e)),
	             0);
	CHECK_EQ_INT(r.v.i32, 3);
	mote_sandbox_free(c);
	mote_sandbox_free(i);
}

TEST(deep_recursion_is_call_stack_exhausted)
{
	/* (func $r (export "runaway") (call $r)) */
	static const uint8_t runaway[] = {
	    0, 'a', 's', 'm', 1,   0,   0,   0,   1,   4, 1, 0x60, 0, 0, 3, 2, 1,    0, 7,   11,
	    1, 7,   'r', 'u', 'n', 'a', 'w', 'a', 'y', 0, 0, 10,   6, 1, 4, 0, 0x10, 0, 0x0b};
	char elf[160];
	snprintf(elf, sizeof(elf), "%s/runaway.elf", tmp());
	REQUIRE(mote_wasm_compile(runaway, sizeof(runaway), elf, 0) == 0);
	mote_sandbox *c = new_compiled(elf, NULL);
	REQUIRE(c);
	mote_value r;
	char e[400];
	for (int k = 0; k < 3; k++) { /* and again: the trap leaves it usable */
		CHECK_EQ_INT(call(c, "runaway", NULL, 0, &r, e, sizeof(e)), -MOTE_EGUEST);
		CHECK_EQ_STR(e, "wasm trap: call stack exhausted");
		CHECK(!mote_sandbox_poisoned(c));
	}
	mote_sandbox_free(c);
	unlink(elf);
}

TEST(host_functions_are_called_from_compiled_code)
{
	mote_host_functions *fns = import_functions(false);
	REQUIRE(fns);
	mote_sandbox *c = new_compiled(compiled(IMPORTS, "imports"), fns);
	mote_sandbox *i = new_interpreted(IMPORTS, fns);
	REQUIRE(c && i);
	struct {
		const char *fn;
		size_t n;
		mote_value a[3];
	} cases[] = {
	    {"call_add", 2, {mote_i32(2), mote_i32(3)}},
	    {"call_mix", 3, {mote_i64(5), mote_f32(0.5f), mote_f64(0.25)}},
	    {"say_hello", 0, {{0}}},
	    {"log_bad_pointer", 0, {{0}}},
	    {"sum_bytes", 1, {mote_i32(200)}},
	    {"greet", 2, {mote_i32(3), mote_i32('x')}},
	    {"reply_byte", 1, {mote_i32(1)}},
	    {"greet_bad_buffer", 0, {{0}}},
	    {"reverse_bytes", 1, {mote_i32(100)}},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		mote_value rc_, ri;
		char ec[400], ei[400];
		seen_log[0] = 0;
		int sc = call(c, cases[k].fn, cases[k].a, cases[k].n, &rc_, ec, sizeof(ec));
		char log_c[128];
		snprintf(log_c, sizeof(log_c), "%s", seen_log);
		seen_log[0] = 0;
		int si = call(i, cases[k].fn, cases[k].a, cases[k].n, &ri, ei, sizeof(ei));
		CHECK_EQ_INT(sc, si);
		CHECK_EQ_STR(ec, ei);
		CHECK_EQ_U64(rc_.v.u64, ri.v.u64);
		CHECK_EQ_STR(log_c, seen_log);
	}
	mote_value r;
	char e[400];
	CHECK_EQ_INT(
	    call(c, "call_add", (mote_value[]){mote_i32(2), mote_i32(3)}, 2, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(r.v.i32, 10);
	CHECK_EQ_INT(call(c, "say_hello", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_STR(seen_log, "hello from wasm");
	mote_sandbox_free(c);
	mote_sandbox_free(i);
	/* a missing host function fails the start as it fails a load */
	mote_host_functions *none;
	REQUIRE(mote_host_functions_new(&none) == 0);
	mote_sandbox *sb = NULL;
	CHECK_EQ_INT(mote_wasm_sandbox_new_compiled(compiled(IMPORTS, "imports"), NULL, none, &sb),
	             -MOTE_ENOFUNC);
	CHECK_CONTAINS(mote_last_error(), "host_add");
	CHECK(sb == NULL);
	mote_host_functions_free(none);
	mote_host_functions_free(fns);
}

static char out_text[4096];
static size_t out_len;

static void capture(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	(void)level;
	if (out_len + len < sizeof(out_text)) {
		memcpy(out_text + out_len, text, len);
		out_len += len;
		out_text[out_len] = 0;
	}
}

static int run_wasi(mote_sandbox *sb, int *code)
{
	out_len = 0;
	out_text[0] = 0;
	const char *argv[] = {"hello", "a", "b"};
	return mote_wasm_run(sb, argv, 3, NULL, 0, code);
}

TEST(wasi_commands_run_compiled)
{
	const char *elf = compiled(WASI_HELLO, "hello");
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, capture, NULL);
	mote_sandbox *c = NULL, *i = NULL;
	CHECK_EQ_INT(elf ? mote_wasm_sandbox_new_compiled(elf, cfg, NULL, &c) : -1, 0);
	CHECK_EQ_INT(mote_wasm_sandbox_new(cfg, NULL, &i), 0);
	REQUIRE(c && i);
	CHECK_EQ_INT(mote_wasm_load_file(i, WASI_HELLO), 0);
	int cc = -1, ic = -2;
	CHECK_EQ_INT(run_wasi(c, &cc), 0);
	char first[4096];
	snprintf(first, sizeof(first), "%s", out_text);
	CHECK_EQ_INT(run_wasi(i, &ic), 0);
	CHECK_EQ_INT(cc, ic);
	CHECK_EQ_STR(first, out_text);
	CHECK_CONTAINS(first, "argc=3 [hello] [a] [b]");
	mote_sandbox_free(c);
	mote_sandbox_free(i);
	mote_config_free(cfg);
}

TEST(snapshot_files_start_compiled_modules)
{
	mote_sandbox *c = new_compiled(compiled(ARITH, "arith"), NULL);
	REQUIRE(c);
	mote_value r;
	char e[400];
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(r.v.i32, 2);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(c, &snap) == 0);
	char path[160];
	snprintf(path, sizeof(path), "%s/arith.snap", tmp());
	CHECK_EQ_INT(mote_snapshot_save(snap, path, 0), 0);
	mote_snapshot_free(snap);
	mote_sandbox_free(c);

	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(path, 0, &opened) == 0);
	CHECK(mote_wasm_is_snapshot(opened));
	for (int k = 0; k < 2; k++) { /* each start sees the state saved */
		mote_sandbox *s = NULL;
		CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(opened, NULL, NULL, &s), 0);
		REQUIRE(s);
		CHECK_EQ_INT(call(s, "bump", NULL, 0, &r, e, sizeof(e)), 0);
		CHECK_EQ_INT(r.v.i32, 3);
		CHECK_EQ_INT(call(s, "fib", (mote_value[]){mote_i32(15)}, 1, &r, e, sizeof(e)), 0);
		CHECK_EQ_INT(r.v.i32, 610);
		mote_sandbox_free(s);
	}
	/* Poisoned, a sandbox started from the file cannot go back to before
	 * the load (it never saw that state): restoring its snapshot does. */
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_timeout_us(cfg, 50000);
	mote_sandbox *s = NULL;
	CHECK_EQ_INT(mote_wasm_sandbox_from_snapshot(opened, NULL, cfg, &s), 0);
	REQUIRE(s);
	CHECK_EQ_INT(call(s, "spin", NULL, 0, &r, e, sizeof(e)), -MOTE_ETIMEDOUT);
	CHECK_EQ_INT(mote_wasm_load(s, "", 0), -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_sandbox_last_error(s), "no compiled module built in");
	CHECK_EQ_INT(mote_sandbox_restore(s, opened), 0);
	CHECK_EQ_INT(call(s, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(r.v.i32, 3);
	mote_sandbox_free(s);
	mote_config_free(cfg);
	mote_snapshot_free(opened);
	unlink(path);
}

TEST(unload_reload_and_interpreted_modules_in_a_compiled_sandbox)
{
	mote_sandbox *c = new_compiled(compiled(ARITH, "arith"), NULL);
	REQUIRE(c);
	mote_value r;
	char e[400];
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(mote_wasm_unload(c), 0);
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), -MOTE_EINVAL);
	CHECK_EQ_STR(e, "no wasm module is loaded");
	/* no bytes: the module built in, from its initial state */
	CHECK_EQ_INT(mote_wasm_load(c, "", 0), 0);
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(r.v.i32, 1);
	/* any other module, interpreted */
	CHECK_EQ_INT(mote_wasm_load_file(c, WASI_STDIO), 0);
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), -MOTE_ENOFUNC);
	CHECK_EQ_INT(mote_wasm_load_file(c, ARITH), 0);
	CHECK_EQ_INT(call(c, "add", (mote_value[]){mote_i32(1), mote_i32(2)}, 2, &r, e, sizeof(e)),
	             0);
	CHECK_EQ_INT(r.v.i32, 3);
	mote_sandbox_free(c);
}

struct interrupter {
	mote_sandbox *sb;
	int rc;
};

static void *interrupt_soon(void *arg)
{
	struct interrupter *it = arg;
	usleep(50000);
	it->rc = mote_sandbox_interrupt(it->sb);
	return NULL;
}

TEST(timeouts_and_interrupts_recover)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_timeout_us(cfg, 100000);
	const char *elf = compiled(ARITH, "arith");
	mote_sandbox *c = NULL;
	CHECK_EQ_INT(elf ? mote_wasm_sandbox_new_compiled(elf, cfg, NULL, &c) : -1, 0);
	REQUIRE(c);
	mote_value r;
	char e[400];
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	/* compiled code spins natively: only the timeout stops it */
	CHECK_EQ_INT(call(c, "spin", NULL, 0, &r, e, sizeof(e)), -MOTE_ETIMEDOUT);
	CHECK(mote_sandbox_poisoned(c));
	/* a load goes back to before the module, and loads it again */
	CHECK_EQ_INT(mote_wasm_load(c, "", 0), 0);
	CHECK(!mote_sandbox_poisoned(c));
	CHECK_EQ_INT(call(c, "bump", NULL, 0, &r, e, sizeof(e)), 0);
	CHECK_EQ_INT(r.v.i32, 1);
	mote_sandbox_free(c);
	/* an interrupt from another thread, with no timeout set */
	c = new_compiled(elf, NULL);
	REQUIRE(c);
	struct interrupter it = {c, -1};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, interrupt_soon, &it) == 0);
	CHECK_EQ_INT(call(c, "spin", NULL, 0, &r, e, sizeof(e)), -MOTE_ECANCELLED);
	pthread_join(th, NULL);
	CHECK_EQ_INT(it.rc, 0);
	CHECK_EQ_INT(mote_wasm_unload(c), 0);
	CHECK(!mote_sandbox_poisoned(c));
	CHECK_EQ_INT(mote_wasm_load(c, "", 0), 0);
	CHECK_EQ_INT(call(c, "add", (mote_value[]){mote_i32(1), mote_i32(2)}, 2, &r, e, sizeof(e)),
	             0);
	CHECK_EQ_INT(r.v.i32, 3);
	mote_sandbox_free(c);
	mote_config_free(cfg);
}

static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool same = fa && fb;
	while (same) {
		int x = fgetc(fa), y = fgetc(fb);
		if (x != y)
			same = false;
		if (x == EOF || y == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int count_cached(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls %s/cache/wasm-aot | grep -c '\\.elf$'", tmp());
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}

TEST(the_cache_compiles_a_module_once)
{
	char a[160], b[160], cached[256];
	snprintf(a, sizeof(a), "%s/cache-a.elf", tmp());
	snprintf(b, sizeof(b), "%s/cache-b.elf", tmp());
	int before = count_cached();
	REQUIRE(mote_wasm_compile_file(WASI_STDIO, a, 0) == 0);
	CHECK_EQ_INT(count_cached(), before + 1);
	/* the entry's inode stays: a second compile is a hit, not a rebuild */
	snprintf(cached, sizeof(cached), "ls -i %s/cache/wasm-aot/*.elf | sort", tmp());
	char l1[4096] = "", l2[4096] = "";
	FILE *p = popen(cached, "r");
	if (p) {
		size_t n = fread(l1, 1, sizeof(l1) - 1, p);
		l1[n] = 0;
		pclose(p);
	}
	CHECK_EQ_INT(mote_wasm_compile_file(WASI_STDIO, b, 0), 0);
	p = popen(cached, "r");
	if (p) {
		size_t n = fread(l2, 1, sizeof(l2) - 1, p);
		l2[n] = 0;
		pclose(p);
	}
	CHECK_EQ_STR(l1, l2);
	CHECK_EQ_INT(count_cached(), before + 1);
	CHECK(same_file(a, b));
	/* without the cache: built again, the same bytes, nothing added */
	CHECK_EQ_INT(mote_wasm_compile_file(WASI_STDIO, b, MOTE_WASM_COMPILE_NO_CACHE), 0);
	CHECK(same_file(a, b));
	CHECK_EQ_INT(count_cached(), before + 1);
	unlink(a);
	unlink(b);
}

TEST(compile_errors)
{
	char out[160];
	snprintf(out, sizeof(out), "%s/bad.elf", tmp());
	/* invalid: the validator's message, and nothing written */
	static const uint8_t invalid[] = {0, 'a',  's', 'm', 1, 0, 0,  0, 1, 5, 1, 0x60, 0,
	                                  1, 0x7f, 3,   2,   1, 0, 10, 4, 1, 2, 0, 0x0b};
	CHECK_EQ_INT(mote_wasm_compile(invalid, sizeof(invalid), out, 0), -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_last_error(), "invalid wasm module: type mismatch");
	CHECK(access(out, F_OK) != 0);
	CHECK_EQ_INT(mote_wasm_compile("\0asm\2\0\0\0", 8, out, 0), -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_last_error(), "malformed wasm module");
	CHECK_EQ_INT(mote_wasm_compile("", 0, out, 0), -MOTE_EBADWASM);
	CHECK(access(out, F_OK) != 0);
	/* arguments */
	CHECK_EQ_INT(mote_wasm_compile(NULL, 8, out, 0), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_compile(invalid, sizeof(invalid), NULL, 0), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_wasm_compile(invalid, sizeof(invalid), out, 0x80), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "unknown flags");
	CHECK_EQ_INT(mote_wasm_compile_file("/nonexistent.wasm", out, 0), -MOTE_EIO);
	CHECK_EQ_INT(mote_wasm_compile_file(ARITH, "/nonexistent-dir/x.elf", 0), -MOTE_EIO);
	/* no SDK where it is asked for */
	setenv("MOTE_WASM_SDK", "/nonexistent-sdk", 1);
	CHECK_EQ_INT(mote_wasm_compile_file(ARITH, out, MOTE_WASM_COMPILE_NO_CACHE),
	             -MOTE_ECOMPILE);
	CHECK_CONTAINS(mote_last_error(), "/nonexistent-sdk");
	unsetenv("MOTE_WASM_SDK");
	/* not a compiled module */
	mote_sandbox *sb = NULL;
	CHECK_EQ_INT(
	    mote_wasm_sandbox_new_compiled(MOTE_BUILD_DIR "/examples/hello.elf", NULL, NULL, &sb),
	    -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "not a compiled Wasm module");
	CHECK_EQ_INT(mote_wasm_sandbox_new_compiled(MOTE_BUILD_DIR "/guests-wasm/wasm_runtime.elf",
	                                            NULL, NULL, &sb),
	             -MOTE_EBADWASM);
	CHECK_CONTAINS(mote_last_error(), "no compiled module built in");
	CHECK(sb == NULL);
	CHECK_EQ_INT(mote_wasm_sandbox_new_compiled(NULL, NULL, NULL, &sb), -MOTE_EINVAL);
}

TEST(cli_compiles_and_runs)
{
	char cmd[512], out[4096], elf[160], snap[160];
	snprintf(elf, sizeof(elf), "%s/cli.elf", tmp());
	snprintf(snap, sizeof(snap), "%s/cli.snap", tmp());
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm compile " ARITH " -o %s 2>&1", elf);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run %s --invoke add 2 40 2>&1", elf);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "42\n");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run %s --invoke divide 1 0 2>&1", elf);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 1);
	CHECK_EQ_STR(out, "mote: MOTE_EGUEST: wasm trap: integer divide by zero\n");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm exports %s 2>&1 | grep fib", elf);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "func   fib(i32) -> i32\n");
	/* a snapshot file of it, started with no load at all */
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm snapshot %s -o %s 2>&1", elf, snap);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm run %s --invoke fib 20 2>&1", snap);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "6765\n");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm compile /nonexistent.wasm -o %s 2>&1", elf);
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 3);
	CHECK_CONTAINS(out, "MOTE_EIO");
	snprintf(cmd, sizeof(cmd), MOTE_CLI " wasm compile " ARITH " 2>&1");
	CHECK_EQ_INT(run_cli(cmd, out, sizeof(out)), 2);
	unlink(elf);
	unlink(snap);
}

TEST(cleanup)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp());
	CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN()
