/* Value types shared by the host API (mote.h) and the guest SDK (mote/guest.h).
 * Freestanding: only stdint/stddef/stdbool. The numeric values are part of
 * the host/guest ABI and of the snapshot file format: never renumber. */
#ifndef MOTE_TYPES_H
#define MOTE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mote_type {
	MOTE_VOID = 0, /* only as a result type */
	MOTE_I32 = 1,
	MOTE_U32 = 2,
	MOTE_I64 = 3,
	MOTE_U64 = 4,
	MOTE_F32 = 5,
	MOTE_F64 = 6,
	MOTE_BOOL = 7,
	MOTE_STRING = 8, /* bytes without NUL; delivered NUL-terminated */
	MOTE_BYTES = 9,
	MOTE_TYPE_COUNT_ = 10
} mote_type;

/* Most arguments a guest or host function may take. */
#define MOTE_MAX_ARGS 16
/* Longest function name, in bytes, without the terminating NUL. */
#define MOTE_MAX_NAME 127

/* A typed value. For MOTE_STRING and MOTE_BYTES, `ptr` and `len` describe
 * memory owned by whoever produced the value (see the API that hands it to
 * you for how long it stays valid). */
typedef struct mote_value {
	mote_type type;
	union {
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64;
		float f32;
		double f64;
		bool b;
		struct {
			const void *ptr;
			size_t len;
		} buf;
	} v;
} mote_value;

/* Errors: functions return 0 or -MOTE_E<name>. The numbers are ABI (guests
 * see them from host calls): never renumber. */
#define MOTE_ERRNO_MAP(X)                                                                          \
	X(EINVAL, 1, "invalid argument")                                                           \
	X(ENOMEM, 2, "out of memory")                                                              \
	X(EKVM, 3, "KVM is unavailable or failed")                                                 \
	X(EIO, 4, "I/O error")                                                                     \
	X(EBADELF, 5, "invalid guest binary")                                                      \
	X(EABI, 6, "guest ABI version does not match the host")                                    \
	X(ENOFUNC, 7, "no such function")                                                          \
	X(ESIGNATURE, 8, "arguments do not match the function's signature")                        \
	X(ETOOBIG, 9, "message does not fit the call buffer")                                      \
	X(EFAULT, 10, "guest memory access violation")                                             \
	X(EEXCEPTION, 11, "guest CPU exception")                                                   \
	X(EABORT, 12, "guest aborted")                                                             \
	X(ETIMEDOUT, 13, "call timed out")                                                         \
	X(ECANCELLED, 14, "call cancelled")                                                        \
	X(EPOISONED, 15, "sandbox is unusable after a guest failure")                              \
	X(EPROTOCOL, 16, "guest broke the call protocol")                                          \
	X(EHOSTFUNC, 17, "host function failed")                                                   \
	X(EEXIST, 18, "already exists")                                                            \
	X(EBUSY, 19, "sandbox is busy")                                                            \
	X(EBADSNAP, 20, "invalid snapshot file")                                                   \
	X(EHASH, 21, "snapshot hash mismatch")                                                     \
	X(ENOTSUP, 22, "not supported")                                                            \
	X(EGUEST, 23, "guest function returned an error")                                          \
	X(EBACKEND, 24, "the backend cannot run on this machine")                                  \
	X(EBADWASM, 25, "invalid WebAssembly module")                                              \
	X(ECOMPILE, 26, "compiling the Wasm module to native code failed")

typedef enum mote_errno {
	MOTE_OK = 0,
#define MOTE_ERRNO_ENUM_(name, num, text) MOTE_##name = num,
	MOTE_ERRNO_MAP(MOTE_ERRNO_ENUM_)
#undef MOTE_ERRNO_ENUM_
} mote_errno;

#endif
