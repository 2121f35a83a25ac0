/* The gdb remote stub (gdb_stub.c): a call stops before its first guest
 * instruction and is driven by gdb over 127.0.0.1:PORT. */
#ifndef MOTE_HOST_GDB_STUB_H
#define MOTE_HOST_GDB_STUB_H

struct mote_sandbox;
struct mote_event;

/* Before the call runs: wait for gdb (sb->dbg.gdb_port) and serve it until
 * it resumes the guest. Sets sb->gdb; on failure the sandbox is poisoned
 * and sb->gdb is gone. */
int mote_gdb_attach(struct mote_sandbox *sb);

enum mote_gdb_event_result {
	MOTE_GDB_EVENT_NOT_MINE, /* handle it as without gdb */
	MOTE_GDB_EVENT_RESUME,   /* a breakpoint or a step, served: run on */
	MOTE_GDB_EVENT_END,      /* gdb ended the call: *rc says how */
};
/* Each event of the call while gdb is attached. */
int mote_gdb_event(struct mote_sandbox *sb, const struct mote_event *ev, int *rc);
/* The call ended with `rc`: tell gdb, take every breakpoint out, close. */
void mote_gdb_detach(struct mote_sandbox *sb, int rc);

#endif
