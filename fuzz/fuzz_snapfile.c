/* libFuzzer target for the snapshot file parser. Each input is parsed as a
 * whole file, then again with its blob and header hashes recomputed, so that
 * mutations reach the structural checks behind the hash check. ASan/UBSan
 * catch memory and arithmetic errors; this file checks that whatever the
 * parser accepts keeps the promises of src/host/snapfile.h, and traps if not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/abi.h"
#include "host/snapfile.h"
#include "mote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGE_MASK_ (MOTE_PAGE_SIZE - 1)

static void require(int cond)
{
	if (!cond)
		__builtin_trap();
}

static void check_fns(const struct mote_sig *fns, size_t n)
{
	require(n <= MOTE_SNAP_MAX_FUNCTIONS && (n == 0) == (fns == NULL));
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(fns[i].name);
		require(len >= 1 && len <= MOTE_MAX_NAME);
		require((unsigned)fns[i].ret < MOTE_TYPE_COUNT_ && fns[i].nargs <= MOTE_MAX_ARGS);
		for (unsigned a = 0; a < MOTE_MAX_ARGS; a++) {
			unsigned t = (unsigned)fns[i].args[a];
			require(a < fns[i].nargs ? t != MOTE_VOID && t < MOTE_TYPE_COUNT_
						 : t == MOTE_VOID);
		}
		for (size_t j = 0; j < i; j++)
			require(strcmp(fns[i].name, fns[j].name) != 0);
	}
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Sections 6, 7 and 8: a layer's parent, the mappings by reference, the
 * guest ELF's identity. */
static void check_refs(const struct mote_snap_meta *m)
{
	int layer = !all_zero(m->parent_hash, sizeof(m->parent_hash));
	require(layer == (m->parent_path != NULL));
	if (m->parent_path) {
		size_t len = strlen(m->parent_path);
		require(len >= 1 && len <= 4095);
	}
	require(m->nmappings <= MOTE_MAX_MAPPINGS && (m->nmappings == 0) == (m->mappings == NULL));
	uint64_t prev_end = MOTE_MAP_BASE;
	for (size_t i = 0; i < m->nmappings; i++) {
		const struct mote_snap_mapping *p = &m->mappings[i];
		size_t len = strlen(p->path);
		require(len >= 1 && len <= 4095);
		require(p->size && !((p->offset | p->size | p->gpa) & PAGE_MASK_));
		require(p->gpa >= prev_end && p->size <= MOTE_MAP_LIMIT - p->gpa);
		require(p->offset <= (uint64_t)INT64_MAX - p->size);
		require(!(p->flags & ~(uint32_t)(MOTE_MAP_COPY_ON_WRITE | MOTE_SNAP_MAP_ABSORBED)));
		prev_end = p->gpa + p->size;
	}
	if (m->guest_path) {
		size_t len = strlen(m->guest_path);
		require(len >= 1 && len <= 4095);
	} else {
		require(all_zero(m->guest_sha256, sizeof(m->guest_sha256)));
	}
}

static void check_file(const struct mote_snapfile *f, size_t size)
{
	const struct mote_layout *l = &f->meta.layout;
	require(f->fd == -1 && f->file_size == size);
	require(f->format_version == MOTE_SNAP_FORMAT_VERSION);
	require(f->meta.abi_version == MOTE_ABI_VERSION);
	require(l->mem_size && l->mem_size <= MOTE_MEM_LIMIT && !(l->mem_size & PAGE_MASK_));
	require(l->image_end <= l->stack_base && l->stack_base < l->in_buf);
	require(l->in_buf < l->out_buf && l->out_buf < l->log_buf && l->log_buf < l->heap_base);
	require(l->heap_base + l->heap_size <= l->mem_size);
	require(f->meta.image_size && MOTE_IMAGE_BASE + f->meta.image_size <= l->image_end);
	require(f->meta.cpu.rip < l->mem_size && !(f->meta.cpu.rflags & ~MOTE_RFLAGS_GUEST));
	require(memchr(f->meta.cpu_vendor, 0, sizeof(f->meta.cpu_vendor)) != NULL);
	check_fns(f->meta.host_fns, f->meta.nhost_fns);
	check_fns(f->meta.guest_fns, f->meta.nguest_fns);
	check_refs(&f->meta);
	require(!(f->blob_offset & PAGE_MASK_) && !(f->blob_size & PAGE_MASK_));
	require(f->blob_offset + f->blob_size + MOTE_PAGE_SIZE == size);
	require(f->chunk_size && !(f->chunk_size & PAGE_MASK_));
	require((uint64_t)f->nchunks * f->chunk_size >= f->blob_size);
	require(!f->nchunks || (uint64_t)(f->nchunks - 1) * f->chunk_size < f->blob_size);
	require(f->nregions <= MOTE_SNAP_MAX_REGIONS);
	uint64_t next = f->blob_offset, prev_end = 0;
	for (size_t i = 0; i < f->nregions; i++) {
		const struct mote_snap_region *r = &f->regions[i];
		require(r->size && !((r->guest_addr | r->size | r->file_offset) & PAGE_MASK_));
		require(r->guest_addr >= prev_end);
		if (r->guest_addr >= l->mem_size || r->size > l->mem_size - r->guest_addr) {
			/* Above RAM: exactly one absorbed mapping's range. */
			bool found = false;
			for (size_t k = 0; k < f->meta.nmappings && !found; k++)
				found = (f->meta.mappings[k].flags & MOTE_SNAP_MAP_ABSORBED) &&
					f->meta.mappings[k].gpa == r->guest_addr &&
					f->meta.mappings[k].size == r->size;
			require(found);
		}
		require(r->file_offset == next);
		next += r->size;
		prev_end = r->guest_addr + r->size;
	}
	require(next == f->blob_offset + f->blob_size);
}

static void parse_one(const uint8_t *data, size_t size)
{
	struct mote_snapfile f;
	char err[256] = "";
	int rc = mote_snapfile_parse(data, size, size, &f, err, sizeof(err));
	if (rc == 0)
		check_file(&f, size);
	else
		require((rc == -MOTE_EBADSNAP || rc == -MOTE_EHASH || rc == -MOTE_ENOMEM) &&
			err[0] != 0 && f.fd == -1 && f.regions == NULL &&
			f.meta.parent_path == NULL && f.meta.mappings == NULL &&
			f.meta.guest_path == NULL);
	mote_snapfile_close(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_one(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (mote_snapfile__rehash(copy, size) == 0)
		parse_one(copy, size);
	free(copy);
	return 0;
}
