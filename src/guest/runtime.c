/* Guest runtime: entry, the call loop, host calls, output and abort. Runs at
 * CPL 3; every exit to the host is one `out` (RFLAGS.IOPL = 3) or one call
 * of the host's exit entry (src/common/abi.h, "Exits"). */
#include "common/abi.h"
#include "common/wire.h"
#include "guest/guest_internal.h"
#include "mote/guest.h"

/* The ABI note the host checks before loading the image. */
__attribute__((used, section(".note.mote"), aligned(4))) static const struct {
	uint32_t namesz, descsz, type;
	char name[8];
	uint32_t version;
} mote_abi_note = {5, 4, MOTE_NOTE_TYPE_ABI, MOTE_NOTE_NAME, MOTE_ABI_VERSION};

extern const struct mote_fn_desc __mote_fns_start[], __mote_fns_end[];

/* Where the function table is, for tools that inspect the ELF. Packed: a
 * note's descriptor follows its name at 4-byte alignment. */
__attribute__((used, section(".note.mote"), aligned(4))) static const struct __attribute__((packed)) {
	uint32_t namesz, descsz, type;
	char name[8];
	struct mote_note_fns fns;
} mote_fns_note = {5, sizeof(struct mote_note_fns), MOTE_NOTE_TYPE_FNS, MOTE_NOTE_NAME,
		   {(uint64_t)(uintptr_t)__mote_fns_start, (uint64_t)(uintptr_t)__mote_fns_end}};

_Static_assert(sizeof(struct mote_fn_desc) == sizeof(struct mote_wire_desc), "table is ABI");
_Static_assert(offsetof(struct mote_fn_desc, ret) == offsetof(struct mote_wire_desc, ret),
	       "table is ABI");
_Static_assert(offsetof(struct mote_fn_desc, nargs) == offsetof(struct mote_wire_desc, nargs),
	       "table is ABI");
_Static_assert(offsetof(struct mote_fn_desc, args) == offsetof(struct mote_wire_desc, args),
	       "table is ABI");
_Static_assert(offsetof(struct mote_fn_desc, wrapper) == offsetof(struct mote_wire_desc, wrapper),
	       "table is ABI");
__attribute__((weak)) void mote_init(void);

const struct mote_boot_info *mote__boot;
/* A copy in .bss: the call path then never touches the boot-info page, one
 * guest page fault less on a sandbox's first call. */
static struct mote_boot_info boot_copy;

/* The call path lives in one section placed first in .text, so a call
 * touches as few code pages as possible. */
#define HOT __attribute__((section(".text.mote_hot")))

/* Message headers are written and checked one word at a time: merged into
 * one 64-bit access, gcc takes the constant from .rodata, a page a call
 * otherwise never reads, and the first call after a start would fault on
 * it (an exit on kvm-pvm). Relaxed atomics are never merged. */
static inline void put_header(struct mote_msg *m, uint32_t kind)
{
	__atomic_store_n(&m->magic, MOTE_MSG_MAGIC, __ATOMIC_RELAXED);
	__atomic_store_n(&m->kind, kind, __ATOMIC_RELAXED);
}

static inline bool has_header(const struct mote_msg *m, uint32_t kind)
{
	return __atomic_load_n(&m->magic, __ATOMIC_RELAXED) == MOTE_MSG_MAGIC &&
	       __atomic_load_n(&m->kind, __ATOMIC_RELAXED) == kind;
}
static const char *call_failure;
static uint32_t hostresult_off; /* where the host puts host-call results */

/* The host's exit entry, 0 for `out`: from the boot info at start, then
 * from every CALL (a snapshot may resume on another backend). */
static uint64_t exit_entry;

/* The stack move around the call, told to the unwind tables where gcc
 * writes them: a debugger or a symbolized fault that stops in the host's
 * exit code then still finds the guest's frames. */
#ifdef __GCC_HAVE_DWARF2_CFI_ASM
#define CFI_ADJUST(n) ".cfi_adjust_cfa_offset " n "\n\t"
#else
#define CFI_ADJUST(n) ""
#endif

HOT static inline void exit_to_host(uint16_t port)
{
	/* "memory": the host reads what we just wrote to the buffers. The
	 * host preserves every register, so nothing else is clobbered. */
	if (exit_entry)
		__asm__ volatile("sub $128, %%rsp\n\t" CFI_ADJUST("128")
				 "call *%[entry]\n\t"
				 "add $128, %%rsp\n\t" CFI_ADJUST("-128")
				 :
				 : [entry] "r"(exit_entry), "D"((uint32_t)port)
				 : "memory", "cc");
	else
		__asm__ volatile("outb %%al, %w0" : : "Nd"(port), "a"(0) : "memory");
}

HOT static size_t fn_count(void)
{
	return (size_t)(__mote_fns_end - __mote_fns_start);
}

/* ---- Output ---- */
void mote__log_write(int level, const char *text, size_t len)
{
	struct mote_log_hdr *h = (struct mote_log_hdr *)mote__boot->log_buf;
	uint64_t cap = mote__boot->log_size - sizeof(*h);
	if (len > MOTE_LOG_MAX_MSG)
		len = MOTE_LOG_MAX_MSG;
	uint64_t need = sizeof(struct mote_log_rec) + len;
	if (need > cap) {
		h->dropped++;
		return;
	}
	if (h->used + need > cap)
		exit_to_host(MOTE_PORT_LOG); /* the host drains and resets `used` */
	uint8_t *p = (uint8_t *)(h + 1) + h->used;
	struct mote_log_rec rec = {(uint8_t)level, 0, (uint16_t)len};
	memcpy(p, &rec, sizeof(rec));
	memcpy(p + sizeof(rec), text, len);
	h->used += (uint32_t)need;
}

void mote_write(const char *text, size_t len)
{
	mote__log_write(0, text, len);
}

void mote_write_stderr(const char *text, size_t len)
{
	mote__log_write(MOTE_LOG_STDERR, text, len);
}

void mote_print(const char *text)
{
	mote__log_write(0, text, strlen(text));
}

static void log_vformat(int level, const char *fmt, __builtin_va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (n > 0)
		mote__log_write(level, buf, (size_t)n);
}

void mote_printf(const char *fmt, ...)
{
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	log_vformat(0, fmt, ap);
	__builtin_va_end(ap);
}

void mote_log(int level, const char *fmt, ...)
{
	if (level < MOTE_LOG_ERROR || level > MOTE_LOG_DEBUG)
		level = MOTE_LOG_INFO;
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	log_vformat(level, fmt, ap);
	__builtin_va_end(ap);
}

/* ---- Messages ---- */
HOT static struct mote_msg *out_msg(void)
{
	return (struct mote_msg *)mote__boot->out_buf;
}

/* Append bytes to the data area of the message being built; 0 if full. */
HOT static uint32_t put_data(uint32_t *size, const void *p, size_t len, bool nul)
{
	uint64_t need = (uint64_t)*size + len + (nul ? 1 : 0);
	if (need > mote__boot->out_size)
		return 0;
	uint32_t off = *size;
	uint8_t *dst = (uint8_t *)mote__boot->out_buf + off;
	memcpy(dst, p, len);
	if (nul)
		dst[len] = 0;
	*size = (uint32_t)need;
	return off;
}

HOT static int put_value(struct mote_wire_value *w, uint32_t *size, const mote_value *v)
{
	w->type = v->type;
	w->len = 0;
	w->bits = 0;
	switch (v->type) {
	case MOTE_STRING:
	case MOTE_BYTES:
		if (v->v.buf.len > 0xffffffffu)
			return -MOTE_ETOOBIG;
		w->len = (uint32_t)v->v.buf.len;
		w->bits = put_data(size, v->v.buf.ptr, v->v.buf.len, false);
		return w->bits || !v->v.buf.len ? 0 : -MOTE_ETOOBIG;
	case MOTE_VOID:
		return -MOTE_EINVAL;
	default:
		if ((unsigned)v->type >= MOTE_TYPE_COUNT_)
			return -MOTE_EINVAL;
		w->bits = mote_wire_scalar(v);
		return 0;
	}
}

static void send_init(void)
{
	struct mote_msg *m = out_msg();
	size_t n = fn_count();
	uint32_t size = (uint32_t)(sizeof(*m) + n * sizeof(struct mote_wire_fn));
	struct mote_wire_fn *fns = (struct mote_wire_fn *)(m + 1);
	if (size > mote__boot->out_size)
		mote_abort(1, "function directory does not fit the output buffer");
	for (size_t i = 0; i < n; i++) {
		const struct mote_fn_desc *d = &__mote_fns_start[i];
		struct mote_wire_fn *f = &fns[i];
		memset(f, 0, sizeof(*f));
		size_t len = strlen(d->name);
		f->name_len = (uint32_t)len;
		f->name_off = put_data(&size, d->name, len, false);
		if (!f->name_off)
			mote_abort(1, "function directory does not fit the output buffer");
		f->ret = d->ret;
		f->nargs = d->nargs;
		memcpy(f->args, d->args, d->nargs);
	}
	put_header(m, MOTE_MSG_INIT);
	m->size = size;
	m->nvals = (uint32_t)n;
	m->status = 0;
}

/* ---- Per-call allocations ---- */
struct call_alloc {
	struct call_alloc *next;
	uint64_t pad;
};
static struct call_alloc *call_allocs;

void *mote_call_alloc(size_t size)
{
	struct call_alloc *a = malloc(sizeof(*a) + size);
	if (!a)
		return 0;
	a->next = call_allocs;
	call_allocs = a;
	return a + 1;
}

HOT static void free_call_allocs(void)
{
	while (call_allocs) {
		struct call_alloc *next = call_allocs->next;
		free(call_allocs);
		call_allocs = next;
	}
}

void mote_fail(const char *message)
{
	call_failure = message ? message : "guest function failed";
}

/* Run the CALL in the input buffer and leave a RESULT in the output one. */
HOT static void handle_call(void)
{
	const struct mote_msg *in = (const struct mote_msg *)mote__boot->in_buf;
	struct mote_msg *out = out_msg();
	uint32_t size = sizeof(*out) + sizeof(struct mote_wire_value);
	int status = 0;
	mote_value result = {MOTE_VOID, {.u64 = 0}};
	const char *failure = 0;

	if (has_header(in, MOTE_MSG_CALL))
		exit_entry = in->exit_entry;
	/* The host validated the call; these checks guard against a host bug. */
	if (!has_header(in, MOTE_MSG_CALL) || in->index >= fn_count() ||
	    in->nvals != __mote_fns_start[in->index].nargs || in->size > mote__boot->in_size) {
		status = -MOTE_EPROTOCOL;
		failure = "malformed call message";
	} else {
		const struct mote_fn_desc *d = &__mote_fns_start[in->index];
		const struct mote_wire_value *w = (const struct mote_wire_value *)(in + 1);
		mote_value args[MOTE_MAX_ARGS];
		for (uint32_t i = 0; i < in->nvals; i++)
			mote_wire_decode(&w[i], (const uint8_t *)in, &args[i]);
		hostresult_off = (in->size + 15) & ~15u;
		result.type = (mote_type)d->ret;
		call_failure = 0;
		d->wrapper(args, &result);
		if (call_failure) {
			status = -MOTE_EGUEST;
			failure = call_failure;
			result.type = MOTE_VOID;
		}
	}

	struct mote_wire_value *rv = (struct mote_wire_value *)(out + 1);
	out->nvals = result.type == MOTE_VOID ? 0 : 1;
	if (out->nvals && put_value(rv, &size, &result)) {
		status = -MOTE_ETOOBIG;
		failure = "result does not fit the output buffer";
		out->nvals = 0;
	}
	out->name_off = out->name_len = 0;
	if (failure) {
		size_t len = strnlen(failure, 1024);
		uint32_t off = put_data(&size, failure, len, false);
		if (off) {
			out->name_off = off;
			out->name_len = (uint32_t)len;
		}
	}
	free_call_allocs();
	put_header(out, MOTE_MSG_RESULT);
	out->size = size;
	out->status = status;
	out->index = 0;
}

int mote_host_call(const char *name, mote_type ret, mote_value *result, const mote_value *args,
		   size_t nargs)
{
	struct mote_msg *m = out_msg();
	if (nargs > MOTE_MAX_ARGS || !name)
		return -MOTE_EINVAL;
	uint32_t size = (uint32_t)(sizeof(*m) + nargs * sizeof(struct mote_wire_value));
	struct mote_wire_value *w = (struct mote_wire_value *)(m + 1);
	size_t name_len = strnlen(name, MOTE_MAX_NAME + 1);
	if (name_len > MOTE_MAX_NAME)
		return -MOTE_EINVAL;
	uint32_t name_off = put_data(&size, name, name_len, false);
	if (!name_off)
		return -MOTE_ETOOBIG;
	for (size_t i = 0; i < nargs; i++) {
		int rc = put_value(&w[i], &size, &args[i]);
		if (rc)
			return rc;
	}
	put_header(m, MOTE_MSG_HOSTCALL);
	m->size = size;
	m->nvals = (uint32_t)nargs;
	m->status = 0;
	m->index = ret;
	m->name_off = name_off;
	m->name_len = (uint32_t)name_len;
	exit_to_host(MOTE_PORT_HOSTCALL);

	const uint8_t *base = (const uint8_t *)mote__boot->in_buf + hostresult_off;
	const struct mote_msg *r = (const struct mote_msg *)base;
	if (!has_header(r, MOTE_MSG_HOSTRESULT))
		return -MOTE_EPROTOCOL;
	if (r->status < 0)
		return r->status;
	if (result) {
		result->type = MOTE_VOID;
		result->v.u64 = 0;
		if (r->nvals == 1)
			mote_wire_decode((const struct mote_wire_value *)(r + 1), base, result);
	}
	return 0;
}

void mote_abort(int code, const char *message)
{
	struct mote_msg *m = out_msg();
	uint32_t size = sizeof(*m);
	if (!message)
		message = "";
	size_t len = strnlen(message, 1024);
	uint32_t off = put_data(&size, message, len, false);
	put_header(m, MOTE_MSG_ABORT);
	m->size = size;
	m->nvals = 0;
	m->status = code;
	m->name_off = off;
	m->name_len = off ? (uint32_t)len : 0;
	for (;;)
		exit_to_host(MOTE_PORT_ABORT); /* the host never resumes an abort */
}

size_t mote_mappings(mote_mapping *out, size_t max)
{
	/* Read live: the host updates the table as files are mapped. */
	const volatile struct mote_map_table *t = (const struct mote_map_table *)MOTE_MAPTAB_ADDR;
	size_t n = t->count < MOTE_MAX_MAPPINGS ? t->count : MOTE_MAX_MAPPINGS;
	for (size_t i = 0; i < n && i < max; i++) {
		out[i].data = (const uint8_t *)(uintptr_t)t->entries[i].guest_addr;
		out[i].size = t->entries[i].size;
		out[i].writable = t->entries[i].flags & MOTE_MAPF_WRITABLE;
		out[i].name = (const char *)t->entries[i].name;
	}
	return n;
}

mote_value mote_val_str(const char *s)
{
	mote_value v = {MOTE_STRING, {.buf = {s, strlen(s)}}};
	return v;
}

__attribute__((noreturn, used)) void mote__main(const struct mote_boot_info *boot);
HOT void mote__main(const struct mote_boot_info *boot)
{
	boot_copy = *boot;
	mote__boot = &boot_copy;
	exit_entry = boot->exit_entry;
	mote__heap_init((void *)boot->heap_base, boot->heap_size);
	if (mote_init)
		mote_init();
	send_init();
	for (;;) {
		exit_to_host(MOTE_PORT_DONE);
		handle_call();
	}
}

/* Entry: the host starts us here at CPL 3 with rsp at the stack top and rdi
 * pointing at the boot info. */
__asm__(".section .text.mote_start, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	call mote__main\n"
	"	ud2\n"
	".previous\n");
