/* Snapshot files move between backends: a file saved on one starts on the
 * other and gives the same results, in both directions.
 *
 * With both backends in this process, each direction is one test (where
 * /dev/kvm exists, and in the QEMU VM that tests KVM on machines without
 * it). Where a group runs only one, tests/run.sh hands files across instead: MOTE_PORTABLE_DIR holds files saved by the groups before
 * (from-BACKEND.snap and .expect, the answers the saving backend gave) and
 * MOTE_PORTABLE_OUT (default: the same) receives this backend's. A file
 * that is not there yet is a SKIP, never a pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mote.h"
#include "test.h"

#define SNAP_GUEST MOTE_BUILD_DIR "/guests/snap.elf"

static char dir[64];

static void cleanup_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static const char *path_of(const char *name)
{
	static char buf[160];
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/mote-portable.XXXXXX");
		if (!mkdtemp(dir))
			return NULL;
		atexit(cleanup_dir);
	}
	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static int64_t call3(mote_sandbox *sb, const char *fn, uint32_t a, uint32_t b, uint32_t c)
{
	mote_value args[3] = {mote_u32(a), mote_u32(b), mote_u32(c)}, r;
	size_t n = !strcmp(fn, "write_pattern") ? 3 : !strcmp(fn, "checksum") ? 2 : 0;
	int rc = mote_sandbox_call(sb, fn, args, n, &r);
	if (rc) {
		TEST_FAILF("%s on %s: %s: %s", fn, mote_backend_name(mote_sandbox_backend(sb)),
		           mote_strerror(rc), mote_sandbox_last_error(sb));
		return -1;
	}
	return r.type == MOTE_I32 ? r.v.i32 : r.type == MOTE_U32 ? r.v.u32 : (int64_t)r.v.u64;
}

static double scale(mote_sandbox *sb, double x)
{
	mote_value a = mote_f64(x), r;
	if (mote_sandbox_call(sb, "scale", &a, 1, &r)) {
		TEST_FAILF("scale: %s", mote_sandbox_last_error(sb));
		return -1;
	}
	return r.v.f64;
}

struct results {
	int64_t bump;
	uint64_t sum;
	double scaled;
};

/* What a sandbox at the snapshot's state answers next. */
static void probe(mote_sandbox *sb, struct results *r)
{
	r->bump = call3(sb, "bump", 0, 0, 0);
	r->sum = (uint64_t)call3(sb, "checksum", 0, 64, 0);
	r->scaled = scale(sb, 1.5);
}

static mote_config *config_for(mote_backend b)
{
	mote_config *cfg = NULL;
	if (mote_config_new(&cfg) == 0) {
		mote_config_set_heap_size(cfg, 4 << 20);
		mote_config_set_backend(cfg, b);
	}
	return cfg;
}

/* Save on `from`, start on `to`, compare with what `from` answers. */
static void move(mote_backend from, mote_backend to)
{
	const char *name = mote_backend_name(from);
	mote_config *cf = config_for(from), *ct = config_for(to);
	mote_sandbox *sb = NULL;
	REQUIRE(cf && ct);
	REQUIRE(mote_sandbox_new(SNAP_GUEST, cf, NULL, &sb) == 0);
	CHECK_EQ_INT(mote_sandbox_backend(sb), from);
	/* Memory, a counter and SSE state that the next calls depend on. */
	CHECK_EQ_INT(call3(sb, "write_pattern", 0, 64, 7), 64);
	call3(sb, "bump", 0, 0, 0);
	scale(sb, 3.25);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	char file[160];
	snprintf(file, sizeof(file), "%s", path_of(name));
	REQUIRE(mote_snapshot_save(snap, file, 0) == 0);
	struct results want, got;
	probe(sb, &want);
	CHECK_EQ_INT(want.bump, 2);

	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(file, &info) == 0);
	CHECK_EQ_STR(info.hypervisor, name);
	mote_snapshot_info_free(&info);

	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(file, MOTE_SNAPSHOT_NO_CACHE, &opened) == 0);
	mote_sandbox *there = NULL;
	int rc = mote_sandbox_from_snapshot(opened, NULL, ct, &there);
	if (rc)
		TEST_FAILF("starting a %s file on %s: %s", name, mote_backend_name(to),
		           mote_last_error());
	REQUIRE(rc == 0);
	CHECK_EQ_INT(mote_sandbox_backend(there), to);
	probe(there, &got);
	CHECK_EQ_INT(got.bump, want.bump);
	CHECK_EQ_U64(got.sum, want.sum);
	CHECK(got.scaled == want.scaled);
	/* And back: a restore to the file's state on the other backend. */
	REQUIRE(mote_sandbox_restore(there, opened) == 0);
	CHECK_EQ_INT(call3(there, "bump", 0, 0, 0), want.bump);

	mote_sandbox_free(there);
	mote_snapshot_free(opened);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_config_free(cf);
	mote_config_free(ct);
}

static bool both_backends(void)
{
	static const mote_backend all[] = {MOTE_BACKEND_KVM, MOTE_BACKEND_PROCESS};
	for (size_t i = 0; i < 2; i++) {
		if (mote_backend_check(all[i], NULL)) {
			TEST_SKIP("the %s backend is unavailable here: %s",
			          mote_backend_name(all[i]), mote_last_error());
			return false;
		}
	}
	return true;
}

/* ---- Files handed between groups of tests/run.sh ---- */
static mote_backend this_backend(void)
{
	mote_backend b = MOTE_BACKEND_AUTO;
	mote_backend_check(MOTE_BACKEND_AUTO, &b);
	return b;
}

static void handed_path(char *buf, size_t len, const char *in, mote_backend b, const char *ext)
{
	snprintf(buf, len, "%s/from-%s.%s", in, mote_backend_name(b), ext);
}

/* Save this backend's file for the other, with the answers it gives. */
TEST(file_saved_for_the_other_backend)
{
	const char *out = getenv("MOTE_PORTABLE_OUT");
	if (!out || !*out)
		out = getenv("MOTE_PORTABLE_DIR");
	if (!out || !*out ||
	    (mote_backend_check(MOTE_BACKEND_KVM, NULL) == 0 &&
	     mote_backend_check(MOTE_BACKEND_PROCESS, NULL) == 0)) {
		/* Nothing to hand over: see the tests below. */
		TEST_SKIP("%s",
		          out && *out ? "both backends run here" : "MOTE_PORTABLE_DIR not set");
		return;
	}
	mote_backend b = this_backend();
	mote_config *cfg = config_for(b);
	mote_sandbox *sb = NULL;
	REQUIRE(cfg && mote_sandbox_new(SNAP_GUEST, cfg, NULL, &sb) == 0);
	CHECK_EQ_INT(call3(sb, "write_pattern", 0, 64, 7), 64);
	call3(sb, "bump", 0, 0, 0);
	scale(sb, 3.25);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	char file[512], expect[512];
	handed_path(file, sizeof(file), out, b, "snap");
	handed_path(expect, sizeof(expect), out, b, "expect");
	REQUIRE(mote_snapshot_save(snap, file, 0) == 0);
	struct results want;
	probe(sb, &want);
	FILE *f = fopen(expect, "w");
	REQUIRE(f);
	fprintf(f, "%lld %llu %a\n", (long long)want.bump, (unsigned long long)want.sum,
	        want.scaled);
	fclose(f);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

/* Start the file the other backend saved, if it has yet. */
TEST(file_saved_by_the_other_backend_starts_here)
{
	const char *in = getenv("MOTE_PORTABLE_DIR");
	bool kvm = mote_backend_check(MOTE_BACKEND_KVM, NULL) == 0;
	bool process = mote_backend_check(MOTE_BACKEND_PROCESS, NULL) == 0;
	if (!in || !*in || (kvm && process)) {
		TEST_SKIP("%s", in && *in ? "both backends run here" : "MOTE_PORTABLE_DIR not set");
		return;
	}
	mote_backend here = this_backend();
	mote_backend other = here == MOTE_BACKEND_KVM ? MOTE_BACKEND_PROCESS : MOTE_BACKEND_KVM;
	char file[512], expect[512];
	handed_path(file, sizeof(file), in, other, "snap");
	handed_path(expect, sizeof(expect), in, other, "expect");
	FILE *f = fopen(expect, "r");
	if (!f || access(file, R_OK)) {
		if (f)
			fclose(f);
		TEST_SKIP("none saved by the %s backend yet", mote_backend_name(other));
		return;
	}
	long long bump;
	unsigned long long sum;
	double scaled;
	int got = fscanf(f, "%lld %llu %la", &bump, &sum, &scaled);
	fclose(f);
	REQUIRE(got == 3);
	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(file, &info) == 0);
	CHECK_EQ_STR(info.hypervisor, mote_backend_name(other));
	mote_snapshot_info_free(&info);
	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(file, MOTE_SNAPSHOT_NO_CACHE, &opened) == 0);
	mote_config *cfg = config_for(here);
	mote_sandbox *sb = NULL;
	int rc = mote_sandbox_from_snapshot(opened, NULL, cfg, &sb);
	if (rc)
		TEST_FAILF("starting a %s file on %s: %s", mote_backend_name(other),
		           mote_backend_name(here), mote_last_error());
	REQUIRE(rc == 0);
	struct results r;
	probe(sb, &r);
	CHECK_EQ_INT(r.bump, bump);
	CHECK_EQ_U64(r.sum, sum);
	CHECK(r.scaled == scaled);
	mote_sandbox_free(sb);
	mote_snapshot_free(opened);
	mote_config_free(cfg);
}

TEST(kvm_file_starts_on_process)
{
	if (both_backends())
		move(MOTE_BACKEND_KVM, MOTE_BACKEND_PROCESS);
}

TEST(process_file_starts_on_kvm)
{
	if (both_backends())
		move(MOTE_BACKEND_PROCESS, MOTE_BACKEND_KVM);
}

TEST_MAIN()
