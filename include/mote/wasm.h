/* mote Wasm sandboxes: WebAssembly modules run inside a mote sandbox, by
 * mote's own engine, which runs as the sandbox's guest program. The module
 * can reach nothing but its linear memory and the host functions the host
 * registered; the engine itself is confined by the VM.
 *
 *     mote_sandbox *sb;
 *     mote_wasm_sandbox_new(NULL, imports, &sb);     // from a snapshot: ~a cold start
 *     mote_wasm_load_file(sb, "add.wasm");           // decode, validate, instantiate
 *     mote_value args[2] = {mote_i32(2), mote_i32(40)}, res;
 *     size_t n;
 *     mote_wasm_call(sb, "add", args, 2, &res, 1, &n);   // res.v.i32 == 42
 *     mote_sandbox_free(sb);
 *
 * Conventions are mote.h's: 0 or -MOTE_E*, details from
 * mote_sandbox_last_error() (or mote_last_error() when there is no
 * sandbox). A Wasm sandbox is a mote_sandbox: mote_sandbox_free,
 * mote_sandbox_interrupt, mote_sandbox_snapshot and mote_snapshot_save work
 * on it as on any other.
 *
 * Imports: a function import from module "env" calls the host function of
 * the same name (mote_host_functions_add), which must have the matching
 * signature: wasm i32/i64/f32/f64 are MOTE_I32 (or U32, BOOL) / MOTE_I64
 * (or U64) / MOTE_F32 / MOTE_F64; a host argument of type MOTE_STRING or
 * MOTE_BYTES takes two wasm i32 parameters, pointer and length into the
 * module's linear memory (checked against its bounds before the host sees
 * it). A MOTE_STRING or MOTE_BYTES result takes two more i32 parameters
 * after the arguments, a destination pointer and capacity, and the import
 * returns i32: the result's full length, of which at most the capacity is
 * copied (no NUL is added), so a module can retry with a bigger buffer.
 * A memory or table imported from "env" (modules linked with
 * --import-memory or --import-table) is created with the import's limits.
 * Module "wasi_snapshot_preview1" gets a WASI preview 1 subset (see
 * mote_wasm_run). Any other import (a global, another module) makes the
 * load fail with the import named in the detail.
 */
#ifndef MOTE_WASM_H
#define MOTE_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mote.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A Wasm sandbox gets at least these sizes; a config may ask for more
 * (mote_config_set_heap_size, ..._input_size, ...), smaller values are
 * raised to them. Linear memory may use up to half of the heap (128 MiB by
 * default); the input buffer bounds the size of a module (16 MiB). */
#define MOTE_WASM_MIN_HEAP (256ull << 20)
#define MOTE_WASM_MIN_STACK (1ull << 20)
#define MOTE_WASM_MIN_INPUT (16ull << 20)
#define MOTE_WASM_MIN_OUTPUT (1ull << 20)

/* ---- Sandboxes ----
 * The first Wasm sandbox of a process (per distinct size configuration)
 * boots the runtime once and snapshots it; every Wasm sandbox starts from
 * that snapshot. From `config` the runtime settings (timeout, output) apply
 * and sizes choose the runtime (see above). `imports` (may be NULL) holds
 * the host functions "env" imports call. */
MOTE_API int mote_wasm_sandbox_new(const mote_config *config, const mote_host_functions *imports,
				   mote_sandbox **out);

/* Start from a snapshot of a Wasm sandbox (mote_sandbox_snapshot, or
 * mote_snapshot_open of a saved one): a module loaded when it was taken is
 * ready to call, with no decode, validation or instantiation. `imports`
 * must provide the host functions the snapshot requires (as for
 * mote_sandbox_from_snapshot). -MOTE_EINVAL if the snapshot is not of a
 * Wasm sandbox. */
MOTE_API int mote_wasm_sandbox_from_snapshot(const mote_snapshot *snapshot,
					     const mote_host_functions *imports,
					     const mote_config *config, mote_sandbox **out);

/* ---- Modules compiled ahead of time ----
 * mote_wasm_compile() turns a module into a guest ELF: the module is
 * translated to C, compiled with mote-cc (gcc -O2) and linked with the Wasm
 * runtime, so its functions run as native code with the interpreter's exact
 * results and traps. The ELF is a Wasm sandbox's guest like the runtime
 * itself; mote_wasm_sandbox_new_compiled() starts one with the module
 * loaded, and everything else (calls, WASI, snapshots, snapshot files)
 * works on it as on an interpreted module.
 *
 * The compiler is found as the SDK directory $MOTE_WASM_SDK, else the build
 * tree's, else the installed one (PREFIX/share/mote/sdk): mote-cc, the
 * headers translated code includes, lib/libmote_wasmrt.a. Results are cached
 * in $MOTE_CACHE_DIR (default $XDG_CACHE_HOME/mote or ~/.cache/mote), under
 * wasm-aot/, keyed by a SHA-256 of the module, its translation to C and the
 * SDK, so a module is compiled once per machine and never reused after the
 * translator changes. Errors: -MOTE_EBADWASM an invalid module (the
 * validator's message, before anything is generated), -MOTE_ECOMPILE no SDK
 * or the C compiler failed (its first messages in the detail), -MOTE_EIO
 * the output cannot be written. */
#define MOTE_WASM_COMPILE_NO_CACHE 1u /* neither use nor fill the cache */
MOTE_API int mote_wasm_compile(const void *wasm, size_t len, const char *out_path, unsigned flags);
MOTE_API int mote_wasm_compile_file(const char *wasm_path, const char *out_path, unsigned flags);

/* A Wasm sandbox from a compiled module's ELF, its module instantiated (the
 * start function run), as mote_wasm_sandbox_new() + mote_wasm_load() would.
 * Sizes below the Wasm minimums are raised as there. -MOTE_EINVAL when the
 * ELF is not a Wasm runtime guest; -MOTE_EBADWASM when it has no module
 * built in; a load's errors otherwise. mote_wasm_unload() and a poisoned
 * sandbox go back to the state before the module was instantiated, and
 * mote_wasm_load() may still load other modules (interpreted). */
MOTE_API int mote_wasm_sandbox_new_compiled(const char *elf_path, const mote_config *config,
                                            const mote_host_functions *imports, mote_sandbox **out);

/* True when `sandbox` runs the Wasm runtime (created by the functions above). */
MOTE_API bool mote_wasm_is_sandbox(const mote_sandbox *sandbox);
/* True when `snapshot` is of a Wasm sandbox: its guest is the Wasm runtime
 * (the runtime's protocol functions, with their signatures, are in its
 * function table). */
MOTE_API bool mote_wasm_is_snapshot(const mote_snapshot *snapshot);

/* ---- Modules ----
 * Decode, validate and instantiate a binary module (running its start
 * function). A module already loaded is unloaded first, and so is a
 * poisoned sandbox's state. Errors:
 * -MOTE_EBADWASM malformed or invalid module (the detail gives the engine's
 * reason and byte offset), -MOTE_ENOFUNC unknown import, -MOTE_ESIGNATURE
 * import of the wrong type (both name the import), -MOTE_ETOOBIG module
 * larger than the input buffer or a limit exceeded, -MOTE_EGUEST the start
 * function trapped. */
MOTE_API int mote_wasm_load(mote_sandbox *sandbox, const void *wasm, size_t len);
MOTE_API int mote_wasm_load_file(mote_sandbox *sandbox, const char *path);

/* Drop the module. Costs nothing: the return to the runtime snapshot the
 * sandbox was created from is deferred to the next load (calls meanwhile
 * fail with "no wasm module is loaded", and snapshots are refused). A
 * poisoned sandbox (after a timeout or interrupt) is restored at once. */
MOTE_API int mote_wasm_unload(mote_sandbox *sandbox);

/* Call exported function `export_name`. `args` must match its parameters
 * exactly (MOTE_I32/I64/F32/F64), else -MOTE_ESIGNATURE with the signature
 * in the detail ("wasm export 'add(i32, i32) -> i32' called with (i64)").
 * Up to `max_results` results (a function may have several) go to
 * `results`, their count to *nresults (may be NULL); more results than
 * room is -MOTE_EINVAL, before anything runs. A trap is -MOTE_EGUEST with
 * the detail "wasm trap: <message>" ("wasm trap: integer divide by zero");
 * the sandbox stays usable. A failing host function traps too, returning
 * its own error code. -MOTE_ENOFUNC when there is no such exported
 * function. WASI proc_exit(0) ends the call successfully with no results;
 * proc_exit(N) is -MOTE_EGUEST "wasm module exited with code N". */
MOTE_API int mote_wasm_call(mote_sandbox *sandbox, const char *export_name,
			    const mote_value *args, size_t nargs, mote_value *results,
			    size_t max_results, size_t *nresults);

/* ---- WASI commands ----
 * Run the module's `_start` with these arguments and environment
 * ("NAME=value" strings; both may be empty). *exit_code receives the code
 * passed to proc_exit, or 0 when _start returns. WASI preview 1:
 * fd_write to 1 and 2 reaches the output callback (standard error as
 * MOTE_LOG_STDERR where the callback takes it, see
 * mote_config_set_output_streams), fd_read of 0 reads mote_wasm_set_stdin's
 * bytes, files live under preopened directories (mote_wasm_preopen, read
 * only, or mote_wasm_preopen_flags, writable), clocks, randomness and sleeps
 * come from the host; docs/wasm-sandbox.md lists every call. The arguments
 * stay set for later calls. */
MOTE_API int mote_wasm_run(mote_sandbox *sandbox, const char *const *argv, size_t argc,
			   const char *const *envp, size_t envc, int *exit_code);
/* Give WASI commands `len` bytes of standard input (copied; replaces what is
 * left of any earlier input). Without it, stdin is empty. */
MOTE_API int mote_wasm_set_stdin(mote_sandbox *sandbox, const void *data, size_t len);
/* What a module sees its descriptor `fd` (0, 1 or 2) to be, through
 * fd_fdstat_get and fd_filestat_get (and so isatty()): say what the host's
 * side of that stream is. Without it, UNKNOWN (isatty() is false). */
typedef enum mote_wasm_stdio_type {
	MOTE_WASM_STDIO_UNKNOWN = 0,  /* a pipe, a socket, a callback */
	MOTE_WASM_STDIO_TERMINAL = 2, /* a character device: isatty() is true */
	MOTE_WASM_STDIO_FILE = 4,     /* a regular file */
} mote_wasm_stdio_type;
MOTE_API int mote_wasm_set_stdio_type(mote_sandbox *sandbox, int fd, mote_wasm_stdio_type type);
/* Let WASI commands read the files under `host_dir`, which they see as the
 * preopened directory `guest_path` (e.g. "/data" or "."). Read-only: paths
 * resolve beneath host_dir only (no "..", absolute path or symlink leads
 * out; such an open fails with ENOTCAPABLE). Up to 16 per sandbox; they
 * stay for later modules. Files a module has open are closed when another
 * module is loaded or it is unloaded, and are not part of snapshots. */
MOTE_API int mote_wasm_preopen(mote_sandbox *sandbox, const char *guest_path,
			       const char *host_dir);
/* mote_wasm_preopen with flags (0: read-only, as mote_wasm_preopen).
 * MOTE_WASM_PREOPEN_WRITABLE lets modules create, write, truncate, rename
 * and remove files, directories and symbolic links beneath host_dir, and
 * nowhere else: every path is resolved beneath it as for reading (a
 * symlink's target is stored as given, and followed beneath host_dir
 * only). Files are created with mode 0644, directories 0755 (less the
 * process umask). What is written counts against the sandbox's write
 * limits (mote_wasm_set_write_limits). Unknown flags: -MOTE_EINVAL. */
#define MOTE_WASM_PREOPEN_WRITABLE 1u
MOTE_API int mote_wasm_preopen_flags(mote_sandbox *sandbox, const char *guest_path,
				     const char *host_dir, unsigned flags);
/* Limits on what modules may write beneath writable preopens, for the
 * sandbox's whole life (module loads, unloads and restores do not reset
 * the counts, which never go down: removing a file gives nothing back):
 * max_bytes of data (bytes passed to write and pwrite, plus what truncate
 * and allocate grow files by), max_files files, directories and links
 * created. 0 means nothing may be written or created. A write that would
 * cross max_bytes writes up to it and returns the short count; the next
 * fails with ENOSPC; a truncate or allocate that would cross it fails
 * whole (ENOSPC); a creation past max_files fails with EDQUOT. Defaults:
 * 64 MiB and 1024. */
MOTE_API int mote_wasm_set_write_limits(mote_sandbox *sandbox, uint64_t max_bytes,
					uint64_t max_files);

/* ---- Exports of the loaded module ---- */
typedef enum mote_wasm_kind {
	MOTE_WASM_FUNCTION = 0,
	MOTE_WASM_TABLE = 1,
	MOTE_WASM_MEMORY = 2,
	MOTE_WASM_GLOBAL = 3,
} mote_wasm_kind;

typedef struct mote_wasm_export_info {
	const char *name;
	mote_wasm_kind kind;
	/* Functions: parameter and result types (MOTE_I32/I64/F32/F64, or
	 * MOTE_VOID for a reference type, which mote_wasm_call cannot pass).
	 * Globals: one result, the global's type. */
	size_t nparams, nresults;
	const mote_type *params, *results;
	/* "add(i32, i32) -> i32" for functions, "NAME: i32" for globals, the
	 * name alone otherwise. */
	const char *signature;
} mote_wasm_export_info;

typedef struct mote_wasm_exports mote_wasm_exports;

/* The loaded module's exports as they are now (an empty list when none),
 * fetched from the guest once; read like every list (mote.h). */
MOTE_API int mote_wasm_exports_get(mote_sandbox *sandbox, mote_wasm_exports **out);
MOTE_API size_t mote_wasm_export_count(const mote_wasm_exports *exports);
MOTE_API int mote_wasm_export(const mote_wasm_exports *exports, size_t index,
			       mote_wasm_export_info *out);
/* -MOTE_ENOFUNC when there is no export of that name. */
MOTE_API int mote_wasm_export_find(const mote_wasm_exports *exports, const char *name,
				   mote_wasm_export_info *out);
MOTE_API void mote_wasm_exports_free(mote_wasm_exports *exports);

#ifdef __cplusplus
}
#endif
#endif
