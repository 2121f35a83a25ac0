/* Snapshot files: SHA-256 of the header and of the blob's chunks, on this
 * thread and one helper (the writer hashes guest memory while it writes; the
 * verifier hashes the mapped file, sixteen chunks at a time in AVX-512 lanes
 * where it can). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "host/sha256x16.h"
#include "host/snapfile_int.h"

const uint8_t mote_snapfile__zero_page[PAGE];

int mote_snapfile__sha256(const void *p, size_t n, uint8_t md[MOTE_SNAP_HASH_SIZE])
{
	return EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
}

/* SHA-256 of buf[0, blob_offset) with the header_hash field read as zeros. */
int mote_snapfile__header_digest(const uint8_t *buf, uint64_t blob_offset,
                                 uint8_t md[MOTE_SNAP_HASH_SIZE])
{
	const size_t hh = offsetof(struct disk_header, header_hash);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	         EVP_DigestUpdate(ctx, buf, hh) &&
	         EVP_DigestUpdate(ctx, mote_snapfile__zero_page, MOTE_SNAP_HASH_SIZE) &&
	         EVP_DigestUpdate(ctx, buf + hh + MOTE_SNAP_HASH_SIZE,
	                          blob_offset - hh - MOTE_SNAP_HASH_SIZE) &&
	         EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -MOTE_ENOMEM;
}

/* SHA-NI hashes faster than the hardware prefetcher streams memory in on
 * these VMs: prefetching one page ahead took the in-memory rate from ~1.3 to
 * ~1.6 GB/s per core (measured), for guest memory and for mapped files. */
int mote_snapfile__digest_mem(EVP_MD_CTX *ctx, const uint8_t *p, uint64_t len)
{
	while (len) {
		size_t n = len < PAGE ? (size_t)len : PAGE;
		if (len >= 2 * PAGE)
			for (size_t l = 0; l < PAGE; l += 64)
				__builtin_prefetch(p + PAGE + l);
		if (!EVP_DigestUpdate(ctx, p, n))
			return -MOTE_ENOMEM;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- Blob hashing on two threads (writer: from memory; verifier: file) ---- */

static bool page_present(const uint64_t *bm, uint64_t page)
{
	return bm[page / 64] >> (page % 64) & 1;
}

int mote_snapfile__walk_blob(const struct blob_src *src, uint64_t off, uint64_t len,
                             blob_piece_fn fn, void *ctx)
{
	size_t lo = 0, hi = src->nregions;
	while (hi - lo > 1) { /* last region starting at or before off */
		size_t mid = lo + (hi - lo) / 2;
		if (src->regions[mid].file_offset - src->blob_offset <= off)
			lo = mid;
		else
			hi = mid;
	}
	for (size_t k = lo; len && k < src->nregions; k++) {
		const struct mote_snap_region *r = &src->regions[k];
		uint64_t in = off - (r->file_offset - src->blob_offset);
		uint64_t n = len < r->size - in ? len : r->size - in;
		if (k >= src->nram) {
			int rc = fn(ctx, src->extra[k - src->nram] + in, n, off);
			if (rc)
				return rc;
			off += n;
			len -= n;
			continue;
		}
		uint64_t page = (r->guest_addr + in) / PAGE, endp = page + n / PAGE;
		while (page < endp) {
			bool set = src->gaps_from_mem || page_present(src->present, page);
			uint64_t e =
			    src->gaps_from_mem ? endp : run_end(src->present, page, endp, set);
			uint64_t bytes = (e - page) * PAGE;
			int rc = fn(ctx, set ? src->mem + page * PAGE : NULL, bytes, off);
			if (rc)
				return rc;
			off += bytes;
			page = e;
		}
		len -= n;
	}
	return 0;
}

static void job_fail(struct hash_job *j, int rc, unsigned chunk)
{
	pthread_mutex_lock(&j->lock);
	if (!j->rc || chunk < j->bad_chunk) {
		j->rc = rc;
		j->bad_chunk = chunk;
	}
	pthread_mutex_unlock(&j->lock);
	atomic_store(&j->stop, true);
}

static int digest_piece(void *ctx, const uint8_t *p, uint64_t len, uint64_t blob_off)
{
	(void)blob_off;
	if (p)
		return mote_snapfile__digest_mem(ctx, p, len);
	for (; len; len -= PAGE)
		if (!EVP_DigestUpdate(ctx, mote_snapfile__zero_page, PAGE))
			return -MOTE_ENOMEM;
	return 0;
}

/* Full-size chunks of a mapped blob, sixteen at a time in AVX-512 lanes:
 * every chunk but a short last one has the same length. */
void mote_snapfile__plan_lanes(struct hash_job *j)
{
	uint64_t full = j->blob_size / j->chunk_size;
	if (j->map && j->chunk_size <= SIZE_MAX && mote_sha256x16_usable())
		j->ngroups = (unsigned)(full / MOTE_SHA256X16_LANES);
}

static int hash_group(struct hash_job *j, unsigned group)
{
	unsigned first = group * MOTE_SHA256X16_LANES;
	const uint8_t *msg[MOTE_SHA256X16_LANES];
	uint8_t md[MOTE_SHA256X16_LANES][32];
	for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++)
		msg[i] = j->map + (uint64_t)(first + i) * j->chunk_size;
	mote_sha256x16(msg, (size_t)j->chunk_size, md);
	for (unsigned i = 0; i < MOTE_SHA256X16_LANES; i++)
		if (memcmp(md[i], j->expect[first + i], MOTE_SNAP_HASH_SIZE)) {
			job_fail(j, -MOTE_EHASH, first + i);
			return -MOTE_EHASH;
		}
	return 0;
}

static int hash_chunk(struct hash_job *j, EVP_MD_CTX *ctx, unsigned i)
{
	uint64_t off = (uint64_t)i * j->chunk_size;
	uint64_t left = j->blob_size - off;
	uint64_t len = left < j->chunk_size ? left : j->chunk_size;
	uint8_t md[MOTE_SNAP_HASH_SIZE];
	int rc = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
	if (!rc)
		rc = j->src ? mote_snapfile__walk_blob(j->src, off, len, digest_piece, ctx)
		            : mote_snapfile__digest_mem(ctx, j->map + off, len);
	if (!rc && !EVP_DigestFinal_ex(ctx, md, NULL))
		rc = -MOTE_ENOMEM;
	if (!rc && j->expect && memcmp(md, j->expect[i], sizeof(md)))
		rc = -MOTE_EHASH;
	if (rc) {
		job_fail(j, rc, i);
		return rc;
	}
	if (j->hashes)
		memcpy(j->hashes[i], md, sizeof(md));
	return 0;
}

/* Work units: the lane groups first, then the remaining chunks one by one. */
void *mote_snapfile__hash_worker_run(void *arg)
{
	struct hash_job *j = arg;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx) {
		job_fail(j, -MOTE_ENOMEM, 0);
		return NULL;
	}
	unsigned grouped = j->ngroups * MOTE_SHA256X16_LANES;
	unsigned units = j->ngroups + (j->nchunks - grouped);
	while (!atomic_load(&j->stop)) {
		unsigned u = atomic_fetch_add(&j->next, 1);
		if (u >= units)
			break;
		int rc = u < j->ngroups ? hash_group(j, u)
		                        : hash_chunk(j, ctx, grouped + (u - j->ngroups));
		if (rc)
			break;
	}
	EVP_MD_CTX_free(ctx);
	return NULL;
}

/* Start the second hashing thread with every signal blocked, so signals meant
 * for the caller's threads never land on it. false: run on one thread. */
bool mote_snapfile__start_helper(pthread_t *t, struct hash_job *j)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	bool ok = pthread_create(t, NULL, mote_snapfile__hash_worker_run, j) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ok;
}

/* Run a job on this thread and one helper; returns the job's rc. */
int mote_snapfile__run_job(struct hash_job *j)
{
	pthread_t t;
	bool helper = j->nchunks > 1 && mote_snapfile__start_helper(&t, j);
	mote_snapfile__hash_worker_run(j);
	if (helper)
		pthread_join(t, NULL);
	return j->rc;
}
