/* Snapshots, on each backend: exact restore of memory and CPU state, poison
 * clearing, sharing one snapshot between sandboxes, host-function
 * requirements, and the file round trip. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/snapshot.h"
#include "mote.h"
#include "test.h"

#define SNAP_GUEST MOTE_BUILD_DIR "/guests/snap.elf"

static int host_tag(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
		    mote_value *result)
{
	(void)sb;
	(void)args;
	(void)nargs;
	result->v.i32 = *(int *)user;
	return 0;
}

static int tag_value = 77;

static mote_host_functions *tag_functions(mote_type ret)
{
	mote_host_functions *fns;
	if (mote_host_functions_new(&fns))
		return NULL;
	if (mote_host_functions_add(fns, "host_tag", ret, NULL, 0, host_tag, &tag_value)) {
		mote_host_functions_free(fns);
		return NULL;
	}
	return fns;
}

static mote_sandbox *new_snap_guest(uint64_t heap, const mote_host_functions *fns)
{
	mote_config *cfg;
	mote_sandbox *sb = NULL;
	if (mote_config_new(&cfg))
		return NULL;
	mote_config_set_heap_size(cfg, heap);
	int rc = mote_sandbox_new(SNAP_GUEST, cfg, fns, &sb);
	if (rc)
		TEST_FAILF("mote_sandbox_new: %s: %s", mote_strerror(rc), mote_last_error());
	mote_config_free(cfg);
	return sb;
}

static int64_t call_i(mote_sandbox *sb, const char *fn, uint32_t a, uint32_t b, uint32_t c)
{
	mote_value args[3] = {mote_u32(a), mote_u32(b), mote_u32(c)}, r;
	size_t n = !strcmp(fn, "write_pattern") ? 3 : !strcmp(fn, "checksum") ? 2 : 0;
	int rc = mote_sandbox_call(sb, fn, args, n, &r);
	if (rc) {
		TEST_FAILF("%s: %s: %s", fn, mote_strerror(rc), mote_sandbox_last_error(sb));
		return -1;
	}
	switch (r.type) {
	case MOTE_I32:
		return r.v.i32;
	case MOTE_U32:
		return r.v.u32;
	default:
		return (int64_t)r.v.u64;
	}
}

/* All guest memory, and the registers, as they are now. */
struct image {
	uint8_t *mem;
	uint64_t size;
	struct mote_cpu_state regs;
};

static int capture(mote_sandbox *sb, struct image *img)
{
	uint64_t size;
	mote__sandbox_guest_memory(sb, &size);
	img->mem = malloc(size);
	if (!img->mem || mote__sandbox_read_memory(sb, 0, img->mem, size))
		return -1;
	img->size = size;
	if (mote_sandbox_settle(sb) || sb->be->get_state(sb, &img->regs))
		return -1;
	return 0;
}

/* Compare everything a guest could observe. */
static void check_same(const struct image *a, const struct image *b)
{
	if (a->size != b->size) {
		TEST_FAILF("memory sizes differ");
		return;
	}
	size_t diffs = 0, first = 0;
	for (size_t off = 0; off < a->size; off += 4096) {
		if (memcmp(a->mem + off, b->mem + off, 4096)) {
			if (!diffs)
				first = off;
			diffs++;
		}
	}
	if (diffs)
		TEST_FAILF("%zu pages differ, first at 0x%zx", diffs, first);
	const struct mote_cpu_state *x = &a->regs, *y = &b->regs;
	if (memcmp(x->gpr, y->gpr, sizeof(x->gpr)))
		TEST_FAILF("general registers differ");
	if (x->rip != y->rip || x->rflags != y->rflags)
		TEST_FAILF("rip/rflags differ: 0x%llx/0x%llx vs 0x%llx/0x%llx",
			   (unsigned long long)x->rip, (unsigned long long)x->rflags,
			   (unsigned long long)y->rip, (unsigned long long)y->rflags);
	if (x->fs_base != y->fs_base || x->gs_base != y->gs_base)
		TEST_FAILF("fs/gs base differ");
	/* The FXSAVE area: control words, MXCSR and the xmm registers. */
	if (memcmp(x->fxsave, y->fxsave, 2) || memcmp(x->fxsave + 24, y->fxsave + 24, 4) ||
	    memcmp(x->fxsave + 160, y->fxsave + 160, 256))
		TEST_FAILF("FPU/SSE state differs");
}

TEST(restore_is_exact)
{
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "write_pattern", 0, 8, 1);
	call_i(sb, "bump", 0, 0, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	struct image before, after;
	REQUIRE(capture(sb, &before) == 0);
	uint64_t sum = (uint64_t)call_i(sb, "checksum", 0, 8, 0);

	/* Scribble over state, memory and SSE registers, then restore. */
	call_i(sb, "write_pattern", 0, 200, 9);
	for (int i = 0; i < 3; i++)
		call_i(sb, "bump", 0, 0, 0);
	mote_value x = mote_f64(3.25), r;
	CHECK_EQ_INT(mote_sandbox_call(sb, "scale", &x, 1, &r), 0);
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	REQUIRE(capture(sb, &after) == 0);
	check_same(&before, &after);

	/* And it runs on from there. */
	CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 2);
	CHECK_EQ_U64(call_i(sb, "checksum", 0, 8, 0), sum);
	free(before.mem);
	free(after.mem);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

TEST(restore_repeatedly)
{
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	int64_t pristine = call_i(sb, "checksum", 0, 30, 0);
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	for (int round = 0; round < 20; round++) {
		CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 1);
		call_i(sb, "write_pattern", (uint32_t)round, 3, (uint32_t)round);
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	}
	CHECK_EQ_U64(call_i(sb, "checksum", 0, 30, 0), pristine);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

TEST(restore_clears_poison)
{
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "bump", 0, 0, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "crash", NULL, 0, NULL), -MOTE_EFAULT);
	CHECK(mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(mote_sandbox_call(sb, "bump", NULL, 0, NULL), -MOTE_EPOISONED);
	mote_snapshot *refused;
	CHECK_EQ_INT(mote_sandbox_snapshot(sb, &refused), -MOTE_EPOISONED);
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	CHECK(!mote_sandbox_poisoned(sb));
	CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 2);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

TEST(restore_after_timeout)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_timeout_us(cfg, 100000);
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, cfg, NULL, &sb) == 0);
	call_i(sb, "bump", 0, 0, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	for (int round = 0; round < 3; round++) {
		CHECK_EQ_INT(mote_sandbox_call(sb, "spin", NULL, 0, NULL), -MOTE_ETIMEDOUT);
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
		CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 2);
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	}
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

TEST(lazily_added_memory)
{
	/* A 256 MiB heap: the far pages join the VM on first touch, whatever
	 * instruction touches them, and snapshots and restores cover them. */
	mote_sandbox *sb = new_snap_guest(256 << 20, NULL);
	REQUIRE(sb);
	mote_value stride = mote_u32(10000), r;
	const uint64_t expect = 0x1111222233334444ull + 6 + 7 + 9 + 0 + 0;
	CHECK_EQ_INT(mote_sandbox_call(sb, "touch_kinds", &stride, 1, &r), 0);
	CHECK_EQ_U64(r.v.u64, expect);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "touch_kinds", &stride, 1, &r), 0);
	CHECK_EQ_U64(r.v.u64, expect + 9); /* the atomic add accumulates */
	CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
	mote_sandbox *copy;
	REQUIRE(mote_sandbox_from_snapshot(snap, NULL, NULL, &copy) == 0);
	CHECK_EQ_INT(mote_sandbox_call(copy, "touch_kinds", &stride, 1, &r), 0);
	CHECK_EQ_U64(r.v.u64, expect + 9);
	CHECK_EQ_INT(mote_sandbox_call(sb, "touch_kinds", &stride, 1, &r), 0);
	CHECK_EQ_U64(r.v.u64, expect + 9);
	mote_sandbox_free(copy);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

TEST(unchanged_snapshot_is_reused)
{
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	mote_snapshot *a, *b, *c;
	REQUIRE(mote_sandbox_snapshot(sb, &a) == 0);
	REQUIRE(mote_sandbox_snapshot(sb, &b) == 0);
	CHECK(a == b);
	call_i(sb, "bump", 0, 0, 0);
	REQUIRE(mote_sandbox_snapshot(sb, &c) == 0);
	CHECK(c != a);
	mote_snapshot_free(a);
	mote_snapshot_free(b);
	mote_snapshot_free(c);
	mote_sandbox_free(sb);
}

TEST(restore_to_another_snapshot)
{
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	mote_snapshot *s1, *s2;
	call_i(sb, "write_pattern", 0, 4, 1);
	REQUIRE(mote_sandbox_snapshot(sb, &s1) == 0);
	uint64_t sum1 = (uint64_t)call_i(sb, "checksum", 0, 10, 0);
	call_i(sb, "write_pattern", 2, 8, 2);
	call_i(sb, "bump", 0, 0, 0);
	REQUIRE(mote_sandbox_snapshot(sb, &s2) == 0);
	uint64_t sum2 = (uint64_t)call_i(sb, "checksum", 0, 10, 0);
	CHECK(sum1 != sum2);
	call_i(sb, "write_pattern", 0, 10, 3);
	CHECK_EQ_INT(mote_sandbox_restore(sb, s1), 0);
	CHECK_EQ_U64(call_i(sb, "checksum", 0, 10, 0), sum1);
	CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 1);
	CHECK_EQ_INT(mote_sandbox_restore(sb, s2), 0);
	CHECK_EQ_U64(call_i(sb, "checksum", 0, 10, 0), sum2);
	CHECK_EQ_INT(call_i(sb, "bump", 0, 0, 0), 2);
	mote_snapshot_free(s1);
	mote_snapshot_free(s2);
	mote_sandbox_free(sb);
}

TEST(restore_refuses_other_layout)
{
	mote_sandbox *small = new_snap_guest(1 << 20, NULL);
	mote_sandbox *big = new_snap_guest(8 << 20, NULL);
	REQUIRE(small && big);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(big, &snap) == 0);
	CHECK_EQ_INT(mote_sandbox_restore(small, snap), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_sandbox_last_error(small), "layout");
	CHECK_EQ_INT(call_i(small, "bump", 0, 0, 0), 1);
	mote_snapshot_free(snap);
	mote_sandbox_free(small);
	mote_sandbox_free(big);
}

TEST(many_sandboxes_from_one_snapshot)
{
	mote_sandbox *origin = new_snap_guest(1 << 20, NULL);
	REQUIRE(origin);
	call_i(origin, "write_pattern", 0, 16, 5);
	call_i(origin, "bump", 0, 0, 0);
	uint64_t sum = (uint64_t)call_i(origin, "checksum", 0, 16, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(origin, &snap) == 0);
	mote_sandbox_free(origin); /* the snapshot outlives its sandbox */

	mote_sandbox *sbs[8];
	for (int i = 0; i < 8; i++) {
		int rc = mote_sandbox_from_snapshot(snap, NULL, NULL, &sbs[i]);
		CHECK_EQ_INT(rc, 0);
		if (rc)
			sbs[i] = NULL;
	}
	for (int i = 0; i < 8; i++) {
		if (!sbs[i])
			continue;
		/* Each starts where the snapshot was and diverges privately. */
		CHECK_EQ_U64(call_i(sbs[i], "checksum", 0, 16, 0), sum);
		CHECK_EQ_INT(call_i(sbs[i], "bump", 0, 0, 0), 2);
		call_i(sbs[i], "write_pattern", 0, 4, (uint32_t)i + 100);
	}
	for (int i = 0; i < 8; i++) {
		if (!sbs[i])
			continue;
		CHECK(call_i(sbs[i], "checksum", 0, 16, 0) != (int64_t)sum);
		CHECK_EQ_INT(mote_sandbox_restore(sbs[i], snap), 0);
		CHECK_EQ_U64(call_i(sbs[i], "checksum", 0, 16, 0), sum);
		CHECK_EQ_INT(call_i(sbs[i], "bump", 0, 0, 0), 2);
		mote_sandbox_free(sbs[i]);
	}
	mote_snapshot_free(snap);
}

TEST(snapshot_requires_host_functions)
{
	mote_host_functions *fns = tag_functions(MOTE_I32);
	REQUIRE(fns);
	mote_sandbox *sb = new_snap_guest(1 << 20, fns);
	REQUIRE(sb);
	CHECK_EQ_INT(call_i(sb, "tag", 0, 0, 0), 77);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	mote_sandbox *copy = NULL;
	CHECK_EQ_INT(mote_sandbox_from_snapshot(snap, NULL, NULL, &copy), -MOTE_ENOFUNC);
	CHECK_CONTAINS(mote_last_error(), "'i32 host_tag()' missing");
	CHECK(copy == NULL);
	mote_host_functions *wrong = tag_functions(MOTE_I64);
	CHECK_EQ_INT(mote_sandbox_from_snapshot(snap, wrong, NULL, &copy), -MOTE_ESIGNATURE);
	CHECK_CONTAINS(mote_last_error(), "registered as 'i64 host_tag()'");
	CHECK_EQ_INT(mote_sandbox_from_snapshot(snap, fns, NULL, &copy), 0);
	if (copy) {
		tag_value = 78;
		CHECK_EQ_INT(call_i(copy, "tag", 0, 0, 0), 78);
		mote_sandbox_free(copy);
	}
	tag_value = 77;
	mote_host_functions_free(wrong);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_host_functions_free(fns);
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char path[128];
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/mote-test-XXXXXX");
		if (!mkdtemp(tmpdir))
			return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

TEST(file_roundtrip_is_exact)
{
	mote_sandbox *sb = new_snap_guest(2 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "write_pattern", 3, 40, 7);
	call_i(sb, "bump", 0, 0, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	struct image before, after;
	REQUIRE(capture(sb, &before) == 0);
	const char *path = tmp_path("exact.snap");
	REQUIRE(path);
	CHECK_EQ_INT(mote_snapshot_save(snap, path, 0), 0);

	const unsigned modes[] = {0, MOTE_SNAPSHOT_VERIFY_HEADER, MOTE_SNAPSHOT_NO_CACHE};
	for (size_t m = 0; m < 3; m++) {
		mote_snapshot *opened;
		int rc = mote_snapshot_open(path, modes[m], &opened);
		CHECK_EQ_INT(rc, 0);
		if (rc) {
			TEST_FAILF("open: %s", mote_last_error());
			continue;
		}
		CHECK_EQ_INT(mote_snapshot_function_count(opened), mote_sandbox_function_count(sb));
		mote_sandbox *copy;
		REQUIRE(mote_sandbox_from_snapshot(opened, NULL, NULL, &copy) == 0);
		REQUIRE(capture(copy, &after) == 0);
		check_same(&before, &after);
		free(after.mem);
		CHECK_EQ_INT(call_i(copy, "bump", 0, 0, 0), 2);
		CHECK_EQ_INT(mote_sandbox_restore(copy, opened), 0);
		CHECK_EQ_INT(call_i(copy, "bump", 0, 0, 0), 2);
		mote_sandbox_free(copy);
		mote_snapshot_free(opened);
	}
	free(before.mem);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

/* Scribble, restore, compare everything, a few rounds: in place, each
 * restore puts back only the pages written since the last (the process
 * backend drops the guest's copies of them, so what backs them must be the
 * snapshot's: the first restore after a snapshot of a running guest starts
 * it over from the snapshot instead). */
/* Save `snap` as `name`, open the file and start a sandbox from it; NULL
 * (the test failed) on any error. */
static mote_sandbox *start_from_saved(mote_snapshot *snap, const char *name, mote_snapshot **opened)
{
	const char *path = tmp_path(name);
	mote_sandbox *sb = NULL;
	*opened = NULL;
	int rc = path ? mote_snapshot_save(snap, path, 0) : -MOTE_ENOMEM;
	if (!rc)
		rc = mote_snapshot_open(path, 0, opened);
	if (!rc)
		rc = mote_sandbox_from_snapshot(*opened, NULL, NULL, &sb);
	if (rc)
		TEST_FAILF("start from %s: %s: %s", name, mote_strerror(rc), mote_last_error());
	return sb;
}

static void check_restores_exact(mote_sandbox *sb, mote_snapshot *snap, const struct image *want)
{
	for (uint32_t round = 0; round < 4; round++) {
		call_i(sb, "write_pattern", round * 5, 40 + round, 9 + round);
		for (int i = 0; i <= (int)round; i++)
			call_i(sb, "bump", 0, 0, 0);
		mote_value x = mote_f64(1.5 + round), r;
		CHECK_EQ_INT(mote_sandbox_call(sb, "scale", &x, 1, &r), 0);
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
		struct image got;
		if (capture(sb, &got)) {
			TEST_FAILF("capture after round %u", round);
			return;
		}
		check_same(want, &got);
		free(got.mem);
	}
}

TEST(restores_in_place_are_exact)
{
	mote_sandbox *sb = new_snap_guest(2 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "write_pattern", 0, 12, 1);
	call_i(sb, "bump", 0, 0, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	struct image want;
	REQUIRE(capture(sb, &want) == 0);
	check_restores_exact(sb, snap, &want);

	/* Started from the snapshot's file, every restore is in place. */
	mote_snapshot *opened;
	mote_sandbox *copy = start_from_saved(snap, "in-place.snap", &opened);
	REQUIRE(copy);
	check_restores_exact(copy, opened, &want);
	/* The process backend's first restores try both of its ways of
	 * putting pages back (process.c, proc_reset): both were exact. (With
	 * soft-dirty bits it has one way only.) */
	if (mote__process_pid(copy) >= 0 && mote_process_tracking() == MOTE_TRACK_USERFAULTFD) {
		CHECK_EQ_INT(mote__process_restores(copy, 0), 2);
		CHECK_EQ_INT(mote__process_restores(copy, 1), 2);
	}

	/* And a layer over it: written pages over the file's. */
	call_i(copy, "write_pattern", 7, 20, 3);
	mote_snapshot *layer;
	REQUIRE(mote_sandbox_snapshot(copy, &layer) == 0);
	struct image want_layer;
	REQUIRE(capture(copy, &want_layer) == 0);
	check_restores_exact(copy, layer, &want_layer);
	free(want_layer.mem);
	mote_snapshot_free(layer);
	mote_sandbox_free(copy);
	mote_snapshot_free(opened);
	free(want.mem);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

/* Restores that write pages back leave the pages every call writes
 * unprotected (process.c, choose_hot): still exact, when a page joins
 * them, while it stays, and after the guest stops writing it. */
TEST(restores_that_keep_pages_unprotected_are_exact)
{
	mote_sandbox *sb = new_snap_guest(2 << 20, NULL);
	REQUIRE(sb);
	if (mote__process_pid(sb) < 0 || mote_process_tracking() != MOTE_TRACK_USERFAULTFD) {
		TEST_SKIP("the process backend with userfaultfd tracking only");
		mote_sandbox_free(sb);
		return;
	}
	call_i(sb, "write_pattern", 0, 12, 1);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	struct image want;
	REQUIRE(capture(sb, &want) == 0);
	mote__process_force_restore_way(1);
	unsigned most = 0;
	for (uint32_t round = 0; round < 12; round++) {
		call_i(sb, "write_pattern", 20, 3, 7 + round);
		if (round < 6)
			call_i(sb, "write_pattern", 40, 2, 3 + round);
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
		unsigned hot = mote__process_hot_pages(sb);
		most = hot > most ? hot : most;
		struct image got;
		if (capture(sb, &got)) {
			TEST_FAILF("capture after round %u", round);
			break;
		}
		check_same(&want, &got);
		free(got.mem);
	}
	mote__process_force_restore_way(-1);
	/* Pages 20-22 and 40-41, and the stack's: written every round. */
	CHECK(most >= 5);
	CHECK(mote__process_hot_pages(sb) < most);
	free(want.mem);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

/* The guest's checksum of pages [first, first + count) as write_pattern
 * left them with `seed` (seed 0: pages never written, all zeros). */
static uint64_t pattern_sum(uint32_t first, uint32_t count, uint32_t seed)
{
	uint64_t sum = 0;
	for (uint32_t p = first; p < first + count; p++)
		for (uint32_t i = 0; i < 1024; i++)
			sum += (seed ? seed * 2654435761u + p * 40503u + i : 0) ^ i;
	return sum;
}

static uint64_t guest_sum(mote_sandbox *sb, uint32_t first, uint32_t count)
{
	mote_value args[2] = {mote_u32(first), mote_u32(count)}, v;
	int rc = mote_sandbox_call(sb, "checksum", args, 2, &v);
	if (rc) {
		TEST_FAILF("checksum: %s: %s", mote_strerror(rc), mote_last_error());
		return 0;
	}
	return v.v.u64;
}

/* Pages first touched after the snapshot, far apart in a large heap (on
 * the process backend such memory joins write tracking only when touched),
 * read as zeros again after every restore, as the guest sees them; so do
 * pages written and then only read. */
static void check_fresh_pages_restored(mote_sandbox *sb, mote_snapshot *snap, uint32_t npages)
{
	for (uint32_t round = 0; round < 3; round++) {
		uint32_t mid = npages / 2 + round * 700, top = npages - 9 - round;
		call_i(sb, "write_pattern", mid, 9, 5 + round);
		call_i(sb, "write_pattern", top, 9, 6 + round);
		CHECK_EQ_U64(guest_sum(sb, mid, 9), pattern_sum(mid, 9, 5 + round));
		CHECK_EQ_U64(guest_sum(sb, npages / 4 + round, 3), pattern_sum(0, 3, 0));
		CHECK_EQ_INT(mote_sandbox_restore(sb, snap), 0);
		CHECK_EQ_U64(guest_sum(sb, 0, 4), pattern_sum(0, 4, 1));
		CHECK_EQ_U64(guest_sum(sb, mid, 9), pattern_sum(0, 9, 0));
		CHECK_EQ_U64(guest_sum(sb, top, 9), pattern_sum(0, 9, 0));
	}
}

/* A freed sandbox's view of guest memory is kept for the next one of its
 * size (sandbox.c, view_map): the next gets it, and none of the content. */
TEST(kept_memory_view_starts_empty)
{
	mote_sandbox *a = new_snap_guest(2 << 20, NULL);
	REQUIRE(a);
	call_i(a, "write_pattern", 0, 8, 5);
	CHECK_EQ_U64(guest_sum(a, 0, 8), pattern_sum(0, 8, 5));
	const uint8_t *was = ((struct mote_sandbox *)a)->mem;
	mote_sandbox_free(a);
	mote_sandbox *b = new_snap_guest(2 << 20, NULL);
	REQUIRE(b);
	CHECK(((struct mote_sandbox *)b)->mem == was);
	CHECK_EQ_U64(guest_sum(b, 0, 8), pattern_sum(0, 8, 0));
	mote_sandbox_free(b);
}

/* This process's address space, in bytes (VmSize). */
static uint64_t address_space_used(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kib = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kib << 10;
}

/* Kept views count against RLIMIT_AS; where a new one does not fit, they
 * are given back rather than the start failing. */
TEST(kept_memory_views_yield_to_an_address_space_limit)
{
#if defined(__SANITIZE_ADDRESS__)
	TEST_SKIP("ASan's own mappings move the address space used");
	return;
#endif
	mote_sandbox *big = new_snap_guest(1ull << 30, NULL);
	REQUIRE(big);
	mote_sandbox_free(big); /* its 1 GiB view is kept */
	struct rlimit old;
	REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
	struct rlimit tight = old;
	tight.rlim_cur = address_space_used() + (100ull << 20);
	REQUIRE(setrlimit(RLIMIT_AS, &tight) == 0);
	mote_sandbox *sb = new_snap_guest(256ull << 20, NULL);
	setrlimit(RLIMIT_AS, &old);
	CHECK(sb != NULL);
	if (sb) {
		call_i(sb, "write_pattern", 0, 4, 3);
		CHECK_EQ_U64(guest_sum(sb, 0, 4), pattern_sum(0, 4, 3));
	}
	mote_sandbox_free(sb);
}

TEST(fresh_memory_restores_exact)
{
	mote_sandbox *sb = new_snap_guest(48 << 20, NULL);
	REQUIRE(sb);
	uint32_t npages = (uint32_t)call_i(sb, "pages", 0, 0, 0);
	REQUIRE(npages > 10000);
	call_i(sb, "write_pattern", 0, 4, 1);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	check_fresh_pages_restored(sb, snap, npages);

	mote_snapshot *opened;
	mote_sandbox *copy = start_from_saved(snap, "fresh.snap", &opened);
	REQUIRE(copy);
	check_fresh_pages_restored(copy, opened, npages);
	mote_sandbox_free(copy);
	mote_snapshot_free(opened);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
}

/* The same where the host could not get the stub's userfaultfd (a ptrace
 * policy can refuse pidfd_getfd): the heap is then tracked from the start. */
TEST(fresh_memory_restores_exact_tracked_eagerly)
{
	mote__process_eager_heap(true);
	mote_sandbox *sb = new_snap_guest(48 << 20, NULL);
	if (sb && mote_sandbox_backend(sb) != MOTE_BACKEND_PROCESS) {
		TEST_SKIP("process backend only");
	} else if (sb) {
		uint32_t npages = (uint32_t)call_i(sb, "pages", 0, 0, 0);
		call_i(sb, "write_pattern", 0, 4, 1);
		mote_snapshot *snap;
		if (mote_sandbox_snapshot(sb, &snap) == 0) {
			check_fresh_pages_restored(sb, snap, npages);
			mote_snapshot_free(snap);
		} else {
			TEST_FAILF("snapshot: %s", mote_last_error());
		}
	}
	mote__process_eager_heap(false);
	mote_sandbox_free(sb);
}

/* Sandboxes started from one opened file restore (and save) it from
 * several threads at once: the snapshot's memory view, mapped at the first
 * use, is mapped once for all of them. */
struct restorer {
	mote_snapshot *snap;
	pthread_barrier_t *go;
	const char *save_to;
	uint64_t changed, restored;
	int rc;
};

static void *restore_in_thread(void *arg)
{
	struct restorer *r = arg;
	mote_sandbox *sb;
	mote_value args[3] = {mote_u32(3), mote_u32(40), mote_u32(99)}, v;
	r->rc = mote_sandbox_from_snapshot(r->snap, NULL, NULL, &sb);
	pthread_barrier_wait(r->go);
	if (r->rc)
		return NULL;
	if (!(r->rc = mote_sandbox_call(sb, "write_pattern", args, 3, &v)) &&
	    !(r->rc = mote_sandbox_call(sb, "checksum", args, 2, &v)))
		r->changed = v.v.u64;
	if (!r->rc && r->save_to)
		r->rc = mote_snapshot_save(r->snap, r->save_to, 0);
	if (!r->rc)
		r->rc = mote_sandbox_restore(sb, r->snap);
	if (!r->rc && !(r->rc = mote_sandbox_call(sb, "checksum", args, 2, &v)))
		r->restored = v.v.u64;
	mote_sandbox_free(sb);
	return NULL;
}

TEST(opened_file_restored_and_saved_from_several_threads)
{
	mote_sandbox *sb = new_snap_guest(2 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "write_pattern", 3, 40, 7);
	const uint64_t want = (uint64_t)call_i(sb, "checksum", 3, 40, 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	char path[128], again[128];
	snprintf(path, sizeof(path), "%s", tmp_path("threads.snap"));
	snprintf(again, sizeof(again), "%s", tmp_path("threads-again.snap"));
	CHECK_EQ_INT(mote_snapshot_save(snap, path, 0), 0);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);

	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(path, 0, &opened) == 0);
	enum { N = 4 };
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N);
	struct restorer r[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		r[i] = (struct restorer){opened, &go, i == 0 ? again : NULL, 0, 0, -1};
		REQUIRE(pthread_create(&t[i], NULL, restore_in_thread, &r[i]) == 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(r[i].rc, 0);
		CHECK(r[i].changed != want);
		CHECK_EQ_U64(r[i].restored, want);
	}
	pthread_barrier_destroy(&go);
	mote_snapshot_free(opened);
	/* What one of them saved starts with the same memory. */
	REQUIRE(mote_snapshot_open(again, 0, &opened) == 0);
	mote_sandbox *copy;
	REQUIRE(mote_sandbox_from_snapshot(opened, NULL, NULL, &copy) == 0);
	CHECK_EQ_U64((uint64_t)call_i(copy, "checksum", 3, 40, 0), want);
	mote_sandbox_free(copy);
	mote_snapshot_free(opened);
}

TEST(file_info_without_loading)
{
	mote_host_functions *fns = tag_functions(MOTE_I32);
	mote_sandbox *sb = new_snap_guest(1 << 20, fns);
	REQUIRE(sb);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	const char *path = tmp_path("info.snap");
	REQUIRE(mote_snapshot_save(snap, path, 0) == 0);
	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(path, &info) == 0);
	CHECK_EQ_INT(info.format_version, 2);
	CHECK_EQ_INT(info.abi_version, MOTE_ABI_VERSION);
	CHECK_EQ_STR(info.arch, "x86_64");
	CHECK_EQ_STR(info.hypervisor, mote_backend_name(mote_sandbox_backend(sb)));
	CHECK_EQ_U64(info.heap_size, 1 << 20);
	CHECK_EQ_INT(mote_snapshot_info_host_function_count(&info), 1);
	mote_function_info fi, live;
	REQUIRE(mote_snapshot_info_host_function(&info, 0, &fi) == 0);
	CHECK_EQ_STR(fi.name, "host_tag");
	CHECK_EQ_INT(mote_snapshot_info_function_count(&info), mote_sandbox_function_count(sb));
	for (size_t i = 0; i < mote_snapshot_info_function_count(&info); i++) {
		REQUIRE(mote_snapshot_info_function(&info, i, &fi) == 0);
		REQUIRE(mote_sandbox_function(sb, i, &live) == 0);
		CHECK_EQ_STR(fi.name, live.name);
		CHECK_EQ_INT(fi.nargs, live.nargs);
	}
	CHECK_EQ_INT(mote_snapshot_info_function(&info, 1000, &fi), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_last_error(), "index 1000, the snapshot has");
	CHECK_EQ_INT(strlen(info.header_hash), 64);
	CHECK(info.blob_size > 0 && info.blob_size % 4096 == 0);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == info.file_size);
	mote_snapshot_info_free(&info);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	mote_host_functions_free(fns);
}

TEST(open_refuses_bad_files)
{
	mote_snapshot *snap;
	CHECK_EQ_INT(mote_snapshot_open(tmp_path("missing.snap"), 0, &snap), -MOTE_EIO);
	/* A guest ELF is not a snapshot. */
	CHECK_EQ_INT(mote_snapshot_open(SNAP_GUEST, 0, &snap), -MOTE_EBADSNAP);
	CHECK_CONTAINS(mote_last_error(), "magic");
	CHECK_EQ_INT(mote_snapshot_open(tmp_path("x"), 99, &snap), -MOTE_EINVAL);

	/* A blob byte flipped: found by full verification, not by header-only. */
	mote_sandbox *sb = new_snap_guest(1 << 20, NULL);
	REQUIRE(sb);
	call_i(sb, "write_pattern", 0, 4, 3);
	mote_snapshot *s;
	REQUIRE(mote_sandbox_snapshot(sb, &s) == 0);
	const char *path = tmp_path("flipped.snap");
	REQUIRE(mote_snapshot_save(s, path, 0) == 0);
	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(path, &info) == 0);
	uint64_t blob_off = info.file_size - 4096 - info.blob_size;
	mote_snapshot_info_free(&info);
	int fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	uint8_t byte;
	CHECK(pread(fd, &byte, 1, (off_t)blob_off + 100) == 1);
	byte ^= 0x40;
	CHECK(pwrite(fd, &byte, 1, (off_t)blob_off + 100) == 1);
	close(fd);
	CHECK_EQ_INT(mote_snapshot_open(path, MOTE_SNAPSHOT_NO_CACHE, &snap), -MOTE_EHASH);
	CHECK_CONTAINS(mote_last_error(), "hash");
	CHECK_EQ_INT(mote_snapshot_open(path, MOTE_SNAPSHOT_VERIFY_HEADER, &snap), 0);
	mote_snapshot_free(snap);
	mote_snapshot_free(s);
	mote_sandbox_free(sb);
}

TEST(cleanup_tmpdir)
{
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		CHECK_EQ_INT(system(cmd), 0);
	}
}

TEST_MAIN()
