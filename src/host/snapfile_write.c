/* Snapshot files: the writer. It encodes the metadata, checks it with the
 * parser before touching the disk, writes the blob and the guard page to a
 * temporary file next to the destination while a helper thread hashes the
 * blob's chunks from memory, writes the sealed header last, and renames the
 * file into place. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/snapfile_int.h"

static size_t find_regions(const uint64_t *bm, uint64_t npages, uint64_t gap,
                           struct mote_snap_region *out)
{
	size_t n = 0;
	uint64_t page = 0;
	while (page < npages) {
		uint64_t start = run_end(bm, page, npages, false);
		if (start == npages)
			break;
		uint64_t end = run_end(bm, start, npages, true);
		while (end < npages) {
			uint64_t next = run_end(bm, end, npages, false);
			if (next == npages || next - end > gap)
				break;
			end = run_end(bm, next, npages, true);
		}
		if (out)
			out[n] = (struct mote_snap_region){start * PAGE, (end - start) * PAGE, 0};
		n++;
		page = end;
	}
	return n;
}

static uint64_t fns_size(const struct mote_sig *fns, size_t n)
{
	uint64_t size = 0;
	for (size_t i = 0; i < n; i++)
		size += fn_entry_size((uint32_t)strlen(fns[i].name));
	return size;
}

static int check_fns_for_write(const struct mote_sig *fns, size_t n, const char *which, char *err,
                               size_t errlen)
{
	if (n > MOTE_SNAP_MAX_FUNCTIONS || (n && !fns))
		return mote_err(err, errlen, -MOTE_EINVAL, "%s function count %zu invalid", which,
		                n);
	for (size_t i = 0; i < n; i++) {
		if (!fns[i].name || !fns[i].name[0] ||
		    strnlen(fns[i].name, MOTE_MAX_NAME + 1) > MOTE_MAX_NAME)
			return mote_err(err, errlen, -MOTE_EINVAL,
			                "%s function %zu: name missing, empty or longer than %d",
			                which, i, MOTE_MAX_NAME);
		int rc = mote_snapfile__check_sig_types(&fns[i], which, i, err, errlen);
		if (rc)
			return -MOTE_EINVAL;
	}
	return 0;
}

static uint8_t *encode_fns(uint8_t *p, const struct mote_sig *fns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct disk_fn *d = (struct disk_fn *)p;
		uint32_t len = (uint32_t)strlen(fns[i].name);
		put32(d->name_len, len);
		d->ret = (uint8_t)fns[i].ret;
		d->nargs = fns[i].nargs;
		for (unsigned a = 0; a < fns[i].nargs; a++)
			d->args[a] = (uint8_t)fns[i].args[a];
		memcpy(p + sizeof(*d), fns[i].name, len);
		p += fn_entry_size(len);
	}
	return p;
}

/* Early checks of what the encoder relies on (counts, pointers, lengths);
 * every other rule is the parser's, applied to the encoded metadata. */
static int check_refs_for_write(const struct mote_snap_meta *meta, char *err, size_t errlen)
{
	if (meta->parent_path && strnlen(meta->parent_path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
		return mote_err(err, errlen, -MOTE_EINVAL, "parent path longer than %u bytes",
		                MAX_PATH_LEN);
	if (meta->guest_path && strnlen(meta->guest_path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
		return mote_err(err, errlen, -MOTE_EINVAL, "guest path longer than %u bytes",
		                MAX_PATH_LEN);
	if (meta->nmappings > MOTE_MAX_MAPPINGS || (meta->nmappings && !meta->mappings))
		return mote_err(err, errlen, -MOTE_EINVAL, "mapping count %zu invalid (at most %u)",
		                meta->nmappings, MOTE_MAX_MAPPINGS);
	for (size_t i = 0; i < meta->nmappings; i++) {
		const char *path = meta->mappings[i].path;
		if (!path || strnlen(path, MAX_PATH_LEN + 1) > MAX_PATH_LEN)
			return mote_err(err, errlen, -MOTE_EINVAL,
			                "mapping %zu: path missing or longer than %u bytes", i,
			                MAX_PATH_LEN);
		if ((meta->mappings[i].flags & MOTE_SNAP_MAP_ABSORBED) && !meta->mappings[i].data)
			return mote_err(err, errlen, -MOTE_EINVAL,
			                "mapping %zu: absorbed but no content given", i);
	}
	return 0;
}

/* Mappings are stored sorted by guest address: order[] gets the indices of
 * meta->mappings in that order (stable; n <= MOTE_MAX_MAPPINGS). */
static void sort_mappings(const struct mote_snap_mapping *m, size_t n, size_t *order)
{
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		for (; j && m[order[j - 1]].gpa > m[i].gpa; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
}

static void encode_parent(uint8_t *p, const char *path)
{
	struct disk_parent *d = (struct disk_parent *)p;
	uint32_t len = (uint32_t)strlen(path);
	put32(d->path_len, len);
	memcpy(p + sizeof(*d), path, len);
}

static void encode_guest(uint8_t *p, const uint8_t *sha256, const char *path)
{
	struct disk_guest *d = (struct disk_guest *)p;
	uint32_t len = (uint32_t)strlen(path);
	memcpy(d->sha256, sha256, sizeof(d->sha256));
	put32(d->path_len, len);
	memcpy(p + sizeof(*d), path, len);
}

static void encode_mappings(uint8_t *p, const struct mote_snap_mapping *maps, const size_t *order,
                            size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct mote_snap_mapping *m = &maps[order[i]];
		struct disk_mapping *d = (struct disk_mapping *)p;
		uint32_t len = (uint32_t)strlen(m->path);
		put64(d->offset, m->offset);
		put64(d->size, m->size);
		put64(d->gpa, m->gpa);
		put32(d->flags, m->flags);
		put32(d->path_len, len);
		memcpy(d->sha256, m->sha256, sizeof(d->sha256));
		memcpy(p + sizeof(*d), m->path, len);
		p += path_entry_size(sizeof(*d), len);
	}
}

static int pwrite_full(int fd, const void *p, uint64_t len, uint64_t off)
{
	const uint8_t *b = p;
	while (len) {
		size_t n = len < (1u << 30) ? (size_t)len : (1u << 30);
		ssize_t w = pwrite(fd, b, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		b += w;
		len -= (uint64_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

struct blob_writer {
	int fd;
	uint64_t blob_offset;
};

static int write_piece(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off)
{
	const struct blob_writer *bw = ctx;
	uint64_t off = bw->blob_offset + blob_off;
	if (p)
		return pwrite_full(bw->fd, p, len, off) ? -MOTE_EIO : 0;
	for (; len; len -= PAGE, off += PAGE)
		if (pwrite_full(bw->fd, mote_snapfile__zero_page, PAGE, off))
			return -MOTE_EIO;
	return 0;
}

/* Blob hash from the chunk-hash section, then the header hash. */
static int seal(uint8_t *buf, uint64_t chunks_off, uint64_t nchunks, uint64_t blob_offset)
{
	struct disk_header *h = (struct disk_header *)buf;
	int rc =
	    mote_snapfile__sha256(buf + chunks_off, nchunks * MOTE_SNAP_HASH_SIZE, h->blob_hash);
	return rc ? rc : mote_snapfile__header_digest(buf, blob_offset, h->header_hash);
}

static atomic_uint tmp_counter;

/* Where everything goes in the file, decided before anything is encoded. */
struct write_plan {
	size_t map_order[MOTE_MAX_MAPPINGS]; /* mappings sorted by guest address */
	struct mote_snap_region *regions;    /* guest RAM runs, then absorbed mappings */
	size_t nregions, nram;
	const uint8_t *extra[MOTE_MAX_MAPPINGS]; /* absorbed mappings' bytes */
	uint64_t sizes[NSECTIONS], counts[NSECTIONS], offs[NSECTIONS];
	unsigned nsections; /* NSECTIONS with a guest section, else SEC_GUEST */
	uint64_t blob_size, nchunks, blob_offset, file_size;
};

/* What the encoder relies on; every other rule is the parser's. */
static int check_for_write(const struct mote_snap_meta *meta, char *err, size_t errlen)
{
	const uint64_t mem_size = meta->layout.mem_size;
	if (!mem_size || !page_aligned(mem_size) || mem_size > MOTE_MEM_LIMIT)
		return mote_err(err, errlen, -MOTE_EINVAL, "layout: mem_size 0x%llx invalid",
		                U(mem_size));
	int rc = check_fns_for_write(meta->host_fns, meta->nhost_fns, "host", err, errlen);
	if (!rc)
		rc = check_fns_for_write(meta->guest_fns, meta->nguest_fns, "guest", err, errlen);
	if (!rc)
		rc = check_refs_for_write(meta, err, errlen);
	return rc;
}

/* Regions, section sizes and offsets, the blob's place and the file size. */
static int plan_write(const struct mote_snap_meta *meta, const uint64_t *present,
                      struct write_plan *p, char *err, size_t errlen)
{
	sort_mappings(meta->mappings, meta->nmappings, p->map_order);
	uint64_t maps_size = 0;
	for (size_t i = 0; i < meta->nmappings; i++)
		maps_size += path_entry_size(sizeof(struct disk_mapping),
		                             (uint32_t)strlen(meta->mappings[i].path));
	/* Empty paths are encoded as such, for the parser to reject. */
	const char *parent = meta->parent_path, *guest = meta->guest_path;

	/* Regions: runs of present pages, merged across small gaps; merge wider
	 * gaps until the table fits what a reader accepts. */
	const uint64_t npages = meta->layout.mem_size / PAGE;
	uint64_t gap = MERGE_GAP_PAGES;
	size_t nregions;
	while ((nregions = find_regions(present, npages, gap, NULL)) > MOTE_SNAP_MAX_REGIONS)
		gap = gap * 2 + 1;
	/* Absorbed mappings follow as one region each, above guest RAM. */
	size_t nabsorbed = 0;
	for (size_t i = 0; i < meta->nmappings; i++)
		nabsorbed += (meta->mappings[i].flags & MOTE_SNAP_MAP_ABSORBED) != 0;
	if (nregions + nabsorbed &&
	    !(p->regions = mote_calloc(nregions + nabsorbed, sizeof(*p->regions))))
		return mote_err(err, errlen, -MOTE_ENOMEM, "out of memory");
	find_regions(present, npages, gap, p->regions);
	p->nram = nregions;
	for (size_t k = 0; k < meta->nmappings; k++) {
		const struct mote_snap_mapping *m = &meta->mappings[p->map_order[k]];
		if (!(m->flags & MOTE_SNAP_MAP_ABSORBED))
			continue;
		p->extra[nregions - p->nram] = m->data;
		p->regions[nregions++] = (struct mote_snap_region){m->gpa, m->size, 0};
	}
	p->nregions = nregions;

	/* Metadata geometry. */
	const uint64_t sizes[NSECTIONS] = {
	    sizeof(struct disk_layout),
	    sizeof(struct disk_cpu),
	    fns_size(meta->host_fns, meta->nhost_fns),
	    fns_size(meta->guest_fns, meta->nguest_fns),
	    nregions * sizeof(struct disk_region),
	    0,
	    parent ? path_entry_size(sizeof(struct disk_parent), (uint32_t)strlen(parent)) : 0,
	    maps_size,
	    guest ? path_entry_size(sizeof(struct disk_guest), (uint32_t)strlen(guest)) : 0,
	};
	const uint64_t counts[NSECTIONS] = {
	    1, 1, meta->nhost_fns, meta->nguest_fns, nregions, 0, parent != NULL, meta->nmappings,
	};
	memcpy(p->sizes, sizes, sizeof(sizes));
	memcpy(p->counts, counts, sizeof(counts));
	p->counts[SEC_GUEST] = guest != NULL;
	p->nsections = guest ? NSECTIONS : SEC_GUEST;
	p->blob_size = 0;
	for (size_t i = 0; i < nregions; i++)
		p->blob_size += p->regions[i].size;
	p->nchunks = (p->blob_size + WRITE_CHUNK_SIZE - 1) / WRITE_CHUNK_SIZE;
	p->counts[SEC_CHUNKS] = p->nchunks;
	p->sizes[SEC_CHUNKS] = p->nchunks * MOTE_SNAP_HASH_SIZE;
	uint64_t next = HDR_SIZE;
	for (unsigned i = 0; i < p->nsections; i++) {
		p->offs[i] = next;
		next += p->sizes[i];
	}
	p->blob_offset = align_up(next, PAGE);
	p->file_size = p->blob_offset + p->blob_size + GUARD_SIZE;
	uint64_t at = p->blob_offset;
	for (size_t i = 0; i < nregions; i++) {
		p->regions[i].file_offset = at;
		at += p->regions[i].size;
	}
	return 0;
}

/* The header and every section but the chunk hashes, into buf (zeroed,
 * blob_offset bytes). */
static void encode_meta(uint8_t *buf, const struct mote_snap_meta *meta, const struct write_plan *p)
{
	struct disk_header *h = (struct disk_header *)buf;
	memcpy(h->magic, SNAP_MAGIC, sizeof(h->magic));
	put32(h->format_version, MOTE_SNAP_FORMAT_VERSION);
	put32(h->header_size, HDR_SIZE);
	put32(h->abi_version, meta->abi_version);
	put32(h->arch, MOTE_SNAP_ARCH_X86_64);
	put32(h->hypervisor, meta->saved_by);
	put32(h->flags, p->nsections > SEC_GUEST ? MOTE_SNAP_FLAG_GUEST : 0);
	char vendor[16];
	memcpy(vendor, meta->cpu_vendor, sizeof(vendor));
	if (!vendor[0])
		mote_cpu_vendor(vendor);
	memcpy(h->cpu_vendor, vendor, sizeof(vendor));
	uint64_t created_ns = meta->created_unix_ns;
	if (!created_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	put64(h->created_unix_ns, created_ns);
	put64(h->file_size, p->file_size);
	put64(h->blob_offset, p->blob_offset);
	put64(h->blob_size, p->blob_size);
	put64(h->chunk_size, WRITE_CHUNK_SIZE);
	memcpy(h->parent_hash, meta->parent_hash, sizeof(h->parent_hash));
	/* Without a guest section its entry stays zero (reserved). */
	for (unsigned i = 0; i < p->nsections; i++) {
		put64(h->sections[i].offset, p->offs[i]);
		put64(h->sections[i].size, p->sizes[i]);
		put32(h->sections[i].count, (uint32_t)p->counts[i]);
	}
	mote_snapfile__encode_layout((struct disk_layout *)(buf + p->offs[SEC_LAYOUT]),
	                             &meta->layout, meta->image_size);
	mote_snapfile__encode_cpu((struct disk_cpu *)(buf + p->offs[SEC_VCPU]), &meta->cpu);
	encode_fns(buf + p->offs[SEC_HOST_FNS], meta->host_fns, meta->nhost_fns);
	encode_fns(buf + p->offs[SEC_GUEST_FNS], meta->guest_fns, meta->nguest_fns);
	for (size_t i = 0; i < p->nregions; i++) {
		struct disk_region *d = (struct disk_region *)(buf + p->offs[SEC_REGIONS]) + i;
		put64(d->guest_addr, p->regions[i].guest_addr);
		put64(d->size, p->regions[i].size);
		put64(d->file_offset, p->regions[i].file_offset);
	}
	if (meta->parent_path)
		encode_parent(buf + p->offs[SEC_PARENT], meta->parent_path);
	encode_mappings(buf + p->offs[SEC_MAPPINGS], meta->mappings, p->map_order, meta->nmappings);
	if (meta->guest_path)
		encode_guest(buf + p->offs[SEC_GUEST], meta->guest_sha256, meta->guest_path);
}

/* Never write a file the reader would reject: parse the metadata before
 * touching the disk (chunk hashes still zero, sealed as such). */
static int check_encoded(uint8_t *buf, const struct write_plan *p, char *err, size_t errlen)
{
	int rc = seal(buf, p->offs[SEC_CHUNKS], p->nchunks, p->blob_offset);
	if (rc)
		return mote_err(err, errlen, rc, "SHA-256 failed");
	struct mote_snapfile check;
	char why[256];
	rc = mote_snapfile_parse(buf, (size_t)p->blob_offset, p->file_size, &check, why,
	                         sizeof(why));
	mote_snapfile_close(&check);
	if (rc == -MOTE_ENOMEM)
		return mote_err(err, errlen, rc, "out of memory");
	if (rc)
		return mote_err(err, errlen, -MOTE_EINVAL, "invalid snapshot metadata: %s", why);
	return 0;
}

/* A temporary file next to the destination, so that the rename is atomic. */
struct tmp_file {
	const char *base; /* the destination's name in dir */
	char *dir, *name;
	int dirfd, fd;
	bool created;
};

static int create_tmp(const char *path, struct tmp_file *t, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	t->base = slash ? slash + 1 : path;
	if (!*t->base)
		return mote_err(err, errlen, -MOTE_EINVAL, "%s names a directory", path);
	size_t dlen = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
	size_t nlen = strlen(t->base) + 48;
	t->dir = mote_malloc(dlen + 1);
	t->name = mote_malloc(nlen);
	if (!t->dir || !t->name)
		return mote_err(err, errlen, -MOTE_ENOMEM, "out of memory");
	memcpy(t->dir, slash ? path : ".", dlen);
	t->dir[dlen] = 0;
	t->dirfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0)
		return mote_err(err, errlen, -MOTE_EIO, "open directory %s: %s", t->dir,
		                strerror(errno));
	for (int tries = 0; t->fd < 0; tries++) {
		snprintf(t->name, nlen, ".%s.tmp.%ld.%u", t->base, (long)getpid(),
		         atomic_fetch_add(&tmp_counter, 1));
		t->fd = openat(t->dirfd, t->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (t->fd < 0 && (errno != EEXIST || tries >= 100))
			return mote_err(err, errlen, -MOTE_EIO, "create %s/%s: %s", t->dir, t->name,
			                strerror(errno));
	}
	t->created = true;
	return 0;
}

static void tmp_done(struct tmp_file *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->created)
		unlinkat(t->dirfd, t->name, 0);
	if (t->dirfd >= 0)
		close(t->dirfd);
	mote_free(t->dir);
	mote_free(t->name);
}

/* The blob and the guard page, while the helper thread hashes from memory;
 * then this thread helps hash what is left. The chunk hashes land in buf. */
static int write_blob(struct tmp_file *t, const struct write_plan *p, const uint8_t *mem,
                      const uint64_t *present, bool layer, uint8_t *buf, char *err, size_t errlen)
{
	struct blob_src src = {mem,
	                       present,
	                       p->regions,
	                       p->nregions,
	                       p->blob_offset,
	                       p->nram,
	                       p->extra,
	                       .gaps_from_mem = layer};
	struct hash_job job = {
	    .blob_size = p->blob_size,
	    .chunk_size = WRITE_CHUNK_SIZE,
	    .nchunks = (unsigned)p->nchunks,
	    .src = &src,
	    .hashes = (uint8_t(*)[MOTE_SNAP_HASH_SIZE])(buf + p->offs[SEC_CHUNKS]),
	    .lock = PTHREAD_MUTEX_INITIALIZER,
	};
	pthread_t helper;
	bool have_helper = p->nchunks > 1 && mote_snapfile__start_helper(&helper, &job);
	struct blob_writer bw = {t->fd, p->blob_offset};
	int rc = mote_snapfile__walk_blob(&src, 0, p->blob_size, write_piece, &bw);
	if (!rc &&
	    pwrite_full(t->fd, mote_snapfile__zero_page, GUARD_SIZE, p->blob_offset + p->blob_size))
		rc = -MOTE_EIO;
	int werrno = errno;
	if (rc)
		atomic_store(&job.stop, true);
	else
		mote_snapfile__hash_worker_run(&job);
	if (have_helper)
		pthread_join(helper, NULL);
	pthread_mutex_destroy(&job.lock);
	if (rc)
		return mote_err(err, errlen, rc, "write %s/%s: %s", t->dir, t->name,
		                strerror(werrno));
	if (job.rc)
		return mote_err(err, errlen, job.rc, "SHA-256 failed");
	return 0;
}

/* Seal and write the header last, so an interrupted temporary file never
 * looks complete; then make it the destination, durably. */
static int commit(struct tmp_file *t, uint8_t *buf, const struct write_plan *p, const char *path,
                  char *err, size_t errlen)
{
	int rc = seal(buf, p->offs[SEC_CHUNKS], p->nchunks, p->blob_offset);
	if (rc)
		return mote_err(err, errlen, rc, "SHA-256 failed");
	if (pwrite_full(t->fd, buf, p->blob_offset, 0) || fsync(t->fd))
		return mote_err(err, errlen, -MOTE_EIO, "write %s/%s: %s", t->dir, t->name,
		                strerror(errno));
	int fd = t->fd;
	t->fd = -1;
	if (close(fd))
		return mote_err(err, errlen, -MOTE_EIO, "close %s/%s: %s", t->dir, t->name,
		                strerror(errno));
	if (renameat(t->dirfd, t->name, t->dirfd, t->base))
		return mote_err(err, errlen, -MOTE_EIO, "rename %s/%s to %s: %s", t->dir, t->name,
		                path, strerror(errno));
	t->created = false;
	/* Filesystems that cannot sync a directory say EINVAL; the file itself
	 * is complete either way. */
	if (fsync(t->dirfd) && errno != EINVAL)
		return mote_err(err, errlen, -MOTE_EIO, "fsync directory %s: %s", t->dir,
		                strerror(errno));
	return 0;
}

int mote_snapfile_write(const char *path, const struct mote_snap_meta *meta, const uint8_t *mem,
                        const uint64_t *present, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!path || !meta || !mem || !present)
		return mote_err(err, errlen, -MOTE_EINVAL, "invalid arguments");
	int rc = check_for_write(meta, err, errlen);
	if (rc)
		return rc;
	struct write_plan plan = {0};
	struct tmp_file tmp = {.dirfd = -1, .fd = -1};
	uint8_t *buf = NULL;
	rc = plan_write(meta, present, &plan, err, errlen);
	if (rc)
		goto out;
	if (plan.blob_offset > MAX_META) {
		rc = mote_err(err, errlen, -MOTE_EINVAL, "metadata of 0x%llx bytes too large",
		              U(plan.blob_offset));
		goto out;
	}
	buf = mote_calloc(1, plan.blob_offset);
	if (!buf) {
		rc = mote_err(err, errlen, -MOTE_ENOMEM, "out of memory");
		goto out;
	}
	encode_meta(buf, meta, &plan);
	rc = check_encoded(buf, &plan, err, errlen);
	if (!rc)
		rc = create_tmp(path, &tmp, err, errlen);
	if (!rc)
		rc = write_blob(&tmp, &plan, mem, present, meta->parent_path != NULL, buf, err,
		                errlen);
	if (!rc)
		rc = commit(&tmp, buf, &plan, path, err, errlen);
out:
	tmp_done(&tmp);
	mote_free(buf);
	mote_free(plan.regions);
	return rc;
}
