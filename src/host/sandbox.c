/* Sandbox lifecycle and calls: create from an ELF, run the guest's init,
 * call guest functions, serve host calls, forward output, report faults.
 * Everything the guest wrote is untrusted: it is read only through
 * mote_guest_ptr() and validated before use. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/wire.h"
#include "host/elf.h"
#include "host/gdb_stub.h"
#include "host/internal.h"
#include "host/mapping.h"

/* Fail and poison: the guest's state can no longer be trusted. */
#define POISON(sb, code, ...) (((sb)->poisoned = true), mote_sandbox_fail(sb, code, __VA_ARGS__))

/* ---- Interruption: a signal kicks the running guest ---- */
static __thread struct mote_sandbox *thread_sb;
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int interrupt_signal;

static void on_interrupt_signal(int sig)
{
	(void)sig;
	struct mote_sandbox *sb = thread_sb;
	if (sb)
		sb->be->kick(sb);
}

static void install_signal_handler(void)
{
	interrupt_signal = MOTE_INTERRUPT_SIGNAL;
	struct sigaction old;
	if (sigaction(interrupt_signal, NULL, &old) == 0 && old.sa_handler != SIG_DFL &&
	    old.sa_handler != SIG_IGN)
		return; /* the application handles it; its handler still interrupts the run */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(interrupt_signal, &sa, NULL);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int arm_timeout(struct mote_sandbox *sb)
{
	if (!sb->cfg.timeout_us)
		return 0;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	if (!sb->have_timer || sb->timer_tid != tid) {
		if (sb->have_timer)
			timer_delete(sb->timer);
		sb->have_timer = false;
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = interrupt_signal;
		sev._sigev_un._tid = tid;
		if (timer_create(CLOCK_MONOTONIC, &sev, &sb->timer) < 0)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "timer_create: %s",
						 strerror(errno));
		sb->have_timer = true;
		sb->timer_tid = tid;
	}
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(sb->cfg.timeout_us / 1000000u);
	its.it_value.tv_nsec = (long)(sb->cfg.timeout_us % 1000000u) * 1000;
	timer_settime(sb->timer, 0, &its, NULL);
	sb->timer_armed = true;
	return 0;
}

static void disarm_timeout(struct mote_sandbox *sb)
{
	if (!sb->timer_armed)
		return;
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	timer_settime(sb->timer, 0, &its, NULL);
	sb->timer_armed = false;
}

static int begin_run(struct mote_sandbox *sb, uint64_t *deadline)
{
	pthread_mutex_lock(&sb->run_lock);
	sb->running = true;
	sb->dbg.have_stop = false;
	sb->run_thread = pthread_self();
	__atomic_store_n(&sb->cancel, 0, __ATOMIC_SEQ_CST);
	sb->be->clear_kick(sb);
	pthread_mutex_unlock(&sb->run_lock);
	thread_sb = sb;
	/* Under gdb a call waits for a person: no timeout. */
	*deadline = sb->cfg.timeout_us && !sb->gdb ? now_us() + sb->cfg.timeout_us : 0;
	sb->deadline_us = *deadline; /* for host functions that wait */
	return sb->gdb ? 0 : arm_timeout(sb);
}

static void end_run(struct mote_sandbox *sb)
{
	disarm_timeout(sb);
	pthread_mutex_lock(&sb->run_lock);
	sb->running = false;
	pthread_mutex_unlock(&sb->run_lock);
	thread_sb = NULL;
}

int mote_sandbox_interrupt(mote_sandbox *sb)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_interrupt: no sandbox");
	pthread_mutex_lock(&sb->run_lock);
	if (sb->running) {
		/* Order matters: cancel before the kick, so a runner that clears
		 * a kick always sees the cancel when it re-checks. */
		__atomic_store_n(&sb->cancel, 1, __ATOMIC_SEQ_CST);
		sb->be->kick(sb);
		pthread_kill(sb->run_thread, interrupt_signal);
	}
	pthread_mutex_unlock(&sb->run_lock);
	return 0;
}

/* ---- Output ---- */
static void default_output(void *user, mote_log_level level, const char *text, size_t len)
{
	(void)user;
	static const char *const names[] = {"", "error", "warn", "info", "debug"};
	if (level == MOTE_LOG_PRINT || level == MOTE_LOG_STDERR)
		fprintf(stderr, "%.*s", (int)len, text);
	else
		fprintf(stderr, "[guest %s] %.*s\n", names[level], (int)len, text);
}

/* The guest SDK writes these numbers into log records (mote/guest.h). */
_Static_assert(MOTE_LOG_PRINT == 0 && MOTE_LOG_DEBUG == 4 && MOTE_LOG_STDERR == 5,
	       "log levels are guest ABI");

static void drain_log(struct mote_sandbox *sb)
{
	struct mote_log_hdr *h = mote_guest_ptr(sb, sb->layout.log_buf, sizeof(*h));
	if (!h || (!h->used && !h->dropped))
		return;
	uint64_t cap = sb->layout.log_size - sizeof(*h);
	uint64_t used = h->used < cap ? h->used : cap;
	const uint8_t *p = (const uint8_t *)(h + 1);
	uint64_t off = 0;
	while (off + sizeof(struct mote_log_rec) <= used) {
		struct mote_log_rec rec;
		memcpy(&rec, p + off, sizeof(rec));
		off += sizeof(rec);
		if (rec.len > used - off)
			break; /* torn or forged record: stop, the guest only hurts itself */
		mote_log_level level = rec.level <= MOTE_LOG_STDERR ? rec.level : MOTE_LOG_INFO;
		if (level == MOTE_LOG_STDERR && !sb->cfg.output_streams)
			level = MOTE_LOG_PRINT; /* callbacks that know one stream */
		sb->cfg.output(sb->cfg.output_user, level, (const char *)p + off, rec.len);
		off += rec.len;
	}
	if (h->dropped) {
		char note[64];
		int n = snprintf(note, sizeof(note), "%u guest log messages dropped", h->dropped);
		sb->cfg.output(sb->cfg.output_user, MOTE_LOG_WARN, note, (size_t)n);
	}
	h->used = 0;
	h->dropped = 0;
	mote_sandbox_mark_written(sb, sb->layout.log_buf, sizeof(*h));
}

/* ---- Messages ---- */
struct msg_view {
	const uint8_t *base;
	const struct mote_msg *hdr;
	const struct mote_wire_value *vals;
	uint32_t size;
};

/* Validate a message the guest left in the output buffer. */
static int read_guest_msg(struct mote_sandbox *sb, uint32_t kind, struct msg_view *v,
			  const char **why)
{
	const struct mote_msg *m = mote_guest_ptr(sb, sb->layout.out_buf, sizeof(*m));
	*why = NULL;
	if (!m || m->magic != MOTE_MSG_MAGIC)
		*why = "bad message magic";
	else if (m->kind != kind)
		*why = "unexpected message kind";
	else if (m->size < sizeof(*m) || m->size > sb->layout.out_size)
		*why = "message size outside the output buffer";
	else if (kind != MOTE_MSG_INIT &&
		 (m->nvals > MOTE_MAX_ARGS ||
		  sizeof(*m) + (uint64_t)m->nvals * sizeof(struct mote_wire_value) > m->size))
		*why = "value count does not fit the message";
	else if ((uint64_t)m->name_off + m->name_len > m->size ||
		 (m->name_len && m->name_off < sizeof(*m)))
		*why = "name outside the message";
	if (*why)
		return -MOTE_EPROTOCOL;
	v->base = (const uint8_t *)m;
	v->hdr = m;
	v->vals = (const struct mote_wire_value *)(m + 1);
	v->size = m->size;
	if (kind == MOTE_MSG_INIT)
		return 0;
	for (uint32_t i = 0; i < m->nvals; i++) {
		const struct mote_wire_value *w = &v->vals[i];
		if (w->type == MOTE_VOID || w->type >= MOTE_TYPE_COUNT_) {
			*why = "invalid value type";
			return -MOTE_EPROTOCOL;
		}
		if ((w->type == MOTE_STRING || w->type == MOTE_BYTES) &&
		    (w->bits > m->size || w->len > m->size - w->bits)) {
			*why = "string or bytes outside the message";
			return -MOTE_EPROTOCOL;
		}
	}
	return 0;
}

/* Build a host->guest message at `dst` (capacity `cap`). Strings are sent
 * NUL-terminated. Returns the size, or -MOTE_ETOOBIG. */
static int64_t write_host_msg(uint8_t *dst, uint64_t cap, uint32_t kind, int32_t status,
			      uint32_t index, const mote_value *vals, size_t n)
{
	uint64_t size = sizeof(struct mote_msg) + n * sizeof(struct mote_wire_value);
	if (size > cap)
		return -MOTE_ETOOBIG;
	struct mote_msg *m = (struct mote_msg *)dst;
	struct mote_wire_value *w = (struct mote_wire_value *)(m + 1);
	for (size_t i = 0; i < n; i++) {
		const mote_value *v = &vals[i];
		w[i].type = v->type;
		w[i].len = 0;
		switch (v->type) {
		case MOTE_STRING:
		case MOTE_BYTES: {
			uint64_t len = v->v.buf.len;
			uint64_t need = len + (v->type == MOTE_STRING);
			if (len > UINT32_MAX || need > cap - size)
				return -MOTE_ETOOBIG;
			if (len)
				memcpy(dst + size, v->v.buf.ptr, len);
			if (v->type == MOTE_STRING)
				dst[size + len] = 0;
			w[i].bits = size;
			w[i].len = (uint32_t)len;
			size += need;
			break;
		}
		default:
			w[i].bits = mote_wire_scalar(v);
			break;
		}
	}
	m->magic = MOTE_MSG_MAGIC;
	m->kind = kind;
	m->size = (uint32_t)size;
	m->nvals = (uint32_t)n;
	m->status = status;
	m->index = index;
	m->name_off = m->name_len = 0;
	return (int64_t)size;
}

/* ---- Host calls ---- */
void *mote_hostcall_scratch(mote_sandbox *sb, size_t size)
{
	if (!sb)
		return NULL;
	if (sb->nscratch == sb->scratch_cap) {
		size_t cap = sb->scratch_cap ? sb->scratch_cap * 2 : 8;
		void **v = mote_realloc(sb->scratch, cap * sizeof(*v));
		if (!v)
			return NULL;
		sb->scratch = v;
		sb->scratch_cap = cap;
	}
	void *p = mote_malloc(size);
	if (p)
		sb->scratch[sb->nscratch++] = p;
	return p;
}

static void free_scratch(struct mote_sandbox *sb)
{
	for (size_t i = 0; i < sb->nscratch; i++)
		mote_free(sb->scratch[i]);
	sb->nscratch = 0;
}

static void sig_from_wire(const struct msg_view *v, struct mote_sig *sig, char *name, size_t cap)
{
	size_t len = v->hdr->name_len < cap - 1 ? v->hdr->name_len : cap - 1;
	memcpy(name, v->base + v->hdr->name_off, len);
	name[len] = 0;
	sig->name = name;
	sig->ret = v->hdr->index < MOTE_TYPE_COUNT_ ? (mote_type)v->hdr->index : MOTE_TYPE_COUNT_;
	sig->nargs = (uint8_t)v->hdr->nvals;
	for (uint32_t i = 0; i < v->hdr->nvals; i++)
		sig->args[i] = (mote_type)v->vals[i].type;
}

static int reply_hostcall(struct mote_sandbox *sb, int32_t status, const mote_value *result)
{
	uint64_t off = sb->hostresult_off;
	uint8_t *dst = mote_guest_ptr(sb, sb->layout.in_buf + off, sb->layout.in_size - off);
	int64_t n = write_host_msg(dst, sb->layout.in_size - off, MOTE_MSG_HOSTRESULT, status, 0,
				   result, result ? 1 : 0);
	if (n < 0 && result) /* result too large: tell the guest so */
		n = write_host_msg(dst, sb->layout.in_size - off, MOTE_MSG_HOSTRESULT,
				   -MOTE_ETOOBIG, 0, NULL, 0);
	if (n > 0)
		mote_sandbox_mark_written(sb, sb->layout.in_buf + off, (uint64_t)n);
	return n < 0 ? (int)n : 0;
}

static void note_hostcall_error(struct mote_sandbox *sb, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note_hostcall_error(struct mote_sandbox *sb, int code, const char *fmt, ...)
{
	if (sb->hostcall_error)
		return; /* report the first one */
	sb->hostcall_error = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sb->hostcall_error_text, sizeof(sb->hostcall_error_text), fmt, ap);
	va_end(ap);
}

static int handle_hostcall(struct mote_sandbox *sb)
{
	struct msg_view v;
	const char *why;
	if (read_guest_msg(sb, MOTE_MSG_HOSTCALL, &v, &why))
		return POISON(sb, -MOTE_EPROTOCOL, "guest broke the call protocol: host call: %s",
			      why);
	char name[MOTE_MAX_NAME + 1];
	struct mote_sig called;
	if (v.hdr->name_len == 0 || v.hdr->name_len > MOTE_MAX_NAME)
		return POISON(sb, -MOTE_EPROTOCOL,
			      "guest broke the call protocol: host call: bad name length %u",
			      v.hdr->name_len);
	sig_from_wire(&v, &called, name, sizeof(name));

	const struct mote_host_fn_entry *e =
		mote_host_functions_find(&sb->host_fns, name, v.hdr->name_len);
	if (!e) {
		note_hostcall_error(sb, -MOTE_ENOFUNC, "guest called unknown host function '%s'",
				    name);
		return reply_hostcall(sb, -MOTE_ENOFUNC, NULL);
	}
	if (!mote_sig_equal(&e->sig, &called)) {
		char want[256], got[256];
		mote_sig_format(&e->sig, want, sizeof(want));
		mote_sig_format(&called, got, sizeof(got));
		note_hostcall_error(sb, -MOTE_ESIGNATURE,
				    "guest called host function '%s' as '%s'", want, got);
		return reply_hostcall(sb, -MOTE_ESIGNATURE, NULL);
	}

	mote_value args[MOTE_MAX_ARGS];
	for (uint32_t i = 0; i < v.hdr->nvals; i++) {
		mote_wire_decode(&v.vals[i], v.base, &args[i]);
		if (args[i].type == MOTE_STRING) {
			/* Callbacks get C strings; the guest's copy is not terminated. */
			char *s = mote_hostcall_scratch(sb, args[i].v.buf.len + 1);
			if (!s) {
				free_scratch(sb);
				return reply_hostcall(sb, -MOTE_ENOMEM, NULL);
			}
			memcpy(s, args[i].v.buf.ptr, args[i].v.buf.len);
			s[args[i].v.buf.len] = 0;
			args[i].v.buf.ptr = s;
		}
	}
	mote_value result;
	memset(&result, 0, sizeof(result));
	result.type = e->sig.ret;
	int rc = e->fn(e->user, sb, args, v.hdr->nvals, &result);
	if (rc > 0)
		rc = -MOTE_EHOSTFUNC;
	if (rc == 0 && result.type != e->sig.ret) {
		note_hostcall_error(sb, -MOTE_EHOSTFUNC,
				    "host function '%s' returned %s, declared %s", e->sig.name,
				    mote_type_name(result.type), mote_type_name(e->sig.ret));
		rc = -MOTE_EHOSTFUNC;
	}
	rc = reply_hostcall(sb, rc, rc == 0 && result.type != MOTE_VOID ? &result : NULL);
	free_scratch(sb);
	return rc;
}

int mote_sandbox_create_guest(struct mote_sandbox *sb, uint64_t core_end)
{
	return sb->be->create(sb, core_end);
}

/* ---- Faults ---- */
static const char *const exception_names[32] = {
	[0] = "#DE (divide error)",
	[1] = "#DB (debug)",
	[2] = "NMI",
	[3] = "#BP (breakpoint)",
	[4] = "#OF (overflow)",
	[5] = "#BR (bound range)",
	[6] = "#UD (invalid opcode)",
	[7] = "#NM (device not available)",
	[8] = "#DF (double fault)",
	[10] = "#TS (invalid TSS)",
	[11] = "#NP (segment not present)",
	[12] = "#SS (stack fault)",
	[13] = "#GP (general protection)",
	[14] = "#PF (page fault)",
	[16] = "#MF (x87 floating point)",
	[17] = "#AC (alignment check)",
	[18] = "#MC (machine check)",
	[19] = "#XM (SIMD floating point)",
	[20] = "#VE (virtualization)",
	[21] = "#CP (control protection)",
};

static int report_exception(struct mote_sandbox *sb, const struct mote_event *ev)
{
	unsigned vector = ev->vector < 32 ? ev->vector : 31;
	const char *name = exception_names[vector] ? exception_names[vector] : "reserved";
	unsigned long long rip = ev->rip, error = ev->error_code, addr = ev->addr;

	if (vector == 14) {
		const struct mote_layout *l = &sb->layout;
		if (addr >= l->stack_base - MOTE_PAGE_SIZE && addr < l->stack_base)
			return POISON(sb, -MOTE_EFAULT,
				      "stack overflow: access to guard page at 0x%llx (rip 0x%llx, "
				      "rsp 0x%llx)",
				      addr, rip, (unsigned long long)ev->rsp);
		const char *access = (error & 0x10) ? "execute" : (error & 2) ? "write" : "read";
		/* The error code does not say which permission failed: a CPL 3
		 * write to a writable supervisor page sets the same bits as one
		 * to a read-only user page. The page's own flags do. */
		uint64_t pte = mote_layout_leaf_pte(sb->mem, sb->mem_size, addr);
		/* From the page tables, not the error code's present bit: a
		 * backend without them (processes) sees no page at all where
		 * KVM sees a supervisor page. */
		const char *cause = !(pte & MOTE_PTE_PRESENT)               ? "page not mapped"
				    : (error & 4) && !(pte & MOTE_PTE_USER) ? "page is not user-accessible"
				    : (error & 0x10)                         ? "page not executable"
				    : (error & 2)                            ? "page is read-only"
									     : "protection violation";
		return POISON(sb, -MOTE_EFAULT,
			      "memory access violation: %s at 0x%llx (%s; rip 0x%llx)", access, addr,
			      cause, rip);
	}
	if (ev->has_error_code)
		return POISON(sb, -MOTE_EEXCEPTION,
			      "guest exception %s at rip 0x%llx (error code 0x%llx)", name, rip,
			      error);
	return POISON(sb, -MOTE_EEXCEPTION, "guest exception %s at rip 0x%llx", name, rip);
}

static int report_abort(struct mote_sandbox *sb)
{
	struct msg_view v;
	const char *why;
	if (read_guest_msg(sb, MOTE_MSG_ABORT, &v, &why))
		return POISON(sb, -MOTE_EABORT, "guest aborted (malformed abort message: %s)",
			      why);
	return POISON(sb, -MOTE_EABORT, "guest aborted: code %d: %.*s", v.hdr->status,
		      (int)(v.hdr->name_len > 400 ? 400 : v.hdr->name_len),
		      (const char *)v.base + v.hdr->name_off);
}

/* A guest access where no memory is. */
static int report_no_memory(struct mote_sandbox *sb, const struct mote_event *ev)
{
	const char *access = ev->write ? "write" : "read";
	unsigned long long addr = ev->addr, rip = ev->rip;
	const struct mote_file_map *m = mote_mapping_at(sb, ev->addr);
	if (m && ev->write)
		return POISON(sb, -MOTE_EFAULT,
			      "memory access violation: write at 0x%llx (read-only mapping of %s; "
			      "rip 0x%llx)",
			      addr, m->path, rip);
	if (addr >= MOTE_MAP_BASE && addr < MOTE_MAP_LIMIT)
		return POISON(sb, -MOTE_EFAULT,
			      "memory access violation: %s at 0x%llx (no file is mapped there; "
			      "rip 0x%llx)",
			      access, addr, rip);
	return POISON(sb, -MOTE_EFAULT,
		      "memory access violation: %s at 0x%llx (not guest memory; rip 0x%llx)", access,
		      addr, rip);
}

/* Run the guest until it reports DONE (0) or fails (negative, detail set). */
static int run_guest(struct mote_sandbox *sb)
{
	uint64_t deadline;
	int rc = begin_run(sb, &deadline);
	if (rc)
		return rc;
	for (;;) {
		struct mote_event ev;
		rc = sb->be->run(sb, &ev);
		if (rc) {
			sb->poisoned = true;
			break;
		}
		drain_log(sb);
		if (sb->gdb) {
			int r = mote_gdb_event(sb, &ev, &rc);
			if (r == MOTE_GDB_EVENT_RESUME)
				continue;
			if (r == MOTE_GDB_EVENT_END)
				break;
		}
		if (ev.kind == MOTE_EVENT_EXIT) {
			if (ev.port == MOTE_PORT_DONE) {
				rc = 0;
				break;
			}
			if (ev.port == MOTE_PORT_HOSTCALL) {
				rc = handle_hostcall(sb);
				if (rc && sb->poisoned)
					break;
				continue;
			}
			if (ev.port == MOTE_PORT_LOG)
				continue;
			if (ev.port == MOTE_PORT_ABORT) {
				mote_debug_capture(sb, NULL, SIGABRT);
				rc = report_abort(sb);
				break;
			}
			rc = POISON(sb, -MOTE_EPROTOCOL, "unexpected exit: OUT to port 0x%x",
				    ev.port);
			break;
		}
		if (ev.kind == MOTE_EVENT_INTERRUPTED) {
			if (__atomic_load_n(&sb->cancel, __ATOMIC_SEQ_CST)) {
				rc = POISON(sb, -MOTE_ECANCELLED, "call cancelled by interrupt");
				break;
			}
			if (deadline && now_us() >= deadline) {
				mote_debug_capture(sb, NULL, SIGXCPU);
				rc = POISON(sb, -MOTE_ETIMEDOUT, "call exceeded its timeout of %llu us",
					    (unsigned long long)sb->cfg.timeout_us);
				break;
			}
			/* Spurious: clear, then re-check what an interrupter may have set. */
			sb->be->clear_kick(sb);
			if (__atomic_load_n(&sb->cancel, __ATOMIC_SEQ_CST))
				sb->be->kick(sb);
			continue;
		}
		switch (ev.kind) {
		case MOTE_EVENT_EXCEPTION:
			mote_debug_capture(sb, &ev, mote_core_signal(ev.vector));
			rc = report_exception(sb, &ev);
			break;
		case MOTE_EVENT_NO_MEMORY:
			mote_debug_capture(sb, &ev, SIGSEGV);
			rc = report_no_memory(sb, &ev);
			break;
		case MOTE_EVENT_SHUTDOWN:
			rc = POISON(sb, -MOTE_EEXCEPTION, "guest triple fault (CPU shutdown)");
			break;
		default:
			rc = POISON(sb, -MOTE_EPROTOCOL, "unexpected exit: %s", ev.detail);
			break;
		}
		break;
	}
	end_run(sb);
	if (rc)
		mote_debug_report(sb);
	return rc;
}

/* ---- Creation ---- */
static int read_directory(struct mote_sandbox *sb)
{
	struct msg_view v;
	const char *why;
	if (read_guest_msg(sb, MOTE_MSG_INIT, &v, &why))
		return POISON(sb, -MOTE_EPROTOCOL, "guest init: malformed function directory: %s",
			      why);
	uint32_t n = v.hdr->nvals;
	if (n > 65536 || sizeof(struct mote_msg) + (uint64_t)n * sizeof(struct mote_wire_fn) > v.size)
		return POISON(sb, -MOTE_EPROTOCOL,
			      "guest init: function directory of %u entries does not fit", n);
	sb->fns = mote_calloc(n ? n : 1, sizeof(sb->fns[0]));
	if (!sb->fns)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	const struct mote_wire_fn *w = (const struct mote_wire_fn *)(v.hdr + 1);
	for (uint32_t i = 0; i < n; i++) {
		struct mote_wire_fn f;
		memcpy(&f, &w[i], sizeof(f));
		if (f.name_len == 0 || f.name_len > MOTE_MAX_NAME ||
		    (uint64_t)f.name_off + f.name_len > v.size || f.nargs > MOTE_MAX_ARGS ||
		    f.ret >= MOTE_TYPE_COUNT_)
			return POISON(sb, -MOTE_EPROTOCOL,
				      "guest init: function directory entry %u is malformed", i);
		struct mote_sig *s = &sb->fns[i];
		s->name = mote_malloc(f.name_len + 1);
		if (!s->name)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
		memcpy(s->name, v.base + f.name_off, f.name_len);
		s->name[f.name_len] = 0;
		sb->nfns = i + 1;
		if (strlen(s->name) != f.name_len)
			return POISON(sb, -MOTE_EPROTOCOL,
				      "guest init: function name %u contains NUL", i);
		s->ret = (mote_type)f.ret;
		s->nargs = f.nargs;
		for (unsigned a = 0; a < f.nargs; a++) {
			if (f.args[a] == MOTE_VOID || f.args[a] >= MOTE_TYPE_COUNT_)
				return POISON(sb, -MOTE_EPROTOCOL,
					      "guest init: function '%s' has an invalid argument type",
					      s->name);
			s->args[a] = (mote_type)f.args[a];
		}
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(sb->fns[j].name, s->name) == 0)
				return POISON(sb, -MOTE_EPROTOCOL,
					      "guest init: function '%s' is declared twice",
					      s->name);
	}
	return 0;
}

struct mote_sandbox *mote_sandbox_alloc(const mote_config *config,
					const mote_host_functions *host_functions, int *rc)
{
	struct mote_sandbox *sb = mote_calloc(1, sizeof(*sb));
	if (!sb) {
		*rc = mote_fail(-MOTE_ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&sb->run_lock, NULL);
	if (config)
		sb->cfg = *config;
	else
		mote_config_defaults(&sb->cfg);
	/* The config's string stays the config's: the sandbox keeps its own. */
	sb->cfg.core_dump_dir = NULL;
	sb->dbg.gdb_port = sb->cfg.gdb_port;
	if (config && config->core_dump_dir && !(sb->dbg.core_dir = mote_strdup(config->core_dump_dir))) {
		pthread_mutex_destroy(&sb->run_lock);
		mote_free(sb);
		*rc = mote_fail(-MOTE_ENOMEM, "out of memory");
		return NULL;
	}
	if (!sb->cfg.output) {
		sb->cfg.output = default_output;
		sb->cfg.output_streams = true;
	}
	char why[512] = "";
	*rc = mote_backend_resolve(sb->cfg.backend, &sb->be, why, sizeof(why));
	if (*rc)
		mote_fail(*rc, "%s", why);
	else if ((*rc = mote_host_functions_copy(host_functions, &sb->host_fns)))
		mote_fail(*rc, "%s", mote_strerror(*rc));
	if (*rc) {
		pthread_mutex_destroy(&sb->run_lock);
		mote_free(sb->dbg.core_dir);
		mote_free(sb);
		return NULL;
	}
	pthread_once(&signal_once, install_signal_handler);
	return sb;
}

/* The page bitmaps and their summaries, in one block. For a large guest
 * it is an anonymous mapping: pages of it that stay zero, most of them for
 * a guest that touches little, are neither allocated nor cleared (a 1 GiB
 * guest's bitmaps are 32 KiB each: three cost ~20 us to allocate and clear
 * at every start). Small ones come from the allocator: a mapping costs
 * more than they do. */
#define BITMAPS_MAPPED_FROM (64u << 10)
int mote_sandbox_alloc_bitmaps(struct mote_sandbox *sb)
{
	uint64_t pages = sb->mem_size / MOTE_PAGE_SIZE;
	sb->bitmap_words = (size_t)((pages + 63) / 64);
	sb->summary_words = mote_summary_words(sb->bitmap_words);
	size_t bytes = (4 * sb->bitmap_words + 2 * sb->summary_words) * sizeof(uint64_t);
	void *m;
	if (bytes < BITMAPS_MAPPED_FROM) {
		m = mote_calloc(1, bytes);
	} else {
		sb->bitmaps_len = (bytes + MOTE_PAGE_SIZE - 1) & ~(size_t)(MOTE_PAGE_SIZE - 1);
		m = mmap(NULL, sb->bitmaps_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		         -1, 0);
		if (m == MAP_FAILED)
			m = NULL;
	}
	if (!m) {
		sb->bitmaps_len = 0;
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	}
	sb->bitmaps = m;
	sb->touched = m;
	sb->dirty = sb->touched + sb->bitmap_words;
	sb->collected = sb->dirty + sb->bitmap_words;
	sb->dirty_log = sb->collected + sb->bitmap_words;
	sb->dirty_summary = sb->dirty_log + sb->bitmap_words;
	sb->collected_summary = sb->dirty_summary + sb->summary_words;
	return 0;
}

int mote_sandbox_settle(struct mote_sandbox *sb)
{
	int rc = sb->be->settle(sb);
	if (rc)
		sb->poisoned = true;
	return rc;
}

/* Map the whole pages of a read-only segment straight from the guest file
 * (zero copy, shared by every sandbox of this guest); copy the rest. */
static int load_segment(struct mote_sandbox *sb, const void *elf, int fd,
			const struct mote_elf_segment *s)
{
	uint64_t mapped = 0;
	if (fd >= 0 && !(s->flags & MOTE_SEG_W) && s->vaddr % MOTE_PAGE_SIZE == 0 &&
	    s->offset % MOTE_PAGE_SIZE == 0) {
		mapped = s->filesz & ~(MOTE_PAGE_SIZE - 1);
		if (mapped && mmap(sb->mem + s->vaddr, mapped, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_FIXED, fd, (off_t)s->offset) == MAP_FAILED)
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "cannot map guest segment: %s",
						 strerror(errno));
		if (mapped && !sb->be->shares_host_memory) {
			int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (dup < 0)
				return mote_sandbox_fail(sb, -MOTE_ENOMEM, "fcntl: %s",
							 strerror(errno));
			int rc = mote_sandbox_add_piece(sb, s->vaddr, mapped, dup, s->offset, true);
			if (rc)
				return rc;
		}
	}
	memcpy(sb->mem + s->vaddr + mapped, (const uint8_t *)elf + s->offset + mapped,
	       s->filesz - mapped);
	mote_sandbox_mark_written(sb, s->vaddr, s->memsz);
	return 0;
}

static int sandbox_create(const char *path, const void *elf, size_t len, int fd,
			  const mote_config *config, const mote_host_functions *host_functions,
			  mote_sandbox **out);

int mote_sandbox_add_piece(struct mote_sandbox *sb, uint64_t gpa, uint64_t size, int fd,
			   uint64_t offset, bool owned)
{
	if (sb->npieces == sb->pieces_cap) {
		size_t cap = sb->pieces_cap ? sb->pieces_cap * 2 : 16;
		struct mote_mem_piece *v = mote_realloc(sb->pieces, cap * sizeof(*v));
		if (!v) {
			if (owned && fd >= 0)
				close(fd);
			return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
		}
		sb->pieces = v;
		sb->pieces_cap = cap;
	}
	sb->pieces[sb->npieces++] = (struct mote_mem_piece){gpa, size, offset, fd, owned};
	return 0;
}

void mote_sandbox_free_pieces(struct mote_sandbox *sb)
{
	for (size_t i = 0; i < sb->npieces; i++)
		if (sb->pieces[i].owned && sb->pieces[i].fd >= 0)
			close(sb->pieces[i].fd);
	mote_free(sb->pieces);
	sb->pieces = NULL;
	sb->npieces = sb->pieces_cap = 0;
}

/* ---- Host views of guest memory ----
 * A view is new at every start, and its first touches cost page faults and
 * the page tables under them: inside a VM whose page tables its hypervisor
 * shadows, 20-90 us for each region of a view, and a large guest's view
 * has two far apart (the system area and image at its bottom, the stack
 * and call buffers at its top). Freed views of a size are kept for the
 * next sandbox of that size (VIEW_SLOTS of them, least recently used
 * first out): reserved without access, their pages gone, and with a page
 * of reservation beside each end inside the same 2 MiB, which keeps the
 * kernel from freeing the page tables of the two regions a start touches.
 * The view begins one page into a 2 MiB block, so guest addresses below
 * 2 MiB - 4 KiB (the system area) share that block's table. */
#define VIEW_SLOTS 8
struct view_slot {
	uint8_t *res; /* the whole reservation */
	uint64_t res_len, size;
	uint64_t used; /* a clock: larger is more recent */
	bool busy;
};
static struct view_slot view_slots[VIEW_SLOTS];
static uint64_t view_clock;
static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;

static uint8_t *view_base(const struct view_slot *v)
{
	return v->res + (((uintptr_t) - (uintptr_t)v->res) & (MOTE_LARGE_PAGE_SIZE - 1)) +
	       MOTE_PAGE_SIZE;
}

static void *map_view_at(void *at, uint64_t size)
{
	return mmap(at, size, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (at ? MAP_FIXED : 0), -1, 0);
}

/* Gives back every kept view not in use: their address space counts
 * against RLIMIT_AS. true if there was any. */
static bool release_idle_views(void)
{
	struct view_slot idle[VIEW_SLOTS];
	int n = 0;
	pthread_mutex_lock(&view_lock);
	for (int i = 0; i < VIEW_SLOTS; i++) {
		if (view_slots[i].res && !view_slots[i].busy) {
			idle[n++] = view_slots[i];
			view_slots[i].res = NULL;
		}
	}
	pthread_mutex_unlock(&view_lock);
	for (int i = 0; i < n; i++)
		munmap(idle[i].res, idle[i].res_len);
	return n > 0;
}

/* Anonymous zeros, `size` bytes, readable and writable: a kept view if
 * there is one of that size, else a new one (kept when freed if a slot is
 * free or idle). MAP_FAILED if none, also after giving back the kept ones
 * (they may be what a limit on address space counted). */
static void *view_map(uint64_t size)
{
	/* A kept view of this size, the most recently used; else where a new
	 * one is kept: an empty slot, or the least recently used idle one. */
	pthread_mutex_lock(&view_lock);
	struct view_slot *v = NULL;
	for (int i = 0; i < VIEW_SLOTS; i++) {
		struct view_slot *s = &view_slots[i];
		if (!s->busy && s->res && s->size == size && (!v || s->used > v->used))
			v = s;
	}
	if (v)
		v->busy = true;
	pthread_mutex_unlock(&view_lock);
	if (v) {
		void *m = map_view_at(view_base(v), size);
		pthread_mutex_lock(&view_lock);
		v->used = ++view_clock;
		v->busy = m != MAP_FAILED;
		pthread_mutex_unlock(&view_lock);
		if (m != MAP_FAILED)
			return m;
	}
	uint64_t res_len = size + MOTE_LARGE_PAGE_SIZE + 2 * MOTE_PAGE_SIZE;
	uint8_t *res =
	    mmap(NULL, res_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) { /* no room for the reserve: a plain view */
		void *plain = map_view_at(NULL, size);
		return plain == MAP_FAILED && release_idle_views() ? map_view_at(NULL, size)
		                                                   : plain;
	}
	struct view_slot fresh = {res, res_len, size, 0, true};
	uint8_t *m = map_view_at(view_base(&fresh), size);
	if (m == MAP_FAILED) {
		munmap(res, res_len);
		return m;
	}
	struct view_slot old = {0};
	bool kept = false;
	pthread_mutex_lock(&view_lock);
	struct view_slot *slot = NULL;
	for (int i = 0; i < VIEW_SLOTS; i++) {
		struct view_slot *s = &view_slots[i];
		if (s->busy)
			continue;
		if (!s->res) {
			slot = s;
			break;
		}
		if (!slot || s->used < slot->used)
			slot = s;
	}
	if (slot) {
		old = *slot;
		fresh.used = ++view_clock;
		*slot = fresh;
		kept = true;
	}
	pthread_mutex_unlock(&view_lock);
	if (old.res)
		munmap(old.res, old.res_len);
	if (!kept) { /* every slot busy: a plain view, unmapped whole when freed */
		munmap(res, (uint64_t)(m - res));
		munmap(m + size, (uint64_t)(res + res_len - (m + size)));
	}
	return m;
}

static void view_unmap(void *mem, uint64_t size)
{
	pthread_mutex_lock(&view_lock);
	for (int i = 0; i < VIEW_SLOTS; i++) {
		struct view_slot *s = &view_slots[i];
		if (s->busy && s->res && view_base(s) == mem && s->size == size) {
			/* Its pages go, its reservation stays. */
			void *r =
			    mmap(mem, size, PROT_NONE,
			         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
			if (r == MAP_FAILED) {
				munmap(s->res, s->res_len);
				s->res = NULL;
			}
			s->busy = false;
			pthread_mutex_unlock(&view_lock);
			return;
		}
	}
	pthread_mutex_unlock(&view_lock);
	munmap(mem, size);
}

void mote_sandbox_unmap_memory(struct mote_sandbox *sb)
{
	if (sb->mem)
		view_unmap(sb->mem, sb->mem_size);
	sb->mem = NULL;
}

int mote_sandbox_map_memory(struct mote_sandbox *sb, bool image)
{
	/* A backend that runs the guest elsewhere maps what the host writes
	 * here from a memfd (an image), up to the heap, which the host never
	 * writes before the guest runs: the heap stays anonymous zeros there
	 * too, which reads map as the zero page (a memfd's holes would each
	 * become a page of its own) and the write tracking tells from written
	 * pages without a lookup. Otherwise plain anonymous memory.
	 * MAP_NORESERVE: untouched guest memory costs nothing. */
	int fd = -1;
	uint64_t image_size = 0;
	if (image && !sb->be->shares_host_memory) {
		image_size = sb->layout.heap_base && sb->layout.heap_base < sb->mem_size
				     ? sb->layout.heap_base
				     : sb->mem_size;
		fd = memfd_create("mote-image", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)image_size) < 0) {
			if (fd >= 0)
				close(fd);
			return mote_sandbox_fail(sb, -MOTE_ENOMEM,
						 "cannot create %llu bytes of guest memory: %s",
						 (unsigned long long)image_size, strerror(errno));
		}
	}
	void *mem = view_map(sb->mem_size);
	if (mem != MAP_FAILED && fd >= 0 &&
	    mmap(mem, image_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
		    MAP_FAILED) {
		view_unmap(mem, sb->mem_size);
		mem = MAP_FAILED;
	}
	if (mem == MAP_FAILED) {
		if (fd >= 0)
			close(fd);
		return mote_sandbox_fail(sb, -MOTE_ENOMEM,
					 "cannot map %llu bytes of guest memory: %s",
					 (unsigned long long)sb->mem_size, strerror(errno));
	}
	sb->mem = mem;
	mote_sandbox_advise_heap(sb);
	if (fd < 0)
		return mote_sandbox_add_piece(sb, 0, sb->mem_size, -1, 0, false);
	int rc = mote_sandbox_add_piece(sb, 0, image_size, fd, 0, true);
	if (!rc && image_size < sb->mem_size)
		rc = mote_sandbox_add_piece(sb, image_size, sb->mem_size - image_size, -1, 0, false);
	return rc;
}

void mote_sandbox_advise_heap(struct mote_sandbox *sb)
{
	if (!sb->cfg.huge_pages)
		return;
	uint64_t start = (sb->layout.heap_base + MOTE_LARGE_PAGE_SIZE - 1) &
			 ~(MOTE_LARGE_PAGE_SIZE - 1);
	if (start < sb->mem_size)
		madvise(sb->mem + start, sb->mem_size - start, MADV_HUGEPAGE);
}

int mote_sandbox_new_from_buffer(const void *elf, size_t len, const mote_config *config,
				 const mote_host_functions *host_functions, mote_sandbox **out)
{
	return sandbox_create(NULL, elf, len, -1, config, host_functions, out);
}

static int sandbox_create(const char *path, const void *elf, size_t len, int fd,
			  const mote_config *config, const mote_host_functions *host_functions,
			  mote_sandbox **out)
{
	if (!out || !elf) {
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_new_from_buffer: no %s",
		                 !elf ? "ELF" : "out");
	}
	*out = NULL;
	int rc;
	struct mote_sandbox *sb = mote_sandbox_alloc(config, host_functions, &rc);
	if (!sb)
		return rc;
	struct mote_elf_image img;
	rc = mote_elf_parse(elf, len, &img, sb->err, sizeof(sb->err));
	if (rc)
		goto fail;
	sb->abi_version = img.abi_version;
	sb->image_size = img.image_end - MOTE_IMAGE_BASE;
	rc = mote_debug_set_guest(sb, path, fd, img.entry);
	if (rc)
		goto fail;
	rc = mote_layout_compute(&sb->cfg, img.image_end, &sb->layout, sb->err, sizeof(sb->err));
	if (rc)
		goto fail;
	sb->mem_size = sb->layout.mem_size;
	rc = mote_sandbox_map_memory(sb, true);
	if (rc)
		goto fail;
	rc = mote_sandbox_alloc_bitmaps(sb);
	if (rc)
		goto fail;
	for (unsigned i = 0; i < img.nsegments; i++) {
		rc = load_segment(sb, elf, fd, &img.segments[i]);
		if (rc)
			goto fail;
	}
	uint64_t system_end;
	rc = mote_layout_write_system(sb->mem, &sb->layout, &img, &system_end, sb->err,
				      sizeof(sb->err));
	if (rc)
		goto fail;
	mote_sandbox_mark_written(sb, MOTE_GDT_ADDR, system_end - MOTE_GDT_ADDR);
	rc = mote_sandbox_create_guest(sb, sb->layout.heap_base + MOTE_LARGE_PAGE_SIZE);
	if (rc)
		goto fail;
	/* The boot info now says how to exit (a shared page on backends that
	 * copy guest memory elsewhere). */
	struct mote_boot_info *bi = mote_guest_ptr(sb, MOTE_BOOTINFO_ADDR, sizeof(*bi));
	bi->exit_entry = sb->exit_entry;
	struct mote_cpu_state st;
	mote_layout_initial_state(&sb->layout, img.entry, &st);
	rc = sb->be->set_state(sb, &st);
	if (rc)
		goto fail;
	sb->hostresult_off = 0;
	rc = run_guest(sb);
	if (rc == 0)
		rc = read_directory(sb);
	if (rc) {
		char detail[sizeof(sb->err)];
		snprintf(detail, sizeof(detail), "%s", sb->err);
		rc = mote_sandbox_fail(sb, rc, "guest init failed: %.900s", detail);
		goto fail;
	}
	sb->poisoned = false;
	sb->err[0] = 0;
	*out = sb;
	return 0;
fail:
	mote_fail(rc, "%s", sb->err); /* the sandbox, and its detail, go */
	mote_sandbox_free(sb);
	return rc;
}

int mote_sandbox_new(const char *path, const mote_config *config,
		     const mote_host_functions *host_functions, mote_sandbox **out)
{
	if (!path || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_new: no %s", !path ? "path" : "out");
	}
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return mote_fail(errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO, "cannot open %s: %s",
		                 path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mote_fail(-MOTE_EIO, "%s is not a regular file", path);
	}
	if (st.st_size == 0) {
		close(fd);
		return mote_fail(-MOTE_EBADELF, "%s: empty file, not an ELF", path);
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		int rc = mote_fail(-MOTE_EIO, "cannot map %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	int rc = sandbox_create(path, p, (size_t)st.st_size, fd, config, host_functions, out);
	munmap(p, (size_t)st.st_size);
	close(fd);
	return rc;
}

void mote_sandbox_free(mote_sandbox *sb)
{
	if (!sb)
		return;
	mote_mappings_clear(sb);
	if (sb->be)
		sb->be->destroy(sb);
	mote_sandbox_free_pieces(sb);
	mote_sandbox_unmap_memory(sb);
	if (sb->have_timer)
		timer_delete(sb->timer);
	for (size_t i = 0; i < sb->nfns; i++)
		mote_free(sb->fns[i].name);
	mote_free(sb->fns);
	mote_host_functions_clear(&sb->host_fns);
	free_scratch(sb);
	mote_free(sb->scratch);
	mote_free(sb->result_buf);
	if (sb->bitmaps_len)
		munmap(sb->bitmaps, sb->bitmaps_len);
	else
		mote_free(sb->bitmaps);
	if (sb->ext && sb->ext->free)
		sb->ext->free(sb->ext_state);
	mote_snapshot_release(sb->base);
	mote_debug_free(sb);
	pthread_mutex_destroy(&sb->run_lock);
	mote_free(sb);
}

/* ---- Calls ---- */
static const struct mote_sig *find_function(const struct mote_sandbox *sb, const char *name,
					    uint32_t *index)
{
	for (size_t i = 0; i < sb->nfns; i++) {
		if (strcmp(sb->fns[i].name, name) == 0) {
			*index = (uint32_t)i;
			return &sb->fns[i];
		}
	}
	return NULL;
}

static int check_args(struct mote_sandbox *sb, const struct mote_sig *sig, const mote_value *args,
		      size_t nargs)
{
	bool ok = nargs == sig->nargs;
	for (size_t i = 0; ok && i < nargs; i++)
		ok = args[i].type == sig->args[i];
	if (ok)
		return 0;
	char want[256], got[256] = "(";
	mote_sig_format(sig, want, sizeof(want));
	size_t n = 1;
	for (size_t i = 0; i < nargs && n < sizeof(got); i++)
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? ", " : "",
				      mote_type_name(args[i].type));
	if (n < sizeof(got))
		snprintf(got + n, sizeof(got) - n, ")");
	return mote_sandbox_fail(sb, -MOTE_ESIGNATURE, "function '%s' called with %s", want, got);
}

static int take_result(struct mote_sandbox *sb, const struct mote_sig *sig, mote_value *result)
{
	struct msg_view v;
	const char *why;
	if (read_guest_msg(sb, MOTE_MSG_RESULT, &v, &why))
		return POISON(sb, -MOTE_EPROTOCOL, "guest broke the call protocol: result: %s",
			      why);
	int32_t status = v.hdr->status;
	if (status == -MOTE_EGUEST)
		return mote_sandbox_fail(sb, -MOTE_EGUEST, "guest function '%s' failed: %.*s",
					 sig->name, (int)(v.hdr->name_len > 400 ? 400 : v.hdr->name_len),
					 (const char *)v.base + v.hdr->name_off);
	if (status == -MOTE_ETOOBIG)
		return mote_sandbox_fail(sb, -MOTE_ETOOBIG,
					 "result of '%s' does not fit the %llu-byte output buffer",
					 sig->name, (unsigned long long)sb->layout.out_size);
	if (status != 0)
		return POISON(sb, -MOTE_EPROTOCOL,
			      "guest broke the call protocol: result status %d", status);
	if (sb->hostcall_error)
		return mote_sandbox_fail(sb, sb->hostcall_error, "%s", sb->hostcall_error_text);
	uint32_t want = sig->ret == MOTE_VOID ? 0 : 1;
	if (v.hdr->nvals != want || (want && v.vals[0].type != (uint32_t)sig->ret))
		return POISON(sb, -MOTE_EPROTOCOL,
			      "guest broke the call protocol: result is not a %s",
			      mote_type_name(sig->ret));
	if (!result)
		return 0;
	memset(result, 0, sizeof(*result));
	result->type = sig->ret;
	if (!want)
		return 0;
	mote_wire_decode(&v.vals[0], v.base, result);
	if (result->type == MOTE_STRING || result->type == MOTE_BYTES) {
		/* Copy out: the guest may reuse its buffer on the next call. */
		size_t len = result->v.buf.len;
		if (len + 1 > sb->result_cap) {
			uint8_t *p = mote_realloc(sb->result_buf, len + 1);
			if (!p)
				return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
			sb->result_buf = p;
			sb->result_cap = len + 1;
		}
		memcpy(sb->result_buf, result->v.buf.ptr, len);
		sb->result_buf[len] = 0;
		result->v.buf.ptr = sb->result_buf;
	}
	return 0;
}

int mote_sandbox_call(mote_sandbox *sb, const char *name, const mote_value *args, size_t nargs,
		      mote_value *result)
{
	if (!sb || !name || (nargs && !args)) {
		const char *why = !sb     ? "no sandbox"
				  : !name ? "no function name"
					  : "arguments missing for nargs > 0";
		return sb ? mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_sandbox_call: %s", why)
			  : mote_fail(-MOTE_EINVAL, "mote_sandbox_call: %s", why);
	}
	if (sb->poisoned)
		return mote_sandbox_fail(sb, -MOTE_EPOISONED,
					 "sandbox is poisoned by an earlier guest failure");
	sb->err[0] = 0;
	uint32_t index;
	const struct mote_sig *sig = find_function(sb, name, &index);
	if (!sig)
		return mote_sandbox_fail(sb, -MOTE_ENOFUNC, "no guest function '%s'", name);
	int rc = check_args(sb, sig, args, nargs);
	if (rc)
		return rc;
	uint8_t *in = mote_guest_ptr(sb, sb->layout.in_buf, sb->layout.in_size);
	int64_t size =
		write_host_msg(in, sb->layout.in_size, MOTE_MSG_CALL, 0, index, args, nargs);
	if (size < 0)
		return mote_sandbox_fail(sb, -MOTE_ETOOBIG,
					 "arguments of '%s' do not fit the %llu-byte input buffer",
					 name, (unsigned long long)sb->layout.in_size);
	/* Under gdb the guest exits with `out`: a single step never enters
	 * the process backend's stub. */
	((struct mote_msg *)in)->exit_entry = sb->dbg.gdb_port ? 0 : sb->exit_entry;
	mote_sandbox_mark_written(sb, sb->layout.in_buf, (uint64_t)size);
	sb->hostresult_off = ((uint64_t)size + 15) & ~15ull;
	sb->hostcall_error = 0;
	if (sb->dbg.gdb_port && (rc = mote_gdb_attach(sb)))
		return rc;
	rc = run_guest(sb);
	if (sb->gdb)
		mote_gdb_detach(sb, rc);
	if (!rc)
		rc = take_result(sb, sig, result);
	if (rc == -MOTE_EPROTOCOL)
		sb->protocol_broken = true;
	return rc;
}

/* ---- Introspection ---- */
const char *mote_sandbox_last_error(const mote_sandbox *sb)
{
	return sb ? sb->err : "";
}

bool mote_sandbox_poisoned(const mote_sandbox *sb)
{
	return sb && sb->poisoned;
}

size_t mote_sandbox_function_count(const mote_sandbox *sb)
{
	return sb ? sb->nfns : 0;
}

int mote_sandbox_function(const mote_sandbox *sb, size_t index, mote_function_info *out)
{
	if (!sb || !out)
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_function: no %s",
		                 !sb ? "sandbox" : "out");
	if (index >= sb->nfns)
		return mote_sandbox_fail((struct mote_sandbox *)sb, -MOTE_EINVAL,
		                         "mote_sandbox_function: index %zu, the guest has %zu "
		                         "functions",
		                         index, sb->nfns);
	const struct mote_sig *s = &sb->fns[index];
	out->name = s->name;
	out->ret = s->ret;
	out->nargs = s->nargs;
	out->args = s->args;
	return 0;
}

int mote_sandbox_memory_info(const mote_sandbox *sb, mote_memory_info *out)
{
	if (!sb || !out)
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_memory_info: no %s",
		                 !sb ? "sandbox" : "out");
	out->mem_size = sb->mem_size;
	out->image_size = sb->image_size;
	out->heap_size = sb->layout.heap_size;
	out->stack_size = sb->layout.stack_size;
	out->input_size = sb->layout.in_size;
	out->output_size = sb->layout.out_size;
	out->abi_version = sb->abi_version;
	return 0;
}

void *mote__sandbox_guest_memory(mote_sandbox *sb, uint64_t *size)
{
	*size = sb->mem_size;
	return sb->mem;
}

int mote__sandbox_read_memory(mote_sandbox *sb, uint64_t gpa, void *buf, uint64_t len)
{
	if (!mote_guest_ptr(sb, gpa, len))
		return -MOTE_EINVAL;
	struct mote_mem_copy c = {gpa, buf, len};
	return sb->be->read(sb, &c, 1);
}
