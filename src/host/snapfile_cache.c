/* Snapshot files: the verification cache. A file whose blob was verified
 * whole is remembered by device, inode, size, modification and change times
 * and header hash, so opening the same version again checks the header
 * only. */
#include <string.h>

#include "host/snapfile_int.h"

struct cache_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uint8_t header_hash[MOTE_SNAP_HASH_SIZE];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[CACHE_SIZE];
static unsigned cache_len, cache_next;
static uint64_t cache_hits;

static bool entry_matches(const struct cache_entry *c, const struct stat *st)
{
	return c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
	       c->mtim.tv_sec == st->st_mtim.tv_sec && c->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       c->ctim.tv_sec == st->st_ctim.tv_sec && c->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

bool mote_snapfile__cache_lookup(const struct mote_snapfile *f)
{
	bool hit = false;
	pthread_mutex_lock(&cache_lock);
	for (unsigned i = 0; i < cache_len && !hit; i++)
		hit = entry_matches(&cache[i], &f->st) &&
		      !memcmp(cache[i].header_hash, f->header_hash, MOTE_SNAP_HASH_SIZE);
	cache_hits += hit;
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

void mote_snapfile__cache_insert(const struct mote_snapfile *f)
{
	struct cache_entry e = {
	    .dev = f->st.st_dev,
	    .ino = f->st.st_ino,
	    .size = f->st.st_size,
	    .mtim = f->st.st_mtim,
	    .ctim = f->st.st_ctim,
	};
	memcpy(e.header_hash, f->header_hash, MOTE_SNAP_HASH_SIZE);
	pthread_mutex_lock(&cache_lock);
	unsigned slot = cache_len;
	for (unsigned i = 0; i < cache_len; i++)
		if (cache[i].dev == e.dev && cache[i].ino == e.ino)
			slot = i; /* a newer version of the same file replaces the old */
	if (slot == cache_len) {
		if (cache_len < CACHE_SIZE) {
			cache_len++;
		} else {
			slot = cache_next; /* full: evict round-robin */
			cache_next = (cache_next + 1) % CACHE_SIZE;
		}
	}
	cache[slot] = e;
	pthread_mutex_unlock(&cache_lock);
}

void mote_snapfile_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	cache_len = cache_next = 0;
	pthread_mutex_unlock(&cache_lock);
}

uint64_t mote_snapfile__cache_hits(void)
{
	pthread_mutex_lock(&cache_lock);
	uint64_t n = cache_hits;
	pthread_mutex_unlock(&cache_lock);
	return n;
}
