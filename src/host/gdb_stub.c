/* The gdb remote stub: a call of a sandbox whose configuration names a gdb
 * port stops before the guest's first instruction of the call and waits for
 * `target remote :PORT` on 127.0.0.1. gdb then drives the stopped guest
 * through the protocol engine (gdb_proto.c): registers, memory, software
 * breakpoints, continue and single-step. The call's result is what it
 * would have been without gdb, unless gdb changed the guest's state.
 *
 * Breakpoints are int3 bytes written into guest code (the backend's poke:
 * code is read-only to the guest only); the guest's #BP comes back as an
 * exception event one byte past it. A single step sets the trap flag and
 * comes back as #DB. Both backends deliver both, as they deliver every
 * other exception. While gdb is attached the guest exits with `out` rather
 * than by calling the process backend's stub, so a step never enters the
 * stub's code. Every breakpoint is taken out again when the call ends. */
#include "host/gdb_stub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/gdb_proto.h"
#include "host/internal.h"

#define MAX_BREAKPOINTS 64
#define RFLAGS_TF       0x100ull
#define INT3            0xcc

struct breakpoint {
	uint64_t addr;
	uint8_t orig;
};

struct mote_gdb_stub {
	int conn;
	struct mote_gdb_session session;
	struct mote_gdb_buf out;
	uint8_t in[4096];
	size_t in_off, in_len;
	struct breakpoint bps[MAX_BREAKPOINTS];
	size_t nbps;
	/* The stopped guest's registers as gdb sees them; written back on
	 * resume when gdb changed them or a step needs the trap flag. */
	struct mote_cpu_state st;
	bool st_changed;
	bool stepping;
	bool detached;
	int last_signal; /* of a fault gdb was shown, for the exit reply */
};

static struct breakpoint *find_bp(struct mote_gdb_stub *g, uint64_t addr)
{
	for (size_t i = 0; i < g->nbps; i++)
		if (g->bps[i].addr == addr)
			return &g->bps[i];
	return NULL;
}

/* ---- The target gdb_proto.c drives: the stopped guest ---- */
static int t_get_regs(void *ctx, struct mote_cpu_state *st)
{
	struct mote_sandbox *sb = ctx;
	*st = sb->gdb->st;
	st->rflags |= 0x202; /* IF and the reserved bit, as the CPU shows them */
	return 0;
}

static int t_set_regs(void *ctx, const struct mote_cpu_state *st)
{
	struct mote_sandbox *sb = ctx;
	sb->gdb->st = *st;
	sb->gdb->st.rflags &= MOTE_RFLAGS_GUEST;
	sb->gdb->st_changed = true;
	return 0;
}

/* Guest RAM only: the mapping window holds host files, not guest state. */
static bool in_ram(struct mote_sandbox *sb, uint64_t addr, size_t len)
{
	return len && mote_guest_ptr(sb, addr, len) != NULL;
}

static int t_read_mem(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct mote_sandbox *sb = ctx;
	if (!in_ram(sb, addr, len))
		return -1;
	struct mote_mem_copy c = {addr, buf, len};
	if (sb->be->read(sb, &c, 1))
		return -1;
	/* gdb sees the code, not our int3 bytes. */
	for (size_t i = 0; i < sb->gdb->nbps; i++) {
		const struct breakpoint *b = &sb->gdb->bps[i];
		if (b->addr >= addr && b->addr - addr < len)
			((uint8_t *)buf)[b->addr - addr] = b->orig;
	}
	return 0;
}

static int t_write_mem(void *ctx, uint64_t addr, const void *buf, size_t len)
{
	struct mote_sandbox *sb = ctx;
	struct mote_gdb_stub *g = sb->gdb;
	if (!in_ram(sb, addr, len))
		return -1;
	struct mote_mem_copy c = {addr, (void *)buf, len};
	/* Code is written the way breakpoints are; gdb gets an E reply, the
	 * call's detail stays the call's. */
	char keep[sizeof(sb->err)];
	memcpy(keep, sb->err, sizeof(keep));
	int rc = sb->be->write(sb, &c, 1) ? sb->be->poke(sb, addr, buf, len) : 0;
	memcpy(sb->err, keep, sizeof(keep));
	if (rc)
		return -1;
	mote_sandbox_mark_written(sb, addr, len);
	for (size_t i = 0; i < g->nbps; i++) {
		struct breakpoint *b = &g->bps[i];
		if (b->addr >= addr && b->addr - addr < len) {
			uint8_t int3 = INT3;
			b->orig = ((const uint8_t *)buf)[b->addr - addr];
			if (sb->be->poke(sb, b->addr, &int3, 1))
				return -1;
		}
	}
	return 0;
}

static int t_insert_bp(void *ctx, uint64_t addr)
{
	struct mote_sandbox *sb = ctx;
	struct mote_gdb_stub *g = sb->gdb;
	if (find_bp(g, addr))
		return 0;
	if (g->nbps == MAX_BREAKPOINTS || !in_ram(sb, addr, 1))
		return -1;
	uint8_t orig, int3 = INT3;
	struct mote_mem_copy c = {addr, &orig, 1};
	if (sb->be->read(sb, &c, 1) || sb->be->poke(sb, addr, &int3, 1))
		return -1;
	mote_sandbox_mark_written(sb, addr, 1);
	g->bps[g->nbps++] = (struct breakpoint){addr, orig};
	return 0;
}

static int t_remove_bp(void *ctx, uint64_t addr)
{
	struct mote_sandbox *sb = ctx;
	struct mote_gdb_stub *g = sb->gdb;
	struct breakpoint *b = find_bp(g, addr);
	if (!b)
		return 0;
	if (sb->be->poke(sb, addr, &b->orig, 1))
		return -1;
	*b = g->bps[--g->nbps];
	return 0;
}

static const struct mote_gdb_target_ops target_ops = {
    .get_regs = t_get_regs,
    .set_regs = t_set_regs,
    .read_mem = t_read_mem,
    .write_mem = t_write_mem,
    .insert_breakpoint = t_insert_bp,
    .remove_breakpoint = t_remove_bp,
};

/* gdb numbers signals its own way; they differ from Linux's for SIGBUS. */
static int gdb_signal(int linux_signo)
{
	return linux_signo == SIGBUS ? 10 : linux_signo;
}

/* ---- The connection ---- */
/* 0 or an errno value. */
static int send_raw(struct mote_gdb_stub *g)
{
	size_t off = 0, len = g->out.len;
	const uint8_t *data = g->out.data;
	int e = 0;
	while (!e && off < len) {
		ssize_t n = send(g->conn, data + off, len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n == 0 || errno != EINTR)
			e = n < 0 ? errno : EPIPE;
	}
	g->out.len = 0;
	return e;
}

static int send_out(struct mote_sandbox *sb)
{
	int e = send_raw(sb->gdb);
	return e ? mote_sandbox_fail(sb, -MOTE_EIO, "gdb connection lost: %s", strerror(e)) : 0;
}

/* Serve packets until gdb resumes the guest (or kills or detaches). */
static int serve(struct mote_sandbox *sb, enum mote_gdb_action *action)
{
	struct mote_gdb_stub *g = sb->gdb;
	for (;;) {
		size_t used = 0;
		enum mote_gdb_action a = mote_gdb_feed(&g->session, g->in + g->in_off,
		                                       g->in_len - g->in_off, &used, &g->out);
		g->in_off += used;
		int rc = send_out(sb);
		if (rc)
			return rc;
		if (a != MOTE_GDB_NONE && a != MOTE_GDB_INTERRUPT) {
			*action = a;
			return 0;
		}
		if (g->in_off < g->in_len)
			continue;
		ssize_t n = recv(g->conn, g->in, sizeof(g->in), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return mote_sandbox_fail(sb, -MOTE_EIO, "gdb connection lost: %s",
			                         n < 0 ? strerror(errno) : "closed");
		g->in_off = 0;
		g->in_len = (size_t)n;
	}
}

static void remove_all_breakpoints(struct mote_sandbox *sb)
{
	struct mote_gdb_stub *g = sb->gdb;
	while (g->nbps)
		if (t_remove_bp(sb, g->bps[0].addr))
			g->nbps--; /* the guest is gone: nothing left to restore */
}

/* gdb said how to go on: apply it to the guest. 1: run it; 0: the call
 * ends (rc set). */
static int resume(struct mote_sandbox *sb, enum mote_gdb_action a, int *rc)
{
	struct mote_gdb_stub *g = sb->gdb;
	if (a == MOTE_GDB_KILL) {
		*rc = mote_sandbox_fail(sb, -MOTE_ECANCELLED, "call killed from gdb");
		sb->poisoned = true;
		return 0;
	}
	g->stepping = a == MOTE_GDB_STEP;
	if (a == MOTE_GDB_DETACH) {
		remove_all_breakpoints(sb);
		g->detached = true;
	}
	bool had_tf = g->st.rflags & RFLAGS_TF;
	g->st.rflags = (g->st.rflags & ~RFLAGS_TF) | (g->stepping ? RFLAGS_TF : 0);
	if (g->st_changed || g->stepping || had_tf) {
		*rc = sb->be->set_state(sb, &g->st);
		if (*rc) {
			sb->poisoned = true;
			return 0;
		}
	}
	g->st_changed = false;
	return 1;
}

/* A stop: tell gdb, serve it, go on as it says. */
static int stop(struct mote_sandbox *sb, int signo, bool swbreak, int *rc)
{
	struct mote_gdb_stub *g = sb->gdb;
	mote_gdb_stop_reply(&g->session, gdb_signal(signo), swbreak, &g->out);
	enum mote_gdb_action a;
	*rc = send_out(sb);
	if (!*rc)
		*rc = serve(sb, &a);
	if (*rc) {
		sb->poisoned = true;
		return 0;
	}
	return resume(sb, a, rc);
}

static int listen_on(struct mote_sandbox *sb, int port, int *out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mote_sandbox_fail(sb, -MOTE_EIO, "gdb stub: socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never beyond this machine */
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		int e = errno;
		close(fd);
		return mote_sandbox_fail(sb, -MOTE_EIO,
		                         "gdb stub: cannot listen on 127.0.0.1:%d: %s", port,
		                         strerror(e));
	}
	*out = fd;
	return 0;
}

int mote_gdb_attach(struct mote_sandbox *sb)
{
	struct mote_gdb_stub *g = mote_calloc(1, sizeof(*g));
	if (!g)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	g->conn = -1;
	sb->gdb = g;
	/* The guest waits at its last exit: complete it, so that the state
	 * gdb sees and changes is the guest's own. */
	int lfd = -1;
	int rc = mote_sandbox_settle(sb);
	if (!rc)
		rc = sb->be->get_state(sb, &g->st);
	if (!rc)
		rc = listen_on(sb, sb->dbg.gdb_port, &lfd);
	while (!rc) {
		g->conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (g->conn >= 0 || errno != EINTR)
			break;
	}
	if (!rc && g->conn < 0)
		rc = mote_sandbox_fail(sb, -MOTE_EIO, "gdb stub: accept: %s", strerror(errno));
	if (lfd >= 0)
		close(lfd); /* one debugger per call */
	if (!rc) {
		int one = 1;
		setsockopt(g->conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		mote_gdb_session_init(&g->session, &target_ops, sb);
		enum mote_gdb_action a;
		rc = serve(sb, &a);
		if (!rc && !resume(sb, a, &rc) && !rc)
			rc = -MOTE_ECANCELLED;
	}
	if (rc) {
		/* Once gdb is connected it may have changed the guest. */
		if (g->conn >= 0)
			sb->poisoned = true;
		mote_gdb_detach(sb, rc);
	}
	return rc;
}

int mote_gdb_event(struct mote_sandbox *sb, const struct mote_event *ev, int *rc)
{
	struct mote_gdb_stub *g = sb->gdb;
	*rc = 0;
	if (g->detached)
		return MOTE_GDB_EVENT_NOT_MINE;
	if (ev->kind == MOTE_EVENT_EXCEPTION && (ev->vector == 1 || ev->vector == 3)) {
		/* Ours: a breakpoint we set (rip is one past it) or the step. */
		bool bp = ev->vector == 3 && find_bp(g, ev->rip - 1);
		bool step = ev->vector == 1 && g->stepping;
		if (bp || step) {
			if (mote_event_state(sb, ev, &g->st)) {
				*rc = -MOTE_EBACKEND;
				return MOTE_GDB_EVENT_END;
			}
			g->st.rip -= bp; /* onto the int3 */
			g->st.rflags = ev->rflags & ~RFLAGS_TF;
			g->st_changed = true; /* rip moved back; the stub frame is not the guest */
			g->stepping = false;
			return stop(sb, SIGTRAP, bp, rc) ? MOTE_GDB_EVENT_RESUME
			                                 : MOTE_GDB_EVENT_END;
		}
	}
	if (ev->kind == MOTE_EVENT_EXCEPTION || ev->kind == MOTE_EVENT_NO_MEMORY) {
		/* A fault ends the call; gdb sees it first, where it happened. */
		if (mote_event_state(sb, ev, &g->st) == 0) {
			int signo = ev->kind == MOTE_EVENT_NO_MEMORY ? SIGSEGV
			                                             : mote_core_signal(ev->vector);
			g->last_signal = signo;
			/* Whatever gdb says next, the call ends with the fault. */
			mote_gdb_stop_reply(&g->session, gdb_signal(signo), false, &g->out);
			enum mote_gdb_action a;
			int e = send_raw(g);
			char keep[sizeof(sb->err)];
			memcpy(keep, sb->err, sizeof(keep));
			if (!e)
				serve(sb, &a);
			memcpy(sb->err, keep, sizeof(keep)); /* the fault's detail, not gdb's */
		}
		g->detached = true;
		return MOTE_GDB_EVENT_NOT_MINE;
	}
	return MOTE_GDB_EVENT_NOT_MINE;
}

void mote_gdb_detach(struct mote_sandbox *sb, int rc)
{
	struct mote_gdb_stub *g = sb->gdb;
	if (!g)
		return;
	remove_all_breakpoints(sb);
	if (g->conn >= 0) {
		/* gdb says "exited normally", or "terminated with signal ...". */
		int signo = g->last_signal ? g->last_signal : SIGKILL;
		mote_gdb_exit_reply(&g->session, rc == 0 ? 0 : -gdb_signal(signo), &g->out);
		send_raw(g);
		close(g->conn);
	}
	mote_free(g);
	sb->gdb = NULL;
}
