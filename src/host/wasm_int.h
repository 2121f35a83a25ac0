/* The Wasm layer's internals, shared by wasm_sandbox.c (the mote_wasm_* API,
 * which keeps its state with a sandbox through the core's extension point)
 * and wasi_fs.c (WASI's read-only files). The core includes none of it. */
#ifndef MOTE_HOST_WASM_INT_H
#define MOTE_HOST_WASM_INT_H

#include "host/internal.h"

/* WASI's standard input and stdio types (wasi_host.c), kept with the
 * sandbox's Wasm state (wasm_sandbox.c): mote_wasm_stdio_of gives it,
 * made at first use when `create`. */
struct mote_wasi_stdio {
	uint8_t *stdin_data; /* mote_wasm_set_stdin's bytes */
	size_t stdin_len, stdin_pos;
	uint8_t stdio_type[3]; /* mote_wasm_stdio_type of fds 0-2 */
};
struct mote_wasi_stdio *mote_wasm_stdio_of(struct mote_sandbox *sb, bool create);
/* The caller's functions plus every WASI host function (unless the caller
 * has one of that name), and whether a name is one of ours. */
int mote_wasi_host_functions(const mote_host_functions *imports, mote_host_functions **out);
bool mote_wasi_is_host_function(const char *name);

/* WASI files (wasi_fs.c): the host functions the Wasm runtime calls, and
 * cleanup. close_files drops every open file (a new module starts with
 * none); free also drops the preopens. Their state lives in the Wasm
 * layer's (wasm_sandbox.c): mote_wasm_fs_slot gives its place, made at
 * first use when `create` (NULL: out of memory, or none yet). */
struct mote_wasi_fs **mote_wasm_fs_slot(struct mote_sandbox *sb, bool create);
void mote_wasi_fs_close_files(struct mote_wasi_fs *fs);
void mote_wasi_fs_free(struct mote_wasi_fs *fs);
int mote_wasi_host_dirs(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			mote_value *result);
int mote_wasi_host_open(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			mote_value *result);

int mote_wasi_host_pread(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			 mote_value *result);
int mote_wasi_host_fstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			 mote_value *result);
int mote_wasi_host_pathstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			    mote_value *result);
int mote_wasi_host_close(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			 mote_value *result);
int mote_wasi_host_readdir(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			   mote_value *result);
/* Writing, beneath writable preopens only (EROFS beneath the others). */
int mote_wasi_host_pwrite(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			  mote_value *result);
int mote_wasi_host_fop(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
		       mote_value *result);
int mote_wasi_host_pathop(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			  mote_value *result);
int mote_wasi_host_rename(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			  mote_value *result);
int mote_wasi_host_lstat(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			 mote_value *result);
int mote_wasi_host_readlink(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			    mote_value *result);
int mote_wasi_host_parent(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
			  mote_value *result);

#endif
