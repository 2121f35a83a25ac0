/* The contract between the host library's Wasm sandboxes
 * (src/host/wasm_sandbox.c, wasi_fs.c) and the Wasm runtime guest
 * (src/guest-wasm/runtime.c): the host functions the host registers in
 * every Wasm sandbox, and the size of one encoded value. Written once,
 * here; both sides include it. */
#ifndef MOTE_COMMON_WASM_ABI_H
#define MOTE_COMMON_WASM_ABI_H

/* One Wasm value in a call's argument and result blobs: a type byte and
 * eight bytes of bits. */
#define MOTE_WASM_REC_SIZE 9u

#define MOTE_WASI_HOST_CLOCK "__mote_wasi_clock"   /* u64 (i32 clock id): nanoseconds */
#define MOTE_WASI_HOST_RANDOM "__mote_wasi_random" /* bytes (u32 n): n random bytes */
#define MOTE_WASI_HOST_STDIN "__mote_wasi_stdin"   /* bytes (u32 max): next stdin bytes */
/* u32 (u64 ns): sleep that long, less when the call's timeout or an
 * interrupt comes first (poll_oneoff's clocks); 0. */
#define MOTE_WASI_HOST_SLEEP "__mote_wasi_sleep"
/* u32 (u32 fd): the WASI filetype of stdio descriptor fd (0-2), as the
 * embedder described it (mote_wasm_set_stdio_type); 0 (unknown) if not. */
#define MOTE_WASI_HOST_STDIO "__mote_wasi_stdio"
/* Files (src/host/wasi_fs.c). Replies start with a u32 WASI errno. dirs:
 * u32 count, then per preopen u32 length (bit 31: writable) and name. */
#define MOTE_WASI_HOST_DIRS "__mote_wasi_dirs"         /* bytes (): preopened names */
#define MOTE_WASI_HOST_OPEN "__mote_wasi_open"         /* bytes (u32 dir, str path, u32 how) */
#define MOTE_WASI_HOST_PREAD "__mote_wasi_pread"       /* bytes (u64 h, u64 off, u32 n) */
#define MOTE_WASI_HOST_FSTAT "__mote_wasi_fstat"       /* bytes (u64 h): filestat */
#define MOTE_WASI_HOST_PATHSTAT "__mote_wasi_pathstat" /* bytes (u32 dir, str path) */
#define MOTE_WASI_HOST_CLOSE "__mote_wasi_close"       /* u32 (u64 h): errno */
#define MOTE_WASI_HOST_READDIR "__mote_wasi_readdir"   /* bytes (u64 h, u64 cookie, u32 max) */
/* Symbolic links themselves, not followed (bytes (u32 dir, str path)):
 * their filestat, their target text. */
#define MOTE_WASI_HOST_LSTAT "__mote_wasi_lstat"       /* bytes: errno, filestat */
#define MOTE_WASI_HOST_READLINK "__mote_wasi_readlink" /* bytes: errno, target */
/* u32 (u32 dir, str path): errno, 0 if the directory that holds path's
 * last component resolves beneath dir (where a write would go). */
#define MOTE_WASI_HOST_PARENT "__mote_wasi_parent"
/* Writing (writable preopens; EROFS beneath read-only ones). pwrite:
 * bytes (u64 h, u64 off, bytes data): errno, u32 written, u64 end (off
 * UINT64_MAX: at the end of the file). fop: u32 (u64 h, u32 op, u64 a,
 * u64 b): 0 set size a, 1 allocate b at a, 2 fsync, 3 fdatasync. pathop:
 * u32 (u32 dir, str path, u32 op, str target): 0 mkdir, 1 rmdir, 2
 * unlink, 3 symlink to target. rename: u32 (u32 dir, str old, u32 dir2,
 * str new, u32 op): 0 rename, 1 link, 2 link following old. */
#define MOTE_WASI_HOST_PWRITE "__mote_wasi_pwrite"
#define MOTE_WASI_HOST_FOP "__mote_wasi_fop"
#define MOTE_WASI_HOST_PATHOP "__mote_wasi_pathop"
#define MOTE_WASI_HOST_RENAME "__mote_wasi_rename"
/* Bit 31 of a __mote_wasi_dirs name length: the preopen is writable. */
#define MOTE_WASI_DIR_WRITABLE 0x80000000u

#endif
