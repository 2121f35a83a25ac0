/* WASI preview 1 in the Wasm runtime guest (wasi.c), as runtime.c uses it,
 * and the two helpers both files need. */
#ifndef MOTE_GUEST_WASM_WASI_H
#define MOTE_GUEST_WASM_WASI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wasm.h"

#define WASI_MODULE "wasi_snapshot_preview1"

/* The implementation of the WASI import `imp` in *fn: 0, or
 * -MOTE_ESIGNATURE (a WASI function of another type) or -MOTE_ENOFUNC (no
 * such function) with `reason` saying so. */
int wasi_resolve(const mw_import_info *imp, mw_host_fn *fn, char *reason, size_t reason_len);

/* A command's argv and environment from the host's list: u32 argc, u32
 * envc, then argc + envc NUL-terminated strings. 0, -MOTE_EINVAL or
 * -MOTE_ENOMEM. */
int wasi_set_args(const uint8_t *p, size_t len);

/* Set by proc_exit, whose trap ends the run. */
extern bool wasi_exited;
extern int32_t wasi_exit_code;

/* Ask the host for its preopened directories again at the next use (a
 * sandbox started from a snapshot may have others); forget open files too
 * (the host closes its side on load and unload). */
void wasi_forget_dirs(void);
void wasi_forget_files(void);

/* [off, off + len) of the caller's memory 0, or NULL when out of bounds. */
static inline uint8_t *mem_at(mw_instance *caller, uint64_t off, uint64_t len)
{
	mw_memory *m = caller ? mw_instance_memory(caller) : NULL;
	if (!m || off + len < off || off + len > mw_memory_size(m))
		return NULL;
	return mw_memory_data(m) + off;
}

static inline bool functype_equal(const mw_functype *a, const uint8_t *params, uint32_t np,
                                  const uint8_t *results, uint32_t nr)
{
	return a->nparams == np && a->nresults == nr &&
	       (np == 0 || memcmp(a->params, params, np) == 0) &&
	       (nr == 0 || memcmp(a->results, results, nr) == 0);
}

/* "(i32, i64) -> i32": a function type as the errors print it (runtime.c). */
void format_functype(char *buf, size_t len, const mw_functype *ft);

#endif
