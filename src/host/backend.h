/* The seam between the sandbox core and the backends, the only code that
 * knows how a guest runs (src/host/<backend>/). The core prepares guest
 * memory, hands the backend a sandbox and sees events; a backend decodes its
 * own exits into them. docs/architecture.md, "Backends", draws the picture.
 *
 * Every operation returns 0 or -MOTE_E* and, on failure, leaves the detail
 * in sb->err (mote_sandbox_fail). */
#ifndef MOTE_HOST_BACKEND_H
#define MOTE_HOST_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mote_sandbox;
struct mote_file_map;

/* The guest's CPU state as every backend sees it, and as snapshot files
 * store it: what a CPL 3 program can change. Everything else (segments,
 * control registers, descriptor tables, IOPL) a backend derives from the
 * layout, as at creation. A guest parked at an exit is stored as if the
 * exit instruction had completed (src/common/abi.h, "Exits"). */
struct mote_cpu_state {
	uint64_t gpr[16]; /* rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
	uint64_t rip;
	uint64_t rflags; /* only MOTE_RFLAGS_GUEST bits */
	uint64_t fs_base, gs_base;
	uint8_t fxsave[512]; /* x87 and SSE: the FXSAVE layout */
};

/* CF PF AF ZF SF TF DF OF AC ID: the flags a CPL 3 program sets itself. */
#define MOTE_RFLAGS_GUEST 0x240dd5ull

enum mote_event_kind {
	MOTE_EVENT_EXIT,        /* the guest exited to `port` (MOTE_PORT_*) */
	MOTE_EVENT_EXCEPTION,   /* CPU exception `vector`; page faults: `addr`, `error_code` */
	MOTE_EVENT_NO_MEMORY,   /* an access where no guest memory is: `addr`, `write` */
	MOTE_EVENT_INTERRUPTED, /* kicked (mote_backend_ops.kick), or a signal */
	MOTE_EVENT_SHUTDOWN,    /* the CPU gave up (triple fault) */
	MOTE_EVENT_UNEXPECTED,  /* anything else: `detail` says what */
};

struct mote_event {
	enum mote_event_kind kind;
	uint16_t port;
	uint8_t vector;
	bool has_error_code;
	bool write;
	uint64_t error_code;
	uint64_t addr;
	/* Exceptions: where the guest was (the backend itself stops in its
	 * exception path); rflags only MOTE_RFLAGS_GUEST bits. */
	uint64_t rip, rsp, rflags;
	char detail[96];
};

/* A guest memory copy: `len` bytes at guest address `gpa` from or to `buf`
 * (NULL on a write: zeros). */
struct mote_mem_copy {
	uint64_t gpa;
	void *buf;
	uint64_t len;
};

struct mote_backend_ops {
	const char *name; /* "kvm", "process" */
	uint32_t file_id; /* in snapshot files: MOTE_SNAP_BACKEND_* (snapfile.h) */
	/* The guest runs on sb->mem itself (KVM). Otherwise the backend
	 * rebuilds guest memory elsewhere from sb->pieces, and only the boot
	 * info page and the call buffers of sb->mem stay shared with it. */
	bool shares_host_memory;

	/* Make a guest of sb->mem_size bytes at sb->mem, with the layout in
	 * sb->layout; [0, core_end) is what it will certainly touch. */
	int (*create)(struct mote_sandbox *sb, uint64_t core_end);
	void (*destroy)(struct mote_sandbox *sb);

	/* Run until the next event. */
	int (*run)(struct mote_sandbox *sb, struct mote_event *ev);
	/* Make the current or next run return MOTE_EVENT_INTERRUPTED soon.
	 * Async-signal-safe. */
	void (*kick)(struct mote_sandbox *sb);
	void (*clear_kick)(struct mote_sandbox *sb);
	/* Finish an exit the guest is parked in without running guest code,
	 * so its state reads as "exit completed" (before snapshots, restores). */
	int (*settle)(struct mote_sandbox *sb);

	int (*get_state)(struct mote_sandbox *sb, struct mote_cpu_state *st);
	int (*set_state)(struct mote_sandbox *sb, const struct mote_cpu_state *st);

	/* OR into `bitmap` (one bit per 4 KiB page from guest address 0) the
	 * pages the guest wrote since the last call, and forget them; set
	 * the bits of `summary` (mote_summary_next) of the words it set.
	 * `written_back`: the caller writes every page reported back with
	 * write() or reset() before the guest runs again, which forgets them
	 * too (the process backend then skips one round of write
	 * protection). */
	int (*dirty_pages)(struct mote_sandbox *sb, uint64_t *bitmap, bool written_back,
	                   uint64_t *summary);

	/* Guest memory the host cannot reach through sb->mem. */
	int (*read)(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n);
	int (*write)(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n);
	/* Optional: make the ranges read as `buf` again, where what backs
	 * them holds just that (sb->backed_by_base): a restore. The process
	 * backend drops the guest's copies, in its own process, rather than
	 * writing them back and protecting them again from outside, which
	 * interrupts the CPU the guest last ran on. */
	int (*reset)(struct mote_sandbox *sb, const struct mote_mem_copy *v, size_t n);
	/* Write guest memory the guest itself may not write, such as its
	 * code (a debugger's breakpoints); the pages become this sandbox's. */
	int (*poke)(struct mote_sandbox *sb, uint64_t gpa, const void *buf, size_t len);

	/* A host file mapping in the mapping window: m->gpa, m->size, from
	 * `fd` at m->offset (the host's own view is m->hva); read-only
	 * unless copy-on-write. */
	int (*map)(struct mote_sandbox *sb, struct mote_file_map *m, int fd);
	/* Optional: the guest is gone (its process died) and only a restore,
	 * which starts it over, brings it back. A backend that has it is also
	 * started over by a restore after the guest broke the call protocol:
	 * its own code beside the guest may be corrupt. */
	bool (*lost)(struct mote_sandbox *sb);
	void (*unmap)(struct mote_sandbox *sb, struct mote_file_map *m);
};

extern const struct mote_backend_ops mote_kvm_backend;
extern const struct mote_backend_ops mote_process_backend;

#endif
