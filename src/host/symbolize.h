/* Guest addresses to names and guest stacks to backtraces, from the guest ELF's .symtab, DWARF
 * line tables and CFI (symbolize.c, on elfutils' libelf and libdw).
 *
 * Guests are static, non-PIE ELF executables identity-mapped in the sandbox, so an ELF virtual
 * address is the guest address. The ELF is untrusted input: a crafted file or garbage registers
 * and stack make these functions give less, never crash or loop. A symbolizer serializes its own
 * calls with a lock, so it may be shared between threads. */
#ifndef MOTE_HOST_SYMBOLIZE_H
#define MOTE_HOST_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

struct mote_symbolizer;

/* Open the guest ELF at `path`: its bytes are read into memory and the file closed. Returns 0
 * with *out set; -MOTE_EIO if it cannot be read (or is not a regular file); -MOTE_EBADELF if it
 * is not a 64-bit little-endian x86-64 ET_EXEC ELF, its header tables lie outside the file
 * (truncated) or it is larger than 256 MiB; -MOTE_ENOMEM; -MOTE_EINVAL for NULL arguments.
 * Debug info is optional: without it, symbols only (and without CFI, frame-pointer unwinding
 * only). `err` may be NULL; otherwise it holds the reason on failure and "" on success. */
int mote_symbolizer_open(const char *path, struct mote_symbolizer **out, char *err, size_t errlen);
/* NULL is allowed. */
void mote_symbolizer_close(struct mote_symbolizer *s);

/* Write "divide+0x14 (guest.c:12)" for `addr`: the function symbol covering it, the offset (left
 * out when 0) and the source file's basename and line; "divide+0x14" without line info;
 * "0x2011a4" when no symbol covers it (or `s` is NULL). Always NUL-terminates when len > 0,
 * truncating; returns the length written (without the NUL). */
size_t mote_symbolize(struct mote_symbolizer *s, uint64_t addr, char *buf, size_t len);

/* Reads 8 bytes of guest memory at `addr` (any alignment) into *out; returns 0, or negative when
 * addr is not readable. Called with the symbolizer's lock held: it must not call back into it. */
typedef int (*mote_guest_read_u64)(void *ctx, uint64_t addr, uint64_t *out);

/* Unwind the guest stack from the fault's rip, rsp and rbp with the ELF's CFI (.debug_frame,
 * else .eh_frame), falling back to the rbp chain where no CFI covers a pc. pcs[0] = rip; later
 * entries are return addresses. Stops at `max`, at an unreadable or non-increasing stack, at a
 * pc no symbol covers (a return address is not stored then), at a return address of 0 and at an
 * undefined return address (the outermost frame). Returns the number of pcs stored: 1 or more
 * when max > 0. */
size_t mote_backtrace(struct mote_symbolizer *s, uint64_t rip, uint64_t rsp, uint64_t rbp,
                      mote_guest_read_u64 read, void *ctx, uint64_t *pcs, size_t max);

/* "divide+0x14 (guest.c:12), called from run+0x9 (guest.c:30), called from ..." for the `n` pcs
 * of a backtrace, into buf. Entries after the first are return addresses: their function and
 * line are those of the call (addr - 1). What does not fit is cut at an entry boundary and
 * replaced by "..." (whole entries only, when len allows). Always NUL-terminates when len > 0;
 * returns the length written. */
size_t mote_backtrace_format(struct mote_symbolizer *s, const uint64_t *pcs, size_t n, char *buf,
                             size_t len);

#endif
