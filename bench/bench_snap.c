/* Snapshot benchmarks: cold start from a file, restore, density, save. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_int.h"
#include "bench/floor.h"
#include "host/sha256x16.h"

static char bench_dir[64];

static const char *bench_path(const char *name, uint64_t heap)
{
	static char path[160];
	if (!bench_dir[0]) {
		strcpy(bench_dir, "/tmp/mote-bench-XXXXXX");
		if (!mkdtemp(bench_dir))
			return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s-%llu.snap", bench_dir, name, (unsigned long long)heap);
	return path;
}

void bench_cleanup_files(void)
{
	if (!bench_dir[0])
		return;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bench_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "mote bench: could not remove %s\n", bench_dir);
	bench_dir[0] = 0;
}

/* Boot the bench guest, optionally write `fill` heap pages, snapshot and
 * save. The file stays in the page cache for the cold starts. */
static int make_snapshot_file(uint64_t heap, uint32_t fill, const char *path, double *save_us)
{
	mote_sandbox *sb;
	int rc = bench_new_sandbox(heap, NULL, &sb);
	if (rc)
		return rc;
	rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
	if (!rc && fill) {
		mote_value args[2] = {mote_u32(0), mote_u32(fill)};
		rc = mote_sandbox_call(sb, "touch_pages", args, 2, NULL);
	}
	mote_snapshot *snap = NULL;
	if (!rc)
		rc = mote_sandbox_snapshot(sb, &snap);
	if (!rc) {
		double t0 = bench_now_us();
		rc = mote_snapshot_save(snap, path, 0);
		if (save_us)
			*save_us = bench_now_us() - t0;
	}
	if (rc)
		fprintf(stderr, "mote bench: cannot make %s: %s: %s\n", path, mote_strerror(rc),
			mote_last_error());
	mote_snapshot_free(snap);
	mote_sandbox_free(sb);
	return rc;
}

/* Open (with flags), start a sandbox, first call: the cold start. */
static int cold_start(const char *path, unsigned flags, double *us)
{
	double t0 = bench_now_us();
	mote_snapshot *snap;
	int rc = mote_snapshot_open(path, flags, &snap);
	if (rc) {
		fprintf(stderr, "mote bench: open %s: %s\n", path, mote_last_error());
		return rc;
	}
	mote_sandbox *sb;
	rc = mote_sandbox_from_snapshot(snap, NULL, NULL, &sb);
	if (!rc) {
		rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
		*us = bench_now_us() - t0;
		if (rc)
			fprintf(stderr, "mote bench: cold start: %s\n",
			        mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
	} else {
		fprintf(stderr, "mote bench: cold start: %s\n", mote_last_error());
	}
	mote_snapshot_free(snap);
	return rc;
}

static const uint64_t cold_heaps[] = {128ull << 10, 8ull << 20, 64ull << 20, 256ull << 20,
				      1ull << 30};
#define NCOLD (sizeof(cold_heaps) / sizeof(cold_heaps[0]))

/* One cold start of `heap` in case `c` (0: from the ELF, else from `path`
 * opened with cold_flags[c]). */
static const unsigned cold_flags[4] = {0, MOTE_SNAPSHOT_NO_CACHE, MOTE_SNAPSHOT_VERIFY_HEADER, 0};

static int cold_sample(int c, uint64_t heap, const char *path, double *us)
{
	if (c)
		return cold_start(path, cold_flags[c], us);
	mote_sandbox *sb;
	double t0 = bench_now_us();
	int rc = bench_new_sandbox(heap, NULL, &sb);
	if (rc)
		return rc;
	rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
	*us = bench_now_us() - t0;
	mote_sandbox_free(sb);
	return rc;
}

/* The heap sizes take turns, one start each, in every case: targets are
 * ratios between sizes, and what a shared machine did over the seconds
 * that one size took to measure moved them by more than the differences
 * they are about (the 1 GiB / 128 KiB ratio of one build gave 1.59, 1.14
 * and 1.07 in three runs measured a size at a time). */
int bench_coldstart(const struct bench_opts *o, const struct floors *f, struct cold_results *res)
{
	static const char *const names[4] = {"evolve", "snapshot-full", "snapshot-header",
	                                     "snapshot-cached"};
	double *outs[4] = {res->evolve, res->full, res->header, res->cached};
	char paths[NCOLD][160];
	size_t made = 0;
	int runs = o->runs, rc = 0;
	double *v = calloc(4 * NCOLD * (size_t)runs, sizeof(double));
	if (!v)
		return 1;
	if (!o->json)
		printf("cold start: open a snapshot file (in the page cache), start, first call\n");
	for (; made < NCOLD; made++) {
		const char *path = bench_path("cold", cold_heaps[made]);
		if (!path || make_snapshot_file(cold_heaps[made], 0, path, NULL)) {
			rc = 1;
			break;
		}
		snprintf(paths[made], sizeof(paths[made]), "%s", path);
	}
	for (int c = 0; !rc && c < 4; c++) {
		/* Prime the verification cache for snapshot-cached. */
		for (size_t h = 0; c == 3 && h < NCOLD; h++) {
			mote_snapshot *prime;
			if (mote_snapshot_open(paths[h], 0, &prime) == 0)
				mote_snapshot_free(prime);
		}
		for (int i = 0; !rc && i < runs; i++)
			for (size_t h = 0; !rc && h < NCOLD; h++)
				rc = cold_sample(
				    c, cold_heaps[h], paths[h],
				    &v[((size_t)c * NCOLD + h) * (size_t)runs + (size_t)i]);
	}
	for (size_t h = 0; !rc && h < NCOLD; h++) {
		for (int c = 0; c < 4; c++) {
			struct stats s =
			    bench_summarize(&v[((size_t)c * NCOLD + h) * (size_t)runs], runs);
			outs[c][h] = s.median;
			char note[96];
			snprintf(note, sizeof(note),
			         "%.2f x floor-coldstart, %.1f x faster than ELF",
			         s.median / f->coldstart.median, res->evolve[h] / s.median);
			bench_report(o, names[c], cold_heaps[h], s, c ? note : NULL);
		}
	}
	for (size_t h = 0; h < made; h++)
		unlink(paths[h]);
	if (rc) {
		free(v);
		return 1;
	}
	/* A guest whose start-up work is real: it writes 16 MiB before it can
	 * serve. From the ELF that work runs on every start; from a snapshot
	 * taken after it, never. */
	const uint64_t heap = 64ull << 20;
	const uint32_t warm_pages = 4096;
	const char *path = bench_path("warm", heap);
	if (!path || make_snapshot_file(heap, warm_pages, path, NULL)) {
		free(v);
		return 1;
	}
	for (int i = 0; i < o->runs; i++) {
		mote_sandbox *sb;
		double t0 = bench_now_us();
		if (bench_new_sandbox(heap, NULL, &sb)) {
			free(v);
			return 1;
		}
		mote_value args[2] = {mote_u32(0), mote_u32(warm_pages)};
		rc = mote_sandbox_call(sb, "touch_pages", args, 2, NULL);
		if (!rc)
			rc = mote_sandbox_call(sb, "noop", NULL, 0, NULL);
		v[i] = bench_now_us() - t0;
		mote_sandbox_free(sb);
		if (rc) {
			free(v);
			return 1;
		}
	}
	struct stats warm_elf = bench_summarize(v, o->runs);
	res->warm_evolve = warm_elf.median;
	bench_report(o, "evolve-warm", heap, warm_elf,
		     "from the ELF, then 16 MiB of start-up writes, then a call");
	for (int i = 0; i < o->runs; i++) {
		if (cold_start(path, MOTE_SNAPSHOT_VERIFY_HEADER, &v[i])) {
			free(v);
			return 1;
		}
	}
	struct stats warm_snap = bench_summarize(v, o->runs);
	res->warm_snapshot = warm_snap.median;
	char note[96];
	snprintf(note, sizeof(note), "snapshot taken after the start-up writes: %.1f x faster",
		 warm_elf.median / warm_snap.median);
	bench_report(o, "snapshot-warm", heap, warm_snap, note);
	unlink(path);
	free(v);
	return 0;
}

int bench_verify(const struct bench_opts *o, double *gbps, double *save_8m, double *save_256m)
{
	/* Save cost and full-verification speed on snapshots whose whole heap
	 * was written, so the blob really is 8 MiB / 256 MiB. */
	const uint64_t heaps[2] = {8ull << 20, 256ull << 20};
	double *saves[2] = {save_8m, save_256m};
	int runs = o->runs < 5 ? o->runs : 5;
	double *v = calloc((size_t)o->runs + 5, sizeof(double));
	if (!v)
		return 1;
	for (int h = 0; h < 2; h++) {
		const char *path = bench_path("full", heaps[h]);
		uint32_t pages = (uint32_t)(heaps[h] / 4096) - 4;
		for (int i = 0; i < runs; i++)
			if (!path || make_snapshot_file(heaps[h], pages, path, &v[i])) {
				free(v);
				return 1;
			}
		struct stats s = bench_summarize(v, runs);
		*saves[h] = s.median;
		char note[96];
		snprintf(note, sizeof(note), "heap fully written: %.2f GB/s", heaps[h] / s.median / 1e3);
		bench_report(o, "save", heaps[h], s, note);
		if (h == 1) {
			struct stat st;
			stat(path, &st);
			/* As shipped (16 chunks at a time in AVX-512 lanes where
			 * the CPU has them), then one chunk at a time (SHA-NI
			 * through OpenSSL) for comparison. */
			for (int one_by_one = 0; one_by_one < 2; one_by_one++) {
				if (one_by_one && !mote_sha256x16_usable())
					break;
				mote_sha256x16__disable(one_by_one);
				for (int i = 0; i < o->runs; i++) {
					mote_snapshot *snap;
					double t0 = bench_now_us();
					int rc = mote_snapshot_open(path, MOTE_SNAPSHOT_NO_CACHE,
								    &snap);
					v[i] = bench_now_us() - t0;
					if (rc) {
						mote_sha256x16__disable(false);
						free(v);
						return 1;
					}
					mote_snapshot_free(snap);
				}
				mote_sha256x16__disable(false);
				s = bench_summarize(v, o->runs);
				double rate = (double)st.st_size / s.median / 1e3;
				if (!one_by_one)
					*gbps = rate;
				snprintf(note, sizeof(note),
					 "open + SHA-256 of a %.0f MiB file: %.2f GB/s%s",
					 st.st_size / 1048576.0, rate,
					 one_by_one ? " (one chunk at a time, SHA-NI)" : "");
				bench_report(o, one_by_one ? "verify-full-1x" : "verify-full",
					     heaps[h], s, note);
			}
		}
		unlink(path);
	}
	free(v);
	return 0;
}

/* The two sizes take turns, a block of restores each, so that what a
 * shared machine does meanwhile falls on both alike: their ratio is a
 * target, and measured one after the other it moved by more than the
 * difference it is about. */
#define RESTORE_TURNS 5
int bench_restore(const struct bench_opts *o, double restore16[2])
{
	const uint64_t heaps[2] = {128ull << 10, 256ull << 20};
	const uint32_t counts[3] = {1, 16, 256};
	int n = o->runs * 5;
	double *v = calloc(2 * (size_t)n, sizeof(double));
	mote_sandbox *sb[2] = {NULL, NULL};
	mote_snapshot *snap[2] = {NULL, NULL};
	struct stats st[2][3];
	int rc = 1, h = 0;
	if (!v)
		goto out;
	for (h = 0; h < 2; h++) {
		if (bench_new_sandbox(heaps[h], NULL, &sb[h]))
			goto out;
		if (mote_sandbox_call(sb[h], "noop", NULL, 0, NULL) ||
		    mote_sandbox_snapshot(sb[h], &snap[h]))
			goto failed;
	}
	for (int c = 0; c < 3; c++) {
		int done[2] = {0, 0};
		for (int turn = 1; turn <= RESTORE_TURNS; turn++) {
			for (h = 0; h < 2; h++) {
				for (int i = done[h]; i < n * turn / RESTORE_TURNS; i++) {
					mote_value args[2] = {mote_u32((uint32_t)i * 7),
					                      mote_u32(counts[c])};
					if (mote_sandbox_call(sb[h], "touch_pages", args, 2, NULL))
						goto failed;
					double t0 = bench_now_us();
					if (mote_sandbox_restore(sb[h], snap[h]))
						goto failed;
					v[h * n + i] = bench_now_us() - t0;
				}
				done[h] = n * turn / RESTORE_TURNS;
			}
		}
		for (h = 0; h < 2; h++)
			st[h][c] = bench_summarize(v + h * n, n);
	}
	for (h = 0; h < 2; h++) {
		for (int c = 0; c < 3; c++) {
			char name[32], note[96];
			snprintf(name, sizeof(name), "restore-%u", counts[c]);
			snprintf(note, sizeof(note), "after a call that wrote %u heap page%s",
			         counts[c], counts[c] == 1 ? "" : "s");
			if (counts[c] == 16)
				restore16[h] = st[h][c].median;
			bench_report(o, name, heaps[h], st[h][c], note);
		}
	}
	rc = 0;
	goto out;
failed:
	fprintf(stderr, "mote bench: restore: %s\n", mote_sandbox_last_error(sb[h]));
out:
	for (h = 0; h < 2; h++) {
		mote_snapshot_free(snap[h]);
		mote_sandbox_free(sb[h]);
	}
	free(v);
	return rc;
}

static long meminfo_kib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t klen = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static long pss_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Pss:", 4))
			v = strtol(line + 4, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

int bench_density(const struct bench_opts *o, double *kib_per_sandbox)
{
	enum { N = 100 };
	const uint64_t heap = 64ull << 20;
	const char *path = bench_path("density", heap);
	if (!path || make_snapshot_file(heap, 0, path, NULL))
		return 1;
	mote_snapshot *snap;
	if (mote_snapshot_open(path, 0, &snap))
		return 1;
	mote_sandbox **sbs = calloc(N, sizeof(*sbs));
	if (!sbs)
		return 1;
	/* Measured both as what making them takes and as what freeing them
	 * gives back; the larger counts. (Freed memory does not always show in
	 * MemAvailable within the wait here: on the process backend the
	 * children's memory did not, on this VM.) */
	usleep(100000);
	long avail_before = meminfo_kib("MemAvailable");
	int made = 0, rc = 0;
	for (; made < N && !rc; made++) {
		rc = mote_sandbox_from_snapshot(snap, NULL, NULL, &sbs[made]);
		if (rc)
			break;
		mote_value args[2] = {mote_u32((uint32_t)made * 16), mote_u32(16)};
		rc = mote_sandbox_call(sbs[made], "touch_pages", args, 2, NULL);
	}
	usleep(100000);
	long avail_alive = meminfo_kib("MemAvailable"), pss_alive = pss_kib();
	for (int i = 0; i < N; i++)
		mote_sandbox_free(sbs[i]);
	free(sbs);
	usleep(300000); /* the kernel frees VM structures asynchronously */
	long avail_freed = meminfo_kib("MemAvailable"), pss_freed = pss_kib();
	mote_snapshot_free(snap);
	unlink(path);
	if (rc) {
		fprintf(stderr, "mote bench: density: %s\n", mote_strerror(rc));
		return 1;
	}
	double taken = (double)(avail_before - avail_alive) / N;
	double per = (double)(avail_freed - avail_alive) / N;
	if (taken > per)
		per = taken;
	*kib_per_sandbox = per;
	struct stats s = {per, per, per, 1};
	char note[128];
	snprintf(note, sizeof(note),
		 "KiB of MemAvailable per sandbox (100 from one 64 MiB snapshot, 16 pages "
		 "written each; Pss %.0f KiB)",
		 (double)(pss_alive - pss_freed) / N);
	bench_report(o, "density-kib", heap, s, note);
	return 0;
}

/* Map a file, read 16 pages spread over it in the guest (unmap untimed). */
/* As for cold starts, the two sizes take turns, one sample each. */
int bench_mapfile(const struct bench_opts *o, double *us_1m, double *us_1g)
{
	const uint64_t sizes[2] = {1ull << 20, 1ull << 30};
	double *outs[2] = {us_1m, us_1g};
	char paths[2][160];
	int made = 0, runs = o->runs;
	mote_sandbox *sb;
	if (bench_new_sandbox(128 << 10, NULL, &sb))
		return 1;
	double *v = calloc(2 * (size_t)runs, sizeof(double));
	int rc = v ? 0 : 1;
	for (; !rc && made < 2; made++) {
		const char *path = bench_path("mapped", sizes[made]);
		if (!path) {
			rc = 1;
			break;
		}
		snprintf(paths[made], sizeof(paths[made]), "%s", path);
		int fd = open(paths[made], O_RDWR | O_CREAT | O_TRUNC, 0600);
		/* Real data at the pages read, so they come from the page cache. */
		uint64_t stride = sizes[made] / 16;
		for (int p = 0; fd >= 0 && p < 16; p++)
			if (pwrite(fd, "mote", 4, (off_t)(p * stride)) != 4)
				rc = 1;
		if (fd < 0 || ftruncate(fd, (off_t)sizes[made]) < 0)
			rc = 1;
		if (fd >= 0)
			close(fd);
	}
	for (int i = 0; !rc && i < runs; i++) {
		for (int s = 0; !rc && s < 2; s++) {
			uint64_t stride = sizes[s] / 16;
			double t0 = bench_now_us();
			rc = mote_sandbox_map_file(sb, paths[s], MOTE_MAP_WINDOW_BASE,
			                           MOTE_MAP_READ_ONLY);
			mote_value args[3] = {mote_u64(MOTE_MAP_WINDOW_BASE), mote_u32(16),
			                      mote_u64(stride)};
			mote_value r;
			if (!rc)
				rc = mote_sandbox_call(sb, "read_pages", args, 3, &r);
			if (!rc && r.v.u64 != 16 * 'm')
				rc = -MOTE_EPROTOCOL;
			v[s * runs + i] = bench_now_us() - t0;
			if (!rc)
				rc = mote_sandbox_unmap(sb, MOTE_MAP_WINDOW_BASE);
		}
	}
	if (rc)
		fprintf(stderr, "mote bench: mapfile: %s\n", mote_sandbox_last_error(sb));
	for (int s = 0; !rc && s < 2; s++) {
		struct stats st = bench_summarize(v + s * runs, runs);
		*outs[s] = st.median;
		bench_report(o, "mapfile", sizes[s], st,
		             "map a file read-only, read 16 pages of it in the guest");
	}
	for (int s = 0; s < made; s++)
		unlink(paths[s]);
	free(v);
	mote_sandbox_free(sb);
	return rc ? 1 : 0;
}

static int write_pages(mote_sandbox *sb, uint32_t first, uint32_t n)
{
	mote_value args[2] = {mote_u32(first), mote_u32(n)};
	return mote_sandbox_call(sb, "touch_pages", args, 2, NULL);
}

/* A runtime base, an application layer and a tenant layer (16 pages each)
 * versus one standalone file with the same writes: cold start, file sizes. */
int bench_layers(const struct bench_opts *o, double *chain_us, double *single_us,
		 double *layer_bytes_per_page)
{
	const uint64_t heap = 64ull << 20;
	char paths[4][160];
	const char *names[4] = {"layer-base", "layer-app", "layer-tenant", "layer-single"};
	for (int i = 0; i < 4; i++) {
		const char *p = bench_path(names[i], heap);
		if (!p)
			return 1;
		snprintf(paths[i], sizeof(paths[i]), "%s", p);
	}
	mote_sandbox *sb = NULL, *single = NULL;
	mote_snapshot *snap = NULL, *opened = NULL;
	int rc = make_snapshot_file(heap, 0, paths[0], NULL);
	if (!rc)
		rc = mote_snapshot_open(paths[0], 0, &opened);
	if (!rc)
		rc = mote_sandbox_from_snapshot(opened, NULL, NULL, &sb);
	for (int layer = 1; !rc && layer <= 2; layer++) {
		rc = write_pages(sb, (uint32_t)layer * 100, 16);
		if (!rc)
			rc = mote_sandbox_snapshot(sb, &snap);
		if (!rc)
			rc = mote_snapshot_save(snap, paths[layer], 0);
		mote_snapshot_free(snap);
		snap = NULL;
	}
	/* The same writes in a sandbox with no base give a standalone file. */
	if (!rc)
		rc = bench_new_sandbox(heap, NULL, &single);
	if (!rc)
		rc = mote_sandbox_call(single, "noop", NULL, 0, NULL);
	for (int layer = 1; !rc && layer <= 2; layer++)
		rc = write_pages(single, (uint32_t)layer * 100, 16);
	if (!rc)
		rc = mote_sandbox_snapshot(single, &snap);
	if (!rc)
		rc = mote_snapshot_save(snap, paths[3], 0);
	mote_snapshot_free(snap);
	mote_sandbox_free(single);
	mote_sandbox_free(sb);
	mote_snapshot_free(opened);
	if (rc) {
		fprintf(stderr, "mote bench: layers: %s\n", mote_last_error());
		return 1;
	}
	struct stat st;
	stat(paths[2], &st);
	*layer_bytes_per_page = (double)st.st_size / 16;
	int runs = o->runs;
	double *v = calloc(2 * (size_t)runs, sizeof(double));
	if (!v)
		return 1;
	const int which[2] = {2, 3};
	double *outs[2] = {chain_us, single_us};
	const char *cases[2] = {"layers-coldstart", "single-coldstart"};
	for (int c = 0; c < 2; c++) {
		mote_snapshot *prime;
		if (mote_snapshot_open(paths[which[c]], 0, &prime) == 0)
			mote_snapshot_free(prime);
	}
	/* The chain and the single file take turns (see bench_coldstart). */
	for (int i = 0; i < runs && !rc; i++)
		for (int c = 0; c < 2 && !rc; c++)
			rc = cold_start(paths[which[c]], 0, &v[c * runs + i]);
	for (int c = 0; c < 2 && !rc; c++) {
		struct stats s = bench_summarize(v + c * runs, runs);
		*outs[c] = s.median;
		char note[128];
		snprintf(note, sizeof(note), c == 0 ? "open a 3-file chain (base + 2 layers), start, call"
						    : "open one standalone file, start, call");
		bench_report(o, cases[c], heap, s, note);
	}
	struct stats fs = {(double)st.st_size / 1024, 0, 0, 1};
	fs.min = fs.max = fs.median;
	bench_report(o, "layer-file-kib", heap, fs, "size of a layer file holding 16 written pages (KiB)");
	for (int i = 0; i < 4; i++)
		unlink(paths[i]);
	free(v);
	return rc ? 1 : 0;
}

/* Fill a 256 MiB heap with and without transparent huge pages. */
int bench_hugepages(const struct bench_opts *o, double *off_us, double *on_us)
{
	const uint64_t heap = 256ull << 20;
	double *outs[2] = {off_us, on_us};
	int runs = o->runs < 5 ? o->runs : 5;
	double v[5];
	for (int huge = 0; huge < 2; huge++) {
		for (int i = 0; i < runs; i++) {
			mote_config *cfg;
			mote_sandbox *sb;
			if (mote_config_new(&cfg))
				return 1;
			mote_config_set_heap_size(cfg, heap);
			mote_config_set_huge_pages(cfg, huge);
			int rc = mote_sandbox_new_from_buffer(bench_guest_elf(), bench_guest_size(), cfg,
							      NULL, &sb);
			mote_config_free(cfg);
			if (rc)
				return 1;
			double t0 = bench_now_us();
			rc = write_pages(sb, 0, (uint32_t)(heap / 4096) - 4);
			v[i] = bench_now_us() - t0;
			mote_sandbox_free(sb);
			if (rc)
				return 1;
		}
		struct stats s = bench_summarize(v, runs);
		*outs[huge] = s.median;
		bench_report(o, huge ? "fill-hugepages" : "fill-4k", heap, s,
			     huge ? "guest writes every heap page; heap on transparent huge pages"
				  : "guest writes every heap page; 4 KiB host pages");
	}
	return 0;
}
