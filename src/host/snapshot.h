/* In-memory snapshots (snapshot.c). */
#ifndef MOTE_HOST_SNAPSHOT_H
#define MOTE_HOST_SNAPSHOT_H

#include "host/internal.h"
#include "host/snapfile.h"

/* A snapshot: metadata plus a read-only view of guest memory. Shared by the
 * sandboxes started from it; immutable after creation. */
/* Longer chains are flattened when snapshotted again. */
#define MOTE_MAX_LAYER_DEPTH 8

struct mote_snapshot {
	int refs;
	struct mote_snap_meta meta;
	/* A layer stores only the pages that differ from its parent. */
	struct mote_snapshot *parent;
	unsigned depth; /* 0: standalone */
	int fd;         /* memfd or the snapshot file; own regions map from it */
	struct mote_snap_region *regions; /* this snapshot's own pages */
	size_t nregions;
	/* Regions above guest RAM (absorbed mappings), inside `regions`' array
	 * right after the RAM ones (file snapshots only). */
	struct mote_snap_region *window;
	size_t nwindow;
	/* Guest memory as of the snapshot, chain composed: read by restores and
	 * saves only, so a snapshot opened from a file maps it at the first of
	 * those (snapshot_view); set once, atomically. */
	uint8_t *map;
	uint64_t *present; /* pages stored here or in an ancestor (others zero) */
	uint64_t *own;     /* pages stored here */
	size_t bitmap_words;
	uint64_t stored_end; /* end of the highest page stored (0: none) */
	/* The file this snapshot is known as (opened from or saved to). */
	char *file_path; /* absolute */
	bool have_hash;
	uint8_t header_hash[32];
	struct mote_file_map *maps; /* file mappings, by reference */
	size_t nmaps;
};

#endif
