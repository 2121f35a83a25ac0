/* The GDB Remote Serial Protocol engine behind `mote run --gdb`: framing, acks, parsing and
 * answering packets for one stopped x86-64 thread, with no sockets and no sandbox. The caller
 * moves bytes and runs the guest; the engine reaches the guest only through
 * struct mote_gdb_target_ops, and only while the guest is stopped.
 *
 * Bytes come from the network: any sequence gets a protocol error or an empty reply, and every
 * buffer has a fixed size. Nothing is allocated. */
#ifndef MOTE_HOST_GDB_PROTO_H
#define MOTE_HOST_GDB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/backend.h"

/* PacketSize we advertise (hex 0x4000): the longest packet data (between '$' and '#') we accept
 * and the longest we send. */
#define MOTE_GDB_PACKET_MAX 16384
/* An output buffer's capacity: room for two whole framed replies and their acks. */
#define MOTE_GDB_OUT_MAX (2 * MOTE_GDB_PACKET_MAX + 1024)
/* The bytes a 'g' reply describes (the target description's registers, in order). */
#define MOTE_GDB_REGS_SIZE 552
#define MOTE_GDB_NREGS     59

/* What the engine asks of the target (the stopped guest). Each returns 0 or negative; a
 * negative result becomes an "E" reply. All six must be set: without them, every request that
 * needs the guest gets E01. */
struct mote_gdb_target_ops {
	int (*get_regs)(void *ctx, struct mote_cpu_state *st);
	int (*set_regs)(void *ctx, const struct mote_cpu_state *st);
	int (*read_mem)(void *ctx, uint64_t addr, void *buf, size_t len);
	int (*write_mem)(void *ctx, uint64_t addr, const void *buf, size_t len);
	int (*insert_breakpoint)(void *ctx, uint64_t addr); /* Z0 with kind 1 */
	int (*remove_breakpoint)(void *ctx, uint64_t addr); /* z0 */
};

enum mote_gdb_action {
	MOTE_GDB_NONE,      /* keep reading packets */
	MOTE_GDB_CONTINUE,  /* resume the guest (c, C sig, vCont;c/C: the signal is ignored) */
	MOTE_GDB_STEP,      /* execute one instruction (s, S sig, vCont;s/S) */
	MOTE_GDB_KILL,      /* k, vKill: end the call */
	MOTE_GDB_DETACH,    /* D: reply OK sent; resume without a debugger */
	MOTE_GDB_INTERRUPT, /* 0x03 while the guest runs: stop it, then mote_gdb_stop_reply */
};

/* Bytes to send to gdb. Functions append; the caller sends data[0, len) and sets len to 0. */
struct mote_gdb_buf {
	size_t len;
	bool truncated; /* something did not fit and was left out whole (never a partial packet) */
	uint8_t data[MOTE_GDB_OUT_MAX];
};

enum mote_gdb_run_state {
	MOTE_GDB_STOPPED, /* the target may be used; packets are answered */
	MOTE_GDB_RUNNING, /* after CONTINUE/STEP until a stop reply: only 0x03 is looked at */
	MOTE_GDB_ENDED,   /* after an exit reply, KILL or DETACH: no target access */
};

/* One connection's state. Large (about 41 KiB): embed it, do not put it on a small stack. */
struct mote_gdb_session {
	const struct mote_gdb_target_ops *ops;
	void *ctx;
	enum mote_gdb_run_state run;
	bool noack;
	/* Receiving a packet. */
	uint8_t rx_state;
	bool rx_escape, rx_bad;
	uint8_t rx_sum, rx_hi;
	size_t rx_raw; /* bytes between '$' and '#' so far, escapes included */
	size_t pkt_len;
	uint8_t pkt[MOTE_GDB_PACKET_MAX];
	/* The last packet sent, framed ('$' ... "#cc"), resent on a '-'. Replies are built in
	 * place at last + 1. */
	size_t last_len;
	uint8_t last[MOTE_GDB_PACKET_MAX + 4];
	/* The reply to '?'. */
	size_t stop_len;
	char stop[160];
	uint8_t mem[MOTE_GDB_PACKET_MAX / 2];
};

/* Starts a connection with the guest stopped ('?' answers "T05thread:1;"). */
void mote_gdb_session_init(struct mote_gdb_session *s, const struct mote_gdb_target_ops *ops,
                           void *ctx);

/* Feeds bytes received from gdb: takes them until a packet asks for an action, a 0x03 arrives
 * while the guest runs, or `out` has no room for another reply, and returns that action (or
 * MOTE_GDB_NONE). *consumed says how many bytes were taken: the caller sends `out`, acts, and
 * feeds the rest (in + *consumed) again. Replies and acks are appended to `out`. While the
 * guest runs, bytes other than 0x03 are dropped, as gdb sends nothing else then. */
enum mote_gdb_action mote_gdb_feed(struct mote_gdb_session *s, const uint8_t *in, size_t len,
                                   size_t *consumed, struct mote_gdb_buf *out);

/* The guest stopped with gdb signal `signo` (5 SIGTRAP, 11 SIGSEGV, 2 SIGINT...); `swbreak`: at
 * a software breakpoint, rip already moved back to the int3's address. Appends
 * "T05thread:1;06:<rbp>;07:<rsp>;10:<rip>;[swbreak:;]" to `out` (or only records it for '?'
 * when out is NULL, as before gdb asked anything) and takes packets again. */
void mote_gdb_stop_reply(struct mote_gdb_session *s, int signo, bool swbreak,
                         struct mote_gdb_buf *out);

/* The call ended: `status` >= 0, it returned ("W" status & 0xff, W00 normally); < 0, a fault
 * ended it with gdb signal -status ("X0b" for -11). Appends the reply (out may be NULL);
 * afterwards requests that need the guest get E01. */
void mote_gdb_exit_reply(struct mote_gdb_session *s, int status, struct mote_gdb_buf *out);

/* The target description served as qXfer:features:read:target.xml (NUL-terminated). */
const char *mote_gdb_target_xml(void);

#endif
