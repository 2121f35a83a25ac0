/* Snapshot file format: round trips, every validation rule, hashes, the
 * verification cache, atomic saves (including a writer killed mid-save) and
 * allocation failures. Offsets below come from docs/snapshot-format.md, not
 * from the implementation, so an accidental format change fails here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host/sha256x16.h"
#include "host/snapfile.h"
#include "mote.h"
#include "test.h"

#define PAGE 4096ull
#define MEM_SIZE (4ull << 20)
#define NPAGES (MEM_SIZE / PAGE)

/* Header field offsets (docs/snapshot-format.md). */
enum {
	H_MAGIC = 0,
	H_FORMAT = 8,
	H_HDRSIZE = 12,
	H_ABI = 16,
	H_ARCH = 20,
	H_HYPERVISOR = 24,
	H_FLAGS = 28,
	H_VENDOR = 32,
	H_CREATED = 48,
	H_FILE_SIZE = 56,
	H_BLOB_OFFSET = 64,
	H_BLOB_SIZE = 72,
	H_CHUNK_SIZE = 80,
	H_RESERVED0 = 88,
	H_PARENT = 96,
	H_BLOB_HASH = 128,
	H_HEADER_HASH = 160,
	H_SECTIONS = 192,
	H_GUEST_ENTRY = 384, /* section 8's table entry: reserved without F_GUEST */
	H_RESERVED1 = 408,
	HDR_SIZE = 512,
};
enum { S_LAYOUT, S_VCPU, S_HOST, S_GUEST, S_REGIONS, S_CHUNKS, S_PARENT, S_MAPPINGS, NSEC };
enum { S_GUESTID = 8 }; /* the guest ELF's identity, only with F_GUEST */
#define F_GUEST 1u /* header flags bit 0: section 8 present */
#define SEC(i) (H_SECTIONS + 24 * (i))

/* ---- Scratch directory, removed at exit ---- */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tpath(const char *name)
{
	static char buf[4][256];
	static int k;
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/mote-snapfile-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(1);
		}
		atexit(rm_tmpdir);
	}
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

/* Entries in the scratch dir whose name contains `part`. */
static int count_entries(const char *part)
{
	DIR *d = opendir(tmpdir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, part))
			n++;
	if (d)
		closedir(d);
	return n;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t r = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return b;
}

static int write_file(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, b, len);
	close(fd);
	return w == (ssize_t)len ? 0 : -1;
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void st64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void st32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- A plausible snapshot ---- */

struct fixture {
	struct mote_snap_meta meta;
	struct mote_sig host[2], guest[3];
	struct mote_snap_mapping maps[MOTE_MAX_MAPPINGS];
	char paths[MOTE_MAX_MAPPINGS][32];
	char parent[32];
	char elf[32];
	uint8_t *mem;
	uint64_t present[NPAGES / 64];
};

/* Present runs: [1,8) [0x200,0x205)+[0x207,0x20a) (2-page gap: merged)
 * [0x300,0x310) [0x315,0x316) (5-page gap: separate) [0x3ff,0x400). */
static const uint64_t runs[][2] = {{1, 8},         {0x200, 0x205}, {0x207, 0x20a},
				   {0x300, 0x310}, {0x315, 0x316}, {0x3ff, 0x400}};
static const uint64_t want_regions[][2] = {
	{1, 8}, {0x200, 0x20a}, {0x300, 0x310}, {0x315, 0x316}, {0x3ff, 0x400}};
#define NWANT (sizeof(want_regions) / sizeof(want_regions[0]))

static uint8_t pattern(uint64_t page, uint64_t off, unsigned seed)
{
	return (uint8_t)(page * 31 + off * 7 + seed * 13 + 1);
}

static bool is_present(const uint64_t *bm, uint64_t page)
{
	return bm[page / 64] >> (page % 64) & 1;
}

static void make_meta(struct fixture *fx)
{
	struct mote_snap_meta *m = &fx->meta;
	memset(m, 0, sizeof(*m));
	m->abi_version = MOTE_ABI_VERSION;
	m->created_unix_ns = 1700000000123456789ull;
	memcpy(m->cpu_vendor, "GenuineIntel", 13);
	m->layout = (struct mote_layout){
		.mem_size = MEM_SIZE,
		.image_end = 0x204000,
		.stack_base = 0x205000,
		.stack_size = 0x10000,
		.in_buf = 0x215000,
		.in_size = 0x10000,
		.out_buf = 0x225000,
		.out_size = 0x10000,
		.log_buf = 0x235000,
		.log_size = 0x4000,
		.heap_base = 0x239000,
		.heap_size = MEM_SIZE - 0x239000,
	};
	m->image_size = 0x3a10;
	m->saved_by = MOTE_SNAP_BACKEND_KVM;
	struct mote_cpu_state *v = &m->cpu;
	for (int i = 0; i < 16; i++)
		v->gpr[i] = 0x1111111111111111ull * (uint64_t)(i + 1);
	v->rip = 0x201234;
	v->rflags = 0x0202 & MOTE_RFLAGS_GUEST;
	v->fs_base = 0x7fff0000;
	v->gs_base = 0x123456789abcull;
	for (int i = 0; i < 512; i++)
		v->fxsave[i] = (uint8_t)(i * 7 + 3);
	v->fxsave[24] = 0x80; /* MXCSR 0x1f80 */
	v->fxsave[25] = 0x1f;
	v->fxsave[26] = v->fxsave[27] = 0;

	fx->host[0] = (struct mote_sig){.name = "log_line", .ret = MOTE_VOID, .nargs = 1,
					.args = {MOTE_STRING}};
	fx->host[1] = (struct mote_sig){.name = "now_ns", .ret = MOTE_U64, .nargs = 0};
	fx->guest[0] = (struct mote_sig){.name = "add", .ret = MOTE_I32, .nargs = 2,
					 .args = {MOTE_I32, MOTE_I32}};
	fx->guest[1] = (struct mote_sig){
		.name = "digest",
		.ret = MOTE_BYTES,
		.nargs = MOTE_MAX_ARGS,
		.args = {MOTE_BYTES, MOTE_U32, MOTE_I64, MOTE_U64, MOTE_F32, MOTE_F64, MOTE_BOOL,
			 MOTE_STRING, MOTE_I32, MOTE_I32, MOTE_I32, MOTE_I32, MOTE_I32, MOTE_I32,
			 MOTE_I32, MOTE_STRING}};
	fx->guest[2] = (struct mote_sig){.name = "run", .ret = MOTE_VOID, .nargs = 0,
					 .args = {MOTE_I32}}; /* slot past nargs: ignored */
	m->host_fns = fx->host;
	m->nhost_fns = 2;
	m->guest_fns = fx->guest;
	m->nguest_fns = 3;
}

static void fill_mem(uint8_t *mem, uint64_t *present, uint64_t npages, unsigned seed)
{
	for (uint64_t p = 0; p < npages; p++) {
		uint8_t *pg = mem + p * PAGE;
		if (is_present(present, p))
			for (uint64_t o = 0; o < PAGE; o++)
				pg[o] = pattern(p, o, seed);
		else
			memset(pg, 0xaa, PAGE); /* garbage the writer must not store */
	}
}

static void fixture_init(struct fixture *fx)
{
	make_meta(fx);
	memset(fx->present, 0, sizeof(fx->present));
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++)
		for (uint64_t p = runs[r][0]; p < runs[r][1]; p++)
			fx->present[p / 64] |= 1ull << (p % 64);
	fx->mem = aligned_alloc(PAGE, MEM_SIZE);
	fill_mem(fx->mem, fx->present, NPAGES, 0);
}

static void fixture_free(struct fixture *fx)
{
	free(fx->mem);
	fx->mem = NULL;
}

static int write_fixture(struct fixture *fx, const char *path)
{
	char err[512] = "";
	int rc = mote_snapfile_write(path, &fx->meta, fx->mem, fx->present, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  write %s: %d %s\n", path, rc, err);
	return rc;
}

/* A good file's bytes, written once. */
static uint8_t *good_bytes(size_t *len)
{
	static uint8_t *buf;
	static size_t blen;
	if (!buf) {
		struct fixture fx;
		fixture_init(&fx);
		const char *p = tpath("good.snap");
		if (write_fixture(&fx, p) == 0)
			buf = read_file(p, &blen);
		fixture_free(&fx);
	}
	*len = blen;
	return buf;
}

/* ---- Layers and mappings ---- */

static void set_mapping(struct fixture *fx, size_t i, const char *path, uint64_t offset,
			uint64_t size, uint64_t gpa, uint32_t flags)
{
	snprintf(fx->paths[i], sizeof(fx->paths[i]), "%s", path);
	fx->maps[i] = (struct mote_snap_mapping){
		.path = fx->paths[i], .offset = offset, .size = size, .gpa = gpa, .flags = flags};
	for (int k = 0; k < 32; k++)
		fx->maps[i].sha256[k] = (uint8_t)(i * 37 + (size_t)k * 5 + 1);
}

/* The three mappings of the layered test file, sorted by guest address:
 * section 7 entries at +0 (80 bytes), +80 (88) and +168 (72), 240 bytes. */
#define L_PARENT "../base/base.snap" /* 17 bytes: section 6 is 32 bytes */
#define M0 0u
#define M1 80u
#define M2 168u
#define MAPS_SIZE 240u

static void set_three_mappings(struct fixture *fx)
{
	set_mapping(fx, 0, "/data/model.bin", 0, 0x10000, MOTE_MAP_BASE, 0);
	set_mapping(fx, 1, "weights/part-1.dat", 0x2000, 0x1000, MOTE_MAP_BASE + 0x10000,
		    MOTE_MAP_COPY_ON_WRITE);
	set_mapping(fx, 2, "abcdefgh", 0x100000000ull, 0x200000, MOTE_MAP_LIMIT - 0x200000,
		    MOTE_MAP_COPY_ON_WRITE);
}

/* Make fx a layer (if `layer`) with n mappings: 3 = the three above, else n
 * generic ones spread over the window. */
static void make_layer(struct fixture *fx, bool layer, size_t n)
{
	if (layer) {
		for (int i = 0; i < 32; i++)
			fx->meta.parent_hash[i] = (uint8_t)(0xa0 + i);
		snprintf(fx->parent, sizeof(fx->parent), "%s", L_PARENT);
		fx->meta.parent_path = fx->parent;
	}
	if (n == 3) {
		set_three_mappings(fx);
	} else {
		for (size_t i = 0; i < n; i++) {
			char path[32];
			snprintf(path, sizeof(path), "files/m%02zu.bin", i);
			set_mapping(fx, i, path, i * 3 * PAGE, (i % 3 + 1) * PAGE,
				    MOTE_MAP_BASE + i * 0x100000, (uint32_t)(i & 1));
		}
	}
	fx->meta.mappings = n ? fx->maps : NULL;
	fx->meta.nmappings = n;
}

/* A layer file with the three mappings, written once. */
static uint8_t *good_layer_bytes(size_t *len)
{
	static uint8_t *buf;
	static size_t blen;
	if (!buf) {
		struct fixture fx;
		fixture_init(&fx);
		make_layer(&fx, true, 3);
		const char *p = tpath("good-layer.snap");
		if (write_fixture(&fx, p) == 0)
			buf = read_file(p, &blen);
		fixture_free(&fx);
	}
	*len = blen;
	return buf;
}

static bool same_sig(const struct mote_sig *a, const struct mote_sig *b)
{
	if (strcmp(a->name, b->name) || a->ret != b->ret || a->nargs != b->nargs)
		return false;
	for (unsigned i = 0; i < a->nargs; i++)
		if (a->args[i] != b->args[i])
			return false;
	return true;
}

static void check_meta(const struct mote_snap_meta *got, const struct mote_snap_meta *want)
{
	CHECK_EQ_INT(got->abi_version, want->abi_version);
	CHECK_EQ_U64(got->created_unix_ns, want->created_unix_ns);
	CHECK(!memcmp(got->cpu_vendor, want->cpu_vendor, 16));
	CHECK(!memcmp(&got->layout, &want->layout, sizeof(got->layout)));
	CHECK_EQ_U64(got->image_size, want->image_size);
	const struct mote_cpu_state *a = &got->cpu, *b = &want->cpu;
	CHECK(!memcmp(a->gpr, b->gpr, sizeof(a->gpr)));
	CHECK_EQ_U64(a->rip, b->rip);
	CHECK_EQ_U64(a->rflags, b->rflags);
	CHECK_EQ_U64(a->fs_base, b->fs_base);
	CHECK_EQ_U64(a->gs_base, b->gs_base);
	CHECK(!memcmp(a->fxsave, b->fxsave, sizeof(a->fxsave)));
	CHECK_EQ_INT(got->saved_by, want->saved_by);
	CHECK_EQ_INT(got->nhost_fns, want->nhost_fns);
	CHECK_EQ_INT(got->nguest_fns, want->nguest_fns);
	for (size_t i = 0; i < got->nhost_fns && i < want->nhost_fns; i++)
		CHECK(same_sig(&got->host_fns[i], &want->host_fns[i]));
	for (size_t i = 0; i < got->nguest_fns && i < want->nguest_fns; i++) {
		CHECK(same_sig(&got->guest_fns[i], &want->guest_fns[i]));
		for (unsigned k = got->guest_fns[i].nargs; k < MOTE_MAX_ARGS; k++)
			CHECK_EQ_INT(got->guest_fns[i].args[k], 0);
	}
	CHECK(!memcmp(got->parent_hash, want->parent_hash, 32));
	if (want->parent_path)
		CHECK_EQ_STR(got->parent_path, want->parent_path);
	else
		CHECK(got->parent_path == NULL);
	CHECK(!memcmp(got->guest_sha256, want->guest_sha256, 32));
	if (want->guest_path)
		CHECK_EQ_STR(got->guest_path, want->guest_path);
	else
		CHECK(got->guest_path == NULL);
	CHECK_EQ_INT(got->nmappings, want->nmappings);
	CHECK((got->mappings == NULL) == (got->nmappings == 0));
	for (size_t i = 0; i < got->nmappings && i < want->nmappings; i++) {
		const struct mote_snap_mapping *x = &got->mappings[i], *y = &want->mappings[i];
		CHECK_EQ_STR(x->path, y->path);
		CHECK_EQ_U64(x->offset, y->offset);
		CHECK_EQ_U64(x->size, y->size);
		CHECK_EQ_U64(x->gpa, y->gpa);
		CHECK_EQ_U64(x->flags, y->flags);
		CHECK(!memcmp(x->sha256, y->sha256, 32));
	}
}

/* Regions and file contents against the fixture's memory. */
static void check_contents(const struct mote_snapfile *f, const struct fixture *fx)
{
	CHECK_EQ_INT(f->nregions, NWANT);
	for (size_t i = 0; i < f->nregions && i < NWANT; i++) {
		CHECK_EQ_U64(f->regions[i].guest_addr, want_regions[i][0] * PAGE);
		CHECK_EQ_U64(f->regions[i].size, (want_regions[i][1] - want_regions[i][0]) * PAGE);
		CHECK_EQ_U64(f->regions[i].file_offset % PAGE, 0);
	}
	uint8_t *page = malloc(PAGE);
	uint64_t covered = 0;
	for (size_t i = 0; i < f->nregions; i++) {
		const struct mote_snap_region *r = &f->regions[i];
		for (uint64_t o = 0; o < r->size; o += PAGE) {
			uint64_t gp = (r->guest_addr + o) / PAGE;
			off_t at = (off_t)(r->file_offset + o);
			REQUIRE(pread(f->fd, page, PAGE, at) == (ssize_t)PAGE);
			if (is_present(fx->present, gp)) {
				CHECK(!memcmp(page, fx->mem + gp * PAGE, PAGE));
				covered++;
			} else if (fx->meta.parent_path) {
				/* A layer's gap pages are the base's: mem's bytes. */
				CHECK(!memcmp(page, fx->mem + gp * PAGE, PAGE));
			} else {
				bool zero = true;
				for (uint64_t k = 0; k < PAGE; k++)
					zero &= page[k] == 0;
				CHECK(zero); /* a standalone file's gap pages are zeros */
			}
		}
	}
	uint64_t npresent = 0;
	for (uint64_t p = 0; p < NPAGES; p++)
		npresent += is_present(fx->present, p);
	CHECK_EQ_U64(covered, npresent);
	/* The guard page: the last 4096 bytes, zeros. */
	CHECK_EQ_U64(f->file_size, f->blob_offset + f->blob_size + PAGE);
	CHECK_EQ_U64((uint64_t)f->st.st_size, f->file_size);
	REQUIRE(pread(f->fd, page, PAGE, (off_t)(f->file_size - PAGE)) == (ssize_t)PAGE);
	for (uint64_t k = 0; k < PAGE; k++)
		if (page[k])
			TEST_FAILF("guard page byte %llu is 0x%x", (unsigned long long)k, page[k]);
	free(page);
}

TEST(roundtrip_all_modes)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("rt.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	CHECK_EQ_INT(count_entries(".rt.snap.tmp"), 0);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	const unsigned modes[] = {0, MOTE_SNAPFILE_VERIFY_HEADER, MOTE_SNAPFILE_NO_CACHE,
				  MOTE_SNAPFILE_NO_CACHE | MOTE_SNAPFILE_VERIFY_HEADER};
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct mote_snapfile f;
		char err[512];
		int rc = mote_snapfile_open(p, modes[m], &f, err, sizeof(err));
		CHECK_EQ_INT(rc, 0);
		if (rc) {
			fprintf(stderr, "  mode %u: %s\n", modes[m], err);
			continue;
		}
		CHECK(f.fd >= 0);
		CHECK_EQ_INT(f.format_version, MOTE_SNAP_FORMAT_VERSION);
		CHECK_EQ_INT(f.arch, MOTE_SNAP_ARCH_X86_64);
		CHECK_EQ_INT(f.hypervisor, MOTE_SNAP_BACKEND_KVM);
		CHECK_EQ_U64(f.blob_offset % PAGE, 0);
		CHECK_EQ_U64(f.blob_size, 35 * PAGE);
		CHECK_EQ_U64(f.chunk_size, 2ull << 20);
		CHECK_EQ_INT(f.nchunks, 1);
		check_meta(&f.meta, &fx.meta);
		check_contents(&f, &fx);
		mote_snapfile_close(&f);
		CHECK_EQ_INT(f.fd, -1);
		mote_snapfile_close(&f); /* twice is fine */
	}
	fixture_free(&fx);
}

TEST(parse_from_buffer)
{
	size_t len;
	uint8_t *b = good_bytes(&len);
	REQUIRE(b);
	struct mote_snapfile f;
	char err[256];
	CHECK_EQ_INT(mote_snapfile_parse(b, len, len, &f, err, sizeof(err)), 0);
	CHECK_EQ_INT(f.fd, -1);
	CHECK_EQ_INT(f.nregions, NWANT);
	/* Only the metadata is needed. */
	struct mote_snapfile g;
	CHECK_EQ_INT(mote_snapfile_parse(b, (size_t)f.blob_offset, len, &g, err, sizeof(err)), 0);
	CHECK(!memcmp(f.header_hash, g.header_hash, 32));
	CHECK_EQ_INT(mote_snapfile_verify_blob(&g, err, sizeof(err)), -MOTE_EINVAL);
	mote_snapfile_close(&f);
	mote_snapfile_close(&g);
	struct mote_snapfile z;
	memset(&z, 0, sizeof(z));
	mote_snapfile_close(&z); /* zeroed: must not close fd 0 */
	CHECK(fcntl(0, F_GETFD) != -1 || errno != EBADF);
	CHECK_EQ_INT(mote_snapfile_parse(NULL, 0, 0, &f, err, sizeof(err)), -MOTE_EBADSNAP);
	CHECK_EQ_INT(mote_snapfile_parse(b, len, len, NULL, err, sizeof(err)), -MOTE_EINVAL);
}

/* ---- Corruption helpers ---- */

/* Recompute the header hash only (leaves the blob hash as corrupted). */
static void header_rehash_only(uint8_t *b, size_t len)
{
	uint64_t bo = ld64(b + H_BLOB_OFFSET);
	if (bo > len)
		return;
	memset(b + H_HEADER_HASH, 0, 32);
	uint8_t md[32];
	EVP_Digest(b, (size_t)bo, md, NULL, EVP_sha256(), NULL);
	memcpy(b + H_HEADER_HASH, md, 32);
}

enum { REHASH_NONE, REHASH_ALL, REHASH_HEADER };

struct patch {
	size_t off;
	const void *bytes;
	size_t n;
};

/* Copy the good file, apply the patches, fix hashes as asked, parse from an
 * exact-size heap copy (so ASan sees any overread). */
static void expect_bad_in(int line, const uint8_t *good, size_t len, const struct patch *p,
			  size_t np, int rehash, int code, const char *substr)
{
	if (!good) {
		TEST_FAILF("line %d: no good file", line);
		return;
	}
	uint8_t *b = malloc(len);
	memcpy(b, good, len);
	for (size_t i = 0; i < np; i++) {
		if (p[i].off + p[i].n > len) {
			TEST_FAILF("line %d: bad test setup", line);
			free(b);
			return;
		}
		memcpy(b + p[i].off, p[i].bytes, p[i].n);
	}
	size_t off = np ? p[0].off : 0;
	if (rehash == REHASH_ALL)
		mote_snapfile__rehash(b, len);
	else if (rehash == REHASH_HEADER)
		header_rehash_only(b, len);
	struct mote_snapfile f;
	char err[512] = "";
	int rc = mote_snapfile_parse(b, len, len, &f, err, sizeof(err));
	if (rc != code || !strstr(err, substr))
		TEST_FAILF("line %d (offset %zu): got %d \"%s\", want %d \"%s\"", line, off, rc,
			   err, code, substr);
	if (code)
		CHECK(f.fd == -1 && f.regions == NULL && f.meta.host_fns == NULL &&
		      f.chunk_hashes == NULL && f.meta.parent_path == NULL &&
		      f.meta.mappings == NULL && f.meta.guest_path == NULL);
	mote_snapfile_close(&f);
	free(b);
}

static void expect_bad_patches(int line, const struct patch *p, size_t np, int rehash, int code,
			       const char *substr)
{
	size_t len;
	const uint8_t *good = good_bytes(&len);
	expect_bad_in(line, good, len, p, np, rehash, code, substr);
}

static void expect_bad_at(int line, size_t off, const void *bytes, size_t n, int rehash, int code,
			  const char *substr)
{
	struct patch p = {off, bytes, n};
	expect_bad_patches(line, &p, 1, rehash, code, substr);
}

static void expect_bad64(int line, size_t off, uint64_t v, int code, const char *substr)
{
	uint8_t b[8];
	st64(b, v);
	expect_bad_at(line, off, b, 8, REHASH_ALL, code, substr);
}

static void expect_bad32(int line, size_t off, uint32_t v, int code, const char *substr)
{
	uint8_t b[4];
	st32(b, v);
	expect_bad_at(line, off, b, 4, REHASH_ALL, code, substr);
}

static void expect_bad8(int line, size_t off, uint8_t v, int code, const char *substr)
{
	expect_bad_at(line, off, &v, 1, REHASH_ALL, code, substr);
}

#define BAD64(off, v, s) expect_bad64(__LINE__, off, v, -MOTE_EBADSNAP, s)
#define BAD32(off, v, s) expect_bad32(__LINE__, off, v, -MOTE_EBADSNAP, s)
#define BAD8(off, v, s) expect_bad8(__LINE__, off, v, -MOTE_EBADSNAP, s)

static uint64_t sec_off(int i)
{
	size_t len;
	return ld64(good_bytes(&len) + SEC(i));
}

static uint64_t good64(size_t off)
{
	size_t len;
	return ld64(good_bytes(&len) + off);
}

TEST(header_fields)
{
	size_t len;
	REQUIRE(good_bytes(&len));
	const uint64_t bo = good64(H_BLOB_OFFSET), bs = good64(H_BLOB_SIZE);
	expect_bad_at(__LINE__, H_MAGIC, "MOTESNAQ", 8, REHASH_ALL, -MOTE_EBADSNAP,
		      "bad magic (not a mote snapshot)");
	expect_bad_at(__LINE__, H_MAGIC, "\0\0\0\0", 4, REHASH_NONE, -MOTE_EBADSNAP, "bad magic");
	BAD32(H_FORMAT, 9, "format version 9, this reader supports 2");
	BAD32(H_FORMAT, 0, "format version 0, this reader supports 2");
	BAD32(H_HDRSIZE, 256, "header size 256, expected 512");
	BAD32(H_ABI, 1, "snapshot ABI version 1, host ABI 2 (take the snapshot again");
	BAD32(H_ABI, 0xffffffff, "snapshot ABI version 4294967295");
	BAD32(H_ARCH, 7, "arch 7 is not x86-64");
	BAD32(H_ARCH, 0, "arch 0 is not x86-64");
	BAD32(H_HYPERVISOR, 3, "saved by backend 3, not KVM (1) or process (2)");
	BAD32(H_FORMAT, 1, "format version 1, this reader supports 2: the file predates");
	BAD32(H_FLAGS, 2, "unknown flags 0x2");
	BAD32(H_FLAGS, 0x80000000u, "unknown flags 0x80000000");
	BAD32(H_FLAGS, 0x80000001u, "unknown flags 0x80000000 "); /* bit 0 is known */
	expect_bad_at(__LINE__, H_VENDOR, "AAAAAAAAAAAAAAAA", 16, REHASH_ALL, -MOTE_EBADSNAP,
		      "not NUL-terminated");
	BAD8(H_VENDOR + 2, 0x01, "cpu vendor byte 2 is not printable");
	BAD8(H_VENDOR + 14, 'x', "bytes after its NUL");
	BAD64(H_FILE_SIZE, len + PAGE, "in header, actual");
	BAD64(H_FILE_SIZE, 0, "file size 0x0 in header, actual");
	BAD64(H_FILE_SIZE, UINT64_MAX, "(file truncated or changed)");
	BAD64(H_BLOB_OFFSET, bo + 1, "is not page-aligned");
	BAD64(H_BLOB_OFFSET, 0, "lies inside the header");
	BAD64(H_BLOB_OFFSET, 0xfffffffffffff000ull, "exceeds the");
	BAD64(H_BLOB_OFFSET, 128ull << 20, "exceeds the 0x4000000-byte limit");
	BAD64(H_BLOB_OFFSET, bo + PAGE, "guard page does not end at the file size");
	{
		uint8_t nbo[8], nbs[8];
		st64(nbo, bo + PAGE);
		st64(nbs, bs - PAGE);
		struct patch p[] = {{H_BLOB_OFFSET, nbo, 8}, {H_BLOB_SIZE, nbs, 8}};
		expect_bad_patches(__LINE__, p, 2, REHASH_ALL, -MOTE_EBADSNAP,
				   "does not follow the metadata");
	}
	BAD64(H_BLOB_OFFSET, bo + 2 * len, "file truncated in the metadata");
	BAD64(H_BLOB_SIZE, bs + PAGE, "guard page does not end at the file size");
	BAD64(H_BLOB_SIZE, bs - PAGE, "guard page does not end at the file size");
	BAD64(H_BLOB_SIZE, 1, "blob size 0x1 is not page-aligned");
	BAD64(H_BLOB_SIZE, 0xfffffffffffff000ull, "guard page does not end");
	BAD64(H_CHUNK_SIZE, 0, "chunk size 0x0 invalid");
	BAD64(H_CHUNK_SIZE, 4095, "chunk size 0xfff invalid");
	BAD64(H_CHUNK_SIZE, 2ull << 30, "chunk size 0x80000000 invalid");
	BAD64(H_CHUNK_SIZE, UINT64_MAX, "invalid");
	BAD64(H_CHUNK_SIZE, PAGE, "chunk count 1 does not match the blob size");
	BAD64(H_RESERVED0, 1, "reserved header bytes are not zero");
	BAD8(H_RESERVED1, 1, "reserved header bytes are not zero");
	BAD8(H_RESERVED1 + 103, 1, "reserved header bytes are not zero");
	/* A parent hash makes the file a layer, which needs a parent path. */
	BAD8(H_PARENT + 31, 1, "parent hash set without a parent path");
	BAD8(H_PARENT, 0x80, "parent hash set without a parent path");
	/* Hashes. */
	expect_bad_at(__LINE__, H_HEADER_HASH + 5, "\x55", 1, REHASH_NONE, -MOTE_EHASH,
		      "header hash mismatch (file corrupt)");
	expect_bad_at(__LINE__, H_BLOB_HASH, "\x01", 1, REHASH_HEADER, -MOTE_EHASH,
		      "blob hash does not match the chunk hashes");
	expect_bad_at(__LINE__, (size_t)sec_off(S_CHUNKS), "\x01", 1, REHASH_HEADER, -MOTE_EHASH,
		      "blob hash does not match the chunk hashes");
	/* A metadata byte flipped without rehashing reads as corruption. */
	for (uint64_t off = HDR_SIZE; off < bo; off += 97)
		expect_bad_at(__LINE__, (size_t)off, "\xff", 1, REHASH_NONE, -MOTE_EHASH,
			      "header hash mismatch");
	expect_bad_at(__LINE__, H_ABI, "\x07", 1, REHASH_NONE, -MOTE_EHASH, "header hash");
}

TEST(section_table)
{
	REQUIRE(sec_off(S_LAYOUT) == HDR_SIZE);
	BAD64(SEC(S_LAYOUT), HDR_SIZE + 8, "section layout at 0x208, expected 0x200");
	BAD64(SEC(S_LAYOUT) + 8, 100, "section layout size 0x64 is not a multiple of 8");
	BAD64(SEC(S_LAYOUT) + 8, 96, "section vcpu at");
	BAD32(SEC(S_LAYOUT) + 16, 2, "layout section: count 2");
	BAD32(SEC(S_VCPU) + 16, 0, "vcpu section: count 0");
	BAD8(SEC(S_VCPU) + 20, 1, "section vcpu: reserved bytes are not zero");
	BAD64(SEC(S_REGIONS) + 8, 0xfffffffffffffff8ull, "runs past the blob offset");
	BAD64(SEC(S_CHUNKS), 0xffffffffffffff00ull, "section chunk hashes at");
	BAD64(SEC(S_CHUNKS) + 8, good64(H_BLOB_OFFSET), "runs past the blob offset");
	{
		/* Sections 6 and 7 follow section 5: move them along. */
		uint8_t sz[8], o6[8], o7[8];
		st64(sz, 64);
		st64(o6, sec_off(S_PARENT) + 32);
		st64(o7, sec_off(S_MAPPINGS) + 32);
		struct patch p[] = {{SEC(S_CHUNKS) + 8, sz, 8},
				    {SEC(S_PARENT), o6, 8},
				    {SEC(S_MAPPINGS), o7, 8}};
		expect_bad_patches(__LINE__, p, 3, REHASH_ALL, -MOTE_EBADSNAP,
				   "chunk hash section size 0x40 does not match 1 chunks");
	}
	BAD64(SEC(S_CHUNKS) + 8, 64, "section parent at");
	/* The new sections are contiguous too, and empty in a standalone file. */
	REQUIRE(sec_off(S_PARENT) == sec_off(S_CHUNKS) + good64(SEC(S_CHUNKS) + 8));
	REQUIRE(sec_off(S_MAPPINGS) == sec_off(S_PARENT));
	BAD64(SEC(S_PARENT), sec_off(S_PARENT) + 8, "section parent at");
	BAD64(SEC(S_MAPPINGS), sec_off(S_MAPPINGS) - 8, "section mappings at");
	BAD64(SEC(S_PARENT) + 8, 4, "section parent size 0x4 is not a multiple of 8");
	BAD64(SEC(S_PARENT) + 8, 8, "section mappings at");
	BAD8(SEC(S_MAPPINGS) + 23, 1, "section mappings: reserved bytes are not zero");
	BAD32(SEC(S_PARENT) + 16, 1, "parent path present without a parent hash");
	BAD32(SEC(S_PARENT) + 16, 2, "parent section: count 2, at most 1");
	BAD32(SEC(S_MAPPINGS) + 16, 1, "mapping 0: entry truncated by the section end");
	BAD32(SEC(S_MAPPINGS) + 16, 33, "mapping count 33 exceeds 32");
	BAD32(SEC(S_MAPPINGS) + 16, 0xffffffff, "mapping count 4294967295 exceeds 32");
	BAD32(SEC(S_HOST) + 16, 100000, "host function count 100000 exceeds 4096");
	BAD32(SEC(S_GUEST) + 16, 4097, "guest function count 4097 exceeds 4096");
	BAD32(SEC(S_GUEST) + 16, 4, "guest function 3: entry truncated");
	BAD32(SEC(S_GUEST) + 16, 2, "guest functions: 0x");
	BAD32(SEC(S_HOST) + 16, 0, "host functions: section of 0x");
	BAD32(SEC(S_REGIONS) + 16, 70000, "region count 70000 exceeds 65536");
	BAD32(SEC(S_REGIONS) + 16, 4, "region section size 0x78 does not match 4 regions");
	BAD32(SEC(S_CHUNKS) + 16, 2, "chunk count 2 does not match the blob size");
	BAD32(SEC(S_CHUNKS) + 16, 0xffffffff, "chunk count 4294967295 does not match");
	/* Padding between the metadata and the blob must be zero. */
	uint64_t end = sec_off(S_MAPPINGS) + good64(SEC(S_MAPPINGS) + 8);
	REQUIRE(end < good64(H_BLOB_OFFSET));
	BAD8((size_t)end, 1, "padding before the blob is not zero");
}

TEST(layout_fields)
{
	const size_t L = (size_t)sec_off(S_LAYOUT);
	enum { MEM, IMG_END, STK, STK_SZ, IN, IN_SZ, OUT, OUT_SZ, LOG, LOG_SZ, HEAP, HEAP_SZ, ISZ };
#define LF(i) (L + 8 * (i))
	BAD64(LF(MEM), 0, "layout: mem_size 0x0 invalid");
	BAD64(LF(MEM), MEM_SIZE + 1, "layout: mem_size 0x400001 invalid");
	BAD64(LF(MEM), (64ull << 30) + PAGE, "layout: mem_size 0x1000001000 invalid");
	BAD64(LF(MEM), UINT64_MAX - 4095, "layout: mem_size");
	BAD64(LF(MEM), MEM_SIZE - PAGE, "layout: heap [0x239000,+0x1c7000) outside memory");
	BAD64(LF(IMG_END), 0x200000, "layout: image_end 0x200000 invalid");
	BAD64(LF(IMG_END), 0x204001, "layout: image_end 0x204001 invalid");
	BAD64(LF(IMG_END), 0x206000, "layout: stack at 0x205000 overlaps or precedes the image");
	BAD64(LF(ISZ), 0, "image size 0x0 does not fit");
	BAD64(LF(ISZ), 0x4001, "image size 0x4001 does not fit");
	BAD64(LF(STK_SZ), 0, "layout: stack [0x205000,+0x0) not page-aligned or empty");
	BAD64(LF(STK_SZ), 0x10001, "layout: stack [0x205000,+0x10001) not page-aligned");
	BAD64(LF(IN), 0x214000, "layout: in_buf at 0x214000 overlaps or precedes stack");
	BAD64(LF(OUT), 0x215000, "layout: out_buf at 0x215000 overlaps or precedes in_buf");
	BAD64(LF(LOG), 0x230000, "layout: log_buf at 0x230000 overlaps or precedes out_buf");
	BAD64(LF(HEAP), 0x238000, "layout: heap at 0x238000 overlaps or precedes log_buf");
	BAD64(LF(HEAP_SZ), 0, "layout: heap [0x239000,+0x0) not page-aligned or empty");
	BAD64(LF(HEAP_SZ), 0xfffffffffffff000ull, "layout: heap [0x239000,+0xfffffffffffff000) "
						   "outside memory (mem_size 0x400000)");
	BAD64(LF(LOG_SZ), 0x5000, "layout: heap at 0x239000 overlaps or precedes log_buf");
	BAD64(LF(OUT_SZ), 0x800, "not page-aligned");
	BAD64(LF(IN_SZ), 0x20000, "layout: out_buf at 0x225000 overlaps or precedes in_buf");
	BAD64(LF(IN_SZ), 0x1000000, "layout: in_buf [0x215000,+0x1000000) outside memory");
#undef LF
}

TEST(cpu_fields)
{
	const size_t V = (size_t)sec_off(S_VCPU);
	BAD64(V + 128, MEM_SIZE, "entry/rip 0x400000 outside guest memory (mem_size 0x400000)");
	BAD64(V + 128, UINT64_MAX, "entry/rip 0xffffffffffffffff outside guest memory");
	/* IOPL, IF and friends are the backend's, not the file's. */
	BAD64(V + 136, 0x3202, "cpu: rflags 0x3202 has bits a backend sets");
	BAD64(V + 136, 0x2, "cpu: rflags 0x2 has bits a backend sets");
	BAD64(V + 144, 0x800000000000ull, "cpu: fs base 0x800000000000 or gs base");
	BAD64(V + 152, 0xffff800000000000ull, "gs base 0xffff800000000000 is not a user address");
	BAD32(V + 160, 1, "cpu: reserved bytes are not zero");
	BAD32(V + 188, 1, "cpu: reserved bytes are not zero");
	BAD32(V + 192 + 24, 0x10000, "cpu: MXCSR 0x10000 sets reserved bits");
	/* The rest of the FXSAVE area is opaque: any value parses. */
	expect_bad_at(__LINE__, V + 192 + 100, "\x42", 1, REHASH_ALL, 0, "");
}

TEST(function_fields)
{
	const size_t H = (size_t)sec_off(S_HOST), G = (size_t)sec_off(S_GUEST);
	/* Guest entries: "add" (24+8), "digest" (24+8), "run" (24+8). */
	const size_t G1 = G + 32, G2 = G + 64;
	BAD32(G1, 300, "guest function 1: name length 300 exceeds 127");
	BAD32(G1, 128, "guest function 1: name length 128 exceeds 127");
	BAD32(G1, 0, "guest function 1: empty name");
	BAD32(G1, 100, "guest function 1: entry truncated");
	BAD32(G1, 9, "guest function 1: name contains a NUL byte");
	BAD8(G1 + 4, 10, "guest function 1: result type 10 invalid");
	BAD8(G1 + 5, 17, "guest function 1: 17 arguments exceed 16");
	BAD8(G1 + 8 + 3, 0, "guest function 1: argument 3 type 0 invalid");
	BAD8(G1 + 8 + 15, 12, "guest function 1: argument 15 type 12 invalid");
	BAD8(G1 + 6, 1, "guest function 1: reserved bytes are not zero");
	BAD8(G2 + 8 + 4, 1, "guest function 2: unused argument slot 4 is not zero");
	BAD8(G2 + 24 + 1, 0, "guest function 2: name contains a NUL byte");
	BAD8(G2 + 24 + 5, 'x', "guest function 2: name padding is not zero");
	expect_bad_at(__LINE__, G2 + 24, "add", 3, REHASH_ALL, -MOTE_EBADSNAP,
		      "guest functions 0 and 2 have the same name");
	BAD8(H + 4, 77, "host function 0: result type 77 invalid");
	BAD8(H + 8, 0, "host function 0: argument 0 type 0 invalid");
	/* Host "log_line" renamed "now_ns" (same entry size): a duplicate. */
	uint8_t six[4];
	st32(six, 6);
	struct patch dup[] = {{H, six, 4}, {H + 24, "now_ns\0\0", 8}};
	expect_bad_patches(__LINE__, dup, 2, REHASH_ALL, -MOTE_EBADSNAP,
			   "host functions 0 and 1 have the same name");
	expect_bad_at(__LINE__, H + 24, "log_li\0\0", 8, REHASH_ALL, -MOTE_EBADSNAP,
		      "host function 0: name contains a NUL byte");
}

TEST(region_fields)
{
	const size_t R = (size_t)sec_off(S_REGIONS);
#define RG(i, f) (R + 24 * (i) + 8 * (f))
	const uint64_t bo = good64(H_BLOB_OFFSET);
	BAD64(RG(1, 0), 0x200800, "region 1 [0x200800,+0xa000) is not page-aligned or empty");
	BAD64(RG(1, 1), 0, "region 1 [0x200000,+0x0) is not page-aligned or empty");
	BAD64(RG(1, 1), 0x1001, "region 1 [0x200000,+0x1001) is not page-aligned");
	BAD64(RG(1, 0), 0x7000, "region 1 [0x7000,+0xa000) overlaps region 0");
	BAD64(RG(1, 0), 0, "region 1 [0x0,+0xa000) is not sorted after region 0");
	BAD64(RG(4, 0), 0x400000, "region 4 [0x400000,+0x1000) guest range outside guest memory "
				  "(mem_size 0x400000)");
	BAD64(RG(4, 0), 0xfffffffffffff000ull, "region 4 [0xfffffffffffff000,+0x1000) guest "
					       "range outside");
	BAD64(RG(4, 1), 0xfffffffffffff000ull, "guest range outside guest memory");
	BAD64(RG(2, 2), bo + 1, "region 2 file offset 0x");
	BAD64(RG(2, 2), bo + 1, "is not page-aligned");
	BAD64(RG(4, 2), bo + 35 * PAGE, "region 4 file range");
	BAD64(RG(4, 2), bo + 35 * PAGE, "outside the blob");
	BAD64(RG(0, 2), 0, "region 0 file range [0x0,+0x7000) outside the blob");
	BAD64(RG(4, 2), 0xfffffffffffff000ull, "region 4 file range");
	BAD64(RG(1, 2), bo, "region 1 file offset");
	BAD64(RG(1, 2), bo, "expected");
	BAD64(RG(4, 1), 0x2000, "region 4 [0x3ff000,+0x2000) guest range outside guest memory");
	BAD64(RG(3, 1), 0x2000, "region 4 file offset");
#undef RG
}

TEST(overflowing_sizes)
{
	/* Offsets and sizes near UINT64_MAX never wrap into something valid. */
	for (int s = 0; s < NSEC; s++) {
		BAD64(SEC(s), UINT64_MAX - 7, "expected");
		BAD64(SEC(s) + 8, UINT64_MAX - 7, "");
	}
	BAD64(H_BLOB_SIZE, UINT64_MAX - PAGE + 1, "guard page");
	BAD64(H_FILE_SIZE, UINT64_MAX - PAGE + 1, "actual");
	size_t len;
	const uint8_t *b = good_bytes(&len);
	struct mote_snapfile f;
	char err[256];
	/* The caller's file_size disagrees with everything. */
	CHECK_EQ_INT(mote_snapfile_parse(b, len, UINT64_MAX, &f, err, sizeof(err)), -MOTE_EBADSNAP);
	CHECK_CONTAINS(err, "actual 0xffffffffffffffff");
}

static void truncations_of(const uint8_t *good, size_t len)
{
	REQUIRE(good);
	const uint64_t bo = ld64(good + H_BLOB_OFFSET);
	uint64_t cuts[64];
	size_t n = 0;
	const uint64_t fixed[] = {0, 1, 8, 100, 511, 512, bo - 1, bo, bo + 1, bo + PAGE,
				  len - PAGE - 1, len - PAGE, len - 1};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		cuts[n++] = fixed[i];
	const int nsec = ld64(good + H_FLAGS) & F_GUEST ? NSEC + 1 : NSEC;
	for (int s = 0; s < nsec; s++) {
		uint64_t off = ld64(good + SEC(s)), size = ld64(good + SEC(s) + 8);
		cuts[n++] = off;
		cuts[n++] = off + 1;
		cuts[n++] = off + size / 2;
		cuts[n++] = off + size - 1;
		cuts[n++] = off + size;
	}
	for (size_t i = 0; i < n; i++) {
		size_t cut = (size_t)cuts[i];
		uint8_t *b = malloc(cut ? cut : 1);
		memcpy(b, good, cut);
		struct mote_snapfile f;
		char err[256] = "";
		/* As a shorter file, and as a short read of the full-size file. */
		int rc = mote_snapfile_parse(b, cut, cut, &f, err, sizeof(err));
		if (rc != -MOTE_EBADSNAP)
			TEST_FAILF("cut at 0x%zx: rc %d (%s)", cut, rc, err);
		const char *want = cut < HDR_SIZE ? "truncated header"
				   : cut < bo	  ? "file truncated in the metadata"
						  : "(file truncated or changed)";
		if (!strstr(err, want))
			TEST_FAILF("cut at 0x%zx: \"%s\", want \"%s\"", cut, err, want);
		rc = mote_snapfile_parse(b, cut, len, &f, err, sizeof(err));
		if (cut < bo ? rc != -MOTE_EBADSNAP : rc != 0)
			TEST_FAILF("prefix 0x%zx of the full file: rc %d (%s)", cut, rc, err);
		mote_snapfile_close(&f);
		free(b);
	}
	/* Files cut on disk: open reports them. */
	const uint64_t file_cuts[] = {0, 300, bo - 8, bo + PAGE, len - PAGE, len - 1};
	for (size_t i = 0; i < sizeof(file_cuts) / sizeof(file_cuts[0]); i++) {
		const char *p = tpath("cut.snap");
		REQUIRE(write_file(p, good, (size_t)file_cuts[i]) == 0);
		for (unsigned mode = 0; mode <= MOTE_SNAPFILE_VERIFY_HEADER; mode++) {
			struct mote_snapfile f;
			char err[256] = "";
			int rc = mote_snapfile_open(p, mode, &f, err, sizeof(err));
			if (rc != -MOTE_EBADSNAP)
				TEST_FAILF("file cut at 0x%llx: rc %d (%s)",
					   (unsigned long long)file_cuts[i], rc, err);
		}
	}
}

TEST(truncation)
{
	size_t len;
	const uint8_t *good = good_bytes(&len);
	truncations_of(good, len);
	/* A layer with mappings: cuts inside sections 6 and 7 too. */
	good = good_layer_bytes(&len);
	REQUIRE(good && ld64(good + SEC(S_PARENT) + 8) == 32 &&
		ld64(good + SEC(S_MAPPINGS) + 8) == MAPS_SIZE);
	truncations_of(good, len);
}

TEST(shrunk_after_write)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("shrink.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	REQUIRE(truncate(p, st.st_size - (off_t)PAGE) == 0);
	struct mote_snapfile f;
	char err[256];
	CHECK_EQ_INT(mote_snapfile_open(p, 0, &f, err, sizeof(err)), -MOTE_EBADSNAP);
	char want[128];
	snprintf(want, sizeof(want), "file size 0x%llx in header, actual 0x%llx",
		 (unsigned long long)st.st_size, (unsigned long long)(st.st_size - (off_t)PAGE));
	CHECK_CONTAINS(err, want);
	CHECK_CONTAINS(err, "(file truncated or changed)");
	CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)),
		     -MOTE_EBADSNAP);
	/* Growing is a change too. */
	REQUIRE(truncate(p, st.st_size + (off_t)PAGE) == 0);
	CHECK_EQ_INT(mote_snapfile_open(p, 0, &f, err, sizeof(err)), -MOTE_EBADSNAP);
	CHECK_CONTAINS(err, "file truncated or changed");
	/* Same size, guard page no longer zero: only full verification sees it. */
	REQUIRE(truncate(p, st.st_size) == 0);
	int fd = open(p, O_WRONLY);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, "x", 1, st.st_size - 10) == 1);
	close(fd);
	CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)),
		     -MOTE_EBADSNAP);
	CHECK_CONTAINS(err, "guard page");
	/* Changed between open and a later verify_blob. */
	REQUIRE(truncate(p, st.st_size) == 0);
	fd = open(p, O_WRONLY);
	REQUIRE(fd >= 0);
	CHECK(pwrite(fd, "", 1, st.st_size - 10) == 1); /* guard page zero again */
	close(fd);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)) == 0);
	struct timespec ts[2] = {{0, UTIME_OMIT}, {42, 0}};
	REQUIRE(utimensat(AT_FDCWD, p, ts, 0) == 0);
	CHECK_EQ_INT(mote_snapfile_verify_blob(&f, err, sizeof(err)), -MOTE_EBADSNAP);
	CHECK_CONTAINS(err, "file changed after it was opened");
	mote_snapfile_close(&f);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)) == 0);
	CHECK_EQ_INT(mote_snapfile_verify_blob(&f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	/* Not a regular file; missing file. */
	CHECK_EQ_INT(mote_snapfile_open(tmpdir, 0, &f, err, sizeof(err)), -MOTE_EBADSNAP);
	CHECK_CONTAINS(err, "not a regular file");
	CHECK_EQ_INT(mote_snapfile_open(tpath("missing.snap"), 0, &f, err, sizeof(err)),
		     -MOTE_EIO);
	CHECK_CONTAINS(err, "No such file");
	CHECK_EQ_INT(mote_snapfile_open(p, 4, &f, err, sizeof(err)), -MOTE_EINVAL);
	fixture_free(&fx);
}

/* A bigger snapshot with several chunks: nmib MiB of memory, all present
 * except the first page. */
struct big {
	struct fixture fx;
	uint8_t *mem;
	uint64_t *present;
	uint64_t mem_size;
};

static void big_init(struct big *b, uint64_t nmib, unsigned seed)
{
	make_meta(&b->fx);
	b->mem_size = nmib << 20;
	b->fx.meta.layout.mem_size = b->mem_size;
	b->fx.meta.layout.heap_size = b->mem_size - b->fx.meta.layout.heap_base;
	uint64_t npages = b->mem_size / PAGE;
	b->mem = aligned_alloc(PAGE, b->mem_size);
	b->present = calloc(npages / 64, 8);
	memset(b->present, 0xff, npages / 8);
	b->present[0] &= ~1ull;
	uint64_t *w = (uint64_t *)b->mem;
	for (uint64_t i = 0; i < b->mem_size / 8; i++)
		w[i] = (i + 1) * 0x9e3779b97f4a7c15ull + seed;
}

static void big_free(struct big *b)
{
	free(b->mem);
	free(b->present);
}

TEST(blob_corruption)
{
	struct big b;
	big_init(&b, 16, 1);
	const char *p = tpath("big.snap");
	char err[256];
	REQUIRE(mote_snapfile_write(p, &b.fx.meta, b.mem, b.present, err, sizeof(err)) == 0);
	struct mote_snapfile f;
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)) == 0);
	CHECK_EQ_INT(f.nchunks, 8);
	CHECK_EQ_INT(f.nregions, 1);
	CHECK_EQ_U64(f.blob_size, b.mem_size - PAGE);
	uint64_t bo = f.blob_offset;
	mote_snapfile_close(&f);
	/* Flip one byte in chunk 5 (and later one in chunk 7). */
	int fd = open(p, O_RDWR);
	REQUIRE(fd >= 0);
	uint64_t off = bo + 5 * (2ull << 20) + 12345;
	uint8_t c;
	REQUIRE(pread(fd, &c, 1, (off_t)off) == 1);
	c ^= 0x20;
	REQUIRE(pwrite(fd, &c, 1, (off_t)off) == 1);
	c = 0;
	REQUIRE(pwrite(fd, &c, 1, (off_t)(bo + 7 * (2ull << 20) + 1)) == 1);
	close(fd);
	mote_snapfile_cache_clear();
	CHECK_EQ_INT(mote_snapfile_open(p, 0, &f, err, sizeof(err)), -MOTE_EHASH);
	CHECK_CONTAINS(err, "blob chunk 5 hash mismatch (file corrupt)");
	CHECK_EQ_INT(f.fd, -1);
	CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)),
		     -MOTE_EHASH);
	/* Header-only verification does not read the blob. */
	CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)), 0);
	/* ...and verify_blob on that handle finds it. */
	CHECK_EQ_INT(mote_snapfile_verify_blob(&f, err, sizeof(err)), -MOTE_EHASH);
	CHECK_CONTAINS(err, "blob chunk 5 hash mismatch");
	mote_snapfile_close(&f);
	/* The same file in the small fixture: one chunk. */
	size_t len;
	uint8_t *g = good_bytes(&len);
	uint8_t *copy = malloc(len);
	memcpy(copy, g, len);
	copy[good64(H_BLOB_OFFSET) + 3 * PAGE + 17] ^= 1;
	const char *q = tpath("flip.snap");
	REQUIRE(write_file(q, copy, len) == 0);
	CHECK_EQ_INT(mote_snapfile_open(q, 0, &f, err, sizeof(err)), -MOTE_EHASH);
	CHECK_CONTAINS(err, "blob chunk 0 hash mismatch (file corrupt)");
	CHECK_EQ_INT(mote_snapfile_open(q, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	free(copy);
	big_free(&b);
}

/* The sixteen-lane SHA-256 gives OpenSSL's digests for every length class
 * (empty, tails that need one or two padding blocks, whole chunks) and for
 * unaligned messages that differ per lane. */
TEST(sha256x16_matches_openssl)
{
	if (!mote_sha256x16_usable()) {
		printf("  (no AVX-512 here: the lanes are not used, nothing to compare)\n");
		return;
	}
	size_t max = (2u << 20) + 200;
	uint8_t *data = malloc(max + 16 * 97);
	REQUIRE(data != NULL);
	for (size_t i = 0; i < max + 16 * 97; i++)
		data[i] = (uint8_t)((i * 2654435761u) >> 11);
	static const size_t extra[] = {4096, 4096 + 55, 65536 + 63, 2u << 20, (2u << 20) + 119};
	size_t nlen = 300 + sizeof(extra) / sizeof(extra[0]);
	for (size_t k = 0; k < nlen; k++) {
		size_t len = k < 300 ? k : extra[k - 300];
		const uint8_t *msg[MOTE_SHA256X16_LANES];
		for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++)
			msg[i] = data + i * 97 + (k & 7); /* a different message per lane */
		uint8_t got[MOTE_SHA256X16_LANES][32];
		mote_sha256x16(msg, len, got);
		for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++) {
			uint8_t want[32];
			unsigned wlen = 0;
			REQUIRE(EVP_Digest(msg[i], len, want, &wlen, EVP_sha256(), NULL) == 1);
			if (memcmp(got[i], want, 32)) {
				CHECK(!"sixteen-lane digest differs from OpenSSL");
				printf("  length %zu lane %u\n", len, i);
				free(data);
				return;
			}
		}
	}
	free(data);
}

/* 40 MiB of memory, so the blob has 20 chunks: 16 verified in AVX-512
 * lanes, 4 one by one (the last one short). A flipped byte is reported in
 * its chunk, whichever path hashed it, and both paths agree. */
static void expect_chunk_error(const char *p, unsigned chunk)
{
	char err[256], want[64];
	struct mote_snapfile f;
	snprintf(want, sizeof(want), "blob chunk %u hash mismatch (file corrupt)", chunk);
	for (int lanes_off = 0; lanes_off < 2; lanes_off++) {
		mote_sha256x16__disable(lanes_off);
		CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)),
			     -MOTE_EHASH);
		CHECK_CONTAINS(err, want);
	}
	mote_sha256x16__disable(false);
}

static void flip_byte(const char *p, uint64_t off)
{
	int fd = open(p, O_RDWR);
	REQUIRE(fd >= 0);
	uint8_t c;
	REQUIRE(pread(fd, &c, 1, (off_t)off) == 1);
	c ^= 0x04;
	REQUIRE(pwrite(fd, &c, 1, (off_t)off) == 1);
	close(fd);
}

TEST(blob_corruption_in_lanes)
{
	struct big b;
	big_init(&b, 40, 3);
	const char *p = tpath("lanes.snap");
	char err[256];
	REQUIRE(mote_snapfile_write(p, &b.fx.meta, b.mem, b.present, err, sizeof(err)) == 0);
	struct mote_snapfile f;
	for (int lanes_off = 0; lanes_off < 2; lanes_off++) {
		mote_sha256x16__disable(lanes_off);
		CHECK_EQ_INT(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)),
			     0);
		CHECK_EQ_INT(f.nchunks, 20);
		mote_snapfile_close(&f);
	}
	mote_sha256x16__disable(false);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err)) == 0);
	uint64_t bo = f.blob_offset, chunk = f.chunk_size, end = bo + f.blob_size;
	mote_snapfile_close(&f);
	/* Last byte of the short last chunk, then lane 15, lane 0 and one in
	 * the middle of the group: each time the lowest bad chunk is named. */
	flip_byte(p, end - 1);
	expect_chunk_error(p, 19);
	flip_byte(p, bo + 15 * chunk + chunk - 1);
	expect_chunk_error(p, 15);
	flip_byte(p, bo + 11 * chunk + 4097);
	expect_chunk_error(p, 11);
	flip_byte(p, bo);
	expect_chunk_error(p, 0);
	big_free(&b);
}

TEST(verification_cache)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("cache.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	mote_snapfile_cache_clear();
	struct mote_snapfile f;
	char err[256];
	uint64_t h0 = mote_snapfile__cache_hits();
#define OPEN_OK(flags)                                                                             \
	do {                                                                                       \
		CHECK_EQ_INT(mote_snapfile_open(p, flags, &f, err, sizeof(err)), 0);               \
		mote_snapfile_close(&f);                                                           \
	} while (0)
	OPEN_OK(0); /* full verification, recorded */
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 1);
	OPEN_OK(MOTE_SNAPFILE_NO_CACHE);
	OPEN_OK(MOTE_SNAPFILE_VERIFY_HEADER);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 1);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 2);

	/* Touching the file (new mtime) invalidates. */
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1234567, 890}};
	REQUIRE(utimensat(AT_FDCWD, p, ts, 0) == 0);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 2);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 3);

	/* Corrupting the blob and restoring the mtime: ctime still differs. */
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	int fd = open(p, O_RDWR);
	REQUIRE(fd >= 0);
	uint8_t c = 0x5a;
	uint64_t bo;
	{
		uint8_t hdr[HDR_SIZE];
		REQUIRE(pread(fd, hdr, HDR_SIZE, 0) == HDR_SIZE);
		bo = ld64(hdr + H_BLOB_OFFSET);
	}
	usleep(20000); /* a later ctime even with coarse timestamps */
	REQUIRE(pwrite(fd, &c, 1, (off_t)bo + 100) == 1);
	struct timespec back[2] = {st.st_atim, st.st_mtim};
	REQUIRE(futimens(fd, back) == 0);
	close(fd);
	CHECK_EQ_INT(mote_snapfile_open(p, 0, &f, err, sizeof(err)), -MOTE_EHASH);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 3);

	/* Rewriting the file invalidates; clearing the cache too. */
	REQUIRE(write_fixture(&fx, p) == 0);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 3);
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 4);
	mote_snapfile_cache_clear();
	OPEN_OK(0);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h0 + 4);

	/* More files than the 256 slots: the oldest entries are evicted. */
	size_t len;
	uint8_t *bytes = read_file(p, &len);
	REQUIRE(bytes);
	mote_snapfile_cache_clear();
	char name[32];
	for (int i = 0; i < 270; i++) {
		snprintf(name, sizeof(name), "c%d.snap", i);
		REQUIRE(write_file(tpath(name), bytes, len) == 0);
		CHECK_EQ_INT(mote_snapfile_open(tpath(name), 0, &f, err, sizeof(err)), 0);
		mote_snapfile_close(&f);
	}
	uint64_t h1 = mote_snapfile__cache_hits();
	CHECK_EQ_INT(mote_snapfile_open(tpath("c269.snap"), 0, &f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h1 + 1);
	CHECK_EQ_INT(mote_snapfile_open(tpath("c0.snap"), 0, &f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	CHECK_EQ_U64(mote_snapfile__cache_hits(), h1 + 1); /* evicted: verified again */
	for (int i = 0; i < 270; i++) {
		snprintf(name, sizeof(name), "c%d.snap", i);
		unlink(tpath(name));
	}
	free(bytes);
#undef OPEN_OK
	fixture_free(&fx);
}

TEST(atomic_replace)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("atomic.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	int old = open(p, O_RDONLY);
	REQUIRE(old >= 0);
	struct stat st_old;
	REQUIRE(fstat(old, &st_old) == 0);
	uint8_t hash_old[32], hash_new[32];
	REQUIRE(pread(old, hash_old, 32, H_HEADER_HASH) == 32);

	/* Different content, saved over the open file. */
	fill_mem(fx.mem, fx.present, NPAGES, 7);
	fx.meta.created_unix_ns++;
	REQUIRE(write_fixture(&fx, p) == 0);
	struct stat st_new, st_fd;
	REQUIRE(stat(p, &st_new) == 0);
	REQUIRE(fstat(old, &st_fd) == 0);
	CHECK(st_new.st_ino != st_old.st_ino); /* a new inode took the name */
	CHECK_EQ_U64(st_fd.st_ino, st_old.st_ino);
	CHECK_EQ_INT(st_fd.st_nlink, 0);
	CHECK_EQ_U64(st_fd.st_size, st_old.st_size);
	uint8_t again[32];
	REQUIRE(pread(old, again, 32, H_HEADER_HASH) == 32);
	CHECK(!memcmp(again, hash_old, 32)); /* the old file was never written */
	int nfd = open(p, O_RDONLY);
	REQUIRE(nfd >= 0);
	REQUIRE(pread(nfd, hash_new, 32, H_HEADER_HASH) == 32);
	CHECK(memcmp(hash_new, hash_old, 32) != 0);
	close(nfd);
	close(old);
	struct mote_snapfile f;
	char err[256];
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)) == 0);
	check_contents(&f, &fx);
	mote_snapfile_close(&f);
	CHECK_EQ_INT(count_entries(".atomic.snap.tmp"), 0);

	/* Relative path: the temporary file goes in the current directory. */
	char cwd[4096];
	REQUIRE(getcwd(cwd, sizeof(cwd)));
	REQUIRE(chdir(tmpdir) == 0);
	CHECK_EQ_INT(write_fixture(&fx, "relative.snap"), 0);
	CHECK_EQ_INT(mote_snapfile_open("relative.snap", 0, &f, err, sizeof(err)), 0);
	mote_snapfile_close(&f);
	REQUIRE(chdir(cwd) == 0);
	fixture_free(&fx);
}

TEST(failed_saves_leave_old_file)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("keep.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	size_t len0;
	uint8_t *before = read_file(p, &len0);
	char err[256];

	/* A write error half-way (file size limit): EIO, old file untouched,
	 * temporary file removed. */
	struct big b;
	big_init(&b, 8, 3);
	struct rlimit rl, small = {1 << 20, 0};
	REQUIRE(getrlimit(RLIMIT_FSIZE, &rl) == 0);
	small.rlim_max = rl.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = mote_snapfile_write(p, &b.fx.meta, b.mem, b.present, err, sizeof(err));
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_DFL);
	CHECK_EQ_INT(rc, -MOTE_EIO);
	CHECK_CONTAINS(err, "File too large");
	CHECK_EQ_INT(count_entries(".keep.snap.tmp"), 0);
	size_t len1;
	uint8_t *after = read_file(p, &len1);
	CHECK(after && len1 == len0 && !memcmp(before, after, len0));
	free(after);
	big_free(&b);

	/* Invalid metadata: EINVAL before anything is created. */
	struct mote_snap_meta m = fx.meta;
	m.cpu.rip = MEM_SIZE;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "invalid snapshot metadata: entry/rip 0x400000 outside guest memory");
	m = fx.meta;
	m.layout.heap_size += PAGE;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "layout: heap");
	m = fx.meta;
	m.abi_version = 1;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "snapshot ABI version 1, host ABI 2");
	m = fx.meta;
	m.cpu.rflags = 0x3000;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "cpu: rflags 0x3000 has bits a backend sets");
	m = fx.meta;
	m.saved_by = 7;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "saved by backend 7, not KVM (1) or process (2)");
	struct mote_sig dup[3];
	memcpy(dup, fx.guest, sizeof(dup));
	dup[2].name = "add";
	m = fx.meta;
	m.guest_fns = dup;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "have the same name");
	dup[2].name = "run";
	dup[2].args[0] = MOTE_VOID;
	dup[2].nargs = 1;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "guest function 2: argument 0 type 0 invalid");
	dup[2] = fx.guest[2];
	dup[2].name = NULL;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	dup[2].name = longname;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	m = fx.meta;
	CHECK_EQ_INT(mote_snapfile_write(NULL, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_EQ_INT(mote_snapfile_write(tmpdir, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EIO); /* rename over a directory */
	char slash[300];
	snprintf(slash, sizeof(slash), "%s/", tmpdir);
	CHECK_EQ_INT(mote_snapfile_write(slash, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_EQ_INT(mote_snapfile_write(tpath("nodir/x.snap"), &m, fx.mem, fx.present, err,
					 sizeof(err)),
		     -MOTE_EIO);
	CHECK_CONTAINS(err, "No such file or directory");
	size_t len2;
	after = read_file(p, &len2);
	CHECK(after && len2 == len0 && !memcmp(before, after, len0));
	free(after);
	free(before);
	CHECK_EQ_INT(count_entries(".tmp."), 0);
	fixture_free(&fx);
}

TEST(defaults_and_edge_shapes)
{
	struct fixture fx;
	fixture_init(&fx);
	char err[256];
	struct mote_snapfile f;
	/* created 0 -> now; empty vendor -> this host's. */
	fx.meta.created_unix_ns = 0;
	memset(fx.meta.cpu_vendor, 0, sizeof(fx.meta.cpu_vendor));
	struct timespec t0;
	clock_gettime(CLOCK_REALTIME, &t0);
	const char *p = tpath("edge.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	REQUIRE(mote_snapfile_open(p, 0, &f, err, sizeof(err)) == 0);
	CHECK(f.meta.created_unix_ns >= (uint64_t)t0.tv_sec * 1000000000ull);
	CHECK(strlen(f.meta.cpu_vendor) == 12);
	mote_snapfile_close(&f);

	/* No present pages: an empty blob, no chunks, only the guard page. */
	uint64_t none[NPAGES / 64] = {0};
	REQUIRE(mote_snapfile_write(p, &fx.meta, fx.mem, none, err, sizeof(err)) == 0);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)) == 0);
	CHECK_EQ_U64(f.blob_size, 0);
	CHECK_EQ_INT(f.nchunks, 0);
	CHECK_EQ_INT(f.nregions, 0);
	CHECK_EQ_U64(f.file_size, f.blob_offset + PAGE);
	mote_snapfile_close(&f);

	/* Everything present; alternating pages (gaps of 1) merge into one. */
	uint64_t all[NPAGES / 64], alt[NPAGES / 64];
	memset(all, 0xff, sizeof(all));
	memset(alt, 0x55, sizeof(alt));
	REQUIRE(mote_snapfile_write(p, &fx.meta, fx.mem, all, err, sizeof(err)) == 0);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)) == 0);
	CHECK_EQ_INT(f.nregions, 1);
	CHECK_EQ_U64(f.blob_size, MEM_SIZE);
	CHECK_EQ_INT(f.nchunks, 2);
	mote_snapfile_close(&f);
	REQUIRE(mote_snapfile_write(p, &fx.meta, fx.mem, alt, err, sizeof(err)) == 0);
	REQUIRE(mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err)) == 0);
	CHECK_EQ_INT(f.nregions, 1);
	CHECK_EQ_U64(f.regions[0].size, MEM_SIZE - PAGE);
	uint8_t page[PAGE];
	REQUIRE(pread(f.fd, page, PAGE, (off_t)f.blob_offset + PAGE) == PAGE);
	CHECK(page[0] == 0 && page[PAGE - 1] == 0); /* absent page 1 stored as zeros */
	mote_snapfile_close(&f);

	/* No functions at all. */
	fx.meta.nhost_fns = fx.meta.nguest_fns = 0;
	fx.meta.host_fns = fx.meta.guest_fns = NULL;
	REQUIRE(write_fixture(&fx, p) == 0);
	REQUIRE(mote_snapfile_open(p, 0, &f, err, sizeof(err)) == 0);
	CHECK(f.meta.host_fns == NULL && f.meta.guest_fns == NULL);
	mote_snapfile_close(&f);
	fixture_free(&fx);
}

/* ---- Layers and mappings (sections 6 and 7) ---- */

static void open_and_check(const char *p, const struct fixture *fx)
{
	const unsigned modes[] = {MOTE_SNAPFILE_NO_CACHE, MOTE_SNAPFILE_VERIFY_HEADER};
	for (size_t m = 0; m < 2; m++) {
		struct mote_snapfile f;
		char err[512];
		int rc = mote_snapfile_open(p, modes[m], &f, err, sizeof(err));
		CHECK_EQ_INT(rc, 0);
		if (rc) {
			fprintf(stderr, "  %s mode %u: %s\n", p, modes[m], err);
			continue;
		}
		check_meta(&f.meta, &fx->meta);
		check_contents(&f, fx);
		mote_snapfile_close(&f);
		CHECK(f.meta.parent_path == NULL && f.meta.mappings == NULL);
	}
}

TEST(layer_and_mapping_roundtrip)
{
	const size_t counts[] = {0, 1, 3, MOTE_MAX_MAPPINGS};
	for (int layer = 0; layer < 2; layer++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			struct fixture fx;
			fixture_init(&fx);
			make_layer(&fx, layer, counts[c]);
			const char *p = tpath("layer-rt.snap");
			REQUIRE(write_fixture(&fx, p) == 0);
			open_and_check(p, &fx);
			size_t len;
			uint8_t *b = read_file(p, &len);
			REQUIRE(b);
			/* Literal layout (docs/snapshot-format.md). */
			const uint64_t end5 = ld64(b + SEC(S_CHUNKS)) + ld64(b + SEC(S_CHUNKS) + 8);
			CHECK_EQ_U64(ld64(b + SEC(S_PARENT)), end5);
			CHECK_EQ_U64(ld64(b + SEC(S_PARENT) + 8), layer ? 32 : 0);
			CHECK_EQ_U64(ld64(b + SEC(S_PARENT) + 16) & 0xffffffff, layer);
			CHECK_EQ_U64(ld64(b + SEC(S_MAPPINGS)), end5 + (layer ? 32 : 0));
			CHECK_EQ_U64(ld64(b + SEC(S_MAPPINGS) + 16) & 0xffffffff, counts[c]);
			const uint64_t end7 = ld64(b + SEC(S_MAPPINGS)) + ld64(b + SEC(S_MAPPINGS) + 8);
			CHECK_EQ_U64(ld64(b + H_BLOB_OFFSET), (end7 + PAGE - 1) / PAGE * PAGE);
			CHECK(!memcmp(b + H_PARENT, fx.meta.parent_hash, 32));
			if (layer) {
				const uint8_t *e = b + end5;
				CHECK_EQ_U64(ld64(e), 17); /* path_len 17, reserved 0 */
				CHECK(!memcmp(e + 8, L_PARENT, 17));
				CHECK(e[25] == 0 && ld64(e + 24) >> 8 == 0); /* padding */
			}
			if (counts[c] == 3) {
				const uint8_t *m = b + ld64(b + SEC(S_MAPPINGS));
				CHECK_EQ_U64(ld64(b + SEC(S_MAPPINGS) + 8), MAPS_SIZE);
				CHECK_EQ_U64(ld64(m + M1), 0x2000);
				CHECK_EQ_U64(ld64(m + M1 + 8), 0x1000);
				CHECK_EQ_U64(ld64(m + M1 + 16), MOTE_MAP_BASE + 0x10000);
				CHECK_EQ_U64(ld64(m + M1 + 24), 1 | 18ull << 32); /* flags, len */
				CHECK(!memcmp(m + M1 + 32, fx.maps[1].sha256, 32));
				CHECK(!memcmp(m + M1 + 64, "weights/part-1.dat\0\0\0\0\0\0", 24));
				CHECK_EQ_U64(ld64(m + M2), 0x100000000ull);
				CHECK_EQ_U64(ld64(m + M2 + 24), 1 | 8ull << 32);
				CHECK(!memcmp(m + M2 + 64, "abcdefgh", 8));
			}
			free(b);
			fixture_free(&fx);
		}
	}

	/* Longest paths (4095 bytes); unsorted mappings are stored sorted. */
	struct fixture fx;
	fixture_init(&fx);
	make_layer(&fx, true, 3);
	char *longp = malloc(4096), *longm = malloc(4096);
	REQUIRE(longp && longm);
	for (int i = 0; i < 4095; i++) {
		longp[i] = (char)('a' + i % 26);
		longm[i] = (char)(0x80 + i % 0x7f); /* any non-NUL byte */
	}
	longp[4095] = longm[4095] = 0;
	fx.meta.parent_path = longp;
	struct mote_snap_mapping rev[3] = {fx.maps[2], fx.maps[0], fx.maps[1]};
	rev[1].path = longm;
	fx.meta.mappings = rev;
	const char *p = tpath("layer-long.snap");
	REQUIRE(write_fixture(&fx, p) == 0);
	fx.maps[0].path = longm;
	fx.meta.mappings = fx.maps; /* what a reader sees: by guest address */
	open_and_check(p, &fx);
	free(longp);
	free(longm);
	fixture_free(&fx);
}

TEST(layer_and_mapping_write_rejects)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("layer-bad.snap");
	char err[512];
#define WRITE_BAD(substr)                                                                          \
	do {                                                                                       \
		CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),     \
			     -MOTE_EINVAL);                                                        \
		CHECK_CONTAINS(err, substr);                                                       \
	} while (0)
	struct mote_snap_meta m = fx.meta;
	m.parent_hash[7] = 1;
	WRITE_BAD("invalid snapshot metadata: parent hash set without a parent path");
	m = fx.meta;
	m.parent_path = fx.parent;
	strcpy(fx.parent, "base.snap");
	WRITE_BAD("invalid snapshot metadata: parent path present without a parent hash");
	m.parent_hash[0] = 1;
	fx.parent[0] = 0;
	WRITE_BAD("invalid snapshot metadata: parent path is empty");
	char *huge = malloc(4097);
	REQUIRE(huge);
	memset(huge, 'x', 4096);
	huge[4096] = 0;
	m.parent_path = huge;
	WRITE_BAD("parent path longer than 4095 bytes");

	make_layer(&fx, false, 3);
	m = fx.meta;
	m.nmappings = MOTE_MAX_MAPPINGS + 1;
	WRITE_BAD("mapping count 33 invalid");
	m.nmappings = 1;
	m.mappings = NULL;
	WRITE_BAD("mapping count 1 invalid");
	m = fx.meta;
	fx.maps[1].path = NULL;
	WRITE_BAD("mapping 1: path missing or longer than 4095");
	fx.maps[1].path = huge;
	WRITE_BAD("mapping 1: path missing or longer than 4095");
	fx.maps[1].path = fx.paths[1];
	fx.paths[1][0] = 0;
	WRITE_BAD("invalid snapshot metadata: mapping 1: empty path");
	make_layer(&fx, false, 3);
	fx.maps[1].gpa -= PAGE;
	WRITE_BAD("invalid snapshot metadata: mapping 1 [0x100000f000,+0x1000) overlaps mapping 0");
	make_layer(&fx, false, 3);
	fx.maps[0].gpa = fx.maps[1].gpa; /* same address: sorting cannot help */
	WRITE_BAD("overlaps mapping 0");
	make_layer(&fx, false, 3);
	fx.maps[2].offset = 0x10;
	WRITE_BAD("mapping 2: file offset 0x10 is not page-aligned");
	make_layer(&fx, false, 3);
	fx.maps[0].size = 0;
	WRITE_BAD("mapping 0: size 0x0 is not page-aligned or zero");
	make_layer(&fx, false, 3);
	fx.maps[0].flags = 4;
	WRITE_BAD("mapping 0: unknown flags 0x4");
	make_layer(&fx, false, 3);
	fx.maps[0].flags = MOTE_SNAP_MAP_ABSORBED; /* absorbed needs its content */
	WRITE_BAD("mapping 0: absorbed but no content given");
	make_layer(&fx, false, 3);
	fx.maps[2].gpa += PAGE;
	WRITE_BAD("outside the mapping window");
	make_layer(&fx, false, 3);
	fx.maps[0].gpa = 0x100000;
	WRITE_BAD("mapping 0 [0x100000,+0x10000) outside the mapping window "
		  "[0x1000000000, 0x1100000000)");
#undef WRITE_BAD
	free(huge);
	CHECK_EQ_INT(count_entries(".tmp."), 0);
	CHECK(access(p, F_OK) != 0);
	fixture_free(&fx);
}

/* Bad values in the layer file (parent path at P, mappings at M). */
static void layer_bad_at(int line, size_t off, const void *bytes, size_t n, int rehash, int code,
			 const char *substr)
{
	size_t len;
	const uint8_t *good = good_layer_bytes(&len);
	struct patch p = {off, bytes, n};
	expect_bad_in(line, good, len, &p, 1, rehash, code, substr);
}

static void layer_bad64(int line, size_t off, uint64_t v, const char *substr)
{
	uint8_t b[8];
	st64(b, v);
	layer_bad_at(line, off, b, 8, REHASH_ALL, -MOTE_EBADSNAP, substr);
}

static void layer_bad32(int line, size_t off, uint32_t v, const char *substr)
{
	uint8_t b[4];
	st32(b, v);
	layer_bad_at(line, off, b, 4, REHASH_ALL, -MOTE_EBADSNAP, substr);
}

#define LBAD64(off, v, s) layer_bad64(__LINE__, off, v, s)
#define LBAD32(off, v, s) layer_bad32(__LINE__, off, v, s)
#define LBAD8(off, v, s) layer_bad_at(__LINE__, off, (const uint8_t[]){v}, 1, REHASH_ALL, \
				      -MOTE_EBADSNAP, s)

TEST(layer_fields)
{
	size_t len;
	const uint8_t *good = good_layer_bytes(&len);
	REQUIRE(good);
	const size_t P = (size_t)ld64(good + SEC(S_PARENT));
	const size_t M = (size_t)ld64(good + SEC(S_MAPPINGS));
	REQUIRE(P + 32 == M && ld64(good + SEC(S_MAPPINGS) + 8) == MAPS_SIZE);
	/* The good file itself. */
	layer_bad_at(__LINE__, H_MAGIC, "M", 1, REHASH_NONE, 0, "");

	/* Parent hash and path go together. */
	layer_bad_at(__LINE__, H_PARENT, (const uint8_t[32]){0}, 32, REHASH_ALL, -MOTE_EBADSNAP,
		     "parent path present without a parent hash");
	LBAD32(SEC(S_PARENT) + 16, 0, "parent section: 0x20 bytes for 0 entries");
	LBAD32(P, 0, "parent path is empty");
	LBAD32(P, 4096, "parent path length 4096 exceeds 4095");
	LBAD32(P, 0xffffffff, "parent path length 4294967295 exceeds 4095");
	LBAD32(P, 25, "parent path: entry truncated by the section end");
	LBAD32(P, 16, "parent section: 0x8 bytes after the entry");
	LBAD32(P + 4, 1, "parent path: reserved bytes are not zero");
	LBAD8(P + 8 + 3, 0, "parent path contains a NUL byte");
	LBAD8(P + 8 + 16, 0, "parent path contains a NUL byte");
	LBAD8(P + 8 + 17, 'x', "parent path padding is not zero");
	LBAD8(P + 31, 1, "parent path padding is not zero");

	/* Mappings. */
	LBAD32(SEC(S_MAPPINGS) + 16, 0, "mappings: section of 0xf0 bytes for 0 entries");
	LBAD32(SEC(S_MAPPINGS) + 16, 2, "mappings: 0x48 bytes after the last entry");
	LBAD32(SEC(S_MAPPINGS) + 16, 4, "mapping 3: entry truncated by the section end");
	LBAD32(SEC(S_MAPPINGS) + 16, 33, "mapping count 33 exceeds 32");
	LBAD64(M + M0, 0x800, "mapping 0: file offset 0x800 is not page-aligned");
	LBAD64(M + M2, 1, "mapping 2: file offset 0x1 is not page-aligned");
	LBAD64(M + M1 + 8, 0x1001, "mapping 1: size 0x1001 is not page-aligned or zero");
	LBAD64(M + M1 + 8, 0x800, "mapping 1: size 0x800 is not page-aligned or zero");
	LBAD64(M + M1 + 8, 0, "mapping 1: size 0x0 is not page-aligned or zero");
	LBAD64(M + M2 + 16, MOTE_MAP_LIMIT - 0x200000 + 0x10,
	       "mapping 2: guest address 0x10ffe00010 is not page-aligned");
	LBAD64(M + M0 + 16, MOTE_MAP_BASE - PAGE,
	       "mapping 0 [0xffffff000,+0x10000) outside the mapping window "
	       "[0x1000000000, 0x1100000000)");
	LBAD64(M + M0 + 16, 0, "mapping 0 [0x0,+0x10000) outside the mapping window");
	LBAD64(M + M2 + 16, MOTE_MAP_LIMIT - 0x1ff000, "mapping 2 [0x10ffe01000,+0x200000) outside "
						      "the mapping window");
	LBAD64(M + M2 + 16, MOTE_MAP_LIMIT, "mapping 2 [0x1100000000,+0x200000) outside");
	LBAD64(M + M2 + 16, 0xfffffffffffff000ull, "mapping 2 [0xfffffffffffff000,+0x200000) "
						   "outside the mapping window");
	LBAD64(M + M2 + 8, 0x1000000000ull, "mapping 2 [0x10ffe00000,+0x1000000000) outside");
	LBAD64(M + M2 + 8, 0xfffffffffffff000ull,
	       "mapping 2: file range [0x100000000,+0xfffffffffffff000) overflows");
	LBAD64(M + M2, 0x7ffffffffffff000ull,
	       "mapping 2: file range [0x7ffffffffffff000,+0x200000) overflows");
	LBAD64(M + M1 + 16, MOTE_MAP_BASE + 0xf000,
	       "mapping 1 [0x100000f000,+0x1000) overlaps mapping 0");
	LBAD64(M + M2 + 16, MOTE_MAP_BASE + 0x10000,
	       "mapping 2 [0x1000010000,+0x200000) overlaps mapping 1");
	LBAD64(M + M0 + 16, MOTE_MAP_BASE + 0x20000,
	       "mapping 1 at 0x1000010000 is not sorted after mapping 0 (0x1000020000)");
	LBAD64(M + M1 + 16, MOTE_MAP_LIMIT - 0x100000,
	       "mapping 2 at 0x10ffe00000 is not sorted after mapping 1 (0x10fff00000)");
	LBAD32(M + M1 + 24, 4, "mapping 1: unknown flags 0x4");
	LBAD32(M + M1 + 24, MOTE_SNAP_MAP_ABSORBED, "1 absorbed mapping but 0 regions for them");
	LBAD32(M + M0 + 24, 0x80000001u, "mapping 0: unknown flags 0x80000001");
	LBAD32(M + M0 + 28, 0, "mapping 0: empty path");
	LBAD32(M + M0 + 28, 4096, "mapping 0: path length 4096 exceeds 4095");
	LBAD32(M + M0 + 28, 0xffffffff, "mapping 0: path length 4294967295 exceeds 4095");
	LBAD32(M + M2 + 28, 9, "mapping 2: entry truncated by the section end");
	LBAD32(M + M0 + 28, 17, "mapping 0: path contains a NUL byte"); /* reads padding */
	LBAD8(M + M1 + 64 + 5, 0, "mapping 1: path contains a NUL byte");
	LBAD8(M + M1 + 64 + 18, 'x', "mapping 1: path padding is not zero");
	LBAD32(M + M2 + 28, 7, "mapping 2: path padding is not zero");
	/* The content hashes are opaque to the format. */
	layer_bad_at(__LINE__, M + M1 + 32, "\xff\xff", 2, REHASH_ALL, 0, "");

	/* Everything here is covered by the header hash. */
	layer_bad_at(__LINE__, H_PARENT + 9, "\x01", 1, REHASH_NONE, -MOTE_EHASH,
		     "header hash mismatch");
	for (size_t off = P; off < M + MAPS_SIZE; off += 7)
		layer_bad_at(__LINE__, off, "\x5a", 1, REHASH_NONE, -MOTE_EHASH,
			     "header hash mismatch (file corrupt)");
}

/* Remove k bytes at `at` (inside section s) from the metadata of `good`:
 * what follows moves down, the sections after s with it; s shrinks by k. */
static void cut_in(int line, const uint8_t *good, size_t len, int s, size_t at, size_t k,
		   const char *substr)
{
	uint8_t *b = malloc(len);
	memcpy(b, good, len);
	const int last = ld64(b + H_FLAGS) & F_GUEST ? S_GUESTID : S_MAPPINGS;
	const size_t end = (size_t)(ld64(b + SEC(last)) + ld64(b + SEC(last) + 8));
	memmove(b + at, b + at + k, end - at - k);
	memset(b + end - k, 0, k);
	st64(b + SEC(s) + 8, ld64(b + SEC(s) + 8) - k);
	for (int i = s + 1; i <= last; i++)
		st64(b + SEC(i), ld64(b + SEC(i)) - k);
	expect_bad_in(line, b, len, NULL, 0, REHASH_ALL, -MOTE_EBADSNAP, substr);
	free(b);
}

static void layer_cut(int line, int s, size_t at, size_t k, const char *substr)
{
	size_t len;
	const uint8_t *good = good_layer_bytes(&len);
	cut_in(line, good, len, s, at, k, substr);
}

TEST(layer_sections_truncated)
{
	size_t len;
	const uint8_t *good = good_layer_bytes(&len);
	REQUIRE(good);
	const size_t P = (size_t)ld64(good + SEC(S_PARENT));
	const size_t M = (size_t)ld64(good + SEC(S_MAPPINGS));
	layer_cut(__LINE__, S_PARENT, P + 16, 16, "parent path: entry truncated by the section end");
	layer_cut(__LINE__, S_PARENT, P + 8, 24, "parent path: entry truncated by the section end");
	layer_cut(__LINE__, S_PARENT, P, 32, "parent path: entry truncated by the section end");
	layer_cut(__LINE__, S_MAPPINGS, M + M2 + 64, 8, "mapping 2: entry truncated by the section");
	layer_cut(__LINE__, S_MAPPINGS, M + M2 + 8, 64, "mapping 2: entry truncated by the section");
	layer_cut(__LINE__, S_MAPPINGS, M + M2, 72, "mapping 2: entry truncated by the section end");
	layer_cut(__LINE__, S_MAPPINGS, M + M1, 88, "mapping 2: entry truncated by the section end");
	layer_cut(__LINE__, S_MAPPINGS, M, MAPS_SIZE, "mapping 0: entry truncated by the section end");
}

/* ---- The guest ELF's identity (section 8, header flag bit 0) ---- */

#define G_PATH "/opt/guests/app.elf" /* 19 bytes: section 8 is 40 + 24 = 64 bytes */
#define G_SIZE 64u

static void make_guest(struct fixture *fx, const char *path)
{
	snprintf(fx->elf, sizeof(fx->elf), "%s", path);
	fx->meta.guest_path = fx->elf;
	for (int i = 0; i < 32; i++)
		fx->meta.guest_sha256[i] = (uint8_t)(0xc0 + 3 * i);
}

/* A standalone file with the guest's identity, written once. */
static uint8_t *good_guest_bytes(size_t *len)
{
	static uint8_t *buf;
	static size_t blen;
	if (!buf) {
		struct fixture fx;
		fixture_init(&fx);
		make_guest(&fx, G_PATH);
		const char *p = tpath("good-guest.snap");
		if (write_fixture(&fx, p) == 0)
			buf = read_file(p, &blen);
		fixture_free(&fx);
	}
	*len = blen;
	return buf;
}

/* The literal layout of section 8 and its table entry in file b. */
static void check_guest_layout(const uint8_t *b, const struct mote_snap_meta *m)
{
	const uint64_t end7 = ld64(b + SEC(S_MAPPINGS)) + ld64(b + SEC(S_MAPPINGS) + 8);
	const uint64_t plen = strlen(m->guest_path), size = 40 + (plen + 7) / 8 * 8;
	CHECK_EQ_U64(ld64(b + H_FLAGS) & 0xffffffff, F_GUEST);
	CHECK_EQ_U64(ld64(b + H_GUEST_ENTRY), end7); /* right after section 7 */
	CHECK_EQ_U64(ld64(b + H_GUEST_ENTRY + 8), size);
	CHECK_EQ_U64(ld64(b + H_GUEST_ENTRY + 16), 1); /* count 1, reserved 0 */
	CHECK_EQ_U64(ld64(b + H_BLOB_OFFSET), (end7 + size + PAGE - 1) / PAGE * PAGE);
	for (size_t i = H_RESERVED1; i < HDR_SIZE; i++)
		CHECK(b[i] == 0);
	const uint8_t *e = b + end7;
	CHECK(!memcmp(e, m->guest_sha256, 32));
	CHECK_EQ_U64(ld64(e + 32), plen); /* path_len, reserved 0 */
	CHECK(!memcmp(e + 40, m->guest_path, plen));
	for (uint64_t i = 40 + plen; i < size; i++)
		CHECK(e[i] == 0); /* padding */
}

TEST(guest_roundtrip)
{
	/* Without: flag clear, entry zero, nothing recorded. */
	size_t len;
	const uint8_t *good = good_bytes(&len);
	REQUIRE(good);
	CHECK_EQ_U64(ld64(good + H_FLAGS) & 0xffffffff, 0);
	for (size_t i = H_GUEST_ENTRY; i < HDR_SIZE; i++)
		CHECK(good[i] == 0);
	struct mote_snapfile f;
	char err[256];
	REQUIRE(mote_snapfile_parse(good, len, len, &f, err, sizeof(err)) == 0);
	CHECK(f.meta.guest_path == NULL);
	CHECK(!memcmp(f.meta.guest_sha256, (const uint8_t[32]){0}, 32));
	mote_snapfile_close(&f);

	/* With: standalone and a layer with mappings; paths of 1, 8 (no
	 * padding), 19 and 4095 bytes (any non-NUL byte). */
	char *longg = malloc(4096);
	REQUIRE(longg);
	for (int i = 0; i < 4095; i++)
		longg[i] = (char)(1 + i % 255);
	longg[4095] = 0;
	const char *paths[] = {"g", "app8.elf", G_PATH, longg};
	for (int layer = 0; layer < 2; layer++) {
		for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
			struct fixture fx;
			fixture_init(&fx);
			make_layer(&fx, layer, layer ? 3 : 0);
			make_guest(&fx, G_PATH);
			fx.meta.guest_path = (char *)paths[k];
			const char *p = tpath("guest-rt.snap");
			REQUIRE(write_fixture(&fx, p) == 0);
			open_and_check(p, &fx);
			uint8_t *b = read_file(p, &len);
			REQUIRE(b);
			check_guest_layout(b, &fx.meta);
			free(b);
			fixture_free(&fx);
		}
	}
	free(longg);
}

/* Bad values in the guest file (section 8 at G). */
static void guest_bad_at(int line, size_t off, const void *bytes, size_t n, int rehash, int code,
			 const char *substr)
{
	size_t len;
	const uint8_t *good = good_guest_bytes(&len);
	struct patch p = {off, bytes, n};
	expect_bad_in(line, good, len, &p, 1, rehash, code, substr);
}

/* Store v in n little-endian bytes at off. */
static void guest_bad_n(int line, size_t off, uint64_t v, size_t n, const char *substr)
{
	uint8_t b[8];
	st64(b, v);
	guest_bad_at(line, off, b, n, REHASH_ALL, -MOTE_EBADSNAP, substr);
}

#define GBAD64(off, v, s) guest_bad_n(__LINE__, off, v, 8, s)
#define GBAD32(off, v, s) guest_bad_n(__LINE__, off, v, 4, s)
#define GBAD8(off, v, s) guest_bad_n(__LINE__, off, v, 1, s)

TEST(guest_fields)
{
	size_t len;
	const uint8_t *good = good_guest_bytes(&len);
	REQUIRE(good);
	const size_t G = (size_t)ld64(good + SEC(S_GUESTID));
	const uint64_t bo = ld64(good + H_BLOB_OFFSET);
	REQUIRE(G == ld64(good + SEC(S_MAPPINGS)) + ld64(good + SEC(S_MAPPINGS) + 8));
	REQUIRE(ld64(good + SEC(S_GUESTID) + 8) == G_SIZE && G + G_SIZE < bo);
	char want[128];
	/* The good file itself. */
	guest_bad_at(__LINE__, H_MAGIC, "M", 1, REHASH_NONE, 0, "");

	/* The flag and the table entry go together. Flag set, entry zero: */
	snprintf(want, sizeof(want), "section guest at 0x0, expected 0x%zx (sections are "
		 "contiguous)", G);
	BAD32(H_FLAGS, F_GUEST, want);
	guest_bad_at(__LINE__, H_GUEST_ENTRY, (const uint8_t[24]){0}, 24, REHASH_ALL,
		     -MOTE_EBADSNAP, want);
	/* entry set, flag clear: */
	GBAD32(H_FLAGS, 0, "section guest: table entry set without flag 0x1");
	BAD8(H_GUEST_ENTRY + 23, 1, "section guest: table entry set without flag 0x1");
	BAD32(H_GUEST_ENTRY + 16, 1, "section guest: table entry set without flag 0x1");
	/* both cleared: the section's bytes are left over as padding. */
	{
		struct patch p[] = {{H_FLAGS, (const uint8_t[4]){0}, 4},
				    {H_GUEST_ENTRY, (const uint8_t[24]){0}, 24}};
		expect_bad_in(__LINE__, good, len, p, 2, REHASH_ALL, -MOTE_EBADSNAP,
			      "padding before the blob is not zero");
	}
	GBAD32(H_FLAGS, 3, "unknown flags 0x2 (written by a newer mote?)");

	/* The table entry follows the rules of entries 0-7: contiguous with
	 * section 7, size a multiple of 8, inside the metadata. */
	snprintf(want, sizeof(want), "section guest at 0x%zx, expected 0x%zx", G + 8, G);
	GBAD64(H_GUEST_ENTRY, G + 8, want);
	snprintf(want, sizeof(want), "section guest at 0x%zx, expected 0x%zx", G - 8, G);
	GBAD64(H_GUEST_ENTRY, G - 8, want);
	snprintf(want, sizeof(want), "section guest at 0x%zx, expected 0x%zx", G, G + 8);
	GBAD64(SEC(S_MAPPINGS) + 8, 8, want); /* section 7 grew */
	GBAD64(H_GUEST_ENTRY + 8, 0x41, "section guest size 0x41 is not a multiple of 8");
	GBAD64(H_GUEST_ENTRY + 8, bo - G + 8, "runs past the blob offset");
	GBAD64(H_GUEST_ENTRY + 8, UINT64_MAX - 7, "runs past the blob offset");
	GBAD64(H_GUEST_ENTRY, UINT64_MAX - 7, "section guest at 0xfffffffffffffff8, expected");
	GBAD8(H_GUEST_ENTRY + 20, 1, "section guest: reserved bytes are not zero");
	GBAD32(H_GUEST_ENTRY + 16, 0, "guest section: count 0, expected 1");
	GBAD32(H_GUEST_ENTRY + 16, 2, "guest section: count 2, expected 1");
	/* The blob follows section 8, not section 7. */
	{
		uint8_t nbo[8], nbs[8];
		st64(nbo, bo + PAGE);
		st64(nbs, ld64(good + H_BLOB_SIZE) - PAGE);
		struct patch p[] = {{H_BLOB_OFFSET, nbo, 8}, {H_BLOB_SIZE, nbs, 8}};
		expect_bad_in(__LINE__, good, len, p, 2, REHASH_ALL, -MOTE_EBADSNAP,
			      "does not follow the metadata");
	}

	/* The record: sha256, path_len, reserved, path, padding. */
	GBAD32(G + 32, 0, "guest section: path length 0");
	GBAD32(G + 32, 4096, "guest section: path length 4096 exceeds 4095");
	GBAD32(G + 32, 0xffffffff, "guest section: path length 4294967295 exceeds 4095");
	GBAD32(G + 32, 25, "guest section: size 0x40, expected 0x48 for a 25-byte path");
	GBAD32(G + 32, 16, "guest section: size 0x40, expected 0x38 for a 16-byte path");
	/* A larger section (its extra bytes zero); smaller ones: guest_truncated. */
	GBAD64(H_GUEST_ENTRY + 8, 72, "guest section: size 0x48, expected 0x40 for a 19-byte path");
	GBAD8(G + 36, 1, "guest section: reserved bytes are not zero");
	GBAD8(G + 39, 0x80, "guest section: reserved bytes are not zero");
	GBAD8(G + 40, 0, "guest section: path contains a NUL byte");
	GBAD8(G + 40 + 9, 0, "guest section: path contains a NUL byte");
	GBAD8(G + 40 + 18, 0, "guest section: path contains a NUL byte");
	GBAD32(G + 32, 20, "guest section: path contains a NUL byte"); /* reads the padding */
	GBAD8(G + 40 + 19, 'x', "guest section: path padding is not zero");
	GBAD8(G + G_SIZE - 1, 1, "guest section: path padding is not zero");
	/* The ELF hash is opaque to the format. */
	guest_bad_at(__LINE__, G, "\xff\xff", 2, REHASH_ALL, 0, "");
	guest_bad_at(__LINE__, G + 31, "\x01", 1, REHASH_ALL, 0, "");

	/* Everything here is covered by the header hash. */
	guest_bad_at(__LINE__, H_FLAGS, "\x00", 1, REHASH_NONE, -MOTE_EHASH,
		     "header hash mismatch (file corrupt)");
	guest_bad_at(__LINE__, H_GUEST_ENTRY + 8, "\x48", 1, REHASH_NONE, -MOTE_EHASH,
		     "header hash mismatch (file corrupt)");
	for (size_t off = G; off < G + G_SIZE; off += 5)
		guest_bad_at(__LINE__, off, "\x5a", 1, REHASH_NONE, -MOTE_EHASH,
			     "header hash mismatch (file corrupt)");
}

TEST(guest_truncated)
{
	size_t len;
	const uint8_t *good = good_guest_bytes(&len);
	REQUIRE(good);
	truncations_of(good, len);
	const size_t G = (size_t)ld64(good + SEC(S_GUESTID));
	cut_in(__LINE__, good, len, S_GUESTID, G + 56, 8,
	       "guest section: size 0x38, expected 0x40 for a 19-byte path");
	cut_in(__LINE__, good, len, S_GUESTID, G + 40, 24,
	       "guest section: size 0x28, expected 0x40 for a 19-byte path");
	cut_in(__LINE__, good, len, S_GUESTID, G + 8, 32,
	       "guest section: size 0x20, less than the 0x28-byte record");
	cut_in(__LINE__, good, len, S_GUESTID, G, G_SIZE,
	       "guest section: size 0x0, less than the 0x28-byte record");
}

TEST(guest_write_rejects)
{
	struct fixture fx;
	fixture_init(&fx);
	const char *p = tpath("guest-bad.snap");
	char err[512];
	struct mote_snap_meta m = fx.meta;
	char empty[1] = "";
	m.guest_path = empty;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "invalid snapshot metadata: guest section: path length 0");
	char *huge = malloc(4097);
	REQUIRE(huge);
	memset(huge, 'x', 4096);
	huge[4096] = 0;
	m.guest_path = huge;
	CHECK_EQ_INT(mote_snapfile_write(p, &m, fx.mem, fx.present, err, sizeof(err)),
		     -MOTE_EINVAL);
	CHECK_CONTAINS(err, "guest path longer than 4095 bytes");
	free(huge);
	CHECK_EQ_INT(count_entries(".tmp."), 0);
	CHECK(access(p, F_OK) != 0);
	fixture_free(&fx);
}

/* ---- Allocation failures ---- */

static int alloc_fail_at = -1, alloc_count;

static void *failing_malloc(size_t n)
{
	if (alloc_count++ == alloc_fail_at)
		return NULL;
	return malloc(n);
}

static void *failing_realloc(void *p, size_t n)
{
	if (alloc_count++ == alloc_fail_at)
		return NULL;
	return realloc(p, n);
}

static void allocation_failures_with(bool layered)
{
	struct fixture fx;
	fixture_init(&fx);
	if (layered) {
		make_layer(&fx, true, 3);
		make_guest(&fx, G_PATH);
	}
	const char *p = tpath("alloc.snap");
	char err[256];
	mote_allocator a = {failing_malloc, failing_realloc, free};
	REQUIRE(mote_set_allocator(&a) == 0);
	int rc = -1, n;
	for (n = 0; n < 200 && rc; n++) {
		alloc_fail_at = n;
		alloc_count = 0;
		rc = mote_snapfile_write(p, &fx.meta, fx.mem, fx.present, err, sizeof(err));
		if (rc && rc != -MOTE_ENOMEM)
			TEST_FAILF("write, failing allocation %d: rc %d", n, rc);
		CHECK_EQ_INT(count_entries(".alloc.snap.tmp"), 0);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK(n > 3);
	const unsigned modes[] = {MOTE_SNAPFILE_NO_CACHE, MOTE_SNAPFILE_VERIFY_HEADER};
	for (size_t m = 0; m < 2; m++) {
		rc = -1;
		for (n = 0; n < 200 && rc; n++) {
			alloc_fail_at = n;
			alloc_count = 0;
			struct mote_snapfile f;
			rc = mote_snapfile_open(p, modes[m], &f, err, sizeof(err));
			if (rc && rc != -MOTE_ENOMEM)
				TEST_FAILF("open, failing allocation %d: rc %d %s", n, rc, err);
			if (!rc)
				check_meta(&f.meta, &fx.meta);
			mote_snapfile_close(&f);
		}
		CHECK_EQ_INT(rc, 0);
		CHECK(n > 5);
	}
	alloc_fail_at = -1;
	mote_set_allocator(NULL);
	fixture_free(&fx);
}

TEST(allocation_failures)
{
	allocation_failures_with(false);
	allocation_failures_with(true); /* the parent, mapping and guest paths too */
}

/* ---- A writer killed at random points ---- */

TEST(killed_writer)
{
	const uint64_t nmib = 64;
	struct big b;
	big_init(&b, nmib, 0);
	const char *p = tpath("kill.snap");
	char err[256];
	REQUIRE(mote_snapfile_write(p, &b.fx.meta, b.mem, b.present, err, sizeof(err)) == 0);
	srand(20240611);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int completed = 0;
	for (int it = 0; it < 12; it++) {
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			/* Save distinct snapshots forever; each differs in every page. */
			for (unsigned k = 1;; k++) {
				uint64_t *w = (uint64_t *)b.mem;
				for (uint64_t i = 0; i < b.mem_size / 8; i += 512)
					w[i] = (uint64_t)it << 32 | k;
				b.fx.meta.created_unix_ns = (uint64_t)it << 32 | k;
				if (mote_snapfile_write(p, &b.fx.meta, b.mem, b.present, NULL, 0))
					_exit(2);
			}
		}
		usleep((useconds_t)(rand() % 400000));
		kill(pid, SIGKILL);
		int status;
		REQUIRE(waitpid(pid, &status, 0) == pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		struct mote_snapfile f;
		int rc = mote_snapfile_open(p, MOTE_SNAPFILE_NO_CACHE, &f, err, sizeof(err));
		if (rc)
			TEST_FAILF("iteration %d: %d %s", it, rc, err);
		else if (f.meta.created_unix_ns >> 32 == (uint64_t)it)
			completed++;
		mote_snapfile_close(&f);
		/* Leftovers are only ever the obviously temporary names. */
		DIR *d = opendir(tmpdir);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (!strncmp(e->d_name, ".kill.snap.tmp.", 15)) {
				char path[512];
				snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
				unlink(path);
			}
		}
		if (d)
			closedir(d);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 6)
			break;
	}
	printf("  killed_writer: %d of the kills landed after a completed save\n", completed);
	CHECK_EQ_INT(count_entries(".kill.snap.tmp"), 0);
	big_free(&b);
}

/* With MOTE_SNAPFILE_SEEDS=dir, write the fuzzer's seed files there. */
TEST(write_fuzz_seeds)
{
	const char *dir = getenv("MOTE_SNAPFILE_SEEDS");
	if (!dir)
		return;
	struct fixture fx;
	fixture_init(&fx);
	char path[512], err[256];
	/* 1: the fixture's metadata, 3 regions (one with a zero gap page), 5
	 * pages: small enough for a seed. */
	uint64_t few[NPAGES / 64] = {0};
	const uint64_t pages[] = {1, 0x200, 0x202, 0x3ff};
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		few[pages[i] / 64] |= 1ull << (pages[i] % 64);
	snprintf(path, sizeof(path), "%s/typical.snap", dir);
	CHECK_EQ_INT(mote_snapfile_write(path, &fx.meta, fx.mem, few, err, sizeof(err)), 0);
	/* 2: no functions, one page present. */
	uint64_t one[NPAGES / 64] = {0};
	one[0] = 1ull << 5;
	struct mote_snap_meta m = fx.meta;
	m.nhost_fns = m.nguest_fns = 0;
	m.host_fns = m.guest_fns = NULL;
	snprintf(path, sizeof(path), "%s/minimal.snap", dir);
	CHECK_EQ_INT(mote_snapfile_write(path, &m, fx.mem, one, err, sizeof(err)), 0);
	/* 3: empty blob, functions only. */
	uint64_t none[NPAGES / 64] = {0};
	snprintf(path, sizeof(path), "%s/empty-blob.snap", dir);
	CHECK_EQ_INT(mote_snapfile_write(path, &fx.meta, fx.mem, none, err, sizeof(err)), 0);
	/* 4: the guest's identity (section 8), one page. */
	make_guest(&fx, G_PATH);
	snprintf(path, sizeof(path), "%s/guest.snap", dir);
	CHECK_EQ_INT(mote_snapfile_write(path, &fx.meta, fx.mem, one, err, sizeof(err)), 0);
	fx.meta.guest_path = NULL;
	/* 5: a layer (parent hash and path) with two mappings, two pages. */
	uint64_t two[NPAGES / 64] = {0};
	two[0] = 1ull << 3;
	two[0x300 / 64] = 1ull;
	make_layer(&fx, true, 3);
	fx.meta.nmappings = 2;
	snprintf(path, sizeof(path), "%s/layer.snap", dir);
	CHECK_EQ_INT(mote_snapfile_write(path, &fx.meta, fx.mem, two, err, sizeof(err)), 0);
	fixture_free(&fx);
}

TEST_MAIN()
