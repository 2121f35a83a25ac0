/* What a sandbox is made of, as records the snapshot file format stores too
 * (snapfile.h includes this, not the sandbox's internals): a function's
 * signature and the guest memory layout. Functions on them: common.c
 * (signatures) and layout.c. */
#ifndef MOTE_HOST_RECORDS_H
#define MOTE_HOST_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mote/types.h"

/* ---- Signatures ---- */
struct mote_sig {
	char *name;
	mote_type ret;
	uint8_t nargs;
	mote_type args[MOTE_MAX_ARGS];
};
/* "i32 add(i32, i32)" */
void mote_sig_format(const struct mote_sig *sig, char *buf, size_t len);
bool mote_sig_equal(const struct mote_sig *a, const struct mote_sig *b);

/* ---- Guest memory layout: where each part of guest memory is ---- */
struct mote_layout {
	uint64_t mem_size;
	uint64_t image_end;
	uint64_t stack_base, stack_size;
	uint64_t in_buf, in_size;
	uint64_t out_buf, out_size;
	uint64_t log_buf, log_size;
	uint64_t heap_base, heap_size;
};

#endif
