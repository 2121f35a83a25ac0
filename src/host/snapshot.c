/* Snapshots: capture, restore, save, open, and sandboxes started from them.
 *
 * A snapshot's memory lives in a file: a memfd for snapshots taken in this
 * process, the snapshot file itself for opened ones. Sandboxes started from
 * it map its regions MAP_PRIVATE, so unwritten pages stay shared in the page
 * cache. Restore uses the backend's record of written pages (KVM's dirty
 * log): only pages written since the sandbox's base snapshot are copied back (see docs/snapshots.md for the measurements
 * behind this choice). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/mapping.h"
#include "host/snapshot.h"

_Static_assert(MOTE_SNAPSHOT_VERIFY_HEADER == MOTE_SNAPFILE_VERIFY_HEADER, "flag values");
_Static_assert(MOTE_SNAPSHOT_NO_CACHE == MOTE_SNAPFILE_NO_CACHE, "flag values");

static void snapshot_retain(struct mote_snapshot *snap)
{
	__atomic_add_fetch(&snap->refs, 1, __ATOMIC_RELAXED);
}

/* Snapshots known by a file's header hash, so that opening a layer finds
 * its base already open in this process (and shares its pages). Entries are
 * weak: a snapshot leaves the registry when its last reference goes. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mote_snapshot *registry[64];

static void registry_add(struct mote_snapshot *snap)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		if (!registry[i]) {
			registry[i] = snap;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* A live snapshot with this header hash, retained, or NULL. */
static struct mote_snapshot *registry_find(const uint8_t hash[32])
{
	struct mote_snapshot *found = NULL;
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]) && !found; i++) {
		struct mote_snapshot *s = registry[i];
		if (s && s->have_hash && !memcmp(s->header_hash, hash, 32)) {
			found = s;
			snapshot_retain(s);
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return found;
}

void mote_snapshot_release(struct mote_snapshot *snap)
{
	if (!snap)
		return;
	/* Dropping the last reference and leaving the registry happen under
	 * its lock, so registry_find never revives a dying snapshot. */
	pthread_mutex_lock(&registry_lock);
	bool last = __atomic_sub_fetch(&snap->refs, 1, __ATOMIC_ACQ_REL) == 0;
	if (last)
		for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
			if (registry[i] == snap)
				registry[i] = NULL;
	pthread_mutex_unlock(&registry_lock);
	if (!last)
		return;
	if (snap->map)
		munmap(snap->map, snap->meta.layout.mem_size);
	if (snap->fd >= 0)
		close(snap->fd);
	mote_free(snap->regions);
	if (snap->present != snap->own)
		mote_free(snap->present);
	mote_free(snap->own);
	mote_free(snap->file_path);
	mote_mappings_free(snap->maps, snap->nmaps);
	mote_snap_meta_clear(&snap->meta);
	mote_snapshot_release(snap->parent);
	mote_free(snap);
}

void mote_snapshot_free(mote_snapshot *snap)
{
	mote_snapshot_release(snap);
}

static struct mote_snapshot *snapshot_alloc(void)
{
	struct mote_snapshot *snap = mote_calloc(1, sizeof(*snap));
	if (snap) {
		snap->refs = 1;
		snap->fd = -1;
	}
	return snap;
}

static int copy_sigs(struct mote_sig **dst, size_t *ndst, const struct mote_sig *src, size_t n)
{
	*dst = NULL;
	*ndst = 0;
	if (!n)
		return 0;
	*dst = mote_calloc(n, sizeof(**dst));
	if (!*dst)
		return -MOTE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i] = src[i];
		(*dst)[i].name = mote_strdup(src[i].name);
		if (!(*dst)[i].name)
			return -MOTE_ENOMEM; /* the caller frees the partial array */
		*ndst = i + 1;
	}
	return 0;
}

static void free_sigs(struct mote_sig *sigs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mote_free(sigs[i].name);
	mote_free(sigs);
}

/* Map a snapshot's pages below `end` over [base, base + end): its
 * ancestors' first, its own regions on top. */
static int map_chain(const struct mote_snapshot *snap, uint8_t *base, int prot, int flags,
                     uint64_t end)
{
	if (snap->parent && map_chain(snap->parent, base, prot, flags, end))
		return -1;
	for (size_t i = 0; i < snap->nregions; i++) {
		const struct mote_snap_region *r = &snap->regions[i];
		if (r->guest_addr >= end)
			break; /* sorted by address */
		uint64_t size = r->size < end - r->guest_addr ? r->size : end - r->guest_addr;
		if (mmap(base + r->guest_addr, size, prot, flags | MAP_FIXED, snap->fd,
		         (off_t)r->file_offset) == MAP_FAILED)
			return -1;
	}
	return 0;
}

/* How much of a snapshot's memory a sandbox's host view needs: all of it
 * where the guest runs in host memory. Elsewhere only what the guest
 * cannot change and the host reads itself (the system area's page tables,
 * the image's code); above the image every page is one the backend tracks
 * or shares, read from the guest's side. Each region left out is an mmap
 * less per start (the process backend's starts, ~3 us each). */
static uint64_t host_view_end(const struct mote_sandbox *sb)
{
	return sb->be->shares_host_memory ? sb->mem_size : sb->layout.image_end;
}

/* The same, as pieces for a backend that maps guest memory itself. The
 * snapshot outlives them: the sandbox holds it as its base. */
static int record_chain(struct mote_sandbox *sb, const struct mote_snapshot *snap)
{
	int rc = snap->parent ? record_chain(sb, snap->parent) : 0;
	for (size_t i = 0; !rc && i < snap->nregions; i++) {
		const struct mote_snap_region *r = &snap->regions[i];
		rc = mote_sandbox_add_piece(sb, r->guest_addr, r->size, snap->fd, r->file_offset,
					    false);
	}
	return rc;
}

/* Map the snapshot's memory read-only: zero pages everywhere, its (and its
 * ancestors') regions over them. Restores copy pristine pages out of it. */
static int snapshot_map(struct mote_snapshot *snap, int map_flags)
{
	uint64_t size = snap->meta.layout.mem_size;
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return -MOTE_ENOMEM;
	snap->map = map;
	return map_chain(snap, snap->map, PROT_READ, map_flags, size) ? -MOTE_ENOMEM : 0;
}

/* snap->map, mapped now if nobody needed it yet. A cold start (open, start,
 * call) never does: the mmaps it saves are a tenth of a process-backend
 * start, and a chain's files each had a view of their own. Threads may
 * race here: one view wins, the others are unmapped. NULL (errno set) if
 * it cannot be mapped. */
static const uint8_t *snapshot_view(struct mote_snapshot *snap)
{
	uint8_t *have = __atomic_load_n(&snap->map, __ATOMIC_ACQUIRE);
	if (have)
		return have;
	uint64_t size = snap->meta.layout.mem_size;
	uint8_t *map =
	    mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	if (map_chain(snap, map, PROT_READ, MAP_PRIVATE, size)) {
		int e = errno;
		munmap(map, size);
		errno = e;
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&snap->map, &have, map, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		munmap(map, size);
		return have;
	}
	return map;
}

/* From `own` and the regions, both set: present = parent's present | own
 * (the same array without a parent), and where what is stored ends. */
static int snapshot_bitmaps(struct mote_snapshot *snap)
{
	uint64_t pages = snap->meta.layout.mem_size / MOTE_PAGE_SIZE;
	snap->bitmap_words = (size_t)((pages + 63) / 64);
	snap->stored_end = snap->parent ? snap->parent->stored_end : 0;
	if (snap->nregions) {
		const struct mote_snap_region *last = &snap->regions[snap->nregions - 1];
		if (last->guest_addr + last->size > snap->stored_end)
			snap->stored_end = last->guest_addr + last->size;
	}
	if (!snap->parent) {
		snap->present = snap->own;
		return 0;
	}
	snap->present = mote_malloc(snap->bitmap_words * sizeof(uint64_t));
	if (!snap->present)
		return -MOTE_ENOMEM;
	for (size_t w = 0; w < snap->bitmap_words; w++)
		snap->present[w] = snap->own[w] | snap->parent->present[w];
	return 0;
}

/* Regions from a page bitmap: one per run of set bits. */
static int regions_from_bitmap(const uint64_t *bm, uint64_t pages, struct mote_snap_region **out,
			       size_t *nout)
{
	size_t n = 0, cap = 0;
	struct mote_snap_region *v = NULL;
	uint64_t p = 0;
	while (p < pages) {
		if (!bm[p / 64] && p % 64 == 0) {
			p += 64;
			continue;
		}
		if (!mote_bitmap_test(bm, p)) {
			p++;
			continue;
		}
		uint64_t start = p;
		while (p < pages && mote_bitmap_test(bm, p))
			p++;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct mote_snap_region *nv = mote_realloc(v, cap * sizeof(*v));
			if (!nv) {
				mote_free(v);
				return -MOTE_ENOMEM;
			}
			v = nv;
		}
		v[n++] = (struct mote_snap_region){start * MOTE_PAGE_SIZE,
						   (p - start) * MOTE_PAGE_SIZE,
						   start * MOTE_PAGE_SIZE};
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Fold the pages the backend saw written into the sandbox's dirty and
 * touched sets. `any`: was any page written since `base` was set?
 * `written_back`: the caller writes every dirty page back (a restore). */
int mote_sandbox_collect_dirty(struct mote_sandbox *sb, bool *any, bool written_back)
{
	uint64_t *log = sb->collected, *noted = sb->collected_summary;
	int rc = sb->be->dirty_pages(sb, log, written_back, noted);
	for (size_t w = 0; mote_summary_next(noted, sb->summary_words, &w); w++) {
		if (log[w]) { /* untouched words stay unallocated */
			if (!rc) {
				sb->dirty[w] |= log[w];
				sb->touched[w] |= log[w];
			}
			log[w] = 0;
		}
		if (!rc)
			mote_summary_note(sb->dirty_summary, w);
	}
	memset(noted, 0, sb->summary_words * sizeof(uint64_t));
	uint64_t acc = 0;
	for (size_t w = 0; !rc && mote_summary_next(sb->dirty_summary, sb->summary_words, &w); w++)
		acc |= sb->dirty[w];
	*any = acc != 0;
	return rc;
}

void mote_sandbox_clear_dirty(struct mote_sandbox *sb)
{
	for (size_t w = 0; mote_summary_next(sb->dirty_summary, sb->summary_words, &w); w++)
		if (sb->dirty[w])
			sb->dirty[w] = 0;
	memset(sb->dirty_summary, 0, sb->summary_words * sizeof(uint64_t));
}

static bool same_layout(const struct mote_layout *a, const struct mote_layout *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* Copy the snapshot's own regions out of the sandbox into its sparse
 * memfd, through a writable view of it. */
static int fill_snapshot(struct mote_sandbox *sb, struct mote_snapshot *snap)
{
	uint8_t *w = mmap(NULL, sb->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, snap->fd, 0);
	if (w == MAP_FAILED)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map snapshot memory: %s",
					 strerror(errno));
	struct mote_mem_copy v[64];
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < snap->nregions && !rc; i++) {
		const struct mote_snap_region *r = &snap->regions[i];
		/* One allocation pass instead of a fault per page. */
		madvise(w + r->file_offset, r->size, MADV_POPULATE_WRITE);
		v[n++] = (struct mote_mem_copy){r->guest_addr, w + r->file_offset, r->size};
		if (n == sizeof(v) / sizeof(v[0]) || i + 1 == snap->nregions) {
			rc = sb->be->read(sb, v, n);
			n = 0;
		}
	}
	munmap(w, sb->mem_size);
	return rc;
}

int mote_sandbox_snapshot(mote_sandbox *sb, mote_snapshot **out)
{
	if (!sb || !out) {
		if (sb)
			return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_sandbox_snapshot: no out");
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_snapshot: no sandbox");
	}
	*out = NULL;
	if (sb->poisoned)
		return mote_sandbox_fail(sb, -MOTE_EPOISONED,
					 "cannot snapshot a sandbox poisoned by a guest failure");
	if (sb->ext && sb->ext->can_snapshot) {
		int why = sb->ext->can_snapshot(sb, sb->ext_state);
		if (why)
			return why;
	}
	int rc = mote_sandbox_settle(sb);
	bool any;
	if (!rc)
		rc = mote_sandbox_collect_dirty(sb, &any, false);
	if (rc)
		return rc;
	if (sb->base && !any) {
		snapshot_retain(sb->base);
		*out = sb->base;
		return 0;
	}

	struct mote_snapshot *snap = snapshot_alloc();
	if (!snap)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	struct mote_snap_meta *m = &snap->meta;
	m->abi_version = MOTE_ABI_VERSION;
	m->saved_by = sb->be->file_id;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->created_unix_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	mote_cpu_vendor(m->cpu_vendor);
	m->layout = sb->layout;
	m->image_size = sb->image_size;
	if (sb->dbg.guest_path && mote_debug_guest_hash(&sb->dbg) == 0) {
		m->guest_path = mote_strdup(sb->dbg.guest_path);
		memcpy(m->guest_sha256, sb->dbg.guest_sha256, sizeof(m->guest_sha256));
		if (!m->guest_path) {
			rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
			goto fail;
		}
	}
	rc = sb->be->get_state(sb, &m->cpu);
	if (rc)
		goto fail;
	rc = copy_sigs(&m->guest_fns, &m->nguest_fns, sb->fns, sb->nfns);
	if (!rc && sb->host_fns.n) {
		m->host_fns = mote_calloc(sb->host_fns.n, sizeof(*m->host_fns));
		rc = m->host_fns ? 0 : -MOTE_ENOMEM;
		for (size_t i = 0; !rc && i < sb->host_fns.n; i++) {
			m->host_fns[i] = sb->host_fns.v[i].sig;
			m->host_fns[i].name = mote_strdup(sb->host_fns.v[i].sig.name);
			rc = m->host_fns[i].name ? 0 : -MOTE_ENOMEM;
			m->nhost_fns = i + 1;
		}
	}
	if (!rc)
		rc = mote_mappings_copy(&snap->maps, &snap->nmaps, sb->maps, sb->nmaps);
	/* Over a base, store only what changed since it (a layer), so the
	 * cost follows the pages written; standalone otherwise, or when the
	 * chain gets long. */
	if (sb->base && sb->base->depth < MOTE_MAX_LAYER_DEPTH) {
		snapshot_retain(sb->base);
		snap->parent = sb->base;
		snap->depth = sb->base->depth + 1;
	}
	snap->own = mote_calloc(sb->bitmap_words, sizeof(uint64_t));
	if (rc || !snap->own) {
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(snap->own, snap->parent ? sb->dirty : sb->touched,
	       sb->bitmap_words * sizeof(uint64_t));
	rc = regions_from_bitmap(snap->own, sb->mem_size / MOTE_PAGE_SIZE, &snap->regions,
				 &snap->nregions);
	if (rc) {
		rc = mote_sandbox_fail(sb, rc, "out of memory");
		goto fail;
	}
	if (snapshot_bitmaps(snap)) {
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
		goto fail;
	}

	/* The pages go to a sparse memfd at their guest addresses. */
	snap->fd = memfd_create("mote-snapshot", MFD_CLOEXEC);
	if (snap->fd < 0 || ftruncate(snap->fd, (off_t)sb->mem_size) < 0) {
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot create snapshot memory: %s",
				       strerror(errno));
		goto fail;
	}
	rc = fill_snapshot(sb, snap);
	if (rc)
		goto fail;
	if (snapshot_map(snap, MAP_SHARED)) {
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map snapshot memory: %s",
				       strerror(errno));
		goto fail;
	}
	mote_snapshot_release(sb->base);
	snapshot_retain(snap);
	sb->base = snap;
	sb->backed_by_base = false;
	mote_sandbox_clear_dirty(sb);
	*out = snap;
	return 0;
fail:
	mote_snapshot_release(snap);
	return rc;
}

/* Make every page set in `pages` (the words `summary` marks) equal to the
 * snapshot's, a batch of runs at a time (one backend call each). */
static int copy_back(struct mote_sandbox *sb, struct mote_snapshot *snap, const uint64_t *pages,
                     const uint64_t *summary)
{
	int (*put)(struct mote_sandbox *, const struct mote_mem_copy *, size_t) =
	    sb->backed_by_base && snap == sb->base && sb->be->reset ? sb->be->reset : sb->be->write;
	const uint8_t *view = snapshot_view(snap);
	if (!view)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map snapshot memory: %s",
		                         strerror(errno));
	struct mote_mem_copy v[64];
	size_t n = 0;
	int rc = 0;
	for (size_t w = 0; !rc && mote_summary_next(summary, sb->summary_words, &w); w++) {
		uint64_t bits = pages[w];
		while (bits && !rc) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			uint64_t page = (uint64_t)w * 64 + b, off = page * MOTE_PAGE_SIZE;
			void *src =
			    mote_bitmap_test(snap->present, page) ? (void *)(view + off) : NULL;
			bool same_kind = n && (v[n - 1].buf == NULL) == (src == NULL);
			if (same_kind && v[n - 1].gpa + v[n - 1].len == off) {
				v[n - 1].len += MOTE_PAGE_SIZE;
				continue;
			}
			if (n == sizeof(v) / sizeof(v[0])) {
				rc = put(sb, v, n);
				n = 0;
			}
			v[n++] = (struct mote_mem_copy){off, src, MOTE_PAGE_SIZE};
		}
	}
	if (!rc && n)
		rc = put(sb, v, n);
	return rc;
}

static int set_guest_functions(struct mote_sandbox *sb, const struct mote_snapshot *snap)
{
	struct mote_sig *fns;
	size_t n;
	int rc = copy_sigs(&fns, &n, snap->meta.guest_fns, snap->meta.nguest_fns);
	if (rc) {
		free_sigs(fns, n);
		return mote_sandbox_fail(sb, rc, "out of memory");
	}
	free_sigs(sb->fns, sb->nfns);
	sb->fns = fns;
	sb->nfns = n;
	return 0;
}

/* Everything a snapshot stores joins a KVM guest at once, the rest lazily:
 * the end of what it stores (at least the heap's first 2 MiB). */
static uint64_t stored_end(const struct mote_snapshot *snap)
{
	uint64_t end = snap->meta.layout.heap_base + MOTE_LARGE_PAGE_SIZE;
	return snap->stored_end > end ? snap->stored_end : end;
}

/* The pages the snapshot chain stores, into a bitmap that is all zeros: a
 * region at a time (a 1 GiB guest's bitmap is 4096 words, its regions a
 * handful). */
static void mark_stored(const struct mote_snapshot *snap, uint64_t *bitmap)
{
	if (snap->parent)
		mark_stored(snap->parent, bitmap);
	for (size_t i = 0; i < snap->nregions; i++)
		mote_bitmap_set_range(bitmap, snap->regions[i].guest_addr / MOTE_PAGE_SIZE,
		                      snap->regions[i].size / MOTE_PAGE_SIZE);
}

/* Start the guest over from `snap`, as mote_sandbox_from_snapshot does, in
 * this sandbox: for a backend that keeps guest memory elsewhere when its
 * guest is gone (a process that was killed), or to go to another snapshot
 * (whose pages the guest could not write are not the running ones). */
static int rebuild_from(struct mote_sandbox *sb, struct mote_snapshot *snap)
{
	mote_mappings_clear(sb);
	sb->be->destroy(sb);
	mote_sandbox_free_pieces(sb);
	mote_sandbox_unmap_memory(sb);
	int rc = mote_sandbox_map_memory(sb, false);
	if (!rc && map_chain(snap, sb->mem, PROT_READ | PROT_WRITE, MAP_PRIVATE, host_view_end(sb)))
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map snapshot memory: %s",
				       strerror(errno));
	if (!rc)
		rc = record_chain(sb, snap);
	if (!rc)
		rc = set_guest_functions(sb, snap);
	if (!rc)
		rc = mote_sandbox_create_guest(sb, stored_end(snap));
	if (!rc)
		rc = sb->be->set_state(sb, &snap->meta.cpu);
	if (!rc)
		rc = mote_mappings_reconcile(sb, snap->maps, snap->nmaps);
	if (rc) {
		sb->poisoned = true;
		return rc;
	}
	mote_bitmap_assign(sb->touched, snap->present, sb->bitmap_words);
	mote_sandbox_clear_dirty(sb);
	if (snap != sb->base) {
		snapshot_retain(snap);
		mote_snapshot_release(sb->base);
		sb->base = snap;
	}
	sb->backed_by_base = true;
	sb->poisoned = false;
	sb->protocol_broken = false;
	sb->err[0] = 0;
	if (sb->ext && sb->ext->restored)
		sb->ext->restored(sb, sb->ext_state);
	return 0;
}

int mote_sandbox_restore(mote_sandbox *sb, const mote_snapshot *csnap)
{
	if (!sb || !csnap) {
		if (sb)
			return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_sandbox_restore: no snapshot");
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_restore: no sandbox");
	}
	struct mote_snapshot *snap = (struct mote_snapshot *)csnap;
	if (!same_layout(&sb->layout, &snap->meta.layout))
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
					 "snapshot memory layout (%llu bytes) differs from the "
					 "sandbox's (%llu bytes)",
					 (unsigned long long)snap->meta.layout.mem_size,
					 (unsigned long long)sb->mem_size);
	/* A backend that resets pages to what backs them starts over from a
	 * base it was not started from, once: later restores are then resets. */
	if (!sb->be->shares_host_memory &&
	    (snap != sb->base || (sb->be->reset && !sb->backed_by_base) ||
	     (sb->be->lost && (sb->protocol_broken || sb->be->lost(sb)))))
		return rebuild_from(sb, snap);
	bool any;
	int rc = mote_sandbox_settle(sb);
	if (!rc)
		rc = mote_sandbox_collect_dirty(sb, &any, true);
	if (rc)
		return rc;
	if (snap == sb->base) {
		if (any)
			rc = copy_back(sb, snap, sb->dirty, sb->dirty_summary);
	} else {
		/* Another snapshot: every page either side may have written. */
		for (size_t i = 0; i < sb->bitmap_words; i++)
			sb->dirty[i] = sb->touched[i] | snap->present[i];
		mote_bitmap_set_range(sb->dirty_summary, 0, sb->bitmap_words);
		rc = copy_back(sb, snap, sb->dirty, sb->dirty_summary);
		if (rc) {
			sb->poisoned = true;
			return rc;
		}
		mote_bitmap_assign(sb->touched, snap->present, sb->bitmap_words);
		rc = set_guest_functions(sb, snap);
		if (rc)
			return rc;
		snapshot_retain(snap);
		mote_snapshot_release(sb->base);
		sb->base = snap;
	}
	if (rc) {
		sb->poisoned = true;
		return rc;
	}
	mote_sandbox_clear_dirty(sb);
	rc = mote_mappings_reconcile(sb, snap->maps, snap->nmaps);
	if (!rc)
		rc = sb->be->set_state(sb, &snap->meta.cpu);
	if (rc) {
		sb->poisoned = true;
		return rc;
	}
	sb->poisoned = false;
	sb->err[0] = 0;
	if (sb->ext && sb->ext->restored)
		sb->ext->restored(sb, sb->ext_state);
	return 0;
}

/* Every host function the snapshot requires must be given, same signature. */
static int check_host_functions(const struct mote_snapshot *snap,
				const mote_host_functions *fns, char *err, size_t errlen)
{
	size_t n = 0;
	int rc = 0;
	err[0] = 0;
	for (size_t i = 0; i < snap->meta.nhost_fns; i++) {
		const struct mote_sig *want = &snap->meta.host_fns[i];
		const struct mote_host_fn_entry *have =
			mote_host_functions_find(fns, want->name, strlen(want->name));
		if (have && mote_sig_equal(&have->sig, want))
			continue;
		char ws[256], hs[256]; /* formatted only to explain a mismatch */
		mote_sig_format(want, ws, sizeof(ws));
		if (!have) {
			n += (size_t)snprintf(err + n, n < errlen ? errlen - n : 0, "%s'%s' missing",
					      n ? "; " : "", ws);
			rc = -MOTE_ENOFUNC;
		} else {
			mote_sig_format(&have->sig, hs, sizeof(hs));
			n += (size_t)snprintf(err + n, n < errlen ? errlen - n : 0,
					      "%s'%s' registered as '%s'", n ? "; " : "", ws, hs);
			if (!rc)
				rc = -MOTE_ESIGNATURE;
		}
	}
	return rc;
}

int mote_sandbox_from_snapshot(const mote_snapshot *csnap,
			       const mote_host_functions *host_functions,
			       const mote_config *config, mote_sandbox **out)
{
	struct mote_snapshot *snap = (struct mote_snapshot *)csnap;
	if (!snap || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_from_snapshot: no %s",
		                 !snap ? "snapshot" : "out");
	}
	*out = NULL;
	char detail[512];
	int rc = check_host_functions(snap, host_functions, detail, sizeof(detail));
	if (rc) {
		return mote_fail(rc, "snapshot requires host functions: %s", detail);
	}
	char vendor[16];
	mote_cpu_vendor(vendor);
	if (memcmp(vendor, snap->meta.cpu_vendor, sizeof(vendor)) != 0) {
		return mote_fail(-MOTE_EBADSNAP,
		                 "snapshot taken on a %.12s CPU, this host is %.12s",
		                 snap->meta.cpu_vendor, vendor);
	}
	struct mote_sandbox *sb = mote_sandbox_alloc(config, host_functions, &rc);
	if (!sb)
		return rc;
	sb->layout = snap->meta.layout;
	sb->mem_size = sb->layout.mem_size;
	sb->image_size = snap->meta.image_size;
	sb->abi_version = snap->meta.abi_version;
	rc = mote_debug_set_guest_id(sb, snap->meta.guest_path, snap->meta.guest_sha256);
	if (rc)
		goto fail;
	rc = mote_sandbox_map_memory(sb, false);
	if (rc)
		goto fail;
	/* Copy-on-write views of the snapshot's pages (and its ancestors'):
	 * zero copy, and shared with every other sandbox started from them
	 * until written. */
	if (map_chain(snap, sb->mem, PROT_READ | PROT_WRITE, MAP_PRIVATE, host_view_end(sb))) {
		rc = mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map snapshot memory: %s",
				       strerror(errno));
		goto fail;
	}
	rc = record_chain(sb, snap);
	if (rc)
		goto fail;
	/* Pages nearly every call writes (the top of the stack, the call
	 * buffers, the image's data): copy them now, in one host-side pass,
	 * rather than one guest fault and copy-on-write at a time later. */
	const struct mote_layout *l = &sb->layout;
	const uint64_t hot[][2] = {
		{l->stack_base + l->stack_size - 2 * MOTE_PAGE_SIZE, 2 * MOTE_PAGE_SIZE},
		{l->in_buf, MOTE_PAGE_SIZE},
		{l->out_buf, MOTE_PAGE_SIZE},
		{l->image_end - 2 * MOTE_PAGE_SIZE, 2 * MOTE_PAGE_SIZE},
	};
	for (size_t i = 0; sb->be->shares_host_memory && i < sizeof(hot) / sizeof(hot[0]); i++)
		madvise(sb->mem + hot[i][0], hot[i][1], MADV_POPULATE_WRITE);
	rc = mote_sandbox_alloc_bitmaps(sb);
	if (rc)
		goto fail;
	mark_stored(snap, sb->touched); /* new bitmaps are zero */
	rc = set_guest_functions(sb, snap);
	if (rc)
		goto fail;
	rc = mote_sandbox_create_guest(sb, stored_end(snap));
	if (!rc)
		rc = sb->be->set_state(sb, &snap->meta.cpu);
	if (rc)
		goto fail;
	rc = mote_mappings_reconcile(sb, snap->maps, snap->nmaps);
	if (rc)
		goto fail;
	snapshot_retain(snap);
	sb->base = snap;
	sb->backed_by_base = true;
	*out = sb;
	return 0;
fail:
	mote_fail(rc, "%s", sb->err); /* the sandbox, and its detail, go */
	mote_sandbox_free(sb);
	return rc;
}

/* SHA-256 of [offset, offset + size) of a file, zero-padded past its end. */
static int hash_file_range(const char *path, uint64_t offset, uint64_t size, uint8_t out[32],
			   char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mote_errf(err, errlen, "cannot open mapped file %s: %s", path, strerror(errno));
		return -MOTE_EIO;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = mote_malloc(1 << 20);
	int rc = ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
	uint64_t done = 0;
	while (!rc && done < size) {
		size_t want = size - done < (1 << 20) ? (size_t)(size - done) : (1 << 20);
		ssize_t n = pread(fd, buf, want, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mote_errf(err, errlen, "cannot read mapped file %s: %s", path, strerror(errno));
			rc = -MOTE_EIO;
			break;
		}
		if (n == 0) { /* past the end: the guest saw zeros */
			memset(buf, 0, want);
			n = (ssize_t)want;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		done += (uint64_t)n;
	}
	if (!rc)
		EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	mote_free(buf);
	close(fd);
	return rc;
}

/* A path to `target` for a file in `from_dir`: relative when target is in
 * that directory, absolute otherwise. */
static const char *parent_hint(const char *target, const char *from_dir)
{
	size_t n = strlen(from_dir);
	if (!strncmp(target, from_dir, n) && target[n] == '/' && !strchr(target + n + 1, '/'))
		return target + n + 1;
	return target;
}

/* Directory of an absolute path (into buf). */
static void dir_of(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	char *slash = strrchr(buf, '/');
	if (slash && slash != buf)
		*slash = 0;
	else if (slash)
		slash[1] = 0;
}

/* Read back the header hash of a file just written, and remember that this
 * snapshot is that file (so layers saved later can name it). */
static void adopt_file(struct mote_snapshot *snap, const char *abs_path)
{
	struct mote_snapfile f;
	if (mote_snapfile_open(abs_path, MOTE_SNAPFILE_VERIFY_HEADER, &f, NULL, 0) != 0)
		return;
	char *p = mote_strdup(abs_path);
	if (p) {
		mote_free(snap->file_path);
		snap->file_path = p;
		memcpy(snap->header_hash, f.header_hash, 32);
		if (!snap->have_hash) {
			snap->have_hash = true;
			registry_add(snap);
		}
	}
	mote_snapfile_close(&f);
}

/* Read [offset, offset + size) of an open file into a new buffer. */
static uint8_t *read_fd_range(int fd, uint64_t offset, uint64_t size)
{
	uint8_t *buf = mote_calloc(1, size);
	uint64_t done = 0;
	while (buf && done < size) {
		ssize_t n = pread(fd, buf + done, size - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			mote_free(buf);
			return NULL;
		}
		done += (uint64_t)n;
	}
	return buf;
}

/* Read [offset, offset + size) of a file into a new buffer, zero-padded
 * past its end. */
static uint8_t *read_file_range(const char *path, uint64_t offset, uint64_t size, char *err,
				size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = fd >= 0 ? mote_calloc(1, size) : NULL;
	uint64_t done = 0;
	while (buf && done < size) {
		ssize_t n = pread(fd, buf + done, size - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EOF: the rest stays zero, as the guest saw it */
		done += (uint64_t)n;
	}
	if (fd < 0)
		mote_errf(err, errlen, "cannot open mapped file %s: %s", path, strerror(errno));
	else if (!buf)
		mote_errf(err, errlen, "out of memory reading %s", path);
	if (fd >= 0)
		close(fd);
	return buf;
}

int mote_snapshot_save(const mote_snapshot *csnap, const char *path, unsigned flags)
{
	struct mote_snapshot *snap = (struct mote_snapshot *)csnap;
	if (flags & ~MOTE_SNAPSHOT_ABSORB_MAPPINGS) {
		return mote_fail(-MOTE_EINVAL,
		                 "mote_snapshot_save: invalid flags 0x%x (only "
		                 "MOTE_SNAPSHOT_ABSORB_MAPPINGS)",
		                 flags);
	}
	if (!snap || !path) {
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_save: no %s",
		                 !snap ? "snapshot" : "path");
	}
	char abs[8200], dir[8200];
	if (!realpath(path, abs)) {
		/* The file may not exist yet: resolve its directory. */
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s", path);
		char *slash = strrchr(tmp, '/');
		const char *d = slash ? (slash == tmp ? "/" : (*slash = 0, tmp)) : ".";
		char rd[4096];
		if (!realpath(d, rd)) {
			return mote_fail(-MOTE_EIO, "cannot save snapshot to %s: %s", path,
			                 strerror(errno));
		}
		snprintf(abs, sizeof(abs), "%s/%s", strcmp(rd, "/") ? rd : "",
			 slash ? slash + 1 : path);
	}
	dir_of(abs, dir, sizeof(dir));
	char err[512] = "";
	/* A layer is saved as a layer file when its base is a file (named by
	 * its header hash); otherwise the whole chain is written out. */
	bool layer = snap->parent && snap->parent->have_hash && snap->parent->file_path &&
		     strcmp(snap->parent->file_path, abs) != 0;
	struct mote_snap_meta meta = snap->meta;
	memset(meta.parent_hash, 0, sizeof(meta.parent_hash));
	meta.parent_path = NULL;
	if (layer) {
		memcpy(meta.parent_hash, snap->parent->header_hash, 32);
		meta.parent_path = (char *)parent_hint(snap->parent->file_path, dir);
	}
	struct mote_snap_mapping maps[MOTE_MAX_MAPPINGS];
	memset(maps, 0, sizeof(maps));
	meta.mappings = snap->nmaps ? maps : NULL;
	meta.nmappings = snap->nmaps;
	uint8_t *absorbed[MOTE_MAX_MAPPINGS] = {0};
	int rc = 0;
	for (size_t i = 0; !rc && i < snap->nmaps; i++) {
		const struct mote_file_map *m = &snap->maps[i];
		maps[i] = (struct mote_snap_mapping){m->path, m->offset, m->size, m->gpa, m->flags,
						     {0}, NULL};
		if (m->src_fd >= 0 || (flags & MOTE_SNAPSHOT_ABSORB_MAPPINGS)) {
			/* Store the content; an already absorbed mapping stays so. */
			absorbed[i] = m->src_fd >= 0
					      ? read_fd_range(m->src_fd, m->src_offset, m->size)
					      : read_file_range(m->path, m->offset, m->size, err,
								sizeof(err));
			if (!absorbed[i]) {
				if (!err[0])
					snprintf(err, sizeof(err), "cannot read mapping %s", m->path);
				rc = -MOTE_EIO;
				break;
			}
			maps[i].flags |= MOTE_SNAP_MAP_ABSORBED;
			maps[i].data = absorbed[i];
			SHA256(absorbed[i], m->size, maps[i].sha256);
			continue;
		}
		rc = hash_file_range(m->path, m->offset, m->size, maps[i].sha256, err, sizeof(err));
	}
	const uint8_t *view = rc ? NULL : snapshot_view(snap);
	if (!rc && !view) {
		snprintf(err, sizeof(err), "cannot map snapshot memory: %s", strerror(errno));
		rc = -MOTE_ENOMEM;
	}
	if (!rc)
		rc = mote_snapfile_write(path, &meta, view, layer ? snap->own : snap->present, err,
		                         sizeof(err));
	for (size_t i = 0; i < snap->nmaps; i++)
		mote_free(absorbed[i]);
	if (rc) {
		return mote_fail(rc, "cannot save snapshot to %s: %s", path, err);
	}
	adopt_file(snap, abs);
	return 0;
}

static void hex(char *out, const uint8_t *h, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[2 * n] = 0;
}

static int open_file(const char *path, bool dir_resolved, unsigned flags, unsigned depth,
                     mote_snapshot **out);

/* The base a layer file names: already open in this process (by header
 * hash), or opened from its path hint and checked against the hash. */
static int open_parent(struct mote_snapshot *snap, const char *layer_abs, unsigned flags,
		       unsigned depth)
{
	struct mote_snapshot *p = registry_find(snap->meta.parent_hash);
	char want[65];
	hex(want, snap->meta.parent_hash, 32);
	if (!p) {
		char dir[4096], ppath[8192];
		dir_of(layer_abs, dir, sizeof(dir));
		const char *hint = snap->meta.parent_path;
		if (hint[0] == '/')
			snprintf(ppath, sizeof(ppath), "%s", hint);
		else
			snprintf(ppath, sizeof(ppath), "%s/%s", dir, hint);
		bool plain_name =
		    hint[0] != '/' && !strchr(hint, '/') && strcmp(hint, "..") && strcmp(hint, ".");
		int rc = open_file(ppath, plain_name, flags, depth + 1, (mote_snapshot **)&p);
		struct stat st;
		if (rc && stat(ppath, &st) < 0) { /* asked only now: a stat per file costs */
			return mote_fail(
			    -MOTE_EBADSNAP,
			    "%s: base snapshot %s (header hash %.16s...) not found: %s", layer_abs,
			    ppath, want, strerror(errno));
		}
		if (rc)
			return rc;
		if (memcmp(p->header_hash, snap->meta.parent_hash, 32) != 0) {
			char got[65];
			hex(got, p->header_hash, 32);
			rc = mote_fail(-MOTE_EBADSNAP,
			               "%s: base snapshot %s has changed (header hash %.16s..., "
			               "the layer was made over %.16s...)",
			               layer_abs, ppath, got, want);
			mote_snapshot_release(p);
			return rc;
		}
	}
	if (memcmp(&p->meta.layout, &snap->meta.layout, sizeof(p->meta.layout)) != 0) {
		int rc = mote_fail(-MOTE_EBADSNAP,
		                   "%s: memory layout differs from its base snapshot's", layer_abs);
		mote_snapshot_release(p);
		return rc;
	}
	snap->parent = p;
	snap->depth = p->depth + 1;
	return 0;
}

/* Mapped files are recorded by content hash: refuse one that changed. */
static int reopen_mappings(struct mote_snapshot *snap, const char *path)
{
	if (!snap->meta.nmappings)
		return 0;
	snap->maps = mote_calloc(snap->meta.nmappings, sizeof(*snap->maps));
	if (!snap->maps)
		return -MOTE_ENOMEM;
	for (size_t i = 0; i < snap->meta.nmappings; i++) {
		const struct mote_snap_mapping *m = &snap->meta.mappings[i];
		if (m->flags & MOTE_SNAP_MAP_ABSORBED) {
			/* The content is this file's region at the mapping's address. */
			const struct mote_snap_region *r = NULL;
			for (size_t k = 0; k < snap->nwindow && !r; k++)
				if (snap->window[k].guest_addr == m->gpa)
					r = &snap->window[k];
			if (!r)
				return -MOTE_EBADSNAP; /* the parser guarantees one */
			snap->maps[i] = (struct mote_file_map){.path = mote_strdup(m->path),
							       .offset = m->offset,
							       .size = m->size,
							       .gpa = m->gpa,
							       .flags = m->flags & MOTE_MAP_COPY_ON_WRITE,
							       .slot = -1,
							       .src_fd = fcntl(snap->fd, F_DUPFD_CLOEXEC, 0),
							       .src_offset = r->file_offset};
			snap->nmaps = i + 1;
			if (!snap->maps[i].path || snap->maps[i].src_fd < 0)
				return -MOTE_ENOMEM;
			continue;
		}
		uint8_t now[32];
		char err[512] = "";
		int rc = hash_file_range(m->path, m->offset, m->size, now, err, sizeof(err));
		if (rc) {
			return mote_fail(-MOTE_EBADSNAP, "%s: %s", path, err);
		}
		if (memcmp(now, m->sha256, 32) != 0) {
			return mote_fail(-MOTE_EBADSNAP,
			                 "%s: mapped file %s has changed since the snapshot was "
			                 "taken",
			                 path, m->path);
		}
		snap->maps[i] = (struct mote_file_map){.path = mote_strdup(m->path),
						       .offset = m->offset,
						       .size = m->size,
						       .gpa = m->gpa,
						       .flags = m->flags,
						       .slot = -1,
						       .src_fd = -1};
		snap->nmaps = i + 1;
		if (!snap->maps[i].path)
			return -MOTE_ENOMEM;
	}
	return 0;
}

/* `path` resolved as realpath() would: where only its last component may
 * be a symbolic link (its directory is resolved already: a base named by a
 * layer, next to it), one readlink says so, where realpath() asks about
 * every component (~1.3 us each here, for every file of a chain). */
static void resolve_path(const char *path, bool dir_resolved, char *abs, size_t len)
{
	char target[8];
	if (dir_resolved && readlink(path, target, sizeof(target)) < 0 && errno == EINVAL) {
		snprintf(abs, len, "%s", path); /* not a link */
		return;
	}
	if (!realpath(path, abs))
		snprintf(abs, len, "%s", path);
}

static int open_file(const char *path, bool dir_resolved, unsigned flags, unsigned depth,
                     mote_snapshot **out)
{
	*out = NULL;
	if (depth > MOTE_MAX_LAYER_DEPTH * 4) {
		return mote_fail(-MOTE_EBADSNAP,
		                 "%s: snapshot chain longer than %d files (or a loop)", path,
		                 MOTE_MAX_LAYER_DEPTH * 4);
	}
	struct mote_snapfile f;
	char err[512] = "";
	int rc = mote_snapfile_open(path, flags, &f, err, sizeof(err));
	if (rc) {
		return mote_fail(rc, "%s: %s", path, err);
	}
	char abs[4096];
	resolve_path(path, dir_resolved, abs, sizeof(abs));
	struct mote_snapshot *snap = snapshot_alloc();
	if (!snap) {
		mote_snapfile_close(&f);
		return mote_fail(-MOTE_ENOMEM, "out of memory");
	}
	/* Take over what the parser allocated. */
	snap->meta = f.meta;
	memset(&f.meta, 0, sizeof(f.meta));
	snap->regions = f.regions;
	snap->nregions = f.nregions;
	f.regions = NULL;
	f.nregions = 0;
	snap->fd = f.fd;
	f.fd = -1;
	memcpy(snap->header_hash, f.header_hash, sizeof(snap->header_hash));
	mote_snapfile_close(&f);
	/* Regions above guest RAM hold absorbed mappings (sorted last). */
	while (snap->nregions &&
	       snap->regions[snap->nregions - 1].guest_addr >= snap->meta.layout.mem_size) {
		snap->nregions--;
		snap->nwindow++;
	}
	snap->window = snap->regions + snap->nregions;
	snap->file_path = mote_strdup(abs);

	static const uint8_t zero[32];
	rc = snap->file_path ? 0 : -MOTE_ENOMEM;
	if (!rc && memcmp(snap->meta.parent_hash, zero, 32) != 0)
		rc = open_parent(snap, abs, flags, depth);
	if (!rc)
		rc = reopen_mappings(snap, path);
	if (rc) {
		if (rc == -MOTE_ENOMEM)
			mote_fail(rc, "out of memory");
		mote_snapshot_release(snap);
		return rc;
	}
	uint64_t pages = snap->meta.layout.mem_size / MOTE_PAGE_SIZE;
	snap->own = mote_calloc((size_t)((pages + 63) / 64), sizeof(uint64_t));
	if (snap->own)
		for (size_t i = 0; i < snap->nregions; i++)
			mote_bitmap_set_range(snap->own,
			                      snap->regions[i].guest_addr / MOTE_PAGE_SIZE,
			                      snap->regions[i].size / MOTE_PAGE_SIZE);
	if (!snap->own || snapshot_bitmaps(snap)) {
		mote_snapshot_release(snap);
		return mote_fail(-MOTE_ENOMEM, "out of memory");
	}
	snap->have_hash = true;
	/* No memory view yet: snapshot_view() maps it at the first restore or save. */
	registry_add(snap);
	*out = snap;
	return 0;
}

int mote_snapshot_open(const char *path, unsigned flags, mote_snapshot **out)
{
	if (flags & ~(MOTE_SNAPSHOT_VERIFY_HEADER | MOTE_SNAPSHOT_NO_CACHE)) {
		return mote_fail(-MOTE_EINVAL,
		                 "mote_snapshot_open: invalid flags 0x%x (only "
		                 "MOTE_SNAPSHOT_VERIFY_HEADER, MOTE_SNAPSHOT_NO_CACHE)",
		                 flags);
	}
	if (!path || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_open: %s",
		                 !path ? "no path" : "no out");
	}
	return open_file(path, false, flags, 0, out);
}

void mote_snapshot_cache_clear(void)
{
	mote_snapfile_cache_clear();
}

static void fill_function_infos(mote_function_info *dst, const struct mote_sig *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (mote_function_info){src[i].name, src[i].ret, src[i].nargs, src[i].args};
}

int mote_snapshot_info_read(const char *path, mote_snapshot_info *out)
{
	if (!path || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_info_read: no %s",
		                 !path ? "path" : "out");
	}
	memset(out, 0, sizeof(*out));
	struct mote_snapfile f;
	char err[512] = "";
	int rc = mote_snapfile_open(path, MOTE_SNAPFILE_VERIFY_HEADER, &f, err, sizeof(err));
	if (rc)
		return mote_fail(rc, "%s: %s", path, err);
	/* The names and function tables live in the parsed meta, which the
	 * info keeps as its private part. */
	struct mote_snap_meta *m = mote_malloc(sizeof(*m));
	if (!m) {
		mote_snapfile_close(&f);
		return mote_fail(-MOTE_ENOMEM, "out of memory");
	}
	*m = f.meta;
	memset(&f.meta, 0, sizeof(f.meta));
	out->format_version = f.format_version;
	out->abi_version = m->abi_version;
	out->arch = "x86_64";
	out->hypervisor = f.hypervisor == MOTE_SNAP_BACKEND_PROCESS ? "process" : "kvm";
	memcpy(out->cpu_vendor, m->cpu_vendor, sizeof(out->cpu_vendor));
	out->cpu_vendor[sizeof(out->cpu_vendor) - 1] = 0;
	out->created_unix_ns = m->created_unix_ns;
	out->file_size = f.file_size;
	out->mem_size = m->layout.mem_size;
	out->image_size = m->image_size;
	out->heap_size = m->layout.heap_size;
	out->stack_size = m->layout.stack_size;
	out->input_size = m->layout.in_size;
	out->output_size = m->layout.out_size;
	out->blob_size = f.blob_size;
	out->nregions = f.nregions;
	hex(out->header_hash, f.header_hash, sizeof(f.header_hash));
	hex(out->blob_hash, f.blob_hash, sizeof(f.blob_hash));
	static const uint8_t zero[32];
	out->is_layer = memcmp(m->parent_hash, zero, 32) != 0;
	if (out->is_layer)
		hex(out->parent_hash, m->parent_hash, 32);
	out->parent_path = m->parent_path;
	out->nmappings = m->nmappings;
	out->guest_path = m->guest_path;
	if (m->guest_path)
		hex(out->guest_hash, m->guest_sha256, 32);
	out->priv_ = m;
	mote_snapfile_close(&f);
	return 0;
}

void mote_snapshot_info_free(mote_snapshot_info *info)
{
	if (!info)
		return;
	if (info->priv_) {
		mote_snap_meta_clear(info->priv_);
		mote_free(info->priv_);
	}
	memset(info, 0, sizeof(*info));
}

/* One accessor behind every function list of a snapshot: `what` names the
 * caller in the detail. */
static int function_at(const struct mote_sig *fns, size_t n, size_t index, mote_function_info *out,
                       const char *what, const char *noun)
{
	if (!out)
		return mote_fail(-MOTE_EINVAL, "%s: no out", what);
	if (index >= n)
		return mote_fail(-MOTE_EINVAL, "%s: index %zu, the snapshot has %zu %s", what,
		                 index, n, noun);
	fill_function_infos(out, &fns[index], 1);
	return 0;
}

size_t mote_snapshot_info_function_count(const mote_snapshot_info *info)
{
	const struct mote_snap_meta *m = info ? info->priv_ : NULL;
	return m ? m->nguest_fns : 0;
}

int mote_snapshot_info_function(const mote_snapshot_info *info, size_t index,
                                mote_function_info *out)
{
	const struct mote_snap_meta *m = info ? info->priv_ : NULL;
	if (!m)
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_info_function: no %s",
		                 !info ? "info" : "info read");
	return function_at(m->guest_fns, m->nguest_fns, index, out, "mote_snapshot_info_function",
	                   "functions");
}

size_t mote_snapshot_info_host_function_count(const mote_snapshot_info *info)
{
	const struct mote_snap_meta *m = info ? info->priv_ : NULL;
	return m ? m->nhost_fns : 0;
}

int mote_snapshot_info_host_function(const mote_snapshot_info *info, size_t index,
                                     mote_function_info *out)
{
	const struct mote_snap_meta *m = info ? info->priv_ : NULL;
	if (!m)
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_info_host_function: no %s",
		                 !info ? "info" : "info read");
	return function_at(m->host_fns, m->nhost_fns, index, out,
	                   "mote_snapshot_info_host_function", "host functions");
}

size_t mote_snapshot_function_count(const mote_snapshot *snap)
{
	return snap ? snap->meta.nguest_fns : 0;
}

int mote_snapshot_function(const mote_snapshot *snap, size_t index, mote_function_info *out)
{
	if (!snap)
		return mote_fail(-MOTE_EINVAL, "mote_snapshot_function: no snapshot");
	return function_at(snap->meta.guest_fns, snap->meta.nguest_fns, index, out,
	                   "mote_snapshot_function", "functions");
}
