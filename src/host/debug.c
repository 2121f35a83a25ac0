/* Debugging guests: when a call ends in a fault, an abort or a timeout, the
 * detail names the guest code it stopped in, with a short backtrace
 * ("... in store_through (guest.c:12), called from middle+0x8 (guest.c:19)"),
 * from the guest ELF's symbols, line table and CFI, and a core file is
 * written if the configuration asks for one.
 *
 * The guest ELF is found by the path recorded when the sandbox was created
 * (or in the snapshot file it started from) and used only if its SHA-256
 * still matches: symbols from another build would name the wrong code. */
#include "host/debug.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/internal.h"
#include "host/symbolize.h"

/* Frames named in a detail; a core file has them all. */
#define DETAIL_FRAMES 6
/* A guest ELF larger than this is not read for symbols. */
#define MAX_GUEST_ELF (256u << 20)

static int sha256(const void *p, size_t n, uint8_t md[32])
{
	return EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL) ? 0 : -MOTE_ENOMEM;
}

/* The file's identity as the verification cache takes it: a file with the
 * same device, inode, size and change time has the same bytes. */
static void file_id(const struct stat *st, uint64_t id[4])
{
	id[0] = (uint64_t)st->st_dev;
	id[1] = (uint64_t)st->st_ino;
	id[2] = (uint64_t)st->st_size;
	id[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

int mote_debug_set_guest(struct mote_sandbox *sb, const char *path, int fd, uint64_t entry)
{
	struct mote_debug *d = &sb->dbg;
	d->entry = entry;
	struct stat st;
	if (!path || fd < 0 || fstat(fd, &st) < 0)
		return 0; /* from a buffer: nothing to find the ELF by later */
	/* Hashed when first needed (a snapshot, a fault), not at every start. */
	file_id(&st, d->file_id);
	char abs[PATH_MAX];
	d->guest_path = mote_strdup(realpath(path, abs) ? abs : path);
	if (!d->guest_path)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	return 0;
}

int mote_debug_set_guest_id(struct mote_sandbox *sb, const char *path, const uint8_t sha256_[32])
{
	struct mote_debug *d = &sb->dbg;
	if (!path)
		return 0;
	d->guest_path = mote_strdup(path);
	if (!d->guest_path)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	memcpy(d->guest_sha256, sha256_, 32);
	d->have_hash = true;
	return 0;
}

int mote_event_state(struct mote_sandbox *sb, const struct mote_event *ev,
                     struct mote_cpu_state *st)
{
	int rc = sb->be->get_state(sb, st);
	if (!rc && ev && ev->rip) {
		st->rip = ev->rip;
		st->gpr[4] = ev->rsp;
		if (ev->rflags)
			st->rflags = ev->rflags;
	}
	return rc;
}

void mote_debug_capture(struct mote_sandbox *sb, const struct mote_event *ev, int signo)
{
	struct mote_debug *d = &sb->dbg;
	d->have_stop = mote_event_state(sb, ev, &d->stop.cpu) == 0;
	d->stop.signo = signo;
}

/* Read the file at the recorded path and check it is the guest: by its
 * hash, or before there is one by the identity it had when the sandbox was
 * made (then the hash is taken); and its entry point for the core's
 * auxiliary vector. */
static int check_guest_file(struct mote_debug *d)
{
	int fd = open(d->guest_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > MAX_GUEST_ELF) {
		snprintf(d->sym_error, sizeof(d->sym_error), "cannot read %s%s%s", d->guest_path,
		         fd < 0 ? ": " : "", fd < 0 ? strerror(errno) : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = mote_malloc(len ? len : 1);
	size_t got = 0;
	while (buf && got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	uint8_t md[32];
	uint64_t id[4];
	file_id(&st, id);
	int rc = -1;
	if (!buf || got != len || sha256(buf, len, md))
		snprintf(d->sym_error, sizeof(d->sym_error), "cannot read %s", d->guest_path);
	else if (d->have_hash ? memcmp(md, d->guest_sha256, 32) != 0
	                      : memcmp(id, d->file_id, sizeof(id)) != 0)
		snprintf(d->sym_error, sizeof(d->sym_error),
		         "%s is not the guest binary this memory came from", d->guest_path);
	else {
		if (!d->have_hash)
			memcpy(d->guest_sha256, md, 32);
		d->have_hash = true;
		Elf64_Ehdr eh;
		if (!d->entry && len >= sizeof(eh)) {
			memcpy(&eh, buf, sizeof(eh));
			d->entry = eh.e_entry;
		}
		rc = 0;
	}
	mote_free(buf);
	return rc;
}

int mote_debug_guest_hash(struct mote_debug *d)
{
	if (d->have_hash)
		return 0;
	return d->guest_path ? check_guest_file(d) : -1;
}

static struct mote_symbolizer *symbolizer(struct mote_debug *d)
{
	if (d->sym_tried)
		return d->sym;
	d->sym_tried = true;
	if (!d->guest_path) {
		snprintf(d->sym_error, sizeof(d->sym_error),
		         "the guest binary's path is not known");
		return NULL;
	}
	if (check_guest_file(d))
		return NULL;
	char err[128];
	if (mote_symbolizer_open(d->guest_path, &d->sym, err, sizeof(err))) {
		snprintf(d->sym_error, sizeof(d->sym_error), "%s: %s", d->guest_path, err);
		d->sym = NULL;
	}
	return d->sym;
}

static int read_guest_u64(void *ctx, uint64_t addr, uint64_t *out)
{
	struct mote_sandbox *sb = ctx;
	if (!mote_guest_ptr(sb, addr, sizeof(*out)))
		return -1;
	struct mote_mem_copy c = {addr, out, sizeof(*out)};
	return sb->be->read(sb, &c, 1);
}

/* Append to the detail, on the sandbox and the thread. */
__attribute__((format(printf, 2, 3))) static void append_detail(struct mote_sandbox *sb,
                                                                const char *fmt, ...)
{
	size_t n = strlen(sb->err);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sb->err + n, sizeof(sb->err) - n, fmt, ap);
	va_end(ap);
	mote_set_last_error("%s", sb->err);
}

static unsigned core_seq;

void mote_debug_report(struct mote_sandbox *sb)
{
	struct mote_debug *d = &sb->dbg;
	if (!d->have_stop)
		return;
	struct mote_symbolizer *s = symbolizer(d);
	if (s) {
		uint64_t pcs[DETAIL_FRAMES];
		const struct mote_cpu_state *c = &d->stop.cpu;
		size_t n = mote_backtrace(s, c->rip, c->gpr[4], c->gpr[5], read_guest_u64, sb, pcs,
		                          DETAIL_FRAMES);
		char where[400];
		mote_backtrace_format(s, pcs, n, where, sizeof(where));
		append_detail(sb, " in %s", where);
	} else if (d->guest_path) {
		append_detail(sb, "; no symbols: %s", d->sym_error);
	}
	if (d->core_dir) {
		char path[PATH_MAX], err[256];
		unsigned seq = __atomic_add_fetch(&core_seq, 1, __ATOMIC_RELAXED);
		snprintf(path, sizeof(path), "%s/core.mote.%d.%u", d->core_dir, (int)getpid(), seq);
		d->stop.entry = d->entry;
		d->stop.guest_path = d->guest_path;
		if (mote_core_dump_path(sb, &d->stop, path, true, err, sizeof(err)) == 0)
			append_detail(sb, "; core dumped to %s", path);
		else
			append_detail(sb, "; no core dump: %s", err);
	}
}

int mote_sandbox_core_dump(mote_sandbox *sb, const char *path)
{
	if (!sb || !path)
		return mote_fail(-MOTE_EINVAL, "mote_sandbox_core_dump: no %s",
		                 !sb ? "sandbox" : "path");
	if (sb->running)
		return mote_sandbox_fail(sb, -MOTE_EBUSY,
		                         "mote_sandbox_core_dump: a call is running");
	struct mote_debug *d = &sb->dbg;
	struct mote_core_state cs = {.signo = 0};
	if (sb->poisoned && d->have_stop) {
		cs = d->stop; /* where it stopped, not where a dead guest sits */
	} else if (sb->be->get_state(sb, &cs.cpu)) {
		return mote_sandbox_fail(
		    sb, -MOTE_EBACKEND,
		    "mote_sandbox_core_dump: cannot read the guest's registers: %s", sb->err);
	}
	if (!d->entry && d->guest_path)
		symbolizer(d); /* reads the entry point from a verified guest ELF */
	cs.entry = d->entry;
	cs.guest_path = d->guest_path;
	char err[256];
	int rc = mote_core_dump_path(sb, &cs, path, false, err, sizeof(err));
	if (rc)
		return mote_sandbox_fail(sb, rc, "mote_sandbox_core_dump: %s", err);
	return 0;
}

void mote_debug_free(struct mote_sandbox *sb)
{
	struct mote_debug *d = &sb->dbg;
	mote_symbolizer_close(d->sym);
	mote_free(d->guest_path);
	mote_free(d->core_dir);
	memset(d, 0, sizeof(*d));
}
