/* Hostile and broken guests: every way a guest (or a guest file) can
 * misbehave must end in a precise error, never in a crash of the host.
 *
 * Each TEST covers one behaviour. For guest misbehaviour a test checks
 *   - the exact return code and a characteristic part of the detail text
 *     (exception name, address, port...), from the sandbox and from
 *     mote_last_error();
 *   - that the sandbox is poisoned afterwards (the next call returns
 *     -MOTE_EPOISONED), or still works where the failure is recoverable;
 *   - that another sandbox created before the failure still works.
 * Broken guest files go through the public constructors and must fail with
 * the right code and reason, without leaking file descriptors.
 *
 * Guests: tests/guests/hostile (one function per behaviour),
 * tests/guests/hostile_init_fault and tests/guests/hostile_init_loop. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/abi.h"
#include "host/internal.h"
#include "mote.h"
#include "test.h"

#define HOSTILE_ELF    MOTE_BUILD_DIR "/guests/hostile.elf"
#define INIT_FAULT_ELF MOTE_BUILD_DIR "/guests/hostile_init_fault.elf"
#define INIT_LOOP_ELF  MOTE_BUILD_DIR "/guests/hostile_init_loop.elf"
#define BASIC_ELF      MOTE_BUILD_DIR "/guests/basic.elf"

/* A hung test kills the program instead of hanging the test run. */
__attribute__((constructor)) static void watchdog(void)
{
	alarm(120);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- Host functions offered to the hostile guest ---- */
static int host_add(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
                    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)nargs;
	result->v.i32 = args[0].v.i32 + args[1].v.i32;
	return 0;
}

static mote_host_functions *host_fns(void)
{
	mote_host_functions *fns = NULL;
	if (mote_host_functions_new(&fns))
		return NULL;
	static const mote_type ii[2] = {MOTE_I32, MOTE_I32};
	if (mote_host_functions_add(fns, "host_add", MOTE_I32, ii, 2, host_add, NULL)) {
		mote_host_functions_free(fns);
		return NULL;
	}
	return fns;
}

/* Output is swallowed by default: the hostile guest logs on purpose. */
static void quiet_output(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	(void)level;
	(void)text;
	(void)len;
}

/* New sandbox on `path` with `cfg` (NULL: defaults, quiet output); NULL and a
 * recorded failure if creation fails. */
static mote_sandbox *open_with(const char *path, mote_config *cfg)
{
	mote_config *own = NULL;
	if (!cfg) {
		if (mote_config_new(&own))
			return NULL;
		mote_config_set_output(own, quiet_output, NULL);
		cfg = own;
	}
	mote_host_functions *fns = host_fns();
	mote_sandbox *sb = NULL;
	int rc = mote_sandbox_new(path, cfg, fns, &sb);
	mote_host_functions_free(fns);
	mote_config_free(own);
	if (rc) {
		TEST_FAILF("mote_sandbox_new(%s) = %d (%s): %s", path, rc, mote_errname(rc),
		           mote_last_error());
		return NULL;
	}
	return sb;
}

static mote_sandbox *open_hostile(void)
{
	return open_with(HOSTILE_ELF, NULL);
}

static int64_t call_i64(mote_sandbox *sb, const char *fn, const mote_value *args, size_t nargs,
                        int *rc_out)
{
	mote_value r;
	memset(&r, 0, sizeof(r));
	int rc = mote_sandbox_call(sb, fn, args, nargs, &r);
	if (rc_out)
		*rc_out = rc;
	if (rc)
		return 0;
	switch (r.type) {
	case MOTE_I32:
		return r.v.i32;
	case MOTE_U32:
		return r.v.u32;
	default:
		return r.v.i64;
	}
}

/* A u64 from a guest function with no arguments (addresses). */
static uint64_t probe(mote_sandbox *sb, const char *fn)
{
	int rc;
	uint64_t v = (uint64_t)call_i64(sb, fn, NULL, 0, &rc);
	if (rc)
		TEST_FAILF("probe %s: %d: %s", fn, rc, mote_sandbox_last_error(sb));
	return v;
}

static uint64_t probe_insn(mote_sandbox *sb, const char *which)
{
	mote_value arg = mote_string(which);
	int rc;
	uint64_t v = (uint64_t)call_i64(sb, "insn_addr", &arg, 1, &rc);
	if (rc || v == 0)
		TEST_FAILF("insn_addr(%s): %d: %s", which, rc, mote_sandbox_last_error(sb));
	return v;
}

/* The sandbox still answers calls correctly. */
static void check_alive(mote_sandbox *sb)
{
	mote_value args[2] = {mote_i32(40), mote_i32(2)};
	int rc;
	int64_t v = call_i64(sb, "add", args, 2, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(v, 42);
	CHECK(!mote_sandbox_poisoned(sb));
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "");
}

/* The sandbox refuses every further call. */
static void check_poisoned(mote_sandbox *sb)
{
	CHECK(mote_sandbox_poisoned(sb));
	mote_value args[2] = {mote_i32(1), mote_i32(2)};
	CHECK_EQ_INT(mote_sandbox_call(sb, "add", args, 2, NULL), -MOTE_EPOISONED);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "poisoned");
	/* Still poisoned on the second try, and for any function. */
	CHECK_EQ_INT(mote_sandbox_call(sb, "read_input", NULL, 0, NULL), -MOTE_EPOISONED);
}

enum after { RECOVERS, POISONED };

/* Call `fn` on a fresh hostile sandbox and check the failure: code `want`,
 * detail containing `sub1` and `sub2` (either may be NULL), the sandbox
 * poisoned or not as `after` says, and a bystander sandbox created before
 * still working. The detail is copied to `detail` if not NULL. */
static void expect_failure_cfg(mote_config *cfg, const char *fn, const mote_value *args,
                               size_t nargs, int want, const char *sub1, const char *sub2,
                               enum after after, char *detail, size_t detail_len)
{
	mote_sandbox *bystander = open_hostile();
	mote_sandbox *sb = open_with(HOSTILE_ELF, cfg);
	if (!bystander || !sb) {
		mote_sandbox_free(bystander);
		mote_sandbox_free(sb);
		return;
	}
	int rc = mote_sandbox_call(sb, fn, args, nargs, NULL);
	const char *err = mote_sandbox_last_error(sb);
	if (rc != want)
		TEST_FAILF("%s(): rc %d (%s), want %d (%s); detail \"%s\"", fn, rc,
		           mote_errname(rc), want, mote_errname(want), err);
	if (sub1)
		CHECK_CONTAINS(err, sub1);
	if (sub2)
		CHECK_CONTAINS(err, sub2);
	/* The thread's last error carries the same detail. */
	CHECK_EQ_STR(mote_last_error(), err);
	if (detail)
		snprintf(detail, detail_len, "%s", err);
	if (after == POISONED)
		check_poisoned(sb);
	else
		check_alive(sb);
	check_alive(bystander);
	mote_sandbox_free(sb);
	check_alive(bystander);
	mote_sandbox_free(bystander);
}

static void expect_failure(const char *fn, const mote_value *args, size_t nargs, int want,
                           const char *sub1, const char *sub2, enum after after)
{
	expect_failure_cfg(NULL, fn, args, nargs, want, sub1, sub2, after, NULL, 0);
}

/* ================= Memory access violations ================= */

TEST(write_unmapped_low)
{
	mote_value a = mote_u64(0x10);
	expect_failure("write_addr", &a, 1, -MOTE_EFAULT,
	               "memory access violation: write at 0x10 (page not mapped; rip 0x", NULL,
	               POISONED);
}

TEST(write_unmapped_high)
{
	mote_value a = mote_u64(0x7fff00000000ull);
	expect_failure("write_addr", &a, 1, -MOTE_EFAULT,
	               "memory access violation: write at 0x7fff00000000 (page not mapped", NULL,
	               POISONED);
}

TEST(write_just_past_memory)
{
	/* The first byte after guest memory: not mapped either. */
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_memory_info mi;
	CHECK_EQ_INT(mote_sandbox_memory_info(sb, &mi), 0);
	mote_sandbox_free(sb);
	char want[96];
	snprintf(want, sizeof(want), "write at 0x%llx (page not mapped",
	         (unsigned long long)mi.mem_size);
	mote_value a = mote_u64(mi.mem_size);
	expect_failure("write_addr", &a, 1, -MOTE_EFAULT, want, NULL, POISONED);
}

TEST(write_noncanonical)
{
	/* Not a page fault: a non-canonical address raises #GP(0). */
	mote_value a = mote_u64(0x8000000000000000ull);
	expect_failure("write_addr", &a, 1, -MOTE_EEXCEPTION,
	               "guest exception #GP (general protection) at rip 0x", "(error code 0x0)",
	               POISONED);
}

TEST(read_unmapped)
{
	mote_value a = mote_u64(0x10);
	expect_failure("read_addr", &a, 1, -MOTE_EFAULT,
	               "memory access violation: read at 0x10 (page not mapped", NULL, POISONED);
}

TEST(write_own_code)
{
	mote_sandbox *probe_sb = open_hostile();
	REQUIRE(probe_sb);
	uint64_t addr = probe(probe_sb, "code_addr");
	mote_sandbox_free(probe_sb);
	char want[128];
	snprintf(want, sizeof(want), "memory access violation: write at 0x%llx (page is read-only;",
	         (unsigned long long)addr);
	expect_failure("write_code", NULL, 0, -MOTE_EFAULT, want, NULL, POISONED);
}

TEST(write_rodata)
{
	mote_sandbox *probe_sb = open_hostile();
	REQUIRE(probe_sb);
	uint64_t addr = probe(probe_sb, "rodata_addr");
	mote_sandbox_free(probe_sb);
	char want[128];
	snprintf(want, sizeof(want), "write at 0x%llx (page is read-only;",
	         (unsigned long long)addr);
	expect_failure("write_rodata", NULL, 0, -MOTE_EFAULT, want, NULL, POISONED);
}

TEST(execute_data)
{
	/* W^X: a `ret` placed in writable data cannot run. The fetch itself
	 * faults, so rip is the data address too. */
	mote_sandbox *probe_sb = open_hostile();
	REQUIRE(probe_sb);
	uint64_t addr = probe(probe_sb, "data_addr");
	mote_sandbox_free(probe_sb);
	char want[160];
	snprintf(want, sizeof(want),
	         "memory access violation: execute at 0x%llx (page not executable; rip 0x%llx)",
	         (unsigned long long)addr, (unsigned long long)addr);
	mote_value a = mote_u64(addr);
	expect_failure("exec_addr", &a, 1, -MOTE_EFAULT, want, NULL, POISONED);
}

TEST(execute_unmapped)
{
	mote_value a = mote_u64(0x7fff00000000ull);
	expect_failure("exec_addr", &a, 1, -MOTE_EFAULT,
	               "execute at 0x7fff00000000 (page not mapped; rip 0x7fff00000000)", NULL,
	               POISONED);
}

TEST(read_input_buffer_allowed)
{
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	CHECK_EQ_U64(probe(sb, "read_input"), MOTE_MSG_MAGIC);
	CHECK(!mote_sandbox_poisoned(sb));
	check_alive(sb);
	mote_sandbox_free(sb);
}

TEST(write_input_buffer)
{
	mote_sandbox *probe_sb = open_hostile();
	REQUIRE(probe_sb);
	uint64_t addr = probe(probe_sb, "input_addr");
	mote_sandbox_free(probe_sb);
	CHECK(addr != 0);
	char want[128];
	snprintf(want, sizeof(want), "memory access violation: write at 0x%llx (page is read-only;",
	         (unsigned long long)addr);
	expect_failure("write_input", NULL, 0, -MOTE_EFAULT, want, NULL, POISONED);
}

TEST(system_area_protected)
{
	/* The CPL 0 scaffolding is out of the guest's reach, and the detail
	 * names the permission that is missing: a write to the (writable,
	 * supervisor) exception stack is refused for want of user access, not
	 * for being read-only. */
	static const struct {
		const char *fn;
		uint64_t addr;
		const char *want;
	} cases[] = {
	    {"read_addr", MOTE_GDT_ADDR, "read at 0x10000 (page is not user-accessible;"},
	    {"write_addr", MOTE_GDT_ADDR, "write at 0x10000 (page is not user-accessible;"},
	    {"read_addr", MOTE_IDT_ADDR, "read at 0x11000 (page is not user-accessible;"},
	    {"write_addr", MOTE_IDT_ADDR, "write at 0x11000 (page is not user-accessible;"},
	    {"exec_addr", MOTE_STUBS_ADDR,
	     "execute at 0x12000 (page is not user-accessible; rip 0x12000)"},
	    {"write_addr", MOTE_KSTACK_ADDR, "write at 0x13000 (page is not user-accessible;"},
	    {"write_addr", MOTE_KSTACK_TOP - 8, "write at 0x14ff8 (page is not user-accessible;"},
	    {"write_addr", MOTE_BOOTINFO_ADDR, "write at 0x15000 (page is read-only;"},
	    {"exec_addr", MOTE_BOOTINFO_ADDR, "execute at 0x15000 (page not executable;"},
	    {"read_addr", MOTE_PGTABLE_ADDR, "read at 0x17000 (page not mapped;"},
	    {"write_addr", MOTE_PGTABLE_ADDR, "write at 0x17000 (page not mapped;"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mote_value a = mote_u64(cases[i].addr);
		expect_failure(cases[i].fn, &a, 1, -MOTE_EFAULT,
		               "memory access violation: ", cases[i].want, POISONED);
	}
	/* Reading the boot info is allowed (it is how the guest finds its
	 * buffers). */
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_value a = mote_u64(MOTE_BOOTINFO_ADDR);
	int rc;
	CHECK_EQ_U64(call_i64(sb, "read_addr", &a, 1, &rc), MOTE_BOOT_MAGIC & 0xff);
	CHECK_EQ_INT(rc, 0);
	check_alive(sb);
	mote_sandbox_free(sb);
}

TEST(stack_overflow)
{
	char detail[512];
	expect_failure_cfg(NULL, "stack_overflow", NULL, 0, -MOTE_EFAULT,
	                   "stack overflow: access to guard page at 0x", NULL, POISONED, detail,
	                   sizeof(detail));
	/* The faulting address lies in the guard page, the page right below
	 * the stack, which starts one page past the image. */
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_memory_info mi;
	CHECK_EQ_INT(mote_sandbox_memory_info(sb, &mi), 0);
	mote_sandbox_free(sb);
	unsigned long long addr = 0;
	const char *p = strstr(detail, "guard page at 0x");
	REQUIRE(p);
	CHECK_EQ_INT(sscanf(p, "guard page at 0x%llx", &addr), 1);
	uint64_t guard = MOTE_IMAGE_BASE + mi.image_size;
	CHECK(addr >= guard && addr < guard + MOTE_PAGE_SIZE);
}

/* ================= CPU exceptions ================= */

/* `fn` executes the instruction at insn_addr(`which`), which raises `name`;
 * the reported rip is that address + `rip_delta`. */
static void expect_exception(const char *fn, const char *which, unsigned rip_delta,
                             const char *name, const char *suffix)
{
	mote_sandbox *probe_sb = open_hostile();
	REQUIRE(probe_sb);
	uint64_t rip = probe_insn(probe_sb, which) + rip_delta;
	mote_sandbox_free(probe_sb);
	char want[160];
	snprintf(want, sizeof(want), "guest exception %s at rip 0x%llx%s", name,
	         (unsigned long long)rip, suffix);
	expect_failure(fn, NULL, 0, -MOTE_EEXCEPTION, want, NULL, POISONED);
}

TEST(divide_by_zero)
{
	expect_exception("div_zero", "div0", 0, "#DE (divide error)", "");
}

TEST(ud2)
{
	expect_exception("do_ud2", "ud2", 0, "#UD (invalid opcode)", "");
}

TEST(int3)
{
	/* #BP is a trap: the reported rip is the instruction after the
	 * one-byte int3. */
	expect_exception("do_int3", "int3", 1, "#BP (breakpoint)", "");
}

TEST(privileged_hlt)
{
	/* HLT at CPL 3 is #GP(0), not a HLT exit. */
	expect_exception("do_hlt", "hlt", 0, "#GP (general protection)", " (error code 0x0)");
}

TEST(privileged_mov_cr3)
{
	expect_exception("do_mov_cr3", "mov_cr3", 0, "#GP (general protection)",
	                 " (error code 0x0)");
}

TEST(privileged_wrmsr)
{
	expect_exception("do_wrmsr", "wrmsr", 0, "#GP (general protection)", " (error code 0x0)");
}

TEST(triple_fault)
{
	/* A CPL 3 guest cannot triple-fault by itself: wreck its IDT from the
	 * host, then #UD -> gate not present -> #DF -> shutdown. On the
	 * process backend the CPU's exceptions never pass through the guest's
	 * IDT, so the same wreck changes nothing: the #UD is reported. */
	mote_sandbox *bystander = open_hostile();
	mote_sandbox *sb = open_hostile();
	REQUIRE(bystander && sb);
	uint64_t size = 0;
	uint8_t *mem = mote__sandbox_guest_memory(sb, &size);
	REQUIRE(mem && size > MOTE_IDT_ADDR + 32 * 16);
	memset(mem + MOTE_IDT_ADDR, 0, 32 * 16);
	CHECK_EQ_INT(mote_sandbox_call(sb, "do_ud2", NULL, 0, NULL), -MOTE_EEXCEPTION);
	if (mote_sandbox_backend(sb) == MOTE_BACKEND_KVM)
		CHECK_EQ_STR(mote_sandbox_last_error(sb), "guest triple fault (CPU shutdown)");
	else
		CHECK_CONTAINS(mote_sandbox_last_error(sb), "guest exception #UD (invalid opcode)");
	check_poisoned(sb);
	check_alive(bystander);
	mote_sandbox_free(sb);
	check_alive(bystander);
	mote_sandbox_free(bystander);
}

/* ================= Exits the host does not expect ================= */

TEST(out_to_unknown_port)
{
	expect_failure("out_port42", NULL, 0, -MOTE_EPROTOCOL, "unexpected exit: OUT to port 0x42",
	               NULL, POISONED);
}

TEST(in_from_port)
{
	expect_failure("in_port42", NULL, 0, -MOTE_EPROTOCOL, "unexpected exit: IN from port 0x42",
	               NULL, POISONED);
}

TEST(fake_exception_exit)
{
	/* The guest may reach the exception ports directly; it only poisons
	 * itself. */
	expect_failure("fake_exception", NULL, 0, -MOTE_EEXCEPTION,
	               "guest exception #UD (invalid opcode)", NULL, POISONED);
}

TEST(abort_with_message)
{
	char detail[1024];
	expect_failure_cfg(NULL, "abort_oom", NULL, 0, -MOTE_EABORT, NULL, NULL, POISONED, detail,
	                   sizeof(detail));
	/* The message, then where (test_debug checks the naming itself). */
	CHECK(strncmp(detail, "guest aborted: code 3: out of memory in mote_abort+0x", 53) == 0);
	CHECK_CONTAINS(detail, ", called from mote_wrap_abort_oom+0x");
}

/* ================= Forged messages ================= */

static void expect_forged(uint32_t mode, int want, const char *sub)
{
	mote_value a = mote_u32(mode);
	expect_failure("forge", &a, 1, want, sub, NULL, POISONED);
}

TEST(forged_result_garbage)
{
	expect_forged(0, -MOTE_EPROTOCOL,
	              "guest broke the call protocol: result: bad message magic");
}

TEST(forged_result_oversized)
{
	expect_forged(
	    1, -MOTE_EPROTOCOL,
	    "guest broke the call protocol: result: message size outside the output buffer");
}

TEST(forged_result_bytes_outside)
{
	expect_forged(2, -MOTE_EPROTOCOL,
	              "guest broke the call protocol: result: string or bytes outside the message");
}

TEST(forged_hostcall_name_outside)
{
	expect_forged(3, -MOTE_EPROTOCOL,
	              "guest broke the call protocol: host call: name outside the message");
}

TEST(forged_abort_message)
{
	expect_forged(4, -MOTE_EABORT,
	              "guest aborted (malformed abort message: bad message magic)");
}

TEST(forged_result_status)
{
	expect_forged(5, -MOTE_EPROTOCOL, "guest broke the call protocol: result status 12345");
}

struct log_capture {
	char text[1024];
	size_t len;
};

static void capture_output(void *user, mote_log_level level, const char *text, size_t len)
{
	struct log_capture *c = user;
	int n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "[%d]%.*s|", (int)level,
	                 (int)len, text);
	if (n > 0 && (size_t)n < sizeof(c->text) - c->len)
		c->len += (size_t)n;
}

TEST(forged_log_buffer)
{
	/* A forged log header only garbles the guest's own output. */
	struct log_capture cap = {{0}, 0};
	mote_config *cfg = NULL;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, capture_output, &cap);
	mote_sandbox *sb = open_with(HOSTILE_ELF, cfg);
	mote_config_free(cfg);
	REQUIRE(sb);
	int rc;
	CHECK_EQ_INT(call_i64(sb, "corrupt_log", NULL, 0, &rc), 42);
	CHECK_EQ_INT(rc, 0);
	CHECK_CONTAINS(cap.text, "[3]hello|");
	CHECK_CONTAINS(cap.text, "[2]7 guest log messages dropped|");
	CHECK_CONTAINS(cap.text, "[3]after|");
	check_alive(sb);
	mote_sandbox_free(sb);
}

/* ================= Host calls gone wrong ================= */

TEST(unknown_host_function)
{
	mote_sandbox *bystander = open_hostile();
	mote_sandbox *sb = open_hostile();
	REQUIRE(bystander && sb);
	CHECK_EQ_INT(mote_sandbox_call(sb, "call_unknown_host", NULL, 0, NULL), -MOTE_ENOFUNC);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
	             "guest called unknown host function 'no_such_host_fn'");
	CHECK(!mote_sandbox_poisoned(sb));
	/* The guest saw the error code and carried on. */
	CHECK_EQ_INT(probe(sb, "last_rc"), -MOTE_ENOFUNC);
	/* The error does not stick to the next calls. */
	check_alive(sb);
	mote_value args[2] = {mote_i32(2), mote_i32(3)};
	int rc;
	CHECK_EQ_INT(call_i64(sb, "call_host_add", args, 2, &rc), 5);
	CHECK_EQ_INT(rc, 0);
	check_alive(bystander);
	mote_sandbox_free(sb);
	mote_sandbox_free(bystander);
}

TEST(host_function_wrong_types)
{
	mote_sandbox *bystander = open_hostile();
	mote_sandbox *sb = open_hostile();
	REQUIRE(bystander && sb);
	CHECK_EQ_INT(mote_sandbox_call(sb, "call_host_wrong_types", NULL, 0, NULL),
	             -MOTE_ESIGNATURE);
	CHECK_EQ_STR(mote_sandbox_last_error(sb),
	             "guest called host function 'i32 host_add(i32, i32)' as 'i32 host_add(f64)'");
	CHECK(!mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(probe(sb, "last_rc"), -MOTE_ESIGNATURE);
	mote_value args[2] = {mote_i32(2), mote_i32(3)};
	int rc;
	CHECK_EQ_INT(call_i64(sb, "call_host_add", args, 2, &rc), 5);
	CHECK_EQ_INT(rc, 0);
	check_alive(sb);
	check_alive(bystander);
	mote_sandbox_free(sb);
	mote_sandbox_free(bystander);
}

/* ================= Results and arguments that do not fit ================= */

TEST(result_too_big)
{
	char detail[512];
	expect_failure_cfg(NULL, "big_result", NULL, 0, -MOTE_ETOOBIG, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "result of 'big_result' does not fit the 65536-byte output buffer");
}

TEST(result_fits_bigger_output_buffer)
{
	/* Control for result_too_big: with room for it the same result works. */
	mote_config *cfg = NULL;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, quiet_output, NULL);
	CHECK_EQ_INT(mote_config_set_output_size(cfg, 2u << 20), 0);
	mote_sandbox *sb = open_with(HOSTILE_ELF, cfg);
	mote_config_free(cfg);
	REQUIRE(sb);
	mote_value r;
	CHECK_EQ_INT(mote_sandbox_call(sb, "big_result", NULL, 0, &r), 0);
	CHECK_EQ_INT(r.type, MOTE_BYTES);
	CHECK_EQ_U64(r.v.buf.len, 1u << 20);
	check_alive(sb);
	mote_sandbox_free(sb);
}

TEST(arguments_too_big)
{
	size_t n = 128u << 10;
	uint8_t *big = calloc(1, n);
	REQUIRE(big);
	mote_value a = mote_bytes(big, n);
	char detail[512];
	expect_failure_cfg(NULL, "echo_len", &a, 1, -MOTE_ETOOBIG, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "arguments of 'echo_len' do not fit the 65536-byte input buffer");
	/* Control: what fits goes through. */
	mote_sandbox *sb = open_hostile();
	if (sb) {
		a = mote_bytes(big, 60000);
		int rc;
		CHECK_EQ_INT(call_i64(sb, "echo_len", &a, 1, &rc), 60000);
		CHECK_EQ_INT(rc, 0);
		mote_sandbox_free(sb);
	}
	free(big);
}

/* ================= Bad calls from the host ================= */

TEST(no_such_guest_function)
{
	char detail[512];
	expect_failure_cfg(NULL, "x", NULL, 0, -MOTE_ENOFUNC, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "no guest function 'x'");
}

TEST(wrong_argument_count)
{
	mote_value one = mote_i32(1);
	char detail[512];
	expect_failure_cfg(NULL, "add", &one, 1, -MOTE_ESIGNATURE, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "function 'i32 add(i32, i32)' called with (i32)");
	expect_failure_cfg(NULL, "add", NULL, 0, -MOTE_ESIGNATURE, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "function 'i32 add(i32, i32)' called with ()");
}

TEST(wrong_argument_types)
{
	mote_value args[2] = {mote_i64(1), mote_string("two")};
	char detail[512];
	expect_failure_cfg(NULL, "add", args, 2, -MOTE_ESIGNATURE, NULL, NULL, RECOVERS, detail,
	                   sizeof(detail));
	CHECK_EQ_STR(detail, "function 'i32 add(i32, i32)' called with (i64, string)");
}

TEST(null_arguments)
{
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_value r;
	CHECK_EQ_INT(mote_sandbox_call(NULL, "add", NULL, 0, &r), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_call: no sandbox");
	CHECK_EQ_INT(mote_sandbox_call(sb, NULL, NULL, 0, &r), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "mote_sandbox_call: no function name");
	CHECK_EQ_INT(mote_sandbox_call(sb, "add", NULL, 2, &r), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_call: arguments missing for nargs > 0");
	CHECK_EQ_INT(mote_sandbox_interrupt(NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_interrupt: no sandbox");
	mote_snapshot *snap = NULL;
	CHECK_EQ_INT(mote_sandbox_snapshot(NULL, &snap), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_snapshot: no sandbox");
	CHECK_EQ_INT(mote_sandbox_snapshot(sb, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "mote_sandbox_snapshot: no out");
	CHECK_EQ_INT(mote_sandbox_restore(sb, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "mote_sandbox_restore: no snapshot");
	CHECK_EQ_INT(mote_sandbox_restore(NULL, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_restore: no sandbox");
	CHECK_EQ_STR(mote_sandbox_last_error(NULL), "");
	CHECK(!mote_sandbox_poisoned(NULL));
	CHECK_EQ_INT(mote_sandbox_memory_info(NULL, NULL), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_sandbox_memory_info(sb, NULL), -MOTE_EINVAL);
	mote_sandbox *out = NULL;
	CHECK_EQ_INT(mote_sandbox_new(NULL, NULL, NULL, &out), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_sandbox_new(HOSTILE_ELF, NULL, NULL, NULL), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_sandbox_new_from_buffer(NULL, 100, NULL, NULL, &out), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_sandbox_new_from_buffer("x", 1, NULL, NULL, NULL), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_sandbox_new_from_buffer: no out");
	mote_sandbox_free(NULL);
	/* None of that touched the sandbox. */
	check_alive(sb);
	mote_sandbox_free(sb);
}

/* ================= Guests that never return ================= */

TEST(timeout)
{
	mote_sandbox *bystander = open_hostile();
	mote_config *cfg = NULL;
	REQUIRE(bystander && mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, quiet_output, NULL);
	CHECK_EQ_INT(mote_config_set_timeout_us(cfg, 200000), 0);
	mote_sandbox *sb = open_with(HOSTILE_ELF, cfg);
	mote_config_free(cfg);
	REQUIRE(sb);
	/* Quick calls are unaffected by the timeout. */
	for (int i = 0; i < 3; i++)
		check_alive(sb);
	uint64_t t0 = now_ms();
	CHECK_EQ_INT(mote_sandbox_call(sb, "spin", NULL, 0, NULL), -MOTE_ETIMEDOUT);
	uint64_t elapsed = now_ms() - t0;
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "call exceeded its timeout of 200000 us in ");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "in mote_wrap_spin");
	CHECK(elapsed >= 150); /* it did not give up early */
	CHECK(elapsed < 5000); /* coarse sanity bound, not a speed test */
	check_poisoned(sb);
	check_alive(bystander);
	mote_sandbox_free(sb);
	/* No timer left armed: this thread keeps working. */
	check_alive(bystander);
	mote_sandbox_free(bystander);
}

struct interrupter {
	mote_sandbox *sb;
	atomic_int done;
	atomic_int sent;
	int rc;
};

static void *interrupt_thread(void *p)
{
	struct interrupter *it = p;
	usleep(100000);
	/* Repeat in case the call had not started yet (then an interrupt is a
	 * documented no-op); normally the first one lands. */
	for (int i = 0; i < 100 && !atomic_load(&it->done); i++) {
		it->rc = mote_sandbox_interrupt(it->sb);
		atomic_fetch_add(&it->sent, 1);
		usleep(50000);
	}
	return NULL;
}

TEST(interrupt_from_other_thread)
{
	mote_sandbox *bystander = open_hostile();
	mote_config *cfg = NULL;
	REQUIRE(bystander && mote_config_new(&cfg) == 0);
	mote_config_set_output(cfg, quiet_output, NULL);
	/* Backstop so a broken interrupt fails the test instead of hanging. */
	mote_config_set_timeout_us(cfg, 10 * 1000000ull);
	mote_sandbox *sb = open_with(HOSTILE_ELF, cfg);
	mote_config_free(cfg);
	REQUIRE(sb);
	struct interrupter it = {.sb = sb};
	atomic_init(&it.done, 0);
	atomic_init(&it.sent, 0);
	pthread_t th;
	uint64_t t0 = now_ms();
	REQUIRE(pthread_create(&th, NULL, interrupt_thread, &it) == 0);
	int rc = mote_sandbox_call(sb, "spin", NULL, 0, NULL);
	uint64_t elapsed = now_ms() - t0;
	atomic_store(&it.done, 1);
	pthread_join(th, NULL);
	CHECK_EQ_INT(rc, -MOTE_ECANCELLED);
	CHECK_EQ_INT(it.rc, 0);
	CHECK(atomic_load(&it.sent) >= 1);
	CHECK_EQ_STR(mote_sandbox_last_error(sb), "call cancelled by interrupt");
	CHECK(elapsed >= 90);
	CHECK(elapsed < 5000);
	check_poisoned(sb);
	check_alive(bystander);
	mote_sandbox_free(sb);
	mote_sandbox_free(bystander);
}

TEST(interrupt_when_idle)
{
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	CHECK_EQ_INT(mote_sandbox_interrupt(sb), 0);
	CHECK(!mote_sandbox_poisoned(sb));
	check_alive(sb);
	/* After a completed call as well; and it does not linger to cancel
	 * the next one. */
	CHECK_EQ_INT(mote_sandbox_interrupt(sb), 0);
	CHECK_EQ_INT(mote_sandbox_interrupt(sb), 0);
	check_alive(sb);
	check_alive(sb);
	mote_sandbox_free(sb);
}

/* ================= Guests whose init misbehaves ================= */

TEST(init_fault)
{
	mote_sandbox *bystander = open_hostile();
	REQUIRE(bystander);
	mote_sandbox *sb = (mote_sandbox *)bystander; /* must be reset to NULL */
	int rc = mote_sandbox_new(INIT_FAULT_ELF, NULL, NULL, &sb);
	CHECK_EQ_INT(rc, -MOTE_EFAULT);
	CHECK(sb == NULL);
	CHECK_CONTAINS(
	    mote_last_error(),
	    "guest init failed: memory access violation: write at 0x10 (page not mapped");
	check_alive(bystander);
	mote_sandbox_free(bystander);
}

TEST(init_never_returns)
{
	mote_config *cfg = NULL;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_timeout_us(cfg, 200000);
	mote_sandbox *sb = NULL;
	uint64_t t0 = now_ms();
	int rc = mote_sandbox_new(INIT_LOOP_ELF, cfg, NULL, &sb);
	uint64_t elapsed = now_ms() - t0;
	mote_config_free(cfg);
	CHECK_EQ_INT(rc, -MOTE_ETIMEDOUT);
	CHECK(sb == NULL);
	CHECK_CONTAINS(mote_last_error(),
	               "guest init failed: call exceeded its timeout of 200000 us in mote_init");
	CHECK(elapsed < 5000);
	mote_sandbox_free(sb);
}

/* ================= Broken guest files ================= */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char path[128];
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/mote-hostile-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			tmpdir[0] = 0;
			return NULL;
		}
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = len ? write(fd, data, len) : 0;
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && (buf = malloc((size_t)st.st_size))) {
		if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)st.st_size;
	}
	close(fd);
	return buf;
}

/* Load `len` bytes of `data` both from a buffer of exactly that size (so
 * ASan sees any over-read) and from a file; both must fail with `want` and a
 * reason containing `sub` (want 0: both must succeed). */
static void expect_load(const char *what, const void *data, size_t len, int want, const char *sub)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) {
		TEST_FAILF("out of memory");
		return;
	}
	if (len)
		memcpy(copy, data, len);
	for (int from_file = 0; from_file < 2; from_file++) {
		mote_sandbox *sb = NULL;
		int rc;
		if (from_file) {
			const char *path = tmp_path("guest.elf");
			if (!path || write_file(path, data, len)) {
				TEST_FAILF("%s: cannot write %s", what, path ? path : "temp file");
				break;
			}
			rc = mote_sandbox_new(path, NULL, NULL, &sb);
			unlink(path);
		} else {
			rc = mote_sandbox_new_from_buffer(copy, len, NULL, NULL, &sb);
		}
		const char *how = from_file ? "file" : "buffer";
		if (rc != want)
			TEST_FAILF("%s (%s): rc %d (%s), want %d (%s): %s", what, how, rc,
			           mote_errname(rc), want, mote_errname(want), mote_last_error());
		if (want == 0) {
			if (sb)
				check_alive(sb);
		} else {
			CHECK(sb == NULL);
			if (!strstr(mote_last_error(), sub))
				TEST_FAILF("%s (%s): reason \"%s\" lacks \"%s\"", what, how,
				           mote_last_error(), sub);
		}
		mote_sandbox_free(sb);
	}
	free(copy);
}

/* A real guest to break, with facts about its layout. */
struct real_guest {
	uint8_t *b;
	size_t len;
	Elf64_Ehdr eh;
	size_t headers_end; /* end of the program header table */
	size_t data_end;    /* end of the last byte any segment takes from the file */
	int text_ph;        /* first PT_LOAD with file bytes */
	size_t note_desc;   /* file offset of the mote ABI note's version */
};

static Elf64_Phdr get_phdr(const struct real_guest *g, int i)
{
	Elf64_Phdr ph;
	memcpy(&ph, g->b + g->eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
	return ph;
}

static void put_phdr(uint8_t *b, const struct real_guest *g, int i, const Elf64_Phdr *ph)
{
	memcpy(b + g->eh.e_phoff + (size_t)i * sizeof(*ph), ph, sizeof(*ph));
}

static bool load_real_guest(struct real_guest *g)
{
	memset(g, 0, sizeof(*g));
	g->b = read_file(BASIC_ELF, &g->len);
	if (!g->b || g->len < sizeof(Elf64_Ehdr)) {
		TEST_FAILF("cannot read %s", BASIC_ELF);
		return false;
	}
	memcpy(&g->eh, g->b, sizeof(g->eh));
	g->headers_end = g->eh.e_phoff + (size_t)g->eh.e_phnum * sizeof(Elf64_Phdr);
	g->text_ph = -1;
	g->note_desc = 0;
	for (int i = 0; i < g->eh.e_phnum; i++) {
		Elf64_Phdr ph = get_phdr(g, i);
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (ph.p_filesz && ph.p_offset + ph.p_filesz > g->data_end)
			g->data_end = ph.p_offset + ph.p_filesz;
		if (ph.p_type == PT_LOAD && ph.p_filesz && g->text_ph < 0)
			g->text_ph = i;
		/* The ABI note: namesz 5, descsz 4, type, "mote\0" padded to 8. */
		for (uint64_t pos = 0; ph.p_type == PT_NOTE && pos + 24 <= ph.p_filesz;) {
			uint32_t hdr[3];
			memcpy(hdr, g->b + ph.p_offset + pos, sizeof(hdr));
			if (hdr[0] == 5 && hdr[1] == 4 && hdr[2] == MOTE_NOTE_TYPE_ABI &&
			    memcmp(g->b + ph.p_offset + pos + 12, "mote", 5) == 0)
				g->note_desc = ph.p_offset + pos + 20;
			pos += 12 + ((hdr[0] + 3) & ~3u) + ((hdr[1] + 3) & ~3u);
		}
	}
	if (g->text_ph < 0 || !g->note_desc || g->data_end > g->len) {
		TEST_FAILF("unexpected layout of %s", BASIC_ELF);
		free(g->b);
		g->b = NULL;
		return false;
	}
	return true;
}

/* A patched copy of the real guest. */
static uint8_t *patched(const struct real_guest *g)
{
	uint8_t *b = malloc(g->len);
	if (b)
		memcpy(b, g->b, g->len);
	return b;
}

static int fds_before;

static void fd_check_begin(void)
{
	/* Open the lazily opened /dev/kvm before counting. */
	mote_sandbox *sb = open_with(BASIC_ELF, NULL);
	mote_sandbox_free(sb);
	fds_before = count_fds();
}

static void fd_check_end(void)
{
	int after = count_fds();
	if (after != fds_before)
		TEST_FAILF("file descriptors: %d before, %d after", fds_before, after);
}

TEST(file_not_elf)
{
	fd_check_begin();
	static const char text[] = "#!/bin/sh\necho this is not a guest\n";
	for (int i = 0; i < 3; i++)
		expect_load("text file", text, sizeof(text) - 1, -MOTE_EBADELF,
		            "not an ELF file (bad magic)");
	fd_check_end();
}

TEST(file_empty)
{
	fd_check_begin();
	for (int i = 0; i < 3; i++)
		expect_load("empty file", "", 0, -MOTE_EBADELF, "empty");
	fd_check_end();
}

TEST(file_missing_or_special)
{
	fd_check_begin();
	for (int i = 0; i < 3; i++) {
		mote_sandbox *sb = NULL;
		CHECK_EQ_INT(mote_sandbox_new("/nonexistent/dir/guest.elf", NULL, NULL, &sb),
		             -MOTE_EIO);
		CHECK(sb == NULL);
		CHECK_CONTAINS(mote_last_error(), "cannot open /nonexistent/dir/guest.elf");
		CHECK_CONTAINS(mote_last_error(), "No such file or directory");
		CHECK_EQ_INT(mote_sandbox_new("/", NULL, NULL, &sb), -MOTE_EIO);
		CHECK_CONTAINS(mote_last_error(), "is not a regular file");
		CHECK_EQ_INT(mote_sandbox_new("/dev/null", NULL, NULL, &sb), -MOTE_EIO);
		CHECK_CONTAINS(mote_last_error(), "/dev/null is not a regular file");
		CHECK(sb == NULL);
	}
	fd_check_end();
}

TEST(file_truncated)
{
	struct real_guest g;
	if (!load_real_guest(&g))
		return;
	fd_check_begin();
	Elf64_Phdr text = get_phdr(&g, g.text_ph);
	struct {
		size_t len;
		const char *sub;
	} cases[] = {
	    {0, "empty"},
	    {4, "ELF header truncated: file is 4 bytes"},
	    {16, "ELF header truncated: file is 16 bytes, need 64"},
	    {63, "ELF header truncated: file is 63 bytes, need 64"},
	    {64, "program header table at offset 0x40"},
	    {100, "lies outside the 0x64-byte file"},
	    {g.headers_end - 1, "program header table at offset 0x40"},
	    {g.headers_end, "lies outside"},
	    {text.p_offset + text.p_filesz / 2, "lies outside"},
	    {g.data_end - 1, "lies outside"},
	};
	char what[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(what, sizeof(what), "truncated at %zu", cases[i].len);
		expect_load(what, g.b, cases[i].len, -MOTE_EBADELF, cases[i].sub);
	}
	/* Section headers are not needed: cut right after the segments' data,
	 * the guest still loads and runs. */
	expect_load("truncated after the segments", g.b, g.data_end, 0, NULL);
	fd_check_end();
	free(g.b);
}

TEST(file_wrong_machine)
{
	struct real_guest g;
	if (!load_real_guest(&g))
		return;
	fd_check_begin();
	uint8_t *b = patched(&g);
	REQUIRE(b);
	uint16_t machine = EM_AARCH64;
	memcpy(b + offsetof(Elf64_Ehdr, e_machine), &machine, sizeof(machine));
	expect_load("machine AArch64", b, g.len, -MOTE_EBADELF,
	            "ELF machine is 183 (AArch64), need x86-64 (62)");
	machine = EM_386;
	memcpy(b + offsetof(Elf64_Ehdr, e_machine), &machine, sizeof(machine));
	expect_load("machine i386", b, g.len, -MOTE_EBADELF, "ELF machine is 3 (i386)");
	free(b);
	fd_check_end();
	free(g.b);
}

TEST(file_wrong_abi_version)
{
	struct real_guest g;
	if (!load_real_guest(&g))
		return;
	fd_check_begin();
	uint8_t *b = patched(&g);
	REQUIRE(b);
	uint32_t version = MOTE_ABI_VERSION + 1;
	memcpy(b + g.note_desc, &version, sizeof(version));
	char want[64];
	snprintf(want, sizeof(want), "guest ABI version %u, host supports %u", version,
	         MOTE_ABI_VERSION);
	expect_load("ABI version + 1", b, g.len, -MOTE_EABI, want);
	version = 0;
	memcpy(b + g.note_desc, &version, sizeof(version));
	expect_load("ABI version 0", b, g.len, -MOTE_EABI, "guest ABI version 0,");
	/* No note at all: rename it. */
	memcpy(b + g.note_desc, g.b + g.note_desc, sizeof(version));
	b[g.note_desc - 8] = 'M';
	expect_load("no ABI note", b, g.len, -MOTE_EBADELF, "missing mote ABI note");
	free(b);
	fd_check_end();
	free(g.b);
}

TEST(file_segment_outside)
{
	struct real_guest g;
	if (!load_real_guest(&g))
		return;
	fd_check_begin();
	uint8_t *b = patched(&g);
	REQUIRE(b);
	Elf64_Phdr ph = get_phdr(&g, g.text_ph);
	/* Beyond the end (same page offset, so only the range is wrong). */
	Elf64_Phdr bad = ph;
	bad.p_offset = ph.p_offset + (16u << 20);
	put_phdr(b, &g, g.text_ph, &bad);
	char want[160];
	snprintf(want, sizeof(want),
	         "segment %d: file range 0x%llx+0x%llx lies outside the 0x%zx-byte file", g.text_ph,
	         (unsigned long long)bad.p_offset, (unsigned long long)bad.p_filesz, g.len);
	expect_load("p_offset beyond the file", b, g.len, -MOTE_EBADELF, want);
	/* So far out that offset + size overflows. */
	bad.p_offset = ~0ull - 0xfff + (ph.p_offset & 0xfff);
	put_phdr(b, &g, g.text_ph, &bad);
	snprintf(want, sizeof(want), "segment %d: file range", g.text_ph);
	expect_load("p_offset overflowing", b, g.len, -MOTE_EBADELF, want);
	/* A file size past the end. */
	bad = ph;
	bad.p_filesz = bad.p_memsz = g.len;
	put_phdr(b, &g, g.text_ph, &bad);
	expect_load("p_filesz beyond the file", b, g.len, -MOTE_EBADELF, "lies outside");
	free(b);
	fd_check_end();
	free(g.b);
}

TEST(file_many_failures_no_leak)
{
	/* Repeat a mix of failures; descriptors and (under ASan) memory must
	 * not leak. */
	struct real_guest g;
	if (!load_real_guest(&g))
		return;
	fd_check_begin();
	for (int i = 0; i < 20; i++) {
		mote_sandbox *sb = NULL;
		CHECK_EQ_INT(mote_sandbox_new("/nonexistent", NULL, NULL, &sb), -MOTE_EIO);
		CHECK_EQ_INT(mote_sandbox_new_from_buffer(g.b, 63, NULL, NULL, &sb), -MOTE_EBADELF);
		CHECK_EQ_INT(mote_sandbox_new_from_buffer(g.b, g.headers_end, NULL, NULL, &sb),
		             -MOTE_EBADELF);
		CHECK_EQ_INT(mote_sandbox_new(INIT_FAULT_ELF, NULL, NULL, &sb), -MOTE_EFAULT);
		CHECK(sb == NULL);
	}
	fd_check_end();
	free(g.b);
}

__attribute__((destructor)) static void remove_tmpdir(void)
{
	if (tmpdir[0])
		rmdir(tmpdir);
}

/* ================= Escapes from the process backend's process =================
 * Each ends as an exact typed error on both backends, and leaves nothing
 * behind: no child process, zombie, file descriptor or mapping. */

/* The next child of this process in the /proc listing `d`, or 0. */
static int next_child(DIR *d)
{
	struct dirent *e;
	char path[300], buf[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		const char *close_paren = strrchr(buf, ')');
		int ppid = 0;
		char state;
		if (close_paren && sscanf(close_paren + 2, "%c %d", &state, &ppid) == 2 &&
		    ppid == (int)getpid())
			return atoi(e->d_name);
	}
	return 0;
}

/* Processes whose parent is us (children and zombies alike). */
static int count_children(void)
{
	mote__backend_quiesce();
	DIR *d = opendir("/proc");
	int n = 0;
	while (next_child(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Mappings of this process that a leaked sandbox would leave: file and
 * memfd mappings, and anonymous ones of 1 MiB or more (guest memory is
 * megabytes). Left out: small anonymous mappings (allocators' own, and
 * neighbours that merge or split as the spare stubs' mailbox mappings come
 * and go) and, under ASan, its allocator's space, where the first
 * allocation of a new size class adds a region (x86-64 Linux:
 * [0x600000000000, 0x640000000000)). Both moved the count by one in some
 * runs, never from a leak. */
static int count_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi, inode = 1;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %llu", &lo, &hi, &inode) != 3)
			continue;
		bool anonymous = inode == 0 && !strchr(line, '/') && !strchr(line, '[');
#if defined(__SANITIZE_ADDRESS__)
		if (anonymous && lo >= 0x600000000000ull && hi <= 0x640000000000ull)
			continue;
#endif
		if (anonymous && hi - lo < (1ull << 20))
			continue;
		n++;
	}
	if (f)
		fclose(f);
	return n;
}

/* Counts after freeing a sandbox: the process backend's spare stub is
 * started again first (count_fds, count_children wait for it). */
static void check_nothing_left(int fds, int kids, int maps)
{
	CHECK_EQ_INT(count_fds(), fds);
	CHECK_EQ_INT(count_children(), kids);
	CHECK_EQ_INT(count_mappings(), maps);
}

/* expect_failure, then check that freeing the sandbox left nothing. */
static void expect_clean_failure(const char *fn, const mote_value *args, size_t nargs, int want,
				 const char *sub1, const char *sub2)
{
	mote_sandbox *warm = open_hostile(); /* the library's one-time setup, done */
	mote_sandbox_free(warm);
	int fds = count_fds(), kids = count_children(), maps = count_mappings();
	expect_failure(fn, args, nargs, want, sub1, sub2, POISONED);
	check_nothing_left(fds, kids, maps);
}

/* The rip a function reports, or 0. */
static uint64_t address_of(const char *fn)
{
	mote_sandbox *sb = open_hostile();
	int rc;
	uint64_t v = sb ? (uint64_t)call_i64(sb, fn, NULL, 0, &rc) : 0;
	mote_sandbox_free(sb);
	return v;
}

static bool on_process_backend(void)
{
	mote_sandbox *sb = open_hostile();
	bool p = sb && mote_sandbox_backend(sb) == MOTE_BACKEND_PROCESS;
	mote_sandbox_free(sb);
	return p;
}

/* For a test about the process backend's stub: false, with the test
 * counted as skipped, on the KVM backend. */
static bool stub_exists(void)
{
	if (on_process_backend())
		return true;
	TEST_SKIP("the stub exists on the process backend only");
	return false;
}

/* libmote, for this test only: SETUP's wake arrives twice. */
void mote__process_duplicate_setup_wake(bool on);

/* The stub obeys each command once. A spare that reads PREPARE's wake late
 * takes SETUP under it, and SETUP's own wake then arrives after READY: it
 * used to run the guest before the host had set its registers ("execute at
 * 0x0", about one process-backend start in 3000). Forced here on every
 * setup: each sandbox must still answer its calls. */
TEST(a_setup_command_seen_twice_runs_no_guest_code)
{
	if (!stub_exists())
		return;
	const int64_t want = (int64_t)address_of("syscall_at");
	mote__process_duplicate_setup_wake(true);
	for (int i = 0; i < 20; i++) {
		mote_sandbox *sb = open_hostile();
		CHECK(sb != NULL);
		if (!sb)
			break;
		int rc = -1;
		CHECK_EQ_U64((uint64_t)call_i64(sb, "syscall_at", NULL, 0, &rc), (uint64_t)want);
		CHECK_EQ_INT(rc, 0);
		if (rc)
			printf("  start %d: %s\n", i, mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		if (rc)
			break;
	}
	mote__process_duplicate_setup_wake(false);
}

TEST(system_call_instruction)
{
	/* KVM: EFER.SCE is clear, so `syscall` is #UD; the process backend's
	 * seccomp filter refuses it and reports the same. */
	char want[96];
	snprintf(want, sizeof(want), "guest exception #UD (invalid opcode) at rip 0x%llx",
		 (unsigned long long)address_of("syscall_at"));
	expect_clean_failure("do_syscall", NULL, 0, -MOTE_EEXCEPTION, want, NULL);
}

TEST(int80_system_call)
{
	/* No gate 0x80 in the IDT: a CPU exception at the instruction. Which
	 * one depends on who plays the CPU: hardware raises #GP with error
	 * code 0x402 (and so does the process backend), QEMU's TCG 0x802,
	 * kvm-pvm #UD. */
	char want[64];
	snprintf(want, sizeof(want), "at rip 0x%llx", (unsigned long long)address_of("int80_at"));
	expect_clean_failure("do_int80", NULL, 0, -MOTE_EEXCEPTION, "guest exception #", want);
	if (on_process_backend())
		expect_clean_failure("do_int80", NULL, 0, -MOTE_EEXCEPTION,
				     "#GP (general protection)", "(error code 0x402)");
}

TEST(sysenter_instruction)
{
	expect_clean_failure("do_sysenter", NULL, 0, -MOTE_EEXCEPTION, "guest exception #UD", NULL);
}

TEST(jump_into_stub_for_a_system_call)
{
	/* With the stub's own `syscall` instruction, the address check passes,
	 * but the filter's argument checks do not: mmap over guest RAM, close
	 * of the userfaultfd (it would end write tracking), write to stdout,
	 * madvise other than MADV_DONTNEED in guest memory. The stub dies
	 * rather than let them run: SIGSYS in its own code makes it exit with
	 * 128 + 31 = 159. (stub_drops_only_guest_pages shows what an allowed
	 * one gives back.) Under KVM the address is not mapped at all. */
	static const uint64_t calls[][4] = {
	    {9, 0x200000, 4096, 3},           /* mmap(image, 4096, RW) */
	    {3, 999, 0, 0},                   /* close(999): the userfaultfd */
	    {3, 998, 0, 0},                   /* close(998): the socket */
	    {1, 1, 0x200000, 16},             /* write(1, ...) */
	    {39, 0, 0, 0},                    /* getpid */
	    {28, 0x200000, 4096, 9},          /* madvise(image, MADV_REMOVE) */
	    {28, 0x7e0000400000ull, 4096, 4}, /* madvise(mailbox, MADV_DONTNEED) */
	    {28, 0x200000, 1ull << 32, 4},    /* madvise(4 GiB from the image, ...) */
	};
	bool process = on_process_backend();
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		mote_value a[4] = {mote_u64(calls[i][0]), mote_u64(calls[i][1]),
				   mote_u64(calls[i][2]), mote_u64(calls[i][3])};
		if (process)
			expect_clean_failure("stub_gadget", a, 4, -MOTE_EPROTOCOL,
					     "unexpected exit: the guest's process died (exit status 159)",
					     NULL);
		else
			expect_clean_failure("stub_gadget", a, 4, -MOTE_EFAULT,
					     "read at 0x7e0000001000 (page not mapped", NULL);
	}
}

TEST(stub_drops_only_guest_pages)
{
	/* Restores have the stub drop the pages the guest wrote
	 * (madvise(MADV_DONTNEED) in guest memory), so the filter lets the
	 * guest's jump into the stub do so too: through a `syscall; ret`, the
	 * call comes back with 0. It only returns the guest's own page to what
	 * its last restore left, and restores stay exact. */
	if (!stub_exists())
		return;
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	REQUIRE(mote_sandbox_restore(sb, snap) == 0); /* now backed by the snapshot */
	int rc;
	const uint64_t data = (uint64_t)call_i64(sb, "data_addr", NULL, 0, &rc);
	mote_value at = mote_u64(data);
	const int64_t before = call_i64(sb, "read_addr", &at, 1, &rc);
	mote_value poke[2] = {mote_u64(data), mote_u32((uint32_t)(before + 1) & 0xff)};
	CHECK_EQ_INT(mote_sandbox_call(sb, "poke", poke, 2, NULL), 0);
	CHECK(call_i64(sb, "read_addr", &at, 1, &rc) != before);
	mote_value drop[4] = {mote_u64(28), mote_u64(data & ~4095ull), mote_u64(4096), mote_u64(4)};
	CHECK_EQ_INT(call_i64(sb, "stub_gadget_ret", drop, 4, &rc), 0);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_U64(call_i64(sb, "read_addr", &at, 1, &rc), before);
	/* Anything else through the same gadget is refused. */
	mote_value other[4] = {mote_u64(28), mote_u64(data & ~4095ull), mote_u64(4096),
	                       mote_u64(9)}; /* MADV_REMOVE */
	CHECK_EQ_INT(mote_sandbox_call(sb, "stub_gadget_ret", other, 4, NULL), -MOTE_EPROTOCOL);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "the guest's process died (exit status 159)");
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	CHECK_EQ_U64(call_i64(sb, "read_addr", &at, 1, &rc), before);
	mote_value args[2] = {mote_i32(2), mote_i32(3)};
	CHECK_EQ_INT(call_i64(sb, "add", args, 2, &rc), 5);
	CHECK_EQ_INT(rc, 0);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

TEST(stub_setup_code_is_gone)
{
	/* The stub's setup code may make any system call (the filter goes in
	 * while it is a spare), so its page is unmapped before the guest's
	 * first instruction: nothing there to jump to. Under KVM the address
	 * is outside guest memory: the same error. */
	mote_value a[1] = {mote_u64(0x7e0000000000ull)};
	expect_clean_failure("read_addr", a, 1, -MOTE_EFAULT,
			     "read at 0x7e0000000000 (page not mapped", NULL);
	expect_clean_failure("exec_addr", a, 1, -MOTE_EFAULT,
			     "0x7e0000000000 (page not mapped", NULL);
}

TEST(write_to_stub_code)
{
	mote_value a[2] = {mote_u64(0x7e0000000010ull), mote_u32(0xcc)};
	if (on_process_backend())
		/* Read-only: a page fault in the guest, like any read-only page. */
		expect_clean_failure("poke", a, 2, -MOTE_EFAULT,
				     "memory access violation: write at 0x7e0000000010", NULL);
	else
		expect_clean_failure("poke", a, 2, -MOTE_EFAULT,
				     "write at 0x7e0000000010 (page not mapped", NULL);
}

/* The stub's writable pages (data, signal stack, stack), from a child's
 * /proc/PID/maps: the stub is one program, mapped alike in every child. */
static bool stub_data_range(uint64_t *lo, uint64_t *hi)
{
	mote__backend_quiesce();
	DIR *d = opendir("/proc");
	bool found = false;
	char path[64], line[512];
	for (int pid; !found && (pid = next_child(d));) {
		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long long a, b;
			char perms[8];
			/* The data page, then the zero-filled rest: adjacent. */
			if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3 || perms[1] != 'w' ||
			    a < 0x7e0000000000ull || b > 0x7e0000400000ull)
				continue;
			if (*hi && a != *hi)
				break;
			*lo = *hi ? *lo : a;
			*hi = b;
		}
		if (f)
			fclose(f);
		found = *hi != 0;
	}
	if (d)
		closedir(d);
	return found;
}

TEST(write_over_stub_stack_and_data)
{
	/* The guest can write the stub's data and stacks: it shares their
	 * address space. It harms only itself. The stub sets its stack anew at
	 * every exit, but its count of the host's commands lives there too: a
	 * guest that changes it makes the stub run on after its report, which
	 * the host sees as a broken protocol (poisoned; a restore starts the
	 * guest over). Which of the two a pattern gives depends on timing; the
	 * host is never harmed. Under KVM the addresses are outside guest
	 * memory. */
	if (!on_process_backend()) {
		mote_value a[3] = {mote_u64(0x7e0000002000ull), mote_u64(4096), mote_u32(0xcc)};
		expect_clean_failure("fill", a, 3, -MOTE_EFAULT,
				     "write at 0x7e0000002000 (page not mapped", NULL);
		return;
	}
	mote_sandbox *warm = open_hostile();
	mote_sandbox_free(warm);
	int fds = count_fds(), kids = count_children(), maps = count_mappings();
	uint64_t lo = 0, hi = 0;
	REQUIRE(stub_data_range(&lo, &hi));
	CHECK(hi - lo >= 65536); /* the stack is in it */
	static const uint32_t patterns[] = {0xcc, 0x00, 0xff};
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		mote_sandbox *sb = open_hostile();
		REQUIRE(sb);
		mote_snapshot *before;
		REQUIRE(mote_sandbox_snapshot(sb, &before) == 0);
		mote_value a[3] = {mote_u64(lo), mote_u64(hi - lo), mote_u32(patterns[i])};
		mote_value args[2] = {mote_i32(40), mote_i32(2)}, r = {0};
		int rc = mote_sandbox_call(sb, "fill", a, 3, NULL);
		if (!rc)
			rc = mote_sandbox_call(sb, "add", args, 2, &r);
		if (rc == 0) {
			CHECK_EQ_INT(r.v.i32, 42);
			CHECK(!mote_sandbox_poisoned(sb));
		} else {
			if (rc != -MOTE_EPROTOCOL && rc != -MOTE_EPOISONED)
				TEST_FAILF("fill 0x%x over the stub's data: rc %d (%s)", patterns[i],
					   rc, mote_sandbox_last_error(sb));
			CHECK(mote_sandbox_poisoned(sb));
			CHECK_EQ_INT(mote_sandbox_restore(sb, before), 0);
			r.v.i32 = 0;
			CHECK_EQ_INT(mote_sandbox_call(sb, "add", args, 2, &r), 0);
			CHECK_EQ_INT(r.v.i32, 42);
		}
		mote_snapshot_free(before);
		mote_sandbox_free(sb);
	}
	check_nothing_left(fds, kids, maps);
}

TEST(forged_mailbox_report)
{
	/* The guest posts "exit" in the mailbox itself and runs on. The host
	 * notices at its next step that the guest used the CPU while it was
	 * said to be parked, stops it, and the sandbox is poisoned. */
	if (!on_process_backend()) {
		mote_value a[2] = {mote_u64(0x7e0000400014ull), mote_u32(3)};
		expect_clean_failure("poke", a, 2, -MOTE_EFAULT, "page not mapped", NULL);
		return;
	}
	mote_sandbox *warm = open_hostile();
	mote_sandbox_free(warm);
	int fds = count_fds(), kids = count_children(), maps = count_mappings();
	mote_sandbox *sb = open_hostile();
	REQUIRE(sb);
	mote_snapshot *before;
	REQUIRE(mote_sandbox_snapshot(sb, &before) == 0);
	/* Whatever the forged exit makes of this call, the next one fails. */
	mote_sandbox_call(sb, "forge_report", NULL, 0, NULL);
	usleep(20000);
	mote_value args[2] = {mote_i32(1), mote_i32(2)};
	int rc = mote_sandbox_call(sb, "add", args, 2, NULL);
	if (rc != -MOTE_EPROTOCOL && rc != -MOTE_EPOISONED)
		TEST_FAILF("call after a forged report: rc %d (%s)", rc, mote_sandbox_last_error(sb));
	CHECK(mote_sandbox_poisoned(sb));
	/* Its process is gone; a restore starts the guest over. */
	CHECK_EQ_INT(mote_sandbox_restore(sb, before), 0);
	check_alive(sb);
	mote_snapshot_free(before);
	mote_sandbox_free(sb);
	check_nothing_left(fds, kids, maps);
}

TEST_MAIN()
