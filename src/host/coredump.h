/* Guest core dumps (coredump.c): ELF core files stock gdb opens beside the
 * guest ELF. */
#ifndef MOTE_HOST_COREDUMP_H
#define MOTE_HOST_COREDUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/backend.h"

/* What a core file says besides guest memory. */
struct mote_core_state {
	struct mote_cpu_state cpu; /* where the guest stopped */
	int signo;                 /* the signal gdb reports: SIGSEGV, SIGABRT, ... */
	uint64_t entry;            /* the guest's entry point (AT_ENTRY); 0: unknown */
	const char *guest_path;    /* NULL: unknown */
};

/* Write the core to `path`: a new file when `exclusive`, else replacing
 * one. On failure nothing is left at `path`. */
int mote_core_dump_path(struct mote_sandbox *sb, const struct mote_core_state *cs, const char *path,
                        bool exclusive, char *err, size_t errlen);
int mote_core_dump_fd(struct mote_sandbox *sb, const struct mote_core_state *cs, int fd, char *err,
                      size_t errlen);
/* The signal a Linux process would get for CPU exception `vector`. */
int mote_core_signal(unsigned vector);

#endif
