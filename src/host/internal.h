/* Host-side internals shared by the files of libmote. Not installed. */
#ifndef MOTE_HOST_INTERNAL_H
#define MOTE_HOST_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/abi.h"
#include "host/backend.h"
#include "host/debug.h"
#include "host/records.h"
#include "mote.h"

/* Interrupts a running guest (kicks a vCPU out of KVM_RUN); see mote.h. */
#define MOTE_INTERRUPT_SIGNAL (SIGRTMIN + 4)

/* ---- Allocation through the replaceable allocator ---- */
void *mote_malloc(size_t size);
void *mote_calloc(size_t n, size_t size);
void *mote_realloc(void *ptr, size_t size);
void mote_free(void *ptr);
char *mote_strdup(const char *s);

/* A whole regular file, in a mote_malloc'd buffer (free with mote_free):
 * 0, or -1 with errno (EFBIG when it is larger than `max` bytes, which is
 * checked before anything is read). */
int mote_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* ---- Errors (common.c): the one idiom ----
 * A function that fails returns its code and leaves the detail in one
 * statement: `return mote_fail(-MOTE_EINVAL, "what: why", ...);` where no
 * sandbox is involved (mote_last_error() reads it), and
 * `return mote_sandbox_fail(sb, code, ...)` where one is (the sandbox's
 * detail, and the thread's too). mote_errf fills the `err` buffers of the
 * file parsers (snapfile.c, elf.c), whose callers pass the text on. */
__attribute__((format(printf, 2, 3))) int mote_fail(int code, const char *fmt, ...);
/* The calling thread's detail for mote_last_error(), without a code. */
__attribute__((format(printf, 1, 2))) void mote_set_last_error(const char *fmt, ...);
struct mote_sandbox;
__attribute__((format(printf, 3, 4))) int mote_sandbox_fail(struct mote_sandbox *sb, int code,
                                                            const char *fmt, ...);

/* The file parsers' form of the idiom (snapfile*.c, elf.c), whose callers
 * pass the text on: fill `err` (may be NULL) and return `code`. */
__attribute__((format(printf, 4, 5))) int mote_err(char *err, size_t errlen, int code,
                                                   const char *fmt, ...);
/* snprintf into an error buffer that may be NULL. */
__attribute__((format(printf, 3, 4))) void mote_errf(char *err, size_t errlen, const char *fmt,
						     ...);

/* What the guest sees of CPUID leaf `leaf` given the CPU's answer in
 * regs (eax, ebx, ecx, edx), adjusted in place; false: the leaf reads as
 * zero (cpuid.c). */
bool mote_cpuid_filter(uint32_t leaf, uint32_t regs[4]);
/* The CPU's vendor string ("AuthenticAMD"), NUL-padded to 16 bytes, as
 * snapshots record it; "unknown" where CPUID cannot say. */
void mote_cpu_vendor(char out[16]);


struct mote_host_fn_entry {
	struct mote_sig sig;
	mote_host_fn fn;
	void *user;
};

struct mote_host_functions {
	struct mote_host_fn_entry *v;
	size_t n, cap;
};
int mote_host_functions_copy(const mote_host_functions *src, mote_host_functions *dst);
void mote_host_functions_clear(mote_host_functions *fns);
const struct mote_host_fn_entry *mote_host_functions_find(const mote_host_functions *fns,
							  const char *name, size_t len);

struct mote_config {
	mote_backend backend;
	uint64_t heap_size, stack_size, input_size, output_size, log_size;
	uint64_t timeout_us;
	bool huge_pages;
	mote_output_fn output;
	void *output_user;
	bool output_streams; /* the callback takes MOTE_LOG_STDERR */
	char *core_dump_dir; /* owned by the config; a sandbox keeps a copy */
	int gdb_port;        /* 0: no gdb stub */
};
void mote_config_defaults(struct mote_config *cfg);

/* ---- Guest memory layout ---- */
/* The TSS's limit: 104 bytes + the I/O bitmap for ports 0-255 + its
 * terminator byte (layout.c writes it, the KVM backend loads it). */
#define MOTE_TSS_LIMIT (0x68 + 32)
/* The SYSCALL landing stub (layout.c). */
#define MOTE_SYSCALL_STUB_ADDR MOTE_SYSCALL_ADDR


struct mote_elf_image;
struct mote_snapshot;

/* Place everything after the image. Fails if sizes overflow the limits. */
int mote_layout_compute(const struct mote_config *cfg, uint64_t image_end,
			struct mote_layout *out, char *err, size_t errlen);
/* Write GDT, TSS, IDT, stubs, boot info and page tables into guest memory
 * (zeroed), with page permissions from the image's segments. *system_end is
 * the end of what was written (the last page-table page). */
int mote_layout_write_system(uint8_t *mem, const struct mote_layout *lay,
			     const struct mote_elf_image *img, uint64_t *system_end, char *err,
			     size_t errlen);
/* The CPU state the guest starts in: at `entry`, rsp at the top of the
 * stack, rdi pointing at the boot info. */
void mote_layout_initial_state(const struct mote_layout *lay, uint64_t entry,
			       struct mote_cpu_state *st);
/* The leaf entry mapping `va` in the page tables written by
 * mote_layout_write_system (0 if none); `mem` is guest memory. */
uint64_t mote_layout_leaf_pte(const uint8_t *mem, uint64_t mem_size, uint64_t va);
/* The same, and in *span the bytes from va on that the entry (or the hole
 * where nothing is mapped) covers together with the entries after it in its
 * table that map alike: one walk per run of them, not per entry. */
uint64_t mote_layout_leaf_run(const uint8_t *mem, uint64_t mem_size, uint64_t va, uint64_t *span);
#define MOTE_PTE_PRESENT 0x1ull
#define MOTE_PTE_WRITE 0x2ull
#define MOTE_PTE_USER 0x4ull
#define MOTE_PTE_NX (1ull << 63)

/* A host file mapped into the guest's mapping window. */
struct mote_file_map {
	char *path;
	uint64_t offset, size, gpa;
	unsigned flags; /* MOTE_MAP_* */
	int slot;       /* the backend's handle, -1 when not established */
	void *hva;
	uint64_t dev, ino;
	/* Absorbed into a snapshot file: map the content from src_fd at
	 * src_offset instead of opening `path` (src_fd -1 otherwise). */
	int src_fd;
	uint64_t src_offset;
};

/* How sb->mem was built, for a backend that rebuilds guest memory
 * elsewhere (the process backend): guest [gpa, gpa + size) from `fd` at
 * `offset`, each piece over the ones before; fd -1 is zero pages. */
struct mote_mem_piece {
	uint64_t gpa, size, offset;
	int fd;
	bool owned; /* the sandbox closes fd */
};

/* ---- Sandboxes ---- */
struct mote_sandbox;
/* What the core asks of a layer that keeps state with a sandbox. */
struct mote_sandbox_ext {
	/* The sandbox is being freed. */
	void (*free)(void *state);
	/* 0, or why no snapshot can be taken now (sb's detail set). */
	int (*can_snapshot)(struct mote_sandbox *sb, void *state);
	/* The sandbox was restored to a snapshot (NULL: nothing to do). */
	void (*restored)(struct mote_sandbox *sb, void *state);
};

struct mote_sandbox {
	const struct mote_backend_ops *be;
	void *be_data; /* the backend's own state */
	uint8_t *mem;  /* host view of guest physical memory */
	struct mote_mem_piece *pieces;
	size_t npieces, pieces_cap;
	uint64_t exit_entry; /* what the guest calls to exit; 0: `out` */
	uint64_t mem_size;
	struct mote_layout layout;
	struct mote_config cfg;
	mote_host_functions host_fns;
	struct mote_sig *fns; /* guest functions */
	size_t nfns;
	uint64_t image_size;
	uint32_t abi_version;

	bool poisoned;
	/* The guest broke the call protocol: on a backend whose guest runs
	 * beside code of ours it can write (the process backend's stub), that
	 * code is suspect too, and a restore starts the guest over. */
	bool protocol_broken;
	char err[1024];

	/* Interruption: guarded by run_lock. */
	pthread_mutex_t run_lock;
	bool running;
	pthread_t run_thread;
	int cancel;
	uint64_t deadline_us; /* the running call's (CLOCK_MONOTONIC); 0: none */
	bool timer_armed;
	timer_t timer;
	pid_t timer_tid;
	bool have_timer;

	/* Error a host call returned to the guest because of a bad name or
	 * signature; reported to the caller when the guest function returns. */
	int hostcall_error;
	uint64_t hostresult_off; /* where host-call results go in the input buffer */
	char hostcall_error_text[256];

	/* Copy of the last call's string/bytes result. */
	uint8_t *result_buf;
	size_t result_cap;

	/* Scratch for host functions, freed after each host call. */
	void **scratch;
	size_t nscratch, scratch_cap;

	/* Snapshots. Bitmaps have one bit per 4 KiB guest page. */
	struct mote_snapshot *base; /* what restore returns to cheaply */
	/* The backend mapped guest memory from `base`'s own pages (a start or
	 * restart from it), so a page reset to what backs it reads as the
	 * base's (mote_backend_ops.reset). Not after a snapshot of the
	 * running guest, whose pages written before it live only in it. */
	bool backed_by_base;
	uint64_t *touched;          /* pages that may differ from zero */
	uint64_t *dirty;            /* pages written since `base` was set */
	uint64_t *collected;        /* zeros: what the backend reports lands here */
	uint64_t *dirty_log;        /* scratch for the backend's dirty pages */
	size_t bitmap_words;
	/* Summaries (see mote_summary_next) of `dirty` and `collected`. */
	uint64_t *dirty_summary, *collected_summary;
	size_t summary_words;
	void *bitmaps;      /* the block they all live in */
	size_t bitmaps_len; /* its length if mapped; 0 if allocated */

	struct mote_file_map maps[MOTE_MAX_MAPPINGS];
	size_t nmaps;

	struct mote_debug dbg;
	struct mote_gdb_stub *gdb; /* during a call gdb is attached to */

	/* A layer above the core keeps its own state here (the Wasm
	 * sandboxes do, wasm_sandbox.c); the core knows only the hooks. */
	const struct mote_sandbox_ext *ext;
	void *ext_state;
};

static inline void mote_bitmap_set_range(uint64_t *bm, uint64_t first, uint64_t count)
{
	for (uint64_t p = first; p < first + count; p++)
		bm[p / 64] |= 1ull << (p % 64);
}

/* A page bitmap's summary has a bit per word of the bitmap, set where that
 * word may be nonzero. Passes over a large guest's bitmap then cost what
 * was written, not the guest's size: a 256 MiB guest's bitmap is 1024
 * words, and three passes over all of it were ~1.6 us of a ~20 us restore
 * (a call writes pages at both ends of guest memory, so no one range of
 * words bounds them). */
static inline size_t mote_summary_words(size_t bitmap_words)
{
	return (bitmap_words + 63) / 64;
}

/* Word `w` of the bitmap that `summary` summarizes may be nonzero. */
static inline void mote_summary_note(uint64_t *summary, size_t w)
{
	summary[w / 64] |= 1ull << (w % 64);
}

/* Set pages [first, first + count), and their words' summary bits where
 * there is a summary. */
static inline void mote_bitmap_set_noted(uint64_t *bm, uint64_t *summary, uint64_t first,
                                         uint64_t count)
{
	if (!count)
		return;
	mote_bitmap_set_range(bm, first, count);
	if (summary)
		mote_bitmap_set_range(summary, first / 64,
		                      (first + count - 1) / 64 - first / 64 + 1);
}

/* The first word at or after *w whose summary bit is set; false if none:
 * for (size_t w = 0; mote_summary_next(summary, n, &w); w++) ... */
static inline bool mote_summary_next(const uint64_t *summary, size_t summary_words, size_t *w)
{
	size_t s = *w / 64;
	if (s >= summary_words)
		return false;
	uint64_t bits = summary[s] & (~0ull << (*w % 64));
	while (!bits) {
		if (++s >= summary_words)
			return false;
		bits = summary[s];
	}
	*w = s * 64 + (size_t)__builtin_ctzll(bits);
	return true;
}

/* Word at a time: it runs on every snapshot and restore. */
static inline void mote_bitmap_clear_range(uint64_t *bm, uint64_t first, uint64_t count)
{
	uint64_t p = first, end = first + count;
	for (; p < end && p % 64; p++)
		bm[p / 64] &= ~(1ull << (p % 64));
	for (; p + 64 <= end; p += 64)
		bm[p / 64] = 0;
	for (; p < end; p++)
		bm[p / 64] &= ~(1ull << (p % 64));
}

static inline bool mote_bitmap_test(const uint64_t *bm, uint64_t page)
{
	return (bm[page / 64] >> (page % 64)) & 1;
}

/* dst = src (or 0), writing only the words that change: the sandbox's
 * bitmaps live in an anonymous mapping whose pages that stay zero are never
 * allocated (mote_sandbox_alloc_bitmaps). */
static inline void mote_bitmap_assign(uint64_t *dst, const uint64_t *src, size_t words)
{
	for (size_t w = 0; w < words; w++)
		if (dst[w] != src[w])
			dst[w] = src[w];
}

static inline void mote_bitmap_clear(uint64_t *b, size_t words)
{
	for (size_t w = 0; w < words; w++)
		if (b[w])
			b[w] = 0;
}

/* The host wrote guest memory: restores and snapshots must know. */
static inline void mote_sandbox_mark_written(struct mote_sandbox *sb, uint64_t gpa, uint64_t len)
{
	if (!len || !sb->dirty)
		return;
	uint64_t first = gpa / MOTE_PAGE_SIZE, last = (gpa + len - 1) / MOTE_PAGE_SIZE;
	mote_bitmap_set_noted(sb->dirty, sb->dirty_summary, first, last - first + 1);
	mote_bitmap_set_range(sb->touched, first, last - first + 1);
}

/* Record a piece of guest memory (see struct mote_mem_piece). */
int mote_sandbox_add_piece(struct mote_sandbox *sb, uint64_t gpa, uint64_t size, int fd,
			   uint64_t offset, bool owned);
void mote_sandbox_free_pieces(struct mote_sandbox *sb);
/* Where to pick a backend from: the config's choice, else MOTE_BACKEND,
 * else KVM when /dev/kvm opens and the process backend otherwise. Fails
 * with -MOTE_EBACKEND and a detail when the choice cannot run here. */
int mote_backend_resolve(mote_backend want, const struct mote_backend_ops **out, char *err,
			 size_t errlen);
/* How the process backend tracks guest writes on this kernel (backend.c);
 * NONE when it cannot run. */
enum mote_write_tracking { MOTE_TRACK_NONE, MOTE_TRACK_USERFAULTFD, MOTE_TRACK_SOFT_DIRTY };
enum mote_write_tracking mote_process_tracking(void);
const char *mote_write_tracking_name(enum mote_write_tracking t);

/* Shared by creation from an ELF and from a snapshot (sandbox.c). */
/* Reserve sb->mem_size bytes of guest memory (untouched pages cost
 * nothing), with the huge-page setting applied to the heap; `image`: the
 * host will write the guest's first memory into it (an ELF's segments). */
int mote_sandbox_map_memory(struct mote_sandbox *sb, bool image);
/* Unmaps sb->mem (kept for the next sandbox of its size: sandbox.c). */
void mote_sandbox_unmap_memory(struct mote_sandbox *sb);
void mote_sandbox_advise_heap(struct mote_sandbox *sb);
struct mote_sandbox *mote_sandbox_alloc(const mote_config *config,
					const mote_host_functions *host_functions, int *rc);
int mote_sandbox_alloc_bitmaps(struct mote_sandbox *sb);
/* Hand the prepared memory to the backend; [0, core_end) is what the guest
 * will certainly touch. */
int mote_sandbox_create_guest(struct mote_sandbox *sb, uint64_t core_end);
/* Fold the pages the backend saw written into sb->dirty and sb->touched.
 * `any`: was any page written since `base` was set? `written_back`: the
 * caller writes every dirty page back (a restore). */
int mote_sandbox_collect_dirty(struct mote_sandbox *sb, bool *any, bool written_back);
/* Forget every dirty page. */
void mote_sandbox_clear_dirty(struct mote_sandbox *sb);
/* Complete an exit the guest is parked in (backend settle). */
int mote_sandbox_settle(struct mote_sandbox *sb);
void mote_snapshot_release(struct mote_snapshot *snap);

/* Checked view of guest memory: NULL unless [gpa, gpa+len) lies inside. */
static inline void *mote_guest_ptr(const struct mote_sandbox *sb, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (__builtin_add_overflow(gpa, len, &end) || end > sb->mem_size)
		return NULL;
	return sb->mem + gpa;
}

/* Internal entries for tests and tools: the host's view of guest memory
 * (all of it on KVM; see mote_backend_ops.shares_host_memory), and a copy
 * of guest memory as the guest sees it, on every backend. */
void *mote__sandbox_guest_memory(mote_sandbox *sb, uint64_t *size);
int mote__sandbox_read_memory(mote_sandbox *sb, uint64_t gpa, void *buf, uint64_t len);
/* For tests that count descriptors or processes: wait until the process
 * backend's spare stub is started, so every count sees the same set. */
void mote__backend_quiesce(void);
/* For a test of the stub's command protocol: every process-backend setup
 * from now on gets SETUP's wake a second time after READY, as a spare that
 * read PREPARE's wake late does (see stub.c, wait_for_host). */
void mote__process_duplicate_setup_wake(bool on);
/* For a test of the fallback when the host cannot get the stub's
 * userfaultfd: the process backend tracks every new sandbox's heap from the
 * start instead of as the guest first touches it. */
void mote__process_eager_heap(bool on);
/* For a test of keep_apart (process.c): the process of a process-backend
 * sandbox (-1 on another backend), and how often it was moved off the
 * host's CPU. */
int mote__process_pid(const mote_sandbox *sb);
unsigned mote__process_moves(const mote_sandbox *sb);
/* Restores of a process-backend sandbox that put pages back `way` (0: the
 * stub dropped them, 1: the host wrote them). */
unsigned mote__process_restores(const mote_sandbox *sb, int way);
/* Every later restore of a process-backend sandbox puts pages back `way`
 * (-1: the way measured cheaper), and the pages the last one left
 * unprotected because every call writes them. */
void mote__process_force_restore_way(int way);
unsigned mote__process_hot_pages(const mote_sandbox *sb);

#endif
