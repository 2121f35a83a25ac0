/* mote: micro-VM sandboxes on KVM or, without a hypervisor, in a process.
 *
 * A sandbox is a tiny virtual machine with no guest OS, running one guest
 * binary built with the mote guest SDK. The host calls guest functions by name
 * with typed arguments; the guest may call back only the host functions the
 * host registered. Every function returns 0 or a negative MOTE_E* code;
 * mote_strerror() names the code and mote_sandbox_last_error() gives the
 * detail of a sandbox's last failure.
 *
 * Lists are read one way everywhere: OBJECT_ITEM_count(object) and
 * OBJECT_ITEM(object, index, &info), e.g. mote_sandbox_function_count() and
 * mote_sandbox_function(). Strings and arrays in an info struct belong to
 * the object and live as long as it does.
 *
 * Threads: a sandbox is used by one thread at a time. mote_sandbox_interrupt()
 * may be called from any thread. Different sandboxes are independent.
 */
#ifndef MOTE_H
#define MOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mote/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MOTE_API __attribute__((visibility("default")))
#else
#define MOTE_API
#endif

#define MOTE_VERSION_MAJOR 0
#define MOTE_VERSION_MINOR 2
#define MOTE_VERSION_PATCH 0

/* Error codes: MOTE_ERRNO_MAP and enum mote_errno live in mote/types.h. */

/* Text for a code, given positive or negative. Never NULL. */
MOTE_API const char *mote_strerror(int err);
/* Symbolic name ("MOTE_EFAULT") for a code, given positive or negative. */
MOTE_API const char *mote_errname(int err);

MOTE_API const char *mote_version(void);

/* Detail of the last failure on the calling thread, including failures that
 * leave no sandbox to ask (e.g. "segment 1 lies outside the file"). */
MOTE_API const char *mote_last_error(void);

/* ---- Allocator ---- */
/* Replace the library's allocator (before any other call). Passing NULLs
 * restores malloc/realloc/free. Guest memory is never allocated through it. */
typedef struct mote_allocator {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);
} mote_allocator;
MOTE_API int mote_set_allocator(const mote_allocator *allocator);

/* ---- Output from the guest ---- */
typedef enum mote_log_level {
	MOTE_LOG_PRINT = 0, /* mote_print(): plain output */
	MOTE_LOG_ERROR = 1,
	MOTE_LOG_WARN = 2,
	MOTE_LOG_INFO = 3,
	MOTE_LOG_DEBUG = 4,
	/* The guest's standard error, kept apart from MOTE_LOG_PRINT (its
	 * standard output): a Wasm module's writes to fd 2, mote_write_stderr()
	 * in the guest SDK. Delivered only to a callback set with
	 * mote_config_set_output_streams(); others get MOTE_LOG_PRINT. */
	MOTE_LOG_STDERR = 5,
} mote_log_level;

/* Receives guest output; `text` is not NUL-terminated. Default: stderr. */
typedef void (*mote_output_fn)(void *user, mote_log_level level, const char *text, size_t len);

/* ---- Backends ----
 * How guest code runs: in a KVM virtual machine (needs /dev/kvm), or in a
 * process of its own confined by seccomp (no hypervisor; Linux 6.7 or later,
 * or an older kernel with soft-dirty bits, such as Debian 12's 6.1). The
 * same guests and snapshot files work on both; see docs/architecture.md for
 * what each isolates. */
typedef enum mote_backend {
	MOTE_BACKEND_AUTO = 0, /* MOTE_BACKEND from the environment, else KVM when
				* /dev/kvm opens, else the process backend */
	MOTE_BACKEND_KVM = 1,
	MOTE_BACKEND_PROCESS = 2,
} mote_backend;

/* "auto", "kvm", "process". */
MOTE_API const char *mote_backend_name(mote_backend backend);
/* Parse a name as above. Returns 0 or -MOTE_EINVAL. */
MOTE_API int mote_backend_parse(const char *name, mote_backend *out);
/* Can `backend` run on this machine? 0, or -MOTE_EBACKEND (or -MOTE_EINVAL)
 * with mote_last_error() saying why and what to do about it. AUTO answers
 * for the backend auto would pick, and *chosen (may be NULL) says which. */
MOTE_API int mote_backend_check(mote_backend backend, mote_backend *chosen);
/* How `backend` runs on this machine, in words for people (how guest writes
 * are tracked, whether CPUID is trimmed); "" when it cannot run. The text
 * lives until the next call. */
MOTE_API const char *mote_backend_describe(mote_backend backend);

/* ---- Configuration ---- */
typedef struct mote_config mote_config;

MOTE_API int mote_config_new(mote_config **out);
MOTE_API void mote_config_free(mote_config *config);
/* Guest heap: 128 KiB (default) .. 16 GiB, rounded up to 4 KiB. */
MOTE_API int mote_config_set_heap_size(mote_config *config, uint64_t bytes);
/* Guest stack: 16 KiB .. 64 MiB, default 64 KiB. */
MOTE_API int mote_config_set_stack_size(mote_config *config, uint64_t bytes);
/* Call buffers (arguments in, results out): 4 KiB .. 256 MiB, default 64 KiB each. */
MOTE_API int mote_config_set_input_size(mote_config *config, uint64_t bytes);
MOTE_API int mote_config_set_output_size(mote_config *config, uint64_t bytes);
/* Per-call wall-clock limit in microseconds; 0 (default) means none. */
MOTE_API int mote_config_set_timeout_us(mote_config *config, uint64_t microseconds);
MOTE_API int mote_config_set_output(mote_config *config, mote_output_fn fn, void *user);
/* As mote_config_set_output(), and the guest's standard error arrives as
 * MOTE_LOG_STDERR instead of joining its standard output as MOTE_LOG_PRINT.
 * Order is kept within each stream and across both. */
MOTE_API int mote_config_set_output_streams(mote_config *config, mote_output_fn fn, void *user);
/* Back the guest heap with transparent huge pages (2 MiB) where the kernel
 * allows it: fewer, larger host page faults when a guest fills a large
 * heap, at the cost of memory in 2 MiB steps. Default off. */
MOTE_API int mote_config_set_huge_pages(mote_config *config, bool enable);
/* The backend sandboxes made with this configuration run on (default
 * MOTE_BACKEND_AUTO). Creating a sandbox on a backend this machine lacks
 * fails with -MOTE_EBACKEND and says why. */
MOTE_API int mote_config_set_backend(mote_config *config, mote_backend backend);

/* ---- Host functions ---- */
typedef struct mote_sandbox mote_sandbox;
typedef struct mote_host_functions mote_host_functions;

/* A host function callable by the guest. `args` match the registered
 * signature. Set *result (its type is preset to the registered result type)
 * and return 0, or return a negative MOTE_E* code (the guest sees it).
 * String/bytes results must stay valid until the callback returns to mote;
 * mote_hostcall_scratch() gives memory for that. */
typedef int (*mote_host_fn)(void *user, mote_sandbox *sandbox, const mote_value *args,
			    size_t nargs, mote_value *result);

MOTE_API int mote_host_functions_new(mote_host_functions **out);
MOTE_API void mote_host_functions_free(mote_host_functions *fns);
/* Register `name` with result type `ret` and argument types. The set is
 * copied into each sandbox created from it; later changes do not affect
 * existing sandboxes. */
MOTE_API int mote_host_functions_add(mote_host_functions *fns, const char *name, mote_type ret,
			    const mote_type *arg_types, size_t nargs, mote_host_fn fn, void *user);
/* Memory that stays valid until the current host function returns to mote. */
MOTE_API void *mote_hostcall_scratch(mote_sandbox *sandbox, size_t size);

/* ---- Sandboxes ---- */
/* Create a sandbox from a guest ELF (path or buffer), run the guest's init.
 * `config` and `host_functions` may be NULL for defaults / none. */
MOTE_API int mote_sandbox_new(const char *guest_path, const mote_config *config,
		     const mote_host_functions *host_functions, mote_sandbox **out);
MOTE_API int mote_sandbox_new_from_buffer(const void *elf, size_t len, const mote_config *config,
				 const mote_host_functions *host_functions, mote_sandbox **out);
/* Free a sandbox (NULL is fine). On the process backend this also refills
 * the pool of ready child processes, waiting for it (docs/api.md). */
MOTE_API void mote_sandbox_free(mote_sandbox *sandbox);

/* Call guest function `name`. `args` are checked against the guest's
 * declared signature before the guest runs. On success *result holds the
 * typed result; string/bytes results point into memory owned by the sandbox,
 * valid until the next call on it (or copy them). `result` may be NULL. */
MOTE_API int mote_sandbox_call(mote_sandbox *sandbox, const char *name, const mote_value *args,
		      size_t nargs, mote_value *result);

/* Stop the running call (from any thread): it returns MOTE_ECANCELLED. A
 * no-op when no call runs. The sandbox is poisoned afterwards.
 * Interrupts and timeouts kick the vCPU thread with the real-time signal
 * SIGRTMIN + 4; mote installs a no-op handler for it unless the application
 * already has one (which then works as well). */
MOTE_API int mote_sandbox_interrupt(mote_sandbox *sandbox);

/* Detail of the sandbox's last failure ("" if none); valid until the next
 * call on the sandbox. */
MOTE_API const char *mote_sandbox_last_error(const mote_sandbox *sandbox);
/* True after a guest fault, abort, timeout or cancellation. */
MOTE_API bool mote_sandbox_poisoned(const mote_sandbox *sandbox);

/* The guest's functions, in declaration order. */
typedef struct mote_function_info {
	const char *name;
	mote_type ret;
	size_t nargs;
	const mote_type *args;
} mote_function_info;
MOTE_API size_t mote_sandbox_function_count(const mote_sandbox *sandbox);
MOTE_API int mote_sandbox_function(const mote_sandbox *sandbox, size_t index,
				  mote_function_info *out);

/* Sizes of the sandbox's guest memory. */
typedef struct mote_memory_info {
	uint64_t mem_size;
	uint64_t image_size;
	uint64_t heap_size;
	uint64_t stack_size;
	uint64_t input_size;
	uint64_t output_size;
	uint32_t abi_version;
} mote_memory_info;
MOTE_API int mote_sandbox_memory_info(const mote_sandbox *sandbox, mote_memory_info *out);
/* The backend the sandbox runs on (never AUTO). */
MOTE_API mote_backend mote_sandbox_backend(const mote_sandbox *sandbox);


/* ---- Debugging guests (docs/debugging.md) ----
 * When a call ends in a guest fault, abort or timeout, the detail names the
 * guest code it stopped in, with a short backtrace, if the guest ELF (found
 * by the path the sandbox was created from, or that its snapshot file
 * records, and checked by its SHA-256) has symbols.
 *
 * Core dumps: with a directory set, each such stop also writes an ELF core
 * file there, core.mote.PID.N (mode 0600), named in the detail; stock gdb
 * opens it beside the guest ELF: `gdb guest.elf core.mote.PID.N`. It holds
 * the registers where the guest stopped and every guest page that is not
 * zero. NULL turns it off (the default). */
MOTE_API int mote_config_set_core_dump(mote_config *config, const char *dir);
/* Write a core file of the sandbox now, between calls: the registers where
 * the guest waits (or where it stopped, when the last call failed and
 * poisoned it). Replaces `path`. */
MOTE_API int mote_sandbox_core_dump(mote_sandbox *sandbox, const char *path);
/* A gdb remote stub: each call of a sandbox made with this configuration
 * stops before the guest's first instruction of the call and waits for gdb
 * (`target remote :PORT`) on 127.0.0.1 only; gdb can then set breakpoints,
 * continue, step, read and write registers and memory, and see a fault.
 * The call returns when the guest finishes (gdb sees the end), or fails
 * with MOTE_ECANCELLED if gdb kills it. Calls under gdb have no timeout.
 * 0 turns it off (the default). */
MOTE_API int mote_config_set_gdb_port(mote_config *config, int port);

/* ---- Host files mapped into a sandbox ----
 * Zero copy from the page cache, into the guest's mapping window
 * [MOTE_MAP_WINDOW_BASE, MOTE_MAP_WINDOW_LIMIT), above guest RAM. Read-only
 * mappings fault on guest writes (MOTE_EFAULT naming the address);
 * copy-on-write ones keep guest writes private to the sandbox. The guest
 * lists its mappings with mote_mappings() (guest SDK). A snapshot keeps its
 * mappings: restoring one taken before a mapping removes it, and restore
 * discards guest writes to copy-on-write mappings. The file must not change
 * while mapped. */
#define MOTE_MAP_WINDOW_BASE (64ull << 30)
#define MOTE_MAP_WINDOW_LIMIT (68ull << 30)
#define MOTE_MAP_READ_ONLY 0u
#define MOTE_MAP_COPY_ON_WRITE 1u
/* Map the whole file at `guest_address` (page-aligned, inside the window;
 * the last page is zero-padded). */
MOTE_API int mote_sandbox_map_file(mote_sandbox *sandbox, const char *path,
				   uint64_t guest_address, unsigned flags);
/* Map [offset, offset + size) of the file (page-aligned; size 0 = to the end). */
MOTE_API int mote_sandbox_map_file_range(mote_sandbox *sandbox, const char *path,
					 uint64_t offset, uint64_t size, uint64_t guest_address,
					 unsigned flags);
/* Remove the mapping that starts at `guest_address`. */
MOTE_API int mote_sandbox_unmap(mote_sandbox *sandbox, uint64_t guest_address);

/* ---- Snapshots ----
 * A snapshot holds a sandbox's memory, vCPU state and function tables.
 * Restoring costs time proportional to the pages written since, not to the
 * memory size. Snapshots are immutable and reference-counted: sandboxes
 * started from one keep it alive, and many share its unwritten pages. */
typedef struct mote_snapshot mote_snapshot;

/* Capture `sandbox` (not while a call runs). Cheap when nothing changed
 * since its last snapshot or restore: the same snapshot is returned. */
MOTE_API int mote_sandbox_snapshot(mote_sandbox *sandbox, mote_snapshot **out);
/* Return `sandbox` to `snapshot` exactly (memory and vCPU state); clears a
 * poisoned state. The snapshot must have the sandbox's memory layout. */
MOTE_API int mote_sandbox_restore(mote_sandbox *sandbox, const mote_snapshot *snapshot);
/* Drop the caller's reference. */
MOTE_API void mote_snapshot_free(mote_snapshot *snapshot);

/* Write a snapshot to one self-describing file, atomically (a temporary
 * file, fsync, rename, fsync of the directory): an existing file at `path`
 * is replaced only when the new one is complete. `flags`: 0 or
 * MOTE_SNAPSHOT_ABSORB_MAPPINGS. By default mapped files are recorded by
 * reference (path and SHA-256; opening refuses a changed file); with
 * MOTE_SNAPSHOT_ABSORB_MAPPINGS their content is stored in the snapshot
 * file instead, so it no longer depends on them. */
#define MOTE_SNAPSHOT_ABSORB_MAPPINGS 4u
MOTE_API int mote_snapshot_save(const mote_snapshot *snapshot, const char *path, unsigned flags);

/* Open flags. Default (0): verify every byte of the memory blob (SHA-256 on
 * two threads) unless this process already fully verified this exact file
 * (same device, inode, size, mtime and header hash). The header hash, which
 * covers everything before the blob, is always checked. The file must not
 * be changed while open: its memory is mapped copy-on-write from it. */
#define MOTE_SNAPSHOT_VERIFY_HEADER 1u /* skip the blob: constant time */
#define MOTE_SNAPSHOT_NO_CACHE 2u      /* verify fully even if cached */
MOTE_API int mote_snapshot_open(const char *path, unsigned flags, mote_snapshot **out);
/* Forget which files were fully verified (benchmarks, tests). */
MOTE_API void mote_snapshot_cache_clear(void);

/* Start a sandbox from a snapshot: no ELF parsing and no guest init; the
 * memory is mapped copy-on-write. `host_functions` must provide every host
 * function the snapshot requires, with the same signature (the error names
 * each missing or mismatched one). From `config` only the runtime settings
 * apply (timeout, output); sizes come from the snapshot. */
MOTE_API int mote_sandbox_from_snapshot(const mote_snapshot *snapshot,
					const mote_host_functions *host_functions,
					const mote_config *config, mote_sandbox **out);

/* What a snapshot file holds, read without mapping its memory. */
typedef struct mote_snapshot_info {
	uint32_t format_version;
	uint32_t abi_version;
	const char *arch;       /* "x86_64" */
	const char *hypervisor; /* the backend that saved it: "kvm" or "process" */
	char cpu_vendor[16];
	uint64_t created_unix_ns;
	uint64_t file_size;
	uint64_t mem_size, image_size, heap_size, stack_size, input_size, output_size;
	uint64_t blob_size; /* stored memory bytes */
	size_t nregions;
	char header_hash[65]; /* hex SHA-256 */
	char blob_hash[65];
	/* A layer names its base snapshot file: its header hash and path (as
	 * recorded, relative to this file's directory unless absolute). */
	bool is_layer;
	char parent_hash[65];
	const char *parent_path;
	size_t nmappings; /* host files the snapshot had mapped */
	/* The guest ELF its memory came from (debugging: symbols, core dumps):
	 * where it was, and the hex SHA-256 of the file. NULL and "" when the
	 * file does not record it. */
	const char *guest_path;
	char guest_hash[65];
	void *priv_; /* owned by the library */
} mote_snapshot_info;
MOTE_API int mote_snapshot_info_read(const char *path, mote_snapshot_info *out);
MOTE_API void mote_snapshot_info_free(mote_snapshot_info *info);
/* The snapshot's guest functions, as mote_snapshot_function() lists them,
 * and the host functions it requires. Valid until mote_snapshot_info_free(). */
MOTE_API size_t mote_snapshot_info_function_count(const mote_snapshot_info *info);
MOTE_API int mote_snapshot_info_function(const mote_snapshot_info *info, size_t index,
					 mote_function_info *out);
MOTE_API size_t mote_snapshot_info_host_function_count(const mote_snapshot_info *info);
MOTE_API int mote_snapshot_info_host_function(const mote_snapshot_info *info, size_t index,
					      mote_function_info *out);
/* Details of a snapshot in memory (from mote_snapshot_open or a sandbox). */
MOTE_API size_t mote_snapshot_function_count(const mote_snapshot *snapshot);
MOTE_API int mote_snapshot_function(const mote_snapshot *snapshot, size_t index,
				    mote_function_info *out);

/* What a guest ELF holds, read from the file alone: no sandbox is started,
 * the guest runs no code and /dev/kvm is not needed. The file is validated
 * as mote_sandbox_new() validates it (same errors), then the guest's
 * function table, which the ABI 2 function-table note locates, is read and
 * checked entry by entry. -MOTE_EBADELF names the reason (a guest without
 * the note: "no function table note ...: guest built before ABI 2?");
 * -MOTE_EABI leaves the guest's version in out->abi_version; -MOTE_EIO for a
 * file that cannot be read. mote_last_error() gives the detail. */
typedef struct mote_guest_info {
	uint32_t abi_version;
	uint64_t entry; /* guest address of the entry point */
	uint64_t file_size;
	/* What mote_sandbox_memory_info() would report for a sandbox created
	 * from this guest with the default configuration. */
	uint64_t image_size, mem_size, heap_size, stack_size, input_size, output_size;
	void *priv_; /* owned by the library */
} mote_guest_info;
MOTE_API int mote_guest_info_read(const char *path, mote_guest_info *out);
/* Release what mote_guest_info_read() filled in (also after it failed). */
MOTE_API void mote_guest_info_free(mote_guest_info *info);
/* The guest's functions, in the order mote_sandbox_function() lists them;
 * valid until mote_guest_info_free(). */
MOTE_API size_t mote_guest_info_function_count(const mote_guest_info *info);
MOTE_API int mote_guest_info_function(const mote_guest_info *info, size_t index,
				      mote_function_info *out);

/* ---- Helpers for values ---- */
MOTE_API const char *mote_type_name(mote_type type);
/* Parse "i32", "string", ... Returns 0 or -MOTE_EINVAL. */
MOTE_API int mote_type_parse(const char *name, mote_type *out);

static inline mote_value mote_i32(int32_t x)
{
	mote_value v = {MOTE_I32, {.i32 = x}};
	return v;
}
static inline mote_value mote_u32(uint32_t x)
{
	mote_value v = {MOTE_U32, {.u32 = x}};
	return v;
}
static inline mote_value mote_i64(int64_t x)
{
	mote_value v = {MOTE_I64, {.i64 = x}};
	return v;
}
static inline mote_value mote_u64(uint64_t x)
{
	mote_value v = {MOTE_U64, {.u64 = x}};
	return v;
}
static inline mote_value mote_f32(float x)
{
	mote_value v = {MOTE_F32, {.f32 = x}};
	return v;
}
static inline mote_value mote_f64(double x)
{
	mote_value v = {MOTE_F64, {.f64 = x}};
	return v;
}
static inline mote_value mote_bool(bool x)
{
	mote_value v = {MOTE_BOOL, {.b = x}};
	return v;
}
MOTE_API mote_value mote_string(const char *s); /* strlen(s) bytes */
static inline mote_value mote_bytes(const void *p, size_t len)
{
	mote_value v = {MOTE_BYTES, {.buf = {p, len}}};
	return v;
}

#ifdef __cplusplus
}
#endif
#endif
