/* Guest runtime internals shared by the files of src/guest. */
#ifndef MOTE_GUEST_INTERNAL_H
#define MOTE_GUEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct mote_boot_info;
extern const struct mote_boot_info *mote__boot;

void mote__heap_init(void *base, size_t size);
void mote__log_write(int level, const char *text, size_t len);

#endif
