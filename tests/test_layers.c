/* Layered snapshots: a snapshot of a sandbox started from snapshot S stores
 * only the pages that differ from S; layer files name their base by header
 * hash; chains round-trip exactly; a missing or changed base is refused. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/snapshot.h"
#include "mote.h"
#include "test.h"

#define SNAP_GUEST MOTE_BUILD_DIR "/guests/snap.elf"

static char dir[64];

static const char *path_of(const char *name)
{
	static char buf[4][160];
	static int k;
	if (!dir[0]) {
		strcpy(dir, "/tmp/mote-layers-XXXXXX");
		if (!mkdtemp(dir))
			return NULL;
	}
	char *p = buf[k++ % 4];
	snprintf(p, 160, "%s/%s", dir, name);
	return p;
}

static int write_pattern(mote_sandbox *sb, uint32_t first, uint32_t count, uint32_t seed)
{
	mote_value a[3] = {mote_u32(first), mote_u32(count), mote_u32(seed)};
	return mote_sandbox_call(sb, "write_pattern", a, 3, NULL);
}

/* Guest memory as the guest sees it (on the process backend it lives in
 * another process). */
static uint8_t *copy_memory(mote_sandbox *sb, uint64_t *size)
{
	mote__sandbox_guest_memory(sb, size);
	uint8_t *copy = malloc(*size);
	if (copy && mote__sandbox_read_memory(sb, 0, copy, *size)) {
		free(copy);
		copy = NULL;
	}
	return copy;
}

static void check_memory_equals(mote_sandbox *sb, const uint8_t *want, uint64_t size)
{
	uint64_t got_size;
	uint8_t *got = copy_memory(sb, &got_size);
	if (!got || got_size != size) {
		TEST_FAILF("memory size %llu, want %llu", (unsigned long long)got_size,
			   (unsigned long long)size);
		free(got);
		return;
	}
	size_t bad = 0;
	uint64_t first = 0;
	for (uint64_t off = 0; off < size; off += 4096)
		if (memcmp(got + off, want + off, 4096) && !bad++)
			first = off;
	if (bad)
		TEST_FAILF("%zu pages differ, first at 0x%llx", bad, (unsigned long long)first);
	free(got);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

TEST(in_memory_layer_stores_only_written_pages)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_heap_size(cfg, 8 << 20);
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, cfg, NULL, &sb) == 0);
	REQUIRE(write_pattern(sb, 0, 200, 1) == 0);
	mote_snapshot *base, *layer;
	REQUIRE(mote_sandbox_snapshot(sb, &base) == 0);
	CHECK_EQ_INT(base->depth, 0);
	REQUIRE(write_pattern(sb, 10, 5, 2) == 0);
	REQUIRE(mote_sandbox_snapshot(sb, &layer) == 0);
	CHECK_EQ_INT(layer->depth, 1);
	CHECK(layer->parent == base);
	size_t own = 0;
	for (size_t i = 0; i < layer->nregions; i++)
		own += layer->regions[i].size / 4096;
	/* 5 heap pages plus the pages of the call itself (stack, buffers). */
	if (own < 5 || own > 12)
		TEST_FAILF("layer stores %zu pages, expected 5 + a few", own);
	mote_snapshot_free(base);
	mote_snapshot_free(layer);
	mote_sandbox_free(sb);
	mote_config_free(cfg);
}

TEST(file_chain_roundtrips_exactly)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_heap_size(cfg, 8 << 20);
	const char *base_path = path_of("base.snap");
	char l1_path[160], l2_path[160];
	snprintf(l1_path, sizeof(l1_path), "%s", path_of("app.layer"));
	snprintf(l2_path, sizeof(l2_path), "%s", path_of("tenant.layer"));

	/* Runtime base. */
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, cfg, NULL, &sb) == 0);
	REQUIRE(write_pattern(sb, 0, 300, 1) == 0);
	mote_snapshot *s0;
	REQUIRE(mote_sandbox_snapshot(sb, &s0) == 0);
	REQUIRE(mote_snapshot_save(s0, base_path, 0) == 0);
	mote_sandbox_free(sb);

	/* Application layer over the opened base. */
	mote_snapshot *b;
	REQUIRE(mote_snapshot_open(base_path, 0, &b) == 0);
	mote_sandbox *app;
	REQUIRE(mote_sandbox_from_snapshot(b, NULL, NULL, &app) == 0);
	REQUIRE(write_pattern(app, 50, 16, 2) == 0);
	mote_snapshot *s1;
	REQUIRE(mote_sandbox_snapshot(app, &s1) == 0);
	REQUIRE(mote_snapshot_save(s1, l1_path, 0) == 0);
	/* Size proportional to the pages written, not to memory. */
	long l1_size = file_size(l1_path), base_size = file_size(base_path);
	CHECK(l1_size > 0 && l1_size <= 24 * 4096 + 64 * 1024);
	CHECK(base_size > 300 * 4096);

	/* Tenant layer over the application layer. */
	REQUIRE(write_pattern(app, 100, 3, 3) == 0);
	mote_value none;
	(void)none;
	REQUIRE(mote_sandbox_call(app, "bump", NULL, 0, NULL) == 0);
	mote_snapshot *s2;
	REQUIRE(mote_sandbox_snapshot(app, &s2) == 0);
	REQUIRE(mote_snapshot_save(s2, l2_path, 0) == 0);
	uint64_t size;
	uint8_t *expect = copy_memory(app, &size);
	REQUIRE(expect);
	mote_sandbox_free(app);
	mote_snapshot_free(s1);
	mote_snapshot_free(s2);
	mote_snapshot_free(s0);
	mote_snapshot_free(b);

	/* Open the tenant layer cold: the chain is found by path and hash. */
	mote_snapshot *t;
	int rc = mote_snapshot_open(l2_path, MOTE_SNAPSHOT_NO_CACHE, &t);
	CHECK_EQ_INT(rc, 0);
	if (rc) {
		TEST_FAILF("%s", mote_last_error());
		free(expect);
		mote_config_free(cfg);
		return;
	}
	CHECK_EQ_INT(t->depth, 2);
	mote_snapshot_info info;
	REQUIRE(mote_snapshot_info_read(l2_path, &info) == 0);
	CHECK(info.is_layer);
	CHECK_EQ_STR(info.parent_path, "app.layer");
	mote_snapshot_info_free(&info);
	mote_sandbox *again;
	REQUIRE(mote_sandbox_from_snapshot(t, NULL, NULL, &again) == 0);
	check_memory_equals(again, expect, size);
	mote_value r;
	CHECK_EQ_INT(mote_sandbox_call(again, "bump", NULL, 0, &r), 0);
	CHECK_EQ_INT(r.v.i32, 2);
	CHECK_EQ_INT(mote_sandbox_restore(again, t), 0);
	check_memory_equals(again, expect, size);
	mote_sandbox_free(again);
	mote_snapshot_free(t);
	free(expect);
	mote_config_free(cfg);
}

/* The writer merges runs of a layer's pages across small gaps; the pages in
 * such a gap are the base's and must keep the base's bytes in the file. */
TEST(layer_file_keeps_base_pages_inside_merged_regions)
{
	mote_config *cfg;
	REQUIRE(mote_config_new(&cfg) == 0);
	mote_config_set_heap_size(cfg, 8 << 20);
	const char *base_path = path_of("gap.snap");
	char layer_path[160];
	snprintf(layer_path, sizeof(layer_path), "%s", path_of("gap.layer"));
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, cfg, NULL, &sb) == 0);
	REQUIRE(write_pattern(sb, 0, 20, 1) == 0);
	mote_snapshot *base;
	REQUIRE(mote_sandbox_snapshot(sb, &base) == 0);
	REQUIRE(mote_snapshot_save(base, base_path, 0) == 0);
	/* Pages 3 and 6 change; 4 and 5, between them, keep the base's data. */
	REQUIRE(write_pattern(sb, 3, 1, 2) == 0);
	REQUIRE(write_pattern(sb, 6, 1, 3) == 0);
	mote_snapshot *layer;
	REQUIRE(mote_sandbox_snapshot(sb, &layer) == 0);
	REQUIRE(layer->parent == base);
	REQUIRE(mote_snapshot_save(layer, layer_path, 0) == 0);
	uint64_t size;
	uint8_t *expect = copy_memory(sb, &size);
	REQUIRE(expect);
	mote_value a[2] = {mote_u32(0), mote_u32(20)}, want, got;
	REQUIRE(mote_sandbox_call(sb, "checksum", a, 2, &want) == 0);
	size_t layer_regions = layer->nregions;
	mote_snapshot_free(layer);
	mote_snapshot_free(base);
	mote_sandbox_free(sb);

	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(layer_path, MOTE_SNAPSHOT_NO_CACHE, &opened) == 0);
	CHECK_EQ_INT(opened->depth, 1);
	/* The file did merge across the gap, or this test shows nothing. */
	CHECK(opened->nregions < layer_regions);
	mote_sandbox *again;
	REQUIRE(mote_sandbox_from_snapshot(opened, NULL, NULL, &again) == 0);
	check_memory_equals(again, expect, size);
	CHECK_EQ_INT(mote_sandbox_call(again, "checksum", a, 2, &got), 0);
	CHECK_EQ_U64(got.v.u64, want.v.u64);
	mote_sandbox_free(again);
	mote_snapshot_free(opened);
	free(expect);
	mote_config_free(cfg);
}

/* No guest mapping reaches the page tables, so no layer may hold them, even
 * where KVM's dirty log reports the CPU's page walks as writes (nested
 * paging: run this in the QEMU VM with `make test-vm`). */
TEST(page_tables_are_never_in_a_layer)
{
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, NULL, NULL, &sb) == 0);
	mote_snapshot *base, *layer;
	REQUIRE(mote_sandbox_snapshot(sb, &base) == 0);
	/* Calls walk every level: the image, stack, buffers and heap. */
	REQUIRE(write_pattern(sb, 0, 3, 4) == 0);
	mote_value r;
	REQUIRE(mote_sandbox_call(sb, "bump", NULL, 0, &r) == 0);
	REQUIRE(mote_sandbox_snapshot(sb, &layer) == 0);
	REQUIRE(layer->parent == base);
	for (size_t i = 0; i < layer->nregions; i++) {
		uint64_t lo = layer->regions[i].guest_addr, hi = lo + layer->regions[i].size;
		if (lo < MOTE_IMAGE_BASE && hi > MOTE_PGTABLE_ADDR)
			TEST_FAILF("layer region [0x%llx, 0x%llx) overlaps the page tables",
				   (unsigned long long)lo, (unsigned long long)hi);
	}
	/* Restoring copies back what the guest wrote, and nothing else. */
	CHECK_EQ_INT(mote_sandbox_restore(sb, base), 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "bump", NULL, 0, &r), 0);
	CHECK_EQ_INT(r.v.i32, 1);
	mote_snapshot_free(layer);
	mote_snapshot_free(base);
	mote_sandbox_free(sb);
}

TEST(many_layers_share_one_base)
{
	const char *base_path = path_of("shared.snap");
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, NULL, NULL, &sb) == 0);
	mote_snapshot *s;
	REQUIRE(mote_sandbox_snapshot(sb, &s) == 0);
	REQUIRE(mote_snapshot_save(s, base_path, 0) == 0);
	mote_snapshot_free(s);
	mote_sandbox_free(sb);
	mote_snapshot *b;
	REQUIRE(mote_snapshot_open(base_path, 0, &b) == 0);
	for (int i = 0; i < 4; i++) {
		mote_sandbox *tenant;
		REQUIRE(mote_sandbox_from_snapshot(b, NULL, NULL, &tenant) == 0);
		REQUIRE(write_pattern(tenant, (uint32_t)i, 1, (uint32_t)i + 10) == 0);
		mote_snapshot *layer;
		REQUIRE(mote_sandbox_snapshot(tenant, &layer) == 0);
		char name[32];
		snprintf(name, sizeof(name), "tenant%d.layer", i);
		REQUIRE(mote_snapshot_save(layer, path_of(name), 0) == 0);
		mote_snapshot_free(layer);
		mote_sandbox_free(tenant);
	}
	/* Opening the layers while the base is open reuses it. */
	mote_snapshot *l0, *l3;
	REQUIRE(mote_snapshot_open(path_of("tenant0.layer"), 0, &l0) == 0);
	REQUIRE(mote_snapshot_open(path_of("tenant3.layer"), 0, &l3) == 0);
	CHECK(l0->parent == b && l3->parent == b);
	mote_snapshot_free(l0);
	mote_snapshot_free(l3);
	mote_snapshot_free(b);
}

TEST(changed_or_missing_base_is_refused)
{
	const char *base_path = path_of("fragile.snap");
	char layer_path[160];
	snprintf(layer_path, sizeof(layer_path), "%s", path_of("fragile.layer"));
	mote_sandbox *sb;
	REQUIRE(mote_sandbox_new(SNAP_GUEST, NULL, NULL, &sb) == 0);
	mote_snapshot *s;
	REQUIRE(mote_sandbox_snapshot(sb, &s) == 0);
	REQUIRE(mote_snapshot_save(s, base_path, 0) == 0);
	REQUIRE(write_pattern(sb, 0, 2, 5) == 0);
	mote_snapshot *layer;
	REQUIRE(mote_sandbox_snapshot(sb, &layer) == 0);
	REQUIRE(mote_snapshot_save(layer, layer_path, 0) == 0);
	mote_snapshot_free(layer);
	mote_snapshot_free(s);

	mote_sandbox_free(sb);
	/* The base is replaced by a different snapshot at the same path. */
	REQUIRE(mote_sandbox_new(SNAP_GUEST, NULL, NULL, &sb) == 0);
	REQUIRE(write_pattern(sb, 0, 2, 6) == 0);
	REQUIRE(mote_sandbox_snapshot(sb, &s) == 0);
	REQUIRE(mote_snapshot_save(s, base_path, 0) == 0);
	mote_snapshot_free(s);
	mote_sandbox_free(sb);
	mote_snapshot *opened;
	CHECK_EQ_INT(mote_snapshot_open(layer_path, 0, &opened), -MOTE_EBADSNAP);
	CHECK_CONTAINS(mote_last_error(), "has changed");

	unlink(base_path);
	CHECK_EQ_INT(mote_snapshot_open(layer_path, 0, &opened), -MOTE_EBADSNAP);
	CHECK_CONTAINS(mote_last_error(), "not found");
}

TEST(cleanup)
{
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK_EQ_INT(system(cmd), 0);
	}
}

TEST_MAIN()
