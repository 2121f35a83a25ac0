/* Host files mapped into sandboxes (mapping.c). */
#ifndef MOTE_HOST_MAPPING_H
#define MOTE_HOST_MAPPING_H

#include "host/internal.h"

/* Remove every mapping (sandbox teardown). */
void mote_mappings_clear(struct mote_sandbox *sb);
/* Deep copy / free of a mapping list (snapshots keep one). */
int mote_mappings_copy(struct mote_file_map **dst, size_t *ndst, const struct mote_file_map *src,
		       size_t n);
void mote_mappings_free(struct mote_file_map *v, size_t n);
/* Make the sandbox's mappings exactly `want`. */
int mote_mappings_reconcile(struct mote_sandbox *sb, const struct mote_file_map *want, size_t n);
/* The mapping containing guest physical `gpa`, or NULL. */
const struct mote_file_map *mote_mapping_at(const struct mote_sandbox *sb, uint64_t gpa);

#endif
