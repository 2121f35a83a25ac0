/* The contract between the process backend (process.c, in the host) and its
 * stub (stub.c and stub_x86_64.S), the small static program that runs guest
 * code in a child process of its own. Included by both sides; freestanding.
 *
 * The child's address space holds guest memory at guest addresses, the
 * stub's code (read-only), its data and stack, and the mailbox: one shared
 * memfd through which the two sides talk, waking each other with futexes.
 * The guest can write everything the stub can, the mailbox included, so the
 * host treats the mailbox as it treats guest memory: as untrusted input. */
#ifndef MOTE_HOST_PROCESS_STUB_H
#define MOTE_HOST_PROCESS_STUB_H

/* The stub is linked far above every guest address (stub.ld), the mailbox
 * right after it, within reach of rip-relative addressing. */
#define MOTE_STUB_BASE    0x7e0000000000
#define MOTE_STUB_MAILBOX 0x7e0000400000

/* Offsets stub_x86_64.S uses: the CPU state in the mailbox, and its fields
 * (struct mote_cpu_state). Checked below. */
#define MOTE_MB_CPU      64
#define MOTE_CPU_RIP     128
#define MOTE_CPU_RFLAGS  136
#define MOTE_CPU_FS_BASE 144
#define MOTE_CPU_GS_BASE 152
#define MOTE_CPU_FXSAVE  160

#ifndef __ASSEMBLER__
#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/abi.h"
#include "host/backend.h"

_Static_assert(MOTE_STUB_BASE > MOTE_MAP_LIMIT, "the stub lies above every guest address");

/* File descriptors. The child starts with the mailbox, a socket and the
 * stub program itself (the MOTE_STUB_FD_SPAWN_* numbers). While a spare it
 * moves the socket out of the way and closes everything but the mailbox,
 * so that after setup one call closes the mailbox's descriptor and the
 * files guest memory was mapped from. Those arrive over the socket
 * (SCM_RIGHTS) in one message, as do the files of later mappings; struct
 * mote_stub_map.fd is an index into the files sent. */
#define MOTE_STUB_FD_MAILBOX      3
#define MOTE_STUB_FD_SPAWN_SOCKET 4
#define MOTE_STUB_FD_SPAWN_EXE    5
#define MOTE_STUB_FD_SOCKET       998 /* out of the way of the numbers files arrive at */
#define MOTE_STUB_FD_UFFD         999
#define MOTE_STUB_MAX_FDS    64

/* Commands, host -> stub. */
enum {
	MOTE_STUB_CMD_PREPARE = 5, /* a setup follows within microseconds: stay awake */
	MOTE_STUB_CMD_SETUP = 4,   /* the mailbox is filled and `nfds` files sent: set up */
	MOTE_STUB_CMD_RUN = 1,     /* load `cpu`, run the guest until it exits */
	MOTE_STUB_CMD_MAP = 2,     /* map the file sent on the socket: `map` */
	MOTE_STUB_CMD_UNMAP = 3,   /* unmap `map.addr`, `map.len` */
	MOTE_STUB_CMD_RESET = 6,   /* drop guest memory's pages in the `nresets` ranges */
};

/* Reports, stub -> host. */
enum {
	MOTE_STUB_READY = 1,        /* set up; `exit_entry` and `features` filled */
	MOTE_STUB_SETUP_FAILED = 2, /* `detail` says which step, `error_code` the errno */
	MOTE_STUB_EXIT = 3,         /* the guest exited to `port` */
	MOTE_STUB_FAULT = 4,        /* CPU exception `vector`, `error_code`, `addr` */
	MOTE_STUB_INTERRUPTED = 5,  /* the host's kick signal stopped the guest */
	MOTE_STUB_IN = 6,           /* the guest executed `in` from `port` */
	MOTE_STUB_MAPPED = 7,       /* MAP or UNMAP done; `error_code`: 0 or -errno */
	MOTE_STUB_RESET_DONE = 8,   /* RESET done; `error_code`: 0 or -errno */
};

/* Features the stub found (READY). */
#define MOTE_STUB_HAVE_FSGSBASE    1u
#define MOTE_STUB_HAVE_CPUID_FAULT 2u
#define MOTE_STUB_HAVE_UFFD_WP     4u
#define MOTE_STUB_HAVE_NAMESPACES  8u

/* Setup flags (host -> stub). */
#define MOTE_STUB_WANT_CPUID_FAULT 1u
#define MOTE_STUB_WANT_UFFD_WP     2u

/* Userfaultfd features newer than Debian 12's kernel headers (Linux 6.7). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* The signal the host sends to stop a running guest. */
#define MOTE_STUB_KICK_SIGNAL 34 /* SIGRTMIN (glibc keeps 32 and 33) */

/* One mapping of guest memory, made in the child at setup. */
struct mote_stub_map {
	uint64_t addr, len, offset;
	int32_t fd;      /* index into the files sent; -1: anonymous zero pages */
	uint32_t prot;   /* PROT_* */
	uint32_t shared; /* MAP_SHARED rather than MAP_PRIVATE */
	uint32_t pad;
};

/* Whether a mapping in a lazy tracked range (mb->tracked_lazy) joins write
 * tracking only when first touched: anonymous private memory, which the
 * stub registers for missing pages and the host opens (process.c,
 * open_chunks). Both sides decide with this. */
static inline bool mote_stub_map_is_lazy(const struct mote_stub_map *m)
{
	return m->fd < 0 && !m->shared;
}

/* RESET: a range of guest memory whose pages the stub drops
 * (MADV_DONTNEED), so that they read from what backs them again. */
struct mote_stub_range {
	uint64_t addr, len;
};

/* One CPUID answer the stub gives when CPUID faulting is on. */
struct mote_stub_cpuid {
	uint32_t leaf, subleaf;
	uint32_t eax, ebx, ecx, edx;
};

#define MOTE_STUB_MAX_CPUID 32

struct mote_mailbox {
	/* Futex words: the host bumps `to_stub`, the stub `to_host`. A side
	 * about to sleep sets its `*_sleeping`, so the other side makes the
	 * wake system call only when someone sleeps. */
	uint32_t to_stub, to_host;
	uint32_t stub_sleeping, host_sleeping;
	/* Set by the host: a stub spinning for its next command sleeps now
	 * instead (the host is about to change its page tables). Not a
	 * command: nothing to answer, nothing left pending. */
	uint32_t park;
	uint32_t cmd;
	uint32_t report; /* MOTE_STUB_READY ... */
	uint32_t stub_cpu; /* the CPU the last report came from (a hint) */
	/* Set (and woken) by a spare when it is done with everything that
	 * does not depend on a sandbox, or failed at it: it then spins for a
	 * while before it sleeps (stub.c). The spawner waits for it. */
	uint32_t spare_ready;

	/* The guest's CPU state: saved by the stub at every report, loaded
	 * at every run (the host may have changed it). */
	struct mote_cpu_state cpu __attribute__((aligned(64)));

	/* EXIT and FAULT details. */
	uint32_t port;
	uint32_t vector;
	uint64_t error_code;
	uint64_t addr;

	/* MAP, UNMAP: in the file-mapping window only. */
	struct mote_stub_map map;
	/* RESET: ranges at MOTE_STUB_MAILBOX_HEADER (where the setup's
	 * mappings were), in guest RAM only. */
	uint32_t nresets;

	/* READY. */
	uint64_t exit_entry;
	uint32_t features;
	uint32_t host_pid; /* setup: the parent the stub expects */

	/* Setup, written by the host before the child starts. */
	uint32_t flags;
	uint32_t nfds; /* SETUP: files sent on the socket */
	uint32_t nmaps;
	uint32_t ncpuid;
	uint64_t prefault[2]; /* guest range to read into the page tables at setup */
	uint32_t ntracked;
	uint32_t tracked_shared; /* bit i: range i is shared memory (write-protect it now) */
	uint32_t tracked_lazy;   /* bit i: range i's anonymous memory is opened lazily */
	uint64_t tracked[8][2];  /* guest RAM to track writes in: [start, end) */
	uint64_t size;           /* bytes of the mailbox, maps included */
	struct mote_stub_cpuid cpuid[MOTE_STUB_MAX_CPUID];
	char detail[160];
	/* Followed, at `maps_offset`, by nmaps mappings with their final
	 * rights, none overlapping another. */
	uint64_t maps_offset;
};

#define MOTE_STUB_MAILBOX_HEADER 4096u
/* A spare's mailbox, mapped on both sides while it waits: the header and
 * room for 300 mappings. A setup that needs more grows it. */
#define MOTE_STUB_MAILBOX_SPARE 16384u
_Static_assert(MOTE_STUB_MAILBOX_SPARE % 4096 == 0 &&
                   MOTE_STUB_MAILBOX_SPARE >= MOTE_STUB_MAILBOX_HEADER,
               "a spare's mailbox holds the header");
_Static_assert(sizeof(struct mote_mailbox) <= MOTE_STUB_MAILBOX_HEADER,
               "mailbox header fits a page");
_Static_assert(offsetof(struct mote_mailbox, cpu) % 64 == 0, "FXSAVE needs 16-byte alignment");
_Static_assert(sizeof(struct mote_stub_map) == 40, "map record size");
_Static_assert(offsetof(struct mote_mailbox, cpu) == MOTE_MB_CPU, "stub_x86_64.S offsets");
_Static_assert(offsetof(struct mote_cpu_state, rip) == MOTE_CPU_RIP, "stub_x86_64.S offsets");
_Static_assert(offsetof(struct mote_cpu_state, rflags) == MOTE_CPU_RFLAGS, "stub_x86_64.S offsets");
_Static_assert(offsetof(struct mote_cpu_state, fs_base) == MOTE_CPU_FS_BASE,
               "stub_x86_64.S offsets");
_Static_assert(offsetof(struct mote_cpu_state, gs_base) == MOTE_CPU_GS_BASE,
               "stub_x86_64.S offsets");
_Static_assert(offsetof(struct mote_cpu_state, fxsave) == MOTE_CPU_FXSAVE, "stub_x86_64.S offsets");
#endif

#endif
