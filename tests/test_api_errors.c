/* Every public function that fails says what and why: each error path of
 * the API, called with the wrong thing, must return its code and leave a
 * detail (mote_last_error(), or the sandbox's) that names the problem, not
 * a bare "invalid argument". */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mote.h"
#include "mote/wasm.h"
#include "test.h"

#define GUEST MOTE_BUILD_DIR "/guests/basic.elf"

/* libmote's own: lets each case start with no detail, so a stale one from
 * the case before cannot pass for it. */
void mote_set_last_error(const char *fmt, ...);

static int never_called(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                        mote_value *result)
{
	(void)user, (void)sb, (void)args, (void)nargs, (void)result;
	return 0;
}

/* `call` returns `code`, and `detail` (read after the call) contains `sub`. */
#define EXPECT_ERR(call, code, detail, sub)                                                        \
	do {                                                                                       \
		mote_set_last_error("%s", "");                                                     \
		int rc_ = (call);                                                                  \
		const char *d_ = (detail);                                                         \
		if (rc_ != (code))                                                                 \
			TEST_FAILF("%s: rc %d, want %d", #call, rc_, (int)(code));                 \
		if (!d_ || !strstr(d_, sub))                                                       \
			TEST_FAILF("%s: detail \"%s\" does not say \"%s\"", #call, d_ ? d_ : "",   \
			           sub);                                                           \
	} while (0)

#define LAST mote_last_error()

TEST(backends_types_and_configuration)
{
	mote_backend b;
	EXPECT_ERR(mote_backend_parse("bogus", &b), -MOTE_EINVAL, LAST, "'bogus' is not a backend");
	EXPECT_ERR(mote_backend_check((mote_backend)99, NULL), -MOTE_EINVAL, LAST,
	           "unknown backend 99");
	mote_type t;
	EXPECT_ERR(mote_type_parse("int", &t), -MOTE_EINVAL, LAST, "'int' is not a type");
	EXPECT_ERR(mote_config_new(NULL), -MOTE_EINVAL, LAST, "mote_config_new: no out");
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	EXPECT_ERR(mote_config_set_heap_size(cfg, 1), -MOTE_EINVAL, LAST, "heap size 1");
	EXPECT_ERR(mote_config_set_stack_size(cfg, 1), -MOTE_EINVAL, LAST, "stack size 1");
	EXPECT_ERR(mote_config_set_input_size(cfg, 0), -MOTE_EINVAL, LAST, "input size 0");
	EXPECT_ERR(mote_config_set_output_size(cfg, 0), -MOTE_EINVAL, LAST, "output size 0");
	EXPECT_ERR(mote_config_set_timeout_us(NULL, 5), -MOTE_EINVAL, LAST,
	           "mote_config_set_timeout_us: no config");
	EXPECT_ERR(mote_config_set_output_streams(NULL, NULL, NULL), -MOTE_EINVAL, LAST,
	           "mote_config_set_output_streams: no config");
	EXPECT_ERR(mote_config_set_gdb_port(NULL, 1), -MOTE_EINVAL, LAST,
	           "mote_config_set_gdb_port: no config");
	EXPECT_ERR(mote_config_set_core_dump(NULL, "/tmp"), -MOTE_EINVAL, LAST,
	           "mote_config_set_core_dump: no config");
	EXPECT_ERR(mote_config_set_core_dump(cfg, ""), -MOTE_EINVAL, LAST,
	           "mote_config_set_core_dump: empty directory");
	EXPECT_ERR(mote_config_set_output(NULL, NULL, NULL), -MOTE_EINVAL, LAST,
	           "mote_config_set_output: no config");
	EXPECT_ERR(mote_config_set_huge_pages(NULL, true), -MOTE_EINVAL, LAST,
	           "mote_config_set_huge_pages: no config");
	EXPECT_ERR(mote_config_set_backend(cfg, (mote_backend)7), -MOTE_EINVAL, LAST,
	           "unknown backend 7");
	mote_config_free(cfg);
}

TEST(host_functions)
{
	EXPECT_ERR(mote_host_functions_new(NULL), -MOTE_EINVAL, LAST,
	           "mote_host_functions_new: no out");
	mote_host_functions *fns;
	REQUIRE(mote_host_functions_new(&fns) == 0);
	EXPECT_ERR(mote_host_functions_add(fns, NULL, MOTE_I32, NULL, 0, NULL, NULL), -MOTE_EINVAL,
	           LAST, "no name");
	mote_type bad = (mote_type)99;
	EXPECT_ERR(mote_host_functions_add(fns, "f", MOTE_I32, &bad, 1, never_called, NULL),
	           -MOTE_EINVAL, LAST, "argument 0 type 99");
	EXPECT_ERR(mote_host_functions_add(fns, "f", MOTE_I32, NULL, 0, NULL, NULL), -MOTE_EINVAL,
	           LAST, "'f': no callback");
	REQUIRE(mote_host_functions_add(fns, "f", MOTE_I32, NULL, 0, never_called, NULL) == 0);
	EXPECT_ERR(mote_host_functions_add(fns, "f", MOTE_I32, NULL, 0, never_called, NULL),
	           -MOTE_EEXIST, LAST, "'f' added twice");
	mote_host_functions_free(fns);
}

TEST(sandboxes_without_a_sandbox)
{
	mote_sandbox *sb = NULL;
	EXPECT_ERR(mote_sandbox_new("/nonexistent/guest.elf", NULL, NULL, &sb), -MOTE_EIO, LAST,
	           "/nonexistent/guest.elf");
	EXPECT_ERR(mote_sandbox_new_from_buffer("x", 1, NULL, NULL, &sb), -MOTE_EBADELF, LAST,
	           "ELF");
	EXPECT_ERR(mote_sandbox_call(NULL, "f", NULL, 0, NULL), -MOTE_EINVAL, LAST, "no sandbox");
	EXPECT_ERR(mote_sandbox_interrupt(NULL), -MOTE_EINVAL, LAST, "no sandbox");
	mote_function_info fi;
	EXPECT_ERR(mote_sandbox_function(NULL, 0, &fi), -MOTE_EINVAL, LAST,
	           "mote_sandbox_function: no sandbox");
	mote_memory_info mi;
	EXPECT_ERR(mote_sandbox_memory_info(NULL, &mi), -MOTE_EINVAL, LAST,
	           "mote_sandbox_memory_info: no sandbox");
	EXPECT_ERR(mote_sandbox_map_file(NULL, "/etc/hostname", 0, MOTE_MAP_READ_ONLY),
	           -MOTE_EINVAL, LAST, "no sandbox");
	EXPECT_ERR(mote_sandbox_unmap(NULL, 0), -MOTE_EINVAL, LAST, "no sandbox");
	EXPECT_ERR(mote_sandbox_core_dump(NULL, "/tmp/c"), -MOTE_EINVAL, LAST,
	           "mote_sandbox_core_dump: no sandbox");
	mote_snapshot *snap;
	EXPECT_ERR(mote_sandbox_snapshot(NULL, &snap), -MOTE_EINVAL, LAST, "no sandbox");
	EXPECT_ERR(mote_sandbox_restore(NULL, NULL), -MOTE_EINVAL, LAST, "no sandbox");
	EXPECT_ERR(mote_sandbox_from_snapshot(NULL, NULL, NULL, &sb), -MOTE_EINVAL, LAST,
	           "mote_sandbox_from_snapshot: no snapshot");
}

TEST(sandboxes)
{
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(GUEST, NULL, NULL, &sb) == 0);
	EXPECT_ERR(mote_sandbox_call(sb, "no_such_fn", NULL, 0, NULL), -MOTE_ENOFUNC,
	           mote_sandbox_last_error(sb), "no guest function 'no_such_fn'");
	mote_function_info fi;
	EXPECT_ERR(mote_sandbox_function(sb, 100000, &fi), -MOTE_EINVAL,
	           mote_sandbox_last_error(sb), "index 100000");
	EXPECT_ERR(mote_sandbox_map_file(sb, "/nonexistent/file", MOTE_MAP_WINDOW_BASE,
	                                 MOTE_MAP_READ_ONLY),
	           -MOTE_EIO, mote_sandbox_last_error(sb), "/nonexistent/file");
	EXPECT_ERR(mote_sandbox_map_file(sb, "/etc/hostname", MOTE_MAP_WINDOW_BASE, 8),
	           -MOTE_EINVAL, mote_sandbox_last_error(sb), "invalid flags 0x8");
	EXPECT_ERR(mote_sandbox_unmap(sb, 0x1234000), -MOTE_EINVAL, mote_sandbox_last_error(sb),
	           "0x1234000");
	mote_sandbox_free(sb);
}

TEST(snapshot_files)
{
	mote_snapshot *snap = NULL;
	EXPECT_ERR(mote_snapshot_save(NULL, "/tmp/x.snap", 0), -MOTE_EINVAL, LAST,
	           "mote_snapshot_save: no snapshot");
	EXPECT_ERR(mote_snapshot_open(NULL, 0, &snap), -MOTE_EINVAL, LAST, "no path");
	EXPECT_ERR(mote_snapshot_open("/tmp/x.snap", 99, &snap), -MOTE_EINVAL, LAST,
	           "invalid flags 0x63");
	EXPECT_ERR(mote_snapshot_open("/nonexistent/x.snap", 0, &snap), -MOTE_EIO, LAST,
	           "/nonexistent/x.snap");
	mote_snapshot_info info;
	EXPECT_ERR(mote_snapshot_info_read(NULL, &info), -MOTE_EINVAL, LAST,
	           "mote_snapshot_info_read: no path");
	EXPECT_ERR(mote_snapshot_info_read(GUEST, &info), -MOTE_EBADSNAP, LAST, "magic");
	mote_function_info fi;
	EXPECT_ERR(mote_snapshot_function(NULL, 0, &fi), -MOTE_EINVAL, LAST,
	           "mote_snapshot_function: no snapshot");
	mote_guest_info gi;
	EXPECT_ERR(mote_guest_info_read("/nonexistent/g.elf", &gi), -MOTE_EIO, LAST,
	           "/nonexistent/g.elf");
	EXPECT_ERR(mote_guest_info_read(NULL, &gi), -MOTE_EINVAL, LAST,
	           "mote_guest_info_read: no path");
	EXPECT_ERR(mote_snapshot_info_function(NULL, 0, &fi), -MOTE_EINVAL, LAST,
	           "mote_snapshot_info_function: no info");
	EXPECT_ERR(mote_snapshot_info_host_function(&info, 0, &fi), -MOTE_EINVAL, LAST,
	           "mote_snapshot_info_host_function: no info read");
	CHECK_EQ_INT(mote_snapshot_info_function_count(&info), 0);
	EXPECT_ERR(mote_guest_info_function(&gi, 0, &fi), -MOTE_EINVAL, LAST,
	           "mote_guest_info_function: no info read");
	CHECK_EQ_INT(mote_guest_info_function_count(NULL), 0);
	REQUIRE(mote_guest_info_read(GUEST, &gi) == 0);
	EXPECT_ERR(mote_guest_info_function(&gi, 100000, &fi), -MOTE_EINVAL, LAST,
	           "index 100000, the guest has");
	EXPECT_ERR(mote_guest_info_function(&gi, 0, NULL), -MOTE_EINVAL, LAST,
	           "mote_guest_info_function: no out");
	mote_guest_info_free(&gi);
}

TEST(wasm)
{
	EXPECT_ERR(mote_wasm_sandbox_new(NULL, NULL, NULL), -MOTE_EINVAL, LAST,
	           "mote_wasm_sandbox_new: no out");
	mote_sandbox *w;
	EXPECT_ERR(mote_wasm_sandbox_from_snapshot(NULL, NULL, NULL, &w), -MOTE_EINVAL, LAST,
	           "mote_wasm_sandbox_from_snapshot: no snapshot");
	EXPECT_ERR(mote_wasm_load(NULL, "x", 1), -MOTE_EINVAL, LAST, "mote_wasm_load: no sandbox");
	EXPECT_ERR(mote_wasm_load_file(NULL, "x.wasm"), -MOTE_EINVAL, LAST,
	           "mote_wasm_load_file: no sandbox");
	EXPECT_ERR(mote_wasm_unload(NULL), -MOTE_EINVAL, LAST, "mote_wasm_unload: no sandbox");
	EXPECT_ERR(mote_wasm_call(NULL, "f", NULL, 0, NULL, 0, NULL), -MOTE_EINVAL, LAST,
	           "mote_wasm_call: no sandbox");
	int code;
	EXPECT_ERR(mote_wasm_run(NULL, NULL, 0, NULL, 0, &code), -MOTE_EINVAL, LAST,
	           "mote_wasm_run: no sandbox");
	EXPECT_ERR(mote_wasm_set_stdin(NULL, "x", 1), -MOTE_EINVAL, LAST,
	           "mote_wasm_set_stdin: no sandbox");
	EXPECT_ERR(mote_wasm_set_stdio_type(NULL, 1, MOTE_WASM_STDIO_FILE), -MOTE_EINVAL, LAST,
	           "mote_wasm_set_stdio_type: no sandbox");
	EXPECT_ERR(mote_wasm_preopen(NULL, "/d", "/tmp"), -MOTE_EINVAL, LAST,
	           "mote_wasm_preopen: no sandbox");
	EXPECT_ERR(mote_wasm_preopen_flags(NULL, "/d", "/tmp", 0), -MOTE_EINVAL, LAST,
	           "mote_wasm_preopen_flags: no sandbox");
	EXPECT_ERR(mote_wasm_set_write_limits(NULL, 1, 1), -MOTE_EINVAL, LAST,
	           "mote_wasm_set_write_limits: no sandbox");
	mote_wasm_exports *ex;
	EXPECT_ERR(mote_wasm_exports_get(NULL, &ex), -MOTE_EINVAL, LAST,
	           "mote_wasm_exports_get: no sandbox");
	mote_wasm_export_info ei;
	EXPECT_ERR(mote_wasm_export(NULL, 0, &ei), -MOTE_EINVAL, LAST,
	           "mote_wasm_export: no exports");
	EXPECT_ERR(mote_wasm_export_find(NULL, "f", &ei), -MOTE_EINVAL, LAST,
	           "mote_wasm_export_find: no exports");

	/* With a sandbox: not a Wasm one, then a Wasm one with no module. */
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(GUEST, NULL, NULL, &sb) == 0);
	EXPECT_ERR(mote_wasm_load(sb, "x", 1), -MOTE_EINVAL, mote_sandbox_last_error(sb),
	           "not a Wasm sandbox");
	EXPECT_ERR(mote_wasm_set_stdin(sb, NULL, 3), -MOTE_EINVAL, mote_sandbox_last_error(sb),
	           "mote_wasm_set_stdin: no data");
	mote_sandbox_free(sb);
	REQUIRE(mote_wasm_sandbox_new(NULL, NULL, &w) == 0);
	EXPECT_ERR(mote_wasm_load(w, "not wasm", 8), -MOTE_EBADWASM, mote_sandbox_last_error(w),
	           "magic header not detected");
	EXPECT_ERR(mote_wasm_load_file(w, "/nonexistent/m.wasm"), -MOTE_EIO,
	           mote_sandbox_last_error(w), "/nonexistent/m.wasm");
	EXPECT_ERR(mote_wasm_call(w, "f", NULL, 0, NULL, 0, NULL), -MOTE_EINVAL,
	           mote_sandbox_last_error(w), "no wasm module is loaded");
	mote_sandbox_free(w);
}

TEST_MAIN()
