/* Debugging guests (debug.c): where a call stopped, named in the guest's
 * own terms, and core dumps. */
#ifndef MOTE_HOST_DEBUG_H
#define MOTE_HOST_DEBUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/coredump.h"

struct mote_symbolizer;

/* The debugging state a sandbox keeps. */
struct mote_debug {
	/* Which guest ELF the memory came from: absolute path (NULL when it
	 * came from a buffer or was not recorded) and SHA-256 of the file,
	 * taken when first needed; until then the file's identity (device,
	 * inode, size, mtime) as the sandbox was made from it. */
	char *guest_path;
	bool have_hash;
	uint8_t guest_sha256[32];
	uint64_t file_id[4];
	uint64_t entry; /* 0: unknown until the ELF is read */
	/* Opened at the first stop that needs it; `sym_error` says why not. */
	struct mote_symbolizer *sym;
	bool sym_tried;
	char sym_error[160];
	/* Where the last call stopped, when it ended in a fault, an abort or
	 * a timeout. */
	bool have_stop;
	struct mote_core_state stop;
	char *core_dir; /* write a core at each such stop; NULL: never */
	int gdb_port;   /* each call waits for gdb here; 0: never */
};

struct mote_sandbox;
struct mote_event;

/* Record the guest ELF a sandbox was created from, open as `fd` (`path`
 * NULL, fd -1: a buffer). */
int mote_debug_set_guest(struct mote_sandbox *sb, const char *path, int fd, uint64_t entry);
/* 0 with d->guest_sha256 set, once the recorded file proves to be the
 * guest's (read and hashed at the first call); -1 if it cannot. */
int mote_debug_guest_hash(struct mote_debug *d);
/* Record what a snapshot says of it (`path` NULL: not recorded). */
int mote_debug_set_guest_id(struct mote_sandbox *sb, const char *path, const uint8_t sha256[32]);
/* The guest's registers at event `ev` (NULL: as the backend has them): for
 * an exception, rip, rsp and rflags come from the event, since the backend
 * stops in its exception path. */
int mote_event_state(struct mote_sandbox *sb, const struct mote_event *ev,
                     struct mote_cpu_state *st);
/* The call is stopping: keep the registers where the guest stopped
 * (mote_event_state). */
void mote_debug_capture(struct mote_sandbox *sb, const struct mote_event *ev, int signo);
/* After the failure's detail is set: name the code it stopped in and write
 * the core file if asked, both appended to the detail. */
void mote_debug_report(struct mote_sandbox *sb);
void mote_debug_free(struct mote_sandbox *sb);

#endif
