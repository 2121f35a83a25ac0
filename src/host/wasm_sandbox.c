/* Wasm sandboxes (include/mote/wasm.h): the Wasm runtime guest
 * (src/guest-wasm/runtime.c: mote's WebAssembly engine built as a guest) is
 * embedded in libmote, booted once per process and size configuration, and
 * snapshotted; every Wasm sandbox starts from that snapshot. Modules, calls
 * and exports travel through the runtime's guest functions (wasm_load,
 * wasm_call, wasm_exports, wasm_run), whose replies carry an i32 status
 * (0 or -MOTE_E*) and then the payload or the error text.
 *
 * Everything in a reply is guest-written and untrusted: lengths, counts and
 * types are checked before use, statuses must be known error codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/wasm_abi.h"
#include "host/wasm_int.h"
#include "mote/wasm.h"

/* The runtime guest, embedded at build time (mk/50-wasm-runtime.mk). */
#ifndef MOTE_WASM_RUNTIME_ELF
#error "MOTE_WASM_RUNTIME_ELF must name the runtime guest ELF to embed"
#endif
extern const unsigned char mote_wasm_runtime_elf[];
extern const unsigned char mote_wasm_runtime_elf_end[];
__asm__(".section .rodata\n"
	".balign 16\n"
	".globl mote_wasm_runtime_elf\n"
	".hidden mote_wasm_runtime_elf\n"
	"mote_wasm_runtime_elf:\n"
	".incbin \"" MOTE_WASM_RUNTIME_ELF "\"\n"
	".globl mote_wasm_runtime_elf_end\n"
	".hidden mote_wasm_runtime_elf_end\n"
	"mote_wasm_runtime_elf_end:\n"
	".previous\n");

#define REC_SIZE MOTE_WASM_REC_SIZE
/* What the Wasm layer keeps with a sandbox, through the core's extension
 * point (struct mote_sandbox_ext): made at first use. */
struct wasm_state {
	/* mote_wasm_unload() only sets this; the restore to the runtime
	 * snapshot happens at the next load. */
	bool unload_pending;
	struct mote_wasi_stdio stdio; /* standard input, what fds 0-2 are (wasi_host.c) */
	struct mote_wasi_fs *fs;      /* preopened directories, open files (wasi_fs.c) */
	/* A compiled module's sandbox: its state before the module was loaded,
	 * where an unload or a poisoned sandbox goes back to. */
	mote_snapshot *base;
};

static void wasm_state_free(void *state)
{
	struct wasm_state *w = state;
	mote_free(w->stdio.stdin_data);
	mote_wasi_fs_free(w->fs);
	mote_snapshot_free(w->base);
	mote_free(w);
}

static int wasm_can_snapshot(struct mote_sandbox *sb, void *state)
{
	const struct wasm_state *w = state;
	if (w->unload_pending) /* its memory still holds the old module */
		return mote_sandbox_fail(sb, -MOTE_EBUSY,
					 "Wasm sandbox was unloaded: load a module before a snapshot");
	return 0;
}

/* A restore returns guest memory to before files were opened: the guest's
 * handles would name files it no longer knows. Preopens and write counts
 * are the sandbox's and stay. */
static void wasm_restored(struct mote_sandbox *sb, void *state)
{
	(void)sb;
	struct wasm_state *w = state;
	mote_wasi_fs_close_files(w->fs);
}

static const struct mote_sandbox_ext wasm_ext = {wasm_state_free, wasm_can_snapshot,
                                                 wasm_restored};

/* The sandbox's Wasm state; made when `create` (NULL: none yet, or out of
 * memory). */
static struct wasm_state *wasm_state_of(mote_sandbox *sb, bool create)
{
	if (sb->ext == &wasm_ext)
		return sb->ext_state;
	if (!create || sb->ext)
		return NULL;
	struct wasm_state *w = mote_calloc(1, sizeof(*w));
	if (w) {
		sb->ext = &wasm_ext;
		sb->ext_state = w;
	}
	return w;
}

struct mote_wasi_fs **mote_wasm_fs_slot(struct mote_sandbox *sb, bool create)
{
	struct wasm_state *w = wasm_state_of(sb, create);
	return w ? &w->fs : NULL;
}

struct mote_wasi_stdio *mote_wasm_stdio_of(struct mote_sandbox *sb, bool create)
{
	struct wasm_state *w = wasm_state_of(sb, create);
	return w ? &w->stdio : NULL;
}

/* ---- The runtime snapshots: one per size configuration, for the process ---- */
struct wasm_sizes {
	uint64_t heap, stack, input, output;
};

struct wasm_runtime {
	struct wasm_sizes want; /* the configuration it was booted for */
	struct wasm_sizes have; /* the sandbox's actual sizes */
	mote_snapshot *snap;
	struct wasm_runtime *next;
};

static uint64_t at_least(uint64_t v, uint64_t min)
{
	v = (v + MOTE_PAGE_SIZE - 1) & ~(MOTE_PAGE_SIZE - 1);
	return v < min ? min : v;
}

static struct wasm_sizes sizes_for(const mote_config *cfg)
{
	struct mote_config def;
	if (!cfg) {
		mote_config_defaults(&def);
		cfg = &def;
	}
	struct wasm_sizes s = {at_least(cfg->heap_size, MOTE_WASM_MIN_HEAP),
			       at_least(cfg->stack_size, MOTE_WASM_MIN_STACK),
			       at_least(cfg->input_size, MOTE_WASM_MIN_INPUT),
			       at_least(cfg->output_size, MOTE_WASM_MIN_OUTPUT)};
	return s;
}

static bool same_sizes(const struct wasm_sizes *a, const struct wasm_sizes *b)
{
	return a->heap == b->heap && a->stack == b->stack && a->input == b->input &&
	       a->output == b->output;
}

/* Boot the embedded runtime with `sizes` and snapshot it. */
static int boot_runtime(const struct wasm_sizes *sizes, struct wasm_runtime **out, char *err,
			size_t errlen)
{
	mote_config *cfg;
	mote_sandbox *sb = NULL;
	int rc = mote_config_new(&cfg);
	if (!rc)
		rc = mote_config_set_heap_size(cfg, sizes->heap);
	if (!rc)
		rc = mote_config_set_stack_size(cfg, sizes->stack);
	if (!rc)
		rc = mote_config_set_input_size(cfg, sizes->input);
	if (!rc)
		rc = mote_config_set_output_size(cfg, sizes->output);
	if (rc) {
		mote_config_free(cfg);
		snprintf(err, errlen, "Wasm runtime: sizes out of range");
		return rc;
	}
	rc = mote_sandbox_new_from_buffer(mote_wasm_runtime_elf,
					  (size_t)(mote_wasm_runtime_elf_end - mote_wasm_runtime_elf),
					  cfg, NULL, &sb);
	mote_config_free(cfg);
	if (rc) {
		snprintf(err, errlen, "cannot boot the Wasm runtime: %s", mote_last_error());
		return rc;
	}
	struct wasm_runtime *rt = mote_calloc(1, sizeof(*rt));
	if (!rt) {
		mote_sandbox_free(sb);
		snprintf(err, errlen, "out of memory");
		return -MOTE_ENOMEM;
	}
	rc = mote_sandbox_snapshot(sb, &rt->snap);
	if (rc) {
		snprintf(err, errlen, "cannot snapshot the Wasm runtime: %s",
			 mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		mote_free(rt);
		return rc;
	}
	mote_memory_info mi;
	mote_sandbox_memory_info(sb, &mi);
	mote_sandbox_free(sb); /* the snapshot keeps the memory */
	rt->want = *sizes;
	rt->have = (struct wasm_sizes){mi.heap_size, mi.stack_size, mi.input_size, mi.output_size};
	*out = rt;
	return 0;
}

/* The default configuration: booted once (pthread_once). A failure is
 * remembered: KVM that failed once is not retried by every caller. */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct wasm_runtime *default_rt;
static int default_rc;
static char default_err[512];

static void boot_default(void)
{
	struct wasm_sizes s = sizes_for(NULL);
	default_rc = boot_runtime(&s, &default_rt, default_err, sizeof(default_err));
}

/* Other configurations: a list, booted on first use. Never freed: the
 * snapshots are shared by every sandbox of their configuration. */
static pthread_mutex_t others_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wasm_runtime *others;

static bool runtime_matches(const struct wasm_runtime *rt, const struct wasm_sizes *s)
{
	return same_sizes(&rt->want, s) || same_sizes(&rt->have, s);
}

static int get_runtime(const struct wasm_sizes *s, struct wasm_runtime **out)
{
	struct wasm_sizes def = sizes_for(NULL);
	if (same_sizes(s, &def)) {
		pthread_once(&default_once, boot_default);
		if (default_rc) {
			return mote_fail(default_rc, "%s", default_err);
		}
		*out = default_rt;
		return 0;
	}
	pthread_mutex_lock(&others_lock);
	struct wasm_runtime *rt = others;
	while (rt && !runtime_matches(rt, s))
		rt = rt->next;
	int rc = 0;
	if (!rt) {
		char err[512];
		rc = boot_runtime(s, &rt, err, sizeof(err));
		if (rc)
			mote_fail(rc, "%s", err);
		else {
			rt->next = others;
			others = rt;
		}
	}
	pthread_mutex_unlock(&others_lock);
	if (!rc)
		*out = rt;
	return rc;
}

/* ---- Sandboxes ---- */
static bool has_function(const mote_function_info *fi, const char *name, mote_type ret,
			 size_t nargs, const mote_type *args)
{
	if (strcmp(fi->name, name) != 0 || fi->ret != ret || fi->nargs != nargs)
		return false;
	for (size_t i = 0; i < nargs; i++)
		if (fi->args[i] != args[i])
			return false;
	return true;
}

/* The runtime's protocol functions, by name and signature. */
static bool runtime_function_table(size_t n, int (*get)(const void *, size_t, mote_function_info *),
				   const void *obj)
{
	static const mote_type load_args[] = {MOTE_BYTES, MOTE_BYTES};
	static const mote_type call_args[] = {MOTE_STRING, MOTE_BYTES};
	static const mote_type run_args[] = {MOTE_BYTES};
	unsigned found = 0;
	for (size_t i = 0; i < n; i++) {
		mote_function_info fi;
		if (get(obj, i, &fi))
			continue;
		if (has_function(&fi, "wasm_load", MOTE_BYTES, 2, load_args))
			found |= 1;
		else if (has_function(&fi, "wasm_call", MOTE_BYTES, 2, call_args))
			found |= 2;
		else if (has_function(&fi, "wasm_exports", MOTE_BYTES, 0, NULL))
			found |= 4;
		else if (has_function(&fi, "wasm_run", MOTE_BYTES, 1, run_args))
			found |= 8;
	}
	return found == 15;
}

static int sandbox_fn(const void *sb, size_t i, mote_function_info *out)
{
	return mote_sandbox_function(sb, i, out);
}

static int snapshot_fn(const void *snap, size_t i, mote_function_info *out)
{
	return mote_snapshot_function(snap, i, out);
}

bool mote_wasm_is_sandbox(const mote_sandbox *sb)
{
	return sb && runtime_function_table(mote_sandbox_function_count(sb), sandbox_fn, sb);
}

bool mote_wasm_is_snapshot(const mote_snapshot *snap)
{
	return snap && runtime_function_table(mote_snapshot_function_count(snap), snapshot_fn, snap);
}

/* The host functions a Wasm sandbox gets: the embedder's imports and WASI's.
 * Most import nothing else, so that set is built once (read-only after);
 * *owned says whether the caller frees what it got. */
static pthread_once_t wasi_alone_once = PTHREAD_ONCE_INIT;
static mote_host_functions *wasi_alone;

static void build_wasi_alone(void)
{
	if (mote_wasi_host_functions(NULL, &wasi_alone))
		wasi_alone = NULL; /* built per sandbox instead */
}

static int sandbox_host_functions(const mote_host_functions *imports, mote_host_functions **out,
                                  bool *owned)
{
	if (!imports || !imports->n) {
		pthread_once(&wasi_alone_once, build_wasi_alone);
		if (wasi_alone) {
			*out = wasi_alone;
			*owned = false;
			return 0;
		}
	}
	*owned = true;
	return mote_wasi_host_functions(imports, out);
}

int mote_wasm_sandbox_from_snapshot(const mote_snapshot *snap, const mote_host_functions *imports,
				    const mote_config *config, mote_sandbox **out)
{
	if (!snap || !out) {
		return mote_fail(-MOTE_EINVAL, "mote_wasm_sandbox_from_snapshot: no %s",
		                 !snap ? "snapshot" : "out");
	}
	*out = NULL;
	if (!runtime_function_table(mote_snapshot_function_count(snap), snapshot_fn, snap)) {
		return mote_fail(-MOTE_EINVAL,
		                 "not a snapshot of a Wasm sandbox (it lacks the Wasm "
		                 "runtime's functions)");
	}
	mote_host_functions *fns;
	bool owned;
	int rc = sandbox_host_functions(imports, &fns, &owned);
	if (rc) {
		return mote_fail(rc, "%s", mote_strerror(rc));
	}
	rc = mote_sandbox_from_snapshot(snap, fns, config, out);
	if (owned)
		mote_host_functions_free(fns);
	return rc;
}

int mote_wasm_sandbox_new(const mote_config *config, const mote_host_functions *imports,
			  mote_sandbox **out)
{
	if (!out) {
		return mote_fail(-MOTE_EINVAL, "mote_wasm_sandbox_new: no out");
	}
	*out = NULL;
	struct wasm_sizes s = sizes_for(config);
	struct wasm_runtime *rt;
	int rc = get_runtime(&s, &rt);
	if (rc)
		return rc;
	return mote_wasm_sandbox_from_snapshot(rt->snap, imports, config, out);
}

static int load_once(mote_sandbox *sb, const void *wasm, size_t len);

int mote_wasm_sandbox_new_compiled(const char *elf_path, const mote_config *config,
                                   const mote_host_functions *imports, mote_sandbox **out)
{
	if (!elf_path || !out)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_sandbox_new_compiled: no %s",
		                 !elf_path ? "path" : "out");
	*out = NULL;
	struct mote_config cfg;
	if (config)
		cfg = *config;
	else
		mote_config_defaults(&cfg);
	struct wasm_sizes s = sizes_for(&cfg);
	cfg.heap_size = s.heap;
	cfg.stack_size = s.stack;
	cfg.input_size = s.input;
	cfg.output_size = s.output;
	mote_host_functions *fns;
	bool owned;
	int rc = sandbox_host_functions(imports, &fns, &owned);
	if (rc)
		return mote_fail(rc, "%s", mote_strerror(rc));
	mote_sandbox *sb;
	rc = mote_sandbox_new(elf_path, &cfg, fns, &sb);
	if (owned)
		mote_host_functions_free(fns);
	if (rc)
		return rc;
	if (!mote_wasm_is_sandbox(sb)) {
		mote_sandbox_free(sb);
		return mote_fail(-MOTE_EINVAL,
		                 "%s is not a compiled Wasm module (it lacks the Wasm runtime's "
		                 "functions; see mote wasm compile)",
		                 elf_path);
	}
	struct wasm_state *w = wasm_state_of(sb, true);
	if (!w) {
		mote_sandbox_free(sb);
		return mote_fail(-MOTE_ENOMEM, "out of memory");
	}
	rc = mote_sandbox_snapshot(sb, &w->base);
	if (!rc)
		rc = load_once(sb, NULL, 0); /* no bytes: the module built in */
	if (rc) {
		mote_fail(rc, "%s", mote_sandbox_last_error(sb));
		mote_sandbox_free(sb);
		return rc;
	}
	*out = sb;
	return 0;
}

static int not_wasm(mote_sandbox *sb)
{
	return mote_sandbox_fail(sb, -MOTE_EINVAL, "not a Wasm sandbox");
}

/* ---- Protocol ---- */
/* Call runtime function `fn`; on success *payload / *len describe the
 * reply after its status (valid until the next call on the sandbox). */
static int call_runtime(mote_sandbox *sb, const char *fn, const mote_value *args, size_t nargs,
			const uint8_t **payload, size_t *len)
{
	const struct wasm_state *w = wasm_state_of(sb, false);
	if (w && w->unload_pending && strcmp(fn, "wasm_load") != 0)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "no wasm module is loaded");
	mote_value res;
	int rc = mote_sandbox_call(sb, fn, args, nargs, &res);
	if (rc)
		return rc;
	if (res.type != MOTE_BYTES || res.v.buf.len < 4)
		return mote_sandbox_fail(sb, -MOTE_EPROTOCOL, "Wasm runtime: malformed reply to %s",
					 fn);
	const uint8_t *p = res.v.buf.ptr;
	int32_t status;
	memcpy(&status, p, 4);
	size_t n = res.v.buf.len - 4;
	/* The runtime reports codes up to MOTE_EGUEST, and MOTE_EBADWASM. */
	if (status > 0 || (status < -MOTE_EGUEST && status != -MOTE_EBADWASM))
		return mote_sandbox_fail(sb, -MOTE_EPROTOCOL,
					 "Wasm runtime: reply to %s has status %d", fn, status);
	if (status) {
		/* The error text, with anything unprintable replaced. */
		char text[400];
		size_t k = n < sizeof(text) - 1 ? n : sizeof(text) - 1;
		for (size_t i = 0; i < k; i++)
			text[i] = p[4 + i] >= 0x20 && p[4 + i] < 0x7f ? (char)p[4 + i] : '?';
		text[k] = 0;
		return mote_sandbox_fail(sb, status, "%s", text);
	}
	*payload = p + 4;
	*len = n;
	return 0;
}

/* The host functions "env" imports may call, for wasm_load: per function
 * u8 result type, u8 argument count, the argument types, u8 name length,
 * the name. */
static int host_function_list(const mote_sandbox *sb, uint8_t **out, size_t *len)
{
	size_t n = 0;
	for (size_t i = 0; i < sb->host_fns.n; i++)
		n += 3 + sb->host_fns.v[i].sig.nargs + strlen(sb->host_fns.v[i].sig.name);
	uint8_t *p = mote_malloc(n ? n : 1);
	if (!p)
		return -MOTE_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < sb->host_fns.n; i++) {
		const struct mote_sig *s = &sb->host_fns.v[i].sig;
		size_t nl = strlen(s->name);
		if (mote_wasi_is_host_function(s->name) || nl > MOTE_MAX_NAME)
			continue;
		p[k++] = (uint8_t)s->ret;
		p[k++] = s->nargs;
		for (unsigned a = 0; a < s->nargs; a++)
			p[k++] = (uint8_t)s->args[a];
		p[k++] = (uint8_t)nl;
		memcpy(p + k, s->name, nl);
		k += nl;
	}
	*out = p;
	*len = k;
	return 0;
}

static int load_once(mote_sandbox *sb, const void *wasm, size_t len)
{
	uint8_t *hosts;
	size_t hlen;
	if (host_function_list(sb, &hosts, &hlen))
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	/* The call message: header, two value slots, the module, the list. */
	uint64_t room = sb->layout.in_size;
	if (len > room || room - len < 64 + (uint64_t)hlen) {
		mote_free(hosts);
		return mote_sandbox_fail(sb, -MOTE_ETOOBIG,
					 "wasm module of %zu bytes does not fit the sandbox's "
					 "%llu-byte input buffer (see mote_config_set_input_size)",
					 len, (unsigned long long)room);
	}
	mote_value args[2] = {mote_bytes(wasm, len), mote_bytes(hosts, hlen)};
	const uint8_t *payload;
	size_t plen;
	int rc = call_runtime(sb, "wasm_load", args, 2, &payload, &plen);
	mote_free(hosts);
	return rc;
}

static int restore_runtime(mote_sandbox *sb);

int mote_wasm_load(mote_sandbox *sb, const void *wasm, size_t len)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_load: no sandbox");
	if (!wasm && len)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_load: no bytes for %zu", len);
	if (!mote_wasm_is_sandbox(sb))
		return not_wasm(sb);
	const struct wasm_state *w = wasm_state_of(sb, false);
	if (w)
		mote_wasi_fs_close_files(w->fs); /* the new module starts with none */
	/* After an unload, or in a poisoned sandbox (timeout, interrupt),
	 * start over from the runtime. */
	int rc = mote_sandbox_poisoned(sb) || (w && w->unload_pending) ? restore_runtime(sb) : 0;
	if (!rc)
		rc = load_once(sb, wasm, len);
	if (rc == -MOTE_EEXIST) { /* a module is loaded: replace it */
		rc = restore_runtime(sb);
		if (!rc)
			rc = load_once(sb, wasm, len);
	}
	return rc;
}

int mote_wasm_load_file(mote_sandbox *sb, const char *path)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_load_file: no sandbox");
	if (!path)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_load_file: no path");
	uint8_t *buf;
	size_t size;
	if (mote_read_file(path, sb->layout.in_size, &buf, &size) != 0) {
		if (errno == EFBIG)
			return mote_sandbox_fail(
			    sb, -MOTE_ETOOBIG,
			    "wasm module %s does not fit the sandbox's %llu-byte "
			    "input buffer (see mote_config_set_input_size)",
			    path, (unsigned long long)sb->layout.in_size);
		if (errno == EINVAL)
			return mote_sandbox_fail(sb, -MOTE_EIO, "%s is not a regular file", path);
		return mote_sandbox_fail(sb, errno == ENOMEM ? -MOTE_ENOMEM : -MOTE_EIO,
		                         "cannot %s %s: %s", errno == EIO ? "read" : "open", path,
		                         strerror(errno));
	}
	int rc = mote_wasm_load(sb, buf, size);
	mote_free(buf);
	return rc;
}

/* Back to the runtime snapshot: no module loaded. */
static int restore_runtime(mote_sandbox *sb)
{
	struct wasm_state *w = wasm_state_of(sb, false);
	if (w)
		w->unload_pending = false;
	if (w && w->base)
		return mote_sandbox_restore(sb, w->base);
	struct wasm_sizes s = {sb->layout.heap_size, sb->layout.stack_size, sb->layout.in_size,
			       sb->layout.out_size};
	struct wasm_runtime *rt;
	int rc = get_runtime(&s, &rt);
	if (rc)
		return mote_sandbox_fail(sb, rc, "%s", mote_last_error());
	rc = mote_sandbox_restore(sb, rt->snap);
	if (rc == -MOTE_EINVAL && !sb->poisoned) {
		/* A snapshot of another build of the runtime (its memory layout
		 * differs): let the runtime drop the module itself. */
		rc = mote_sandbox_call(sb, "unload", NULL, 0, NULL);
	}
	return rc;
}

/* Unloading costs nothing: the restore is deferred to the next load, and
 * until then calls report that no module is loaded. */
int mote_wasm_unload(mote_sandbox *sb)
{
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_unload: no sandbox");
	if (!mote_wasm_is_sandbox(sb))
		return not_wasm(sb);
	if (mote_sandbox_poisoned(sb)) { /* recover now: the caller may inspect it */
		struct wasm_state *w = wasm_state_of(sb, false);
		if (w)
			mote_wasi_fs_close_files(w->fs);
		return restore_runtime(sb);
	}
	struct wasm_state *w = wasm_state_of(sb, true);
	if (!w)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	mote_wasi_fs_close_files(w->fs);
	w->unload_pending = true;
	return 0;
}

/* ---- Calls ---- */
static int encode_value(uint8_t *rec, const mote_value *v)
{
	uint64_t bits = 0;
	switch (v->type) {
	case MOTE_I32:
	case MOTE_U32:
		bits = v->v.u32;
		break;
	case MOTE_F32: {
		uint32_t b;
		memcpy(&b, &v->v.f32, 4);
		bits = b;
		break;
	}
	case MOTE_I64:
	case MOTE_U64:
	case MOTE_F64:
		memcpy(&bits, &v->v.u64, 8);
		break;
	default: /* the runtime refuses other types; never send host pointers */
		break;
	}
	if ((unsigned)v->type >= MOTE_TYPE_COUNT_)
		return -1;
	rec[0] = (uint8_t)v->type;
	memcpy(rec + 1, &bits, 8);
	return 0;
}

static int decode_value(const uint8_t *rec, mote_value *v)
{
	uint64_t bits;
	memcpy(&bits, rec + 1, 8);
	memset(v, 0, sizeof(*v));
	v->type = (mote_type)rec[0];
	switch (v->type) {
	case MOTE_I32: {
		uint32_t b = (uint32_t)bits;
		v->v.u32 = b;
		return 0;
	}
	case MOTE_F32: {
		uint32_t b = (uint32_t)bits;
		memcpy(&v->v.f32, &b, 4);
		return 0;
	}
	case MOTE_I64:
	case MOTE_F64:
		memcpy(&v->v.u64, &bits, 8);
		return 0;
	default:
		return -1;
	}
}

int mote_wasm_call(mote_sandbox *sb, const char *export_name, const mote_value *args,
		   size_t nargs, mote_value *results, size_t max_results, size_t *nresults)
{
	if (nresults)
		*nresults = 0;
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_call: no sandbox");
	if (!export_name || (nargs && !args) || (max_results && !results))
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_call: no %s",
		                         !export_name     ? "export name"
		                         : nargs && !args ? "arguments for nargs > 0"
		                                          : "results for max_results > 0");
	if (!mote_wasm_is_sandbox(sb))
		return not_wasm(sb);
	uint8_t small[4 + 16 * REC_SIZE];
	size_t blen = 4 + nargs * REC_SIZE;
	if (nargs > (SIZE_MAX - 4) / REC_SIZE)
		return mote_sandbox_fail(sb, -MOTE_ETOOBIG, "too many arguments");
	uint8_t *blob = blen <= sizeof(small) ? small : mote_malloc(blen);
	if (!blob)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	uint32_t room = max_results > UINT32_MAX ? UINT32_MAX : (uint32_t)max_results;
	memcpy(blob, &room, 4);
	int rc = 0;
	for (size_t i = 0; i < nargs && !rc; i++)
		if (encode_value(blob + 4 + i * REC_SIZE, &args[i]))
			rc = mote_sandbox_fail(sb, -MOTE_EINVAL, "argument %zu has an invalid type",
					       i + 1);
	const uint8_t *payload;
	size_t plen;
	if (!rc) {
		mote_value cargs[2] = {mote_string(export_name), mote_bytes(blob, blen)};
		rc = call_runtime(sb, "wasm_call", cargs, 2, &payload, &plen);
	}
	if (blob != small)
		mote_free(blob);
	if (rc)
		return rc;
	size_t n = plen / REC_SIZE;
	if (plen % REC_SIZE || n > max_results)
		return mote_sandbox_fail(sb, -MOTE_EPROTOCOL,
					 "Wasm runtime: malformed results from '%s'", export_name);
	for (size_t i = 0; i < n; i++)
		if (decode_value(payload + i * REC_SIZE, &results[i]))
			return mote_sandbox_fail(sb, -MOTE_EPROTOCOL,
						 "Wasm runtime: result %zu of '%s' has type %u",
						 i + 1, export_name, payload[i * REC_SIZE]);
	if (nresults)
		*nresults = n;
	return 0;
}

int mote_wasm_run(mote_sandbox *sb, const char *const *argv, size_t argc, const char *const *envp,
		  size_t envc, int *exit_code)
{
	if (exit_code)
		*exit_code = 0;
	if (!sb)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_run: no sandbox");
	if ((argc && !argv) || (envc && !envp) || argc > UINT32_MAX || envc > UINT32_MAX)
		return mote_sandbox_fail(sb, -MOTE_EINVAL, "mote_wasm_run: %s",
		                         argc && !argv   ? "no argv for argc > 0"
		                         : envc && !envp ? "no envp for envc > 0"
		                                         : "too many arguments or variables");
	if (!mote_wasm_is_sandbox(sb))
		return not_wasm(sb);
	size_t len = 8;
	for (size_t i = 0; i < argc + envc; i++) {
		const char *s = i < argc ? argv[i] : envp[i - argc];
		if (!s)
			return mote_sandbox_fail(sb, -MOTE_EINVAL, "NULL argument or variable");
		len += strlen(s) + 1;
	}
	uint8_t *blob = mote_malloc(len);
	if (!blob)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	uint32_t counts[2] = {(uint32_t)argc, (uint32_t)envc};
	memcpy(blob, counts, 8);
	size_t k = 8;
	for (size_t i = 0; i < argc + envc; i++) {
		const char *s = i < argc ? argv[i] : envp[i - argc];
		size_t l = strlen(s) + 1;
		memcpy(blob + k, s, l);
		k += l;
	}
	mote_value arg = mote_bytes(blob, len);
	const uint8_t *payload;
	size_t plen;
	int rc = call_runtime(sb, "wasm_run", &arg, 1, &payload, &plen);
	mote_free(blob);
	if (rc)
		return rc;
	if (plen != 4)
		return mote_sandbox_fail(sb, -MOTE_EPROTOCOL, "Wasm runtime: malformed exit code");
	int32_t code;
	memcpy(&code, payload, 4);
	if (exit_code)
		*exit_code = code;
	return 0;
}

/* ---- Exports ---- */
struct wasm_export {
	char *name;
	char *signature;
	mote_wasm_kind kind;
	size_t nparams, nresults;
	mote_type *types; /* params then results */
};

struct mote_wasm_exports {
	size_t n;
	struct wasm_export *v;
};

void mote_wasm_exports_free(mote_wasm_exports *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		mote_free(e->v[i].name);
		mote_free(e->v[i].signature);
		mote_free(e->v[i].types);
	}
	mote_free(e->v);
	mote_free(e);
}

static mote_type from_wasm_type(uint8_t t)
{
	switch (t) {
	case 0x7f:
		return MOTE_I32;
	case 0x7e:
		return MOTE_I64;
	case 0x7d:
		return MOTE_F32;
	case 0x7c:
		return MOTE_F64;
	default:
		return MOTE_VOID;
	}
}

static const char *wasm_type_text(uint8_t t)
{
	switch (t) {
	case 0x7f:
		return "i32";
	case 0x7e:
		return "i64";
	case 0x7d:
		return "f32";
	case 0x7c:
		return "f64";
	case 0x70:
		return "funcref";
	case 0x6f:
		return "externref";
	default:
		return "?";
	}
}

/* "name(i32, i64) -> f64" from raw wasm type codes. */
static char *function_signature(const char *name, const uint8_t *types, size_t np, size_t nr)
{
	/* Each type takes at most 11 bytes ("externref, "); 16 cover the rest. */
	size_t cap = strlen(name) + 16 + (np + nr) * 12, k = 0;
	char *s = mote_malloc(cap);
	if (!s)
		return NULL;
#define PUT(...) (k += (size_t)snprintf(s + (k < cap ? k : cap - 1), k < cap ? cap - k : 1, __VA_ARGS__))
	PUT("%s(", name);
	for (size_t i = 0; i < np; i++)
		PUT("%s%s", i ? ", " : "", wasm_type_text(types[i]));
	PUT(") -> %s", nr == 1 ? "" : "(");
	for (size_t i = 0; i < nr; i++)
		PUT("%s%s", i ? ", " : "", wasm_type_text(types[np + i]));
	if (nr != 1)
		PUT(")");
#undef PUT
	return s;
}

static int parse_exports(const uint8_t *p, size_t len, mote_wasm_exports *e)
{
	if (len < 4)
		return -MOTE_EPROTOCOL;
	uint32_t n;
	memcpy(&n, p, 4);
	size_t off = 4;
	if (n > len) /* every entry takes at least 5 bytes */
		return -MOTE_EPROTOCOL;
	e->v = mote_calloc(n ? n : 1, sizeof(*e->v));
	if (!e->v)
		return -MOTE_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint16_t nl, np, nr;
		if (len - off < 3)
			return -MOTE_EPROTOCOL;
		uint8_t kind = p[off];
		memcpy(&nl, p + off + 1, 2);
		off += 3;
		if (kind > MOTE_WASM_GLOBAL || len - off < (size_t)nl + 4)
			return -MOTE_EPROTOCOL;
		const char *name = (const char *)p + off;
		off += nl;
		memcpy(&np, p + off, 2);
		memcpy(&nr, p + off + 2, 2);
		off += 4;
		if (len - off < (size_t)np + nr)
			return -MOTE_EPROTOCOL;
		const uint8_t *types = p + off;
		off += (size_t)np + nr;
		struct wasm_export *x = &e->v[i];
		e->n = i + 1;
		x->kind = (mote_wasm_kind)kind;
		x->name = mote_malloc((size_t)nl + 1);
		x->types = mote_calloc((size_t)np + nr + 1, sizeof(mote_type));
		if (!x->name || !x->types)
			return -MOTE_ENOMEM;
		memcpy(x->name, name, nl);
		x->name[nl] = 0;
		if (strlen(x->name) != nl)
			return -MOTE_EPROTOCOL;
		x->nparams = np;
		x->nresults = nr;
		for (size_t t = 0; t < (size_t)np + nr; t++)
			x->types[t] = from_wasm_type(types[t]);
		if (kind == MOTE_WASM_FUNCTION) {
			x->signature = function_signature(x->name, types, np, nr);
		} else {
			size_t cap = (size_t)nl + 24;
			x->signature = mote_malloc(cap);
			if (x->signature && kind == MOTE_WASM_GLOBAL && nr == 1)
				snprintf(x->signature, cap, "%s: %s", x->name, wasm_type_text(types[0]));
			else if (x->signature)
				snprintf(x->signature, cap, "%s", x->name);
		}
		if (!x->signature)
			return -MOTE_ENOMEM;
	}
	return off == len ? 0 : -MOTE_EPROTOCOL;
}

int mote_wasm_exports_get(mote_sandbox *sb, mote_wasm_exports **out)
{
	if (!sb || !out)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_exports_get: no %s",
		                 !sb ? "sandbox" : "out");
	*out = NULL;
	if (!mote_wasm_is_sandbox(sb))
		return not_wasm(sb);
	const uint8_t *payload;
	size_t plen;
	int rc = call_runtime(sb, "wasm_exports", NULL, 0, &payload, &plen);
	if (rc)
		return rc;
	mote_wasm_exports *e = mote_calloc(1, sizeof(*e));
	if (!e)
		return mote_sandbox_fail(sb, -MOTE_ENOMEM, "out of memory");
	rc = parse_exports(payload, plen, e);
	if (rc) {
		mote_wasm_exports_free(e);
		return rc == -MOTE_ENOMEM
			       ? mote_sandbox_fail(sb, rc, "out of memory")
			       : mote_sandbox_fail(sb, -MOTE_EPROTOCOL,
						   "Wasm runtime: malformed export list");
	}
	*out = e;
	return 0;
}

size_t mote_wasm_export_count(const mote_wasm_exports *e)
{
	return e ? e->n : 0;
}

int mote_wasm_export(const mote_wasm_exports *e, size_t index, mote_wasm_export_info *out)
{
	if (!e || !out)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_export: no %s", !e ? "exports" : "out");
	if (index >= e->n)
		return mote_fail(-MOTE_EINVAL,
		                 "mote_wasm_export: index %zu, the module has %zu "
		                 "exports",
		                 index, e->n);
	const struct wasm_export *x = &e->v[index];
	out->name = x->name;
	out->kind = x->kind;
	out->nparams = x->nparams;
	out->nresults = x->nresults;
	out->params = x->types;
	out->results = x->types + x->nparams;
	out->signature = x->signature;
	return 0;
}

int mote_wasm_export_find(const mote_wasm_exports *e, const char *name, mote_wasm_export_info *out)
{
	if (!e || !name || !out)
		return mote_fail(-MOTE_EINVAL, "mote_wasm_export_find: no %s",
		                 !e      ? "exports"
		                 : !name ? "name"
		                         : "out");
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->v[i].name, name))
			return mote_wasm_export(e, i, out);
	return -MOTE_ENOFUNC;
}
