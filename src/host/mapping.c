/* Host files mapped into a sandbox, zero copy from the page cache.
 *
 * Mappings live in a guest-physical window above RAM (MOTE_MAP_BASE ..
 * MOTE_MAP_LIMIT) that the host's page tables cover with 2 MiB pages from the
 * start, so mapping a file never edits guest page tables: the backend only
 * backs part of the window (a KVM memory slot). A read-only mapping is a
 * MAP_SHARED mapping of the file that the guest may only read (writes are
 * reported as access violations); a copy-on-write one is a MAP_PRIVATE
 * mapping, so guest writes stay private to the sandbox. The guest reads the
 * list of mappings from a table in its boot-info page. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/mapping.h"

_Static_assert(MOTE_MAP_WINDOW_BASE == MOTE_MAP_BASE && MOTE_MAP_WINDOW_LIMIT == MOTE_MAP_LIMIT,
	       "the public mapping window is the ABI's");

static struct mote_map_table *map_table(struct mote_sandbox *sb)
{
	return mote_guest_ptr(sb, MOTE_MAPTAB_ADDR, sizeof(struct mote_map_table));
}

/* Rewrite the guest-visible table from the host's list. */
static void publish(struct mote_sandbox *sb)
{
	struct mote_map_table *t = map_table(sb);
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < sb->nmaps; i++) {
		const struct mote_file_map *m = &sb->maps[i];
		struct mote_map_entry *e = &t->entries[i];
		const char *base = strrchr(m->path, '/');
		base = base ? base + 1 : m->path;
		e->guest_addr = m->gpa;
		e->size = m->size;
		e->flags = (m->flags & MOTE_MAP_COPY_ON_WRITE) ? MOTE_MAPF_WRITABLE : 0;
		snprintf(e->name, sizeof(e->name), "%s", base);
		e->name_len = (uint32_t)strlen(e->name);
	}
	t->count = (uint32_t)sb->nmaps;
	mote_sandbox_mark_written(sb, MOTE_MAPTAB_ADDR, sizeof(*t));
}

/* Open m->path and settle m->size (0 = to the end). Returns an fd or < 0. */
static int resolve(struct mote_sandbox *sb, struct mote_file_map *m)
{
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mote_sandbox_fail(sb, -MOTE_EIO, "cannot open %s: %s", m->path,
					 strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "%s is not a regular file", m->path);
	}
	uint64_t file_pages = ((uint64_t)st.st_size + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
	if (st.st_size == 0) {
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "%s is empty", m->path);
	}
	if (m->size == 0) { /* the rest of the file */
		if (m->offset >= file_pages) {
			close(fd);
			return mote_sandbox_fail(sb, -MOTE_EINVAL,
						 "offset 0x%llx is past the end of %s (%lld bytes)",
						 (unsigned long long)m->offset, m->path,
						 (long long)st.st_size);
		}
		m->size = file_pages - m->offset;
	}
	if (m->offset > file_pages || m->size > file_pages - m->offset) {
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
					 "range 0x%llx+0x%llx lies outside %s (%lld bytes)",
					 (unsigned long long)m->offset, (unsigned long long)m->size,
					 m->path, (long long)st.st_size);
	}
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	return fd;
}

/* Map the resolved `m` into the VM; consumes fd. */
static int attach(struct mote_sandbox *sb, struct mote_file_map *m, int fd)
{
	bool cow = m->flags & MOTE_MAP_COPY_ON_WRITE;
	void *hva = mmap(NULL, m->size, cow ? PROT_READ | PROT_WRITE : PROT_READ,
			 cow ? MAP_PRIVATE : MAP_SHARED, fd, (off_t)m->offset);
	if (hva == MAP_FAILED) {
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map %s: %s", m->path,
					 strerror(errno));
	}
	m->hva = hva;
	int rc = sb->be->map(sb, m, fd);
	close(fd);
	if (rc) {
		munmap(hva, m->size);
		m->hva = NULL;
	}
	return rc;
}

static int establish(struct mote_sandbox *sb, struct mote_file_map *m)
{
	if (m->src_fd >= 0) { /* absorbed: the content is in a snapshot file */
		int fd = fcntl(m->src_fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return mote_sandbox_fail(sb, -MOTE_EIO, "cannot map %s: %s", m->path,
						 strerror(errno));
		uint64_t path_offset = m->offset;
		m->offset = m->src_offset;
		int rc = attach(sb, m, fd);
		m->offset = path_offset;
		return rc;
	}
	int fd = resolve(sb, m);
	return fd < 0 ? fd : attach(sb, m, fd);
}

static void teardown(struct mote_sandbox *sb, struct mote_file_map *m)
{
	if (m->slot >= 0)
		sb->be->unmap(sb, m);
	if (m->hva)
		munmap(m->hva, m->size);
	m->slot = -1;
	m->hva = NULL;
}

static void remove_at(struct mote_sandbox *sb, size_t i)
{
	teardown(sb, &sb->maps[i]);
	mote_free(sb->maps[i].path);
	if (sb->maps[i].src_fd >= 0)
		close(sb->maps[i].src_fd);
	memmove(&sb->maps[i], &sb->maps[i + 1], (sb->nmaps - i - 1) * sizeof(sb->maps[0]));
	sb->nmaps--;
}

int mote_sandbox_map_file_range(mote_sandbox *sb, const char *path, uint64_t offset,
				uint64_t size, uint64_t guest_address, unsigned flags)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mapping a file: no sandbox");
	if (!path)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mapping a file: no path");
	if (flags & ~MOTE_MAP_COPY_ON_WRITE)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
		                         "mapping %s: invalid flags 0x%x (MOTE_MAP_READ_ONLY or "
		                         "MOTE_MAP_COPY_ON_WRITE)",
		                         path, flags);
	if (sb->running)
		return mote_sandbox_fail(sb, -MOTE_EBUSY, "a call is running");
	if (offset % MOTE_PAGE_SIZE || size % MOTE_PAGE_SIZE || guest_address % MOTE_PAGE_SIZE)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
					 "offset, size and guest address must be multiples of 4096");
	if (guest_address < sb->mem_size)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
					 "guest address 0x%llx is inside the sandbox's memory "
					 "(0x0-0x%llx); map files at 0x%llx or above",
					 (unsigned long long)guest_address,
					 (unsigned long long)sb->mem_size,
					 (unsigned long long)MOTE_MAP_BASE);
	if (guest_address < MOTE_MAP_BASE || guest_address >= MOTE_MAP_LIMIT)
		return mote_sandbox_fail(sb, -MOTE_EINVAL,
					 "guest address 0x%llx is outside the mapping window "
					 "[0x%llx, 0x%llx)",
					 (unsigned long long)guest_address,
					 (unsigned long long)MOTE_MAP_BASE,
					 (unsigned long long)MOTE_MAP_LIMIT);
	if (sb->nmaps == MOTE_MAX_MAPPINGS)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "at most %d files can be mapped",
					 MOTE_MAX_MAPPINGS);
	struct mote_file_map m = {.offset = offset, .size = size, .gpa = guest_address,
				  .flags = flags, .slot = -1, .src_fd = -1};
	m.path = mote_strdup(path);
	if (!m.path)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	int fd = resolve(sb, &m);
	if (fd < 0) {
		mote_free(m.path);
		return fd;
	}
	uint64_t end = m.gpa + m.size;
	const char *why = NULL;
	if (end > MOTE_MAP_LIMIT || end < m.gpa)
		why = "extends past the mapping window";
	for (size_t i = 0; !why && i < sb->nmaps; i++)
		if (m.gpa < sb->maps[i].gpa + sb->maps[i].size && sb->maps[i].gpa < end)
			why = "overlaps an existing mapping";
	int rc = why ? mote_sandbox_fail(sb, -MOTE_EINVAL, "mapping %s at [0x%llx, 0x%llx) %s",
					 path, (unsigned long long)m.gpa,
					 (unsigned long long)end, why)
		     : attach(sb, &m, fd);
	if (why)
		close(fd);
	if (rc) {
		mote_free(m.path);
		return rc;
	}
	sb->maps[sb->nmaps++] = m;
	publish(sb);
	return 0;
}

int mote_sandbox_map_file(mote_sandbox *sb, const char *path, uint64_t guest_address,
			  unsigned flags)
{
	return mote_sandbox_map_file_range(sb, path, 0, 0, guest_address, flags);
}

int mote_sandbox_unmap(mote_sandbox *sb, uint64_t guest_address)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_unmap: no sandbox");
	for (size_t i = 0; i < sb->nmaps; i++) {
		if (sb->maps[i].gpa == guest_address) {
			remove_at(sb, i);
			publish(sb);
			return 0;
		}
	}
	return mote_sandbox_fail(sb, -MOTE_EINVAL, "no file is mapped at 0x%llx",
				 (unsigned long long)guest_address);
}

void mote_mappings_clear(struct mote_sandbox *sb)
{
	while (sb->nmaps)
		remove_at(sb, sb->nmaps - 1);
}

int mote_mappings_copy(struct mote_file_map **dst, size_t *ndst, const struct mote_file_map *src,
		       size_t n)
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
		(*dst)[i].hva = NULL;
		(*dst)[i].slot = -1;
		(*dst)[i].src_fd = -1;
		(*dst)[i].path = mote_strdup(src[i].path);
		if (!(*dst)[i].path)
			return -MOTE_ENOMEM;
		*ndst = i + 1;
		if (src[i].src_fd >= 0) {
			(*dst)[i].src_fd = fcntl(src[i].src_fd, F_DUPFD_CLOEXEC, 0);
			if ((*dst)[i].src_fd < 0)
				return -MOTE_EIO;
		}
	}
	return 0;
}

void mote_mappings_free(struct mote_file_map *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		mote_free(v[i].path);
		if (v[i].src_fd >= 0)
			close(v[i].src_fd);
	}
	mote_free(v);
}

static bool same_mapping(const struct mote_file_map *a, const struct mote_file_map *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->offset == b->offset &&
	       a->flags == b->flags && strcmp(a->path, b->path) == 0;
}

/* Make the sandbox's mappings those of `want` (a snapshot's): drop the
 * others, add the missing ones, and remap copy-on-write ones so guest writes
 * since are discarded. The table page itself is restored with memory. */
int mote_mappings_reconcile(struct mote_sandbox *sb, const struct mote_file_map *want, size_t n)
{
	for (size_t i = sb->nmaps; i-- > 0;) {
		bool keep = false;
		for (size_t j = 0; j < n && !keep; j++)
			keep = same_mapping(&sb->maps[i], &want[j]);
		if (!keep)
			remove_at(sb, i);
		else if (sb->maps[i].flags & MOTE_MAP_COPY_ON_WRITE) {
			teardown(sb, &sb->maps[i]);
			int rc = establish(sb, &sb->maps[i]);
			if (rc) {
				mote_free(sb->maps[i].path);
				sb->maps[i] = sb->maps[--sb->nmaps];
				return rc;
			}
		}
	}
	for (size_t j = 0; j < n; j++) {
		bool have = false;
		for (size_t i = 0; i < sb->nmaps && !have; i++)
			have = same_mapping(&sb->maps[i], &want[j]);
		if (have)
			continue;
		struct mote_file_map m = want[j];
		m.slot = -1;
		m.hva = NULL;
		m.src_fd = -1;
		m.path = mote_strdup(want[j].path);
		if (!m.path)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
		if (want[j].src_fd >= 0 &&
		    (m.src_fd = fcntl(want[j].src_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			mote_free(m.path);
			return mote_sandbox_fail(sb, -MOTE_EIO, "cannot map %s: %s", want[j].path,
						 strerror(errno));
		}
		int rc = establish(sb, &m);
		if (rc) {
			mote_free(m.path);
			return rc;
		}
		sb->maps[sb->nmaps++] = m;
	}
	return 0;
}

const struct mote_file_map *mote_mapping_at(const struct mote_sandbox *sb, uint64_t gpa)
{
	for (size_t i = 0; i < sb->nmaps; i++)
		if (gpa >= sb->maps[i].gpa && gpa - sb->maps[i].gpa < sb->maps[i].size)
			return &sb->maps[i];
	return NULL;
}
