/* The engine's side of compiled modules (aot_abi.h): binding native code to
 * a module, entering it from the engine, and the operations compiled code
 * leaves to the engine (calls it cannot make directly, traps, table and
 * segment operations). A trap in compiled code unwinds with
 * __builtin_longjmp to the innermost engine entry (aot_dispatch), which
 * returns it like any other trap: the store stays usable. */
#include "wasm_int.h"

/* The store whose compiled code runs on this thread (guests have one thread
 * and no thread-local storage). */
#if __STDC_HOSTED__
static _Thread_local mw_store *aot_current;
#else
static mw_store *aot_current;
#endif

struct mw_aot_jmp {
	void *buf[5]; /* __builtin_setjmp's buffer */
	int trap;
	struct mw_aot_jmp *prev;
};

int mw_module_set_native(mw_module *m, const struct mw_aot_module *aot, mw_error *err)
{
	if (!m || !aot) {
		mw__errf(err, MW_ERR_ARG, 0, "no %s", !m ? "module" : "compiled code");
		return -1;
	}
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	if (aot->abi != MW_AOT_ABI) {
		mw__errf(
		    err, MW_ERR_ARG, 0,
		    "compiled code has ABI version %u, this engine %u: compile the module again",
		    aot->abi, MW_AOT_ABI);
		return -1;
	}
	if (aot->nfuncs != ndef || aot->module_len != m->len ||
	    aot->module_hash != mw_aot_hash(m->bytes, m->len)) {
		mw__errf(err, MW_ERR_ARG, 0, "compiled code is for another module");
		return -1;
	}
	m->aot = aot;
	return 0;
}

static uintptr_t current_sp(void)
{
	uintptr_t sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return sp;
}

/* The engine's way into a compiled function: a host function to the
 * interpreter and to mw_call (see mw__aot_bind). */
static mw_trap aot_dispatch(void *user, mw_instance *caller, const mw_val *args, mw_val *res)
{
	(void)caller;
	mw_func *f = user;
	mw_store *s = f->inst->store;
	struct mw_aot_jmp jb;
	jb.trap = MW_TRAP_NONE;
	jb.prev = s->aot_jmp;
	uintptr_t saved_limit = s->aot_stack_limit;
	if (!saved_limit) {
		/* Outermost entry: compiled code may use this much stack below here. */
		uintptr_t sp = current_sp(), budget = s->lim.max_native_stack;
		s->aot_stack_limit = sp > budget ? sp - budget : 1;
	}
	s->aot_jmp = &jb;
	mw_store *saved_current = aot_current;
	aot_current = s;
	if (__builtin_setjmp(jb.buf) == 0)
		f->aot_entry(&f->inst->aot, (const uint64_t *)args, (uint64_t *)res);
	aot_current = saved_current;
	s->aot_jmp = jb.prev;
	s->aot_stack_limit = saved_limit;
	return (mw_trap)jb.trap;
}

void mw__aot_bind(mw_instance *in, mw_func *f, uint32_t i)
{
	const mw_aot_module *aot = in->mod->aot;
	f->aot.direct = aot->direct[i];
	f->aot.inst = &in->aot;
	f->aot.key = aot;
	f->aot.canon = in->mod->types[in->mod->fcode[i].type]->canon;
	f->aot_entry = aot->entries[i];
	if (f->aot_entry) {
		f->host = aot_dispatch;
		f->host_user = f;
	}
}

static mw_instance *inst_of(const mw_aot_inst *c)
{
	return (mw_instance *)(uintptr_t)c; /* the view is the instance's first member */
}

void mw__aot_trap(int trap)
{
	struct mw_aot_jmp *jb = aot_current->aot_jmp;
	jb->trap = trap;
	__builtin_longjmp(jb->buf, 1);
}

void mw__aot_stack_exhausted(void)
{
	mw__aot_trap(MW_TRAP_CALL_STACK_EXHAUSTED);
}

/* Call f (any kind) from compiled code of instance `c`. */
static void call_func(const mw_aot_inst *c, mw_func *f, const uint64_t *args, uint64_t *res)
{
	mw_instance *in = inst_of(c);
	mw_store *s = in->store;
	uint32_t np = f->type->pub.nparams, nr = f->type->pub.nresults;
	if (!mw__store_stacks(s))
		mw__aot_trap(MW_TRAP_OUT_OF_MEMORY);
	uint64_t *fp = s->sp;
	size_t need = np > nr ? np : nr;
	if ((size_t)(s->stack_end - fp) < need + 1)
		mw__aot_trap(MW_TRAP_CALL_STACK_EXHAUSTED);
	memcpy(fp, args, (size_t)np * 8);
	mw_trap t = mw__call_nested(s, f, in, fp);
	if (t != MW_TRAP_NONE)
		mw__aot_trap(t);
	memcpy(res, fp, (size_t)nr * 8);
}

void mw__aot_call(const mw_aot_inst *c, uint32_t func, const uint64_t *args, uint64_t *res)
{
	call_func(c, inst_of(c)->funcs[func], args, res);
}

void mw__aot_call_indirect(const mw_aot_inst *c, uint32_t table, uint32_t elem, uint32_t type,
                           const uint64_t *args, uint64_t *res)
{
	mw_instance *in = inst_of(c);
	const mw_table *t = in->tables[table];
	if (elem >= t->size)
		mw__aot_trap(MW_TRAP_UNDEFINED_ELEMENT);
	mw_func *f = (mw_func *)(uintptr_t)t->elems[elem];
	if (!f)
		mw__aot_trap(MW_TRAP_UNINITIALIZED_ELEMENT);
	const mw_ftype *want = in->mod->types[in->mod->types[type]->canon];
	if (f->type != want && !mw__ftype_equal(f->type, want))
		mw__aot_trap(MW_TRAP_INDIRECT_TYPE_MISMATCH);
	call_func(c, f, args, res);
}

uint32_t mw__aot_memory_grow(const mw_aot_inst *c, uint32_t delta)
{
	return (uint32_t)mw__memory_grow(inst_of(c)->mem, delta);
}

void mw__aot_memory_init(const mw_aot_inst *c, uint32_t seg, uint32_t d, uint32_t s, uint32_t n)
{
	mw_instance *in = inst_of(c);
	const mw_data *ds = &in->mod->datas[seg];
	uint64_t len = in->data_len[seg];
	if ((uint64_t)s + n > len || (uint64_t)d + n > in->mem->size)
		mw__aot_trap(MW_TRAP_MEMORY_OOB);
	if (n)
		memcpy(in->mem->data + d, ds->bytes + s, n);
}

void mw__aot_data_drop(const mw_aot_inst *c, uint32_t seg)
{
	inst_of(c)->data_len[seg] = 0;
}

void mw__aot_table_init(const mw_aot_inst *c, uint32_t table, uint32_t seg, uint32_t d, uint32_t s,
                        uint32_t n)
{
	mw_instance *in = inst_of(c);
	mw_table *t = in->tables[table];
	if ((uint64_t)s + n > in->elem_len[seg] || (uint64_t)d + n > t->size)
		mw__aot_trap(MW_TRAP_TABLE_OOB);
	if (n)
		memcpy(t->elems + d, in->elem_items[seg] + s, (size_t)n * 8);
}

void mw__aot_elem_drop(const mw_aot_inst *c, uint32_t seg)
{
	inst_of(c)->elem_len[seg] = 0;
}

void mw__aot_table_copy(const mw_aot_inst *c, uint32_t dt, uint32_t st, uint32_t d, uint32_t s,
                        uint32_t n)
{
	mw_instance *in = inst_of(c);
	mw_table *td = in->tables[dt], *ts = in->tables[st];
	if ((uint64_t)s + n > ts->size || (uint64_t)d + n > td->size)
		mw__aot_trap(MW_TRAP_TABLE_OOB);
	if (n)
		memmove(td->elems + d, ts->elems + s, (size_t)n * 8);
}

uint32_t mw__aot_table_grow(const mw_aot_inst *c, uint32_t table, uint64_t init, uint32_t n)
{
	return (uint32_t)mw__table_grow(inst_of(c)->tables[table], n, init);
}

void mw__aot_table_fill(const mw_aot_inst *c, uint32_t table, uint32_t i, uint64_t v, uint32_t n)
{
	mw_table *t = inst_of(c)->tables[table];
	if ((uint64_t)i + n > t->size)
		mw__aot_trap(MW_TRAP_TABLE_OOB);
	for (uint32_t k = 0; k < n; k++)
		t->elems[i + k] = v;
}
