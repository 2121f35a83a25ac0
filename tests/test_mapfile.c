/* Host files mapped into sandboxes: content, read-only enforcement,
 * copy-on-write isolation, refused requests, unmap, and snapshots. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mote.h"
#include "test.h"

#define GUEST MOTE_BUILD_DIR "/guests/mapfile.elf"
#define BASE MOTE_MAP_WINDOW_BASE

static char dir[64];
static char file_path[128], small_path[128], empty_path[128];
static uint8_t content[3 * 4096 + 100];

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static int write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t w = n ? write(fd, data, n) : 0;
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

static void setup(void)
{
	if (dir[0])
		return;
	strcpy(dir, "/tmp/mote-map-XXXXXX");
	if (!mkdtemp(dir))
		return;
	for (size_t i = 0; i < sizeof(content); i++)
		content[i] = (uint8_t)(i * 131 + 7);
	snprintf(file_path, sizeof(file_path), "%s/file.bin", dir);
	snprintf(small_path, sizeof(small_path), "%s/small.bin", dir);
	snprintf(empty_path, sizeof(empty_path), "%s/empty.bin", dir);
	write_file(file_path, content, sizeof(content));
	write_file(small_path, "hello", 5);
	write_file(empty_path, "", 0);
}

static mote_sandbox *new_guest(void)
{
	setup();
	mote_sandbox *sb = NULL;
	int rc = mote_sandbox_new(GUEST, NULL, NULL, &sb);
	if (rc)
		TEST_FAILF("mote_sandbox_new: %s", mote_last_error());
	return sb;
}

static uint64_t call_u64(mote_sandbox *sb, const char *fn, mote_value *args, size_t n)
{
	mote_value r;
	int rc = mote_sandbox_call(sb, fn, args, n, &r);
	if (rc) {
		TEST_FAILF("%s: %s", fn, mote_sandbox_last_error(sb));
		return 0;
	}
	return r.type == MOTE_U32 ? r.v.u32 : r.v.u64;
}

static uint64_t guest_fnv(mote_sandbox *sb, uint64_t addr, uint64_t len)
{
	mote_value a[2] = {mote_u64(addr), mote_u64(len)};
	return call_u64(sb, "fnv", a, 2);
}

TEST(guest_sees_file_content)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	CHECK_EQ_INT(mote_sandbox_map_file(sb, file_path, BASE, MOTE_MAP_READ_ONLY), 0);
	CHECK_EQ_INT(call_u64(sb, "count", NULL, 0), 1);
	mote_value i0 = mote_u32(0), r;
	CHECK_EQ_INT(mote_sandbox_call(sb, "name", &i0, 1, &r), 0);
	CHECK_EQ_STR((const char *)r.v.buf.ptr, "file.bin");
	CHECK_EQ_U64(call_u64(sb, "size", &i0, 1), 4 * 4096);
	CHECK_EQ_U64(call_u64(sb, "address", &i0, 1), BASE);
	CHECK_EQ_U64(guest_fnv(sb, BASE, sizeof(content)), fnv(content, sizeof(content)));
	/* The rest of the last page reads as zeros. */
	uint8_t zeros[4096 - 100] = {0};
	CHECK_EQ_U64(guest_fnv(sb, BASE + sizeof(content), sizeof(zeros)),
		     fnv(zeros, sizeof(zeros)));
	mote_sandbox_free(sb);
}

TEST(range_mapping)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	CHECK_EQ_INT(mote_sandbox_map_file_range(sb, file_path, 4096, 8192, BASE + (1 << 20),
						 MOTE_MAP_READ_ONLY),
		     0);
	CHECK_EQ_U64(guest_fnv(sb, BASE + (1 << 20), 8192), fnv(content + 4096, 8192));
	mote_sandbox_free(sb);
}

TEST(read_only_is_enforced)
{
	mote_sandbox *sb = new_guest();
	mote_sandbox *other = new_guest();
	REQUIRE(sb && other);
	REQUIRE(mote_sandbox_map_file(sb, file_path, BASE, MOTE_MAP_READ_ONLY) == 0);
	mote_value a[2] = {mote_u64(BASE + 10), mote_u32(0xee)};
	CHECK_EQ_INT(mote_sandbox_call(sb, "write_byte", a, 2, NULL), -MOTE_EFAULT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "write at 0x100000000a");
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "read-only mapping of");
	CHECK(mote_sandbox_poisoned(sb));
	/* The file and other sandboxes are untouched. */
	uint8_t byte = 0;
	int fd = open(file_path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, &byte, 1, 10) == 1);
	close(fd);
	CHECK_EQ_INT(byte, content[10]);
	CHECK_EQ_INT(call_u64(other, "count", NULL, 0), 0);
	mote_sandbox_free(sb);
	mote_sandbox_free(other);
}

TEST(copy_on_write_is_private)
{
	mote_sandbox *a = new_guest(), *b = new_guest();
	REQUIRE(a && b);
	REQUIRE(mote_sandbox_map_file(a, file_path, BASE, MOTE_MAP_COPY_ON_WRITE) == 0);
	REQUIRE(mote_sandbox_map_file(b, file_path, BASE, MOTE_MAP_COPY_ON_WRITE) == 0);
	mote_value w[2] = {mote_u64(BASE + 5000), mote_u32(0x5a)};
	CHECK_EQ_INT(mote_sandbox_call(a, "write_byte", w, 2, NULL), 0);
	mote_value addr = mote_u64(BASE + 5000);
	CHECK_EQ_INT(call_u64(a, "read_byte", &addr, 1), 0x5a);
	CHECK_EQ_INT(call_u64(b, "read_byte", &addr, 1), content[5000]);
	uint8_t byte = 0;
	int fd = open(file_path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, &byte, 1, 5000) == 1);
	close(fd);
	CHECK_EQ_INT(byte, content[5000]);
	mote_sandbox_free(a);
	mote_sandbox_free(b);
}

TEST(bad_requests_are_refused)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	struct {
		const char *path;
		uint64_t offset, size, gpa;
		unsigned flags;
		int rc;
		const char *detail;
	} cases[] = {
		{file_path, 0, 0, BASE + 100, 0, -MOTE_EINVAL, "multiples of 4096"},
		{file_path, 100, 0, BASE, 0, -MOTE_EINVAL, "multiples of 4096"},
		{file_path, 0, 100, BASE, 0, -MOTE_EINVAL, "multiples of 4096"},
		{file_path, 0, 0, 0x200000, 0, -MOTE_EINVAL, "inside the sandbox's memory"},
		{file_path, 0, 0, 200ull << 30, 0, -MOTE_EINVAL, "outside the mapping window"},
		{file_path, 0, 0, 1ull << 30, 0, -MOTE_EINVAL, "outside the mapping window"},
		{file_path, 0, 0, MOTE_MAP_WINDOW_LIMIT - 4096, 0, -MOTE_EINVAL,
		 "extends past the mapping window"},
		{file_path, 0, 8 * 4096, BASE, 0, -MOTE_EINVAL, "lies outside"},
		{file_path, 8 * 4096, 0, BASE, 0, -MOTE_EINVAL, "past the end"},
		{dir, 0, 0, BASE, 0, -MOTE_EINVAL, "not a regular file"},
		{empty_path, 0, 0, BASE, 0, -MOTE_EINVAL, "is empty"},
		{"/nonexistent/file", 0, 0, BASE, 0, -MOTE_EIO, "cannot open"},
		{file_path, 0, 0, BASE, 7, -MOTE_EINVAL, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = mote_sandbox_map_file_range(sb, cases[i].path, cases[i].offset,
						     cases[i].size, cases[i].gpa, cases[i].flags);
		if (rc != cases[i].rc)
			TEST_FAILF("case %zu: rc %d, expected %d (%s)", i, rc, cases[i].rc,
				   mote_sandbox_last_error(sb));
		else if (cases[i].detail[0])
			CHECK_CONTAINS(mote_sandbox_last_error(sb), cases[i].detail);
	}
	/* Overlap with an existing mapping. */
	REQUIRE(mote_sandbox_map_file(sb, file_path, BASE, 0) == 0);
	CHECK_EQ_INT(mote_sandbox_map_file(sb, small_path, BASE + 3 * 4096, 0), -MOTE_EINVAL);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "overlaps an existing mapping");
	CHECK_EQ_INT(mote_sandbox_map_file(sb, small_path, BASE + 4 * 4096, 0), 0);
	CHECK_EQ_INT(call_u64(sb, "count", NULL, 0), 2);
	CHECK(!mote_sandbox_poisoned(sb));
	mote_sandbox_free(sb);
}

TEST(unmap_removes_access)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	REQUIRE(mote_sandbox_map_file(sb, small_path, BASE, 0) == 0);
	mote_value addr = mote_u64(BASE);
	CHECK_EQ_INT(call_u64(sb, "read_byte", &addr, 1), 'h');
	CHECK_EQ_INT(mote_sandbox_unmap(sb, BASE + 4096), -MOTE_EINVAL);
	CHECK_EQ_INT(mote_sandbox_unmap(sb, BASE), 0);
	CHECK_EQ_INT(call_u64(sb, "count", NULL, 0), 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "read_byte", &addr, 1, NULL), -MOTE_EFAULT);
	CHECK_CONTAINS(mote_sandbox_last_error(sb), "no file is mapped there");
	mote_sandbox_free(sb);
}

TEST(snapshots_keep_track_of_mappings)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	mote_snapshot *before, *with;
	REQUIRE(mote_sandbox_snapshot(sb, &before) == 0);
	REQUIRE(mote_sandbox_map_file(sb, file_path, BASE, MOTE_MAP_COPY_ON_WRITE) == 0);
	REQUIRE(mote_sandbox_snapshot(sb, &with) == 0);
	mote_value w[2] = {mote_u64(BASE), mote_u32(0x77)};
	CHECK_EQ_INT(mote_sandbox_call(sb, "write_byte", w, 2, NULL), 0);
	/* Restoring `with` discards the guest's writes to the mapping. */
	CHECK_EQ_INT(mote_sandbox_restore(sb, with), 0);
	mote_value addr = mote_u64(BASE);
	CHECK_EQ_INT(call_u64(sb, "read_byte", &addr, 1), content[0]);
	/* Restoring `before` removes the mapping. */
	CHECK_EQ_INT(mote_sandbox_restore(sb, before), 0);
	CHECK_EQ_INT(call_u64(sb, "count", NULL, 0), 0);
	CHECK_EQ_INT(mote_sandbox_call(sb, "read_byte", &addr, 1, NULL), -MOTE_EFAULT);
	/* And back again. */
	CHECK_EQ_INT(mote_sandbox_restore(sb, with), 0);
	CHECK_EQ_U64(guest_fnv(sb, BASE, sizeof(content)), fnv(content, sizeof(content)));
	/* A sandbox started from the snapshot gets the mapping too. */
	mote_sandbox *copy;
	REQUIRE(mote_sandbox_from_snapshot(with, NULL, NULL, &copy) == 0);
	CHECK_EQ_INT(call_u64(copy, "count", NULL, 0), 1);
	CHECK_EQ_U64(guest_fnv(copy, BASE, sizeof(content)), fnv(content, sizeof(content)));
	mote_sandbox_free(copy);
	/* Snapshot files record mappings by path and content hash. */
	char path[160];
	snprintf(path, sizeof(path), "%s/with.snap", dir);
	CHECK_EQ_INT(mote_snapshot_save(with, path, 0), 0);
	mote_snapshot_info info;
	CHECK_EQ_INT(mote_snapshot_info_read(path, &info), 0);
	CHECK_EQ_INT(info.nmappings, 1);
	mote_snapshot_info_free(&info);
	mote_snapshot *opened;
	CHECK_EQ_INT(mote_snapshot_open(path, 0, &opened), 0);
	if (opened) {
		mote_sandbox *from_file;
		CHECK_EQ_INT(mote_sandbox_from_snapshot(opened, NULL, NULL, &from_file), 0);
		CHECK_EQ_INT(call_u64(from_file, "count", NULL, 0), 1);
		CHECK_EQ_U64(guest_fnv(from_file, BASE, sizeof(content)),
			     fnv(content, sizeof(content)));
		mote_sandbox_free(from_file);
		mote_snapshot_free(opened);
	}
	/* A mapped file whose content changed is refused. */
	uint8_t changed[sizeof(content)];
	memcpy(changed, content, sizeof(content));
	changed[4000] ^= 1;
	REQUIRE(write_file(file_path, changed, sizeof(changed)) == 0);
	CHECK_EQ_INT(mote_snapshot_open(path, 0, &opened), -MOTE_EBADSNAP);
	CHECK_CONTAINS(mote_last_error(), "has changed since the snapshot was taken");
	REQUIRE(write_file(file_path, content, sizeof(content)) == 0);
	mote_snapshot_free(before);
	mote_snapshot_free(with);
	mote_sandbox_free(sb);
}

TEST(absorbed_mappings_travel_with_the_snapshot)
{
	mote_sandbox *sb = new_guest();
	REQUIRE(sb);
	char copy_path[160], snap_path[160];
	snprintf(copy_path, sizeof(copy_path), "%s/transient.bin", dir);
	snprintf(snap_path, sizeof(snap_path), "%s/absorbed.snap", dir);
	REQUIRE(write_file(copy_path, content, sizeof(content)) == 0);
	REQUIRE(mote_sandbox_map_file(sb, copy_path, BASE, MOTE_MAP_READ_ONLY) == 0);
	REQUIRE(mote_sandbox_map_file_range(sb, copy_path, 4096, 4096, BASE + (1 << 21),
					    MOTE_MAP_COPY_ON_WRITE) == 0);
	mote_snapshot *snap;
	REQUIRE(mote_sandbox_snapshot(sb, &snap) == 0);
	CHECK_EQ_INT(mote_snapshot_save(snap, snap_path, 99), -MOTE_EINVAL);
	CHECK_EQ_STR(mote_last_error(), "mote_snapshot_save: invalid flags 0x63 (only "
					"MOTE_SNAPSHOT_ABSORB_MAPPINGS)");
	CHECK_EQ_INT(mote_snapshot_save(snap, snap_path, MOTE_SNAPSHOT_VERIFY_HEADER),
		     -MOTE_EINVAL);
	CHECK_EQ_INT(mote_snapshot_save(snap, snap_path, MOTE_SNAPSHOT_ABSORB_MAPPINGS), 0);
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	/* The original file is gone: the snapshot still has its content. */
	unlink(copy_path);
	mote_snapshot *opened;
	REQUIRE(mote_snapshot_open(snap_path, MOTE_SNAPSHOT_NO_CACHE, &opened) == 0);
	mote_sandbox *from_file;
	REQUIRE(mote_sandbox_from_snapshot(opened, NULL, NULL, &from_file) == 0);
	CHECK_EQ_INT(call_u64(from_file, "count", NULL, 0), 2);
	CHECK_EQ_U64(guest_fnv(from_file, BASE, sizeof(content)), fnv(content, sizeof(content)));
	CHECK_EQ_U64(guest_fnv(from_file, BASE + (1 << 21), 4096), fnv(content + 4096, 4096));
	/* Still read-only, and the copy-on-write one still private. */
	mote_value w[2] = {mote_u64(BASE + (1 << 21)), mote_u32(0x42)};
	CHECK_EQ_INT(mote_sandbox_call(from_file, "write_byte", w, 2, NULL), 0);
	mote_value a = mote_u64(BASE + (1 << 21));
	CHECK_EQ_INT(call_u64(from_file, "read_byte", &a, 1), 0x42);
	CHECK_EQ_INT(mote_sandbox_restore(from_file, opened), 0);
	CHECK_EQ_INT(call_u64(from_file, "read_byte", &a, 1), content[4096]);
	w[0] = mote_u64(BASE + 8);
	CHECK_EQ_INT(mote_sandbox_call(from_file, "write_byte", w, 2, NULL), -MOTE_EFAULT);
	mote_sandbox_free(from_file);
	mote_snapshot_free(opened);
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
