/* In-memory snapshots (snapshot.c). */
#ifndef MOTE_HOST_SNAPSHOT_H
#define MOTE_HOST_SNAPSHOT_H

#include "host/internal.h"
#include "host/snapfile.h"

/* A snapshot: metadata plus a read-only view of guest memory. Shared by the
 * sandboxes started from it; immutable after creation. */
struct mote_snapshot {
	int refs;
	struct mote_snap_meta meta;
	int fd; /* memfd or the snapshot file; regions are mapped from it */
	struct mote_snap_region *regions;
	size_t nregions;
	uint8_t *map;      /* guest memory as of the snapshot (mem_size bytes) */
	uint64_t *present; /* pages stored in `fd` (others are zero) */
	size_t bitmap_words;
	bool from_file;
	uint8_t header_hash[32];
	uint64_t file_dev, file_ino;
	struct mote_file_map *maps; /* file mappings, by reference */
	size_t nmaps;
};

#endif
