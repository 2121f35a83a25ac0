/* mote wasm engine: stores, instantiation/linking, invocation and the
 * memory/table/global objects. */
#include "wasm_int.h"

static const char *const TRAP_MSG[MW_TRAP_COUNT_] = {
	[MW_TRAP_NONE] = "no trap",
	[MW_TRAP_UNREACHABLE] = "unreachable",
	[MW_TRAP_DIV_BY_ZERO] = "integer divide by zero",
	[MW_TRAP_INT_OVERFLOW] = "integer overflow",
	[MW_TRAP_INVALID_CONVERSION] = "invalid conversion to integer",
	[MW_TRAP_MEMORY_OOB] = "out of bounds memory access",
	[MW_TRAP_TABLE_OOB] = "out of bounds table access",
	[MW_TRAP_INDIRECT_TYPE_MISMATCH] = "indirect call type mismatch",
	[MW_TRAP_UNDEFINED_ELEMENT] = "undefined element",
	[MW_TRAP_UNINITIALIZED_ELEMENT] = "uninitialized element",
	[MW_TRAP_CALL_STACK_EXHAUSTED] = "call stack exhausted",
	[MW_TRAP_FUEL_EXHAUSTED] = "fuel exhausted",
	[MW_TRAP_HOST] = "host function error",
	[MW_TRAP_OUT_OF_MEMORY] = "out of memory",
	[MW_TRAP_BAD_CALL] = "bad call (argument count or type mismatch)",
};

const char *mw_trap_message(mw_trap t)
{
	if ((unsigned)t >= MW_TRAP_COUNT_)
		return "unknown trap";
	return TRAP_MSG[t];
}

bool mw__ftype_equal(const mw_ftype *a, const mw_ftype *b)
{
	if (a == b)
		return true;
	if (a->pub.nparams != b->pub.nparams || a->pub.nresults != b->pub.nresults)
		return false;
	return memcmp(a->types, b->types, (size_t)a->pub.nparams + a->pub.nresults) == 0;
}

/* ------------------------------------------------------------------ store */

static void *default_resize(void *ctx, void *old, size_t old_size, size_t new_size,
			    size_t max_size)
{
	(void)ctx;
	(void)max_size;
	if (new_size == 0)
		return old;
	uint8_t *p = old ? realloc(old, new_size) : calloc(1, new_size);
	if (!p)
		return NULL;
	if (old && new_size > old_size)
		memset(p + old_size, 0, new_size - old_size);
	return p;
}

static void default_release(void *ctx, void *base, size_t size)
{
	(void)ctx;
	(void)size;
	free(base);
}

void mw_store_set_mem_backend(mw_store *s, const mw_mem_backend *b)
{
	if (b && b->resize && b->release)
		s->mem_backend = *b;
}

mw_store *mw_store_new(const mw_limits *lim)
{
	mw_store *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (lim)
		s->lim = *lim;
	else
		mw_limits_default(&s->lim);
	if (s->lim.max_call_depth == 0)
		s->lim.max_call_depth = 1;
	if (s->lim.max_stack_bytes < 4096)
		s->lim.max_stack_bytes = 4096;
	s->fuel = s->lim.fuel ? (s->lim.fuel > INT64_MAX ? INT64_MAX : (int64_t)s->lim.fuel)
			      : INT64_MAX;
	s->labels = mw__labels();
	s->mem_backend.resize = default_resize;
	s->mem_backend.release = default_release;
	s->mem_backend.ctx = NULL;
	return s;
}

bool mw__store_stacks(mw_store *s)
{
	if (s->stack)
		return true;
	size_t slots = s->lim.max_stack_bytes / 8;
	s->stack = malloc(slots * 8);
	s->frames = malloc(((size_t)s->lim.max_call_depth + 1) * sizeof *s->frames);
	if (!s->stack || !s->frames) {
		free(s->stack);
		free(s->frames);
		s->stack = NULL;
		s->frames = NULL;
		return false;
	}
	s->stack_end = s->stack + slots;
	s->sp = s->stack;
	s->fr = s->frames;
	s->frames_end = s->frames + s->lim.max_call_depth;
	return true;
}

static void instance_destroy(mw_instance *in)
{
	if (in->elem_items) {
		for (uint32_t i = 0; i < in->mod->nelems; i++)
			free(in->elem_items[i]);
		free(in->elem_items);
	}
	free(in->elem_len);
	free(in->data_len);
	free(in->funcs);
	free(in->own_funcs);
	free(in->tables);
	free(in->globals);
	free(in->global_objs);
	mw_module_free(in->mod);
	free(in);
}

void mw_store_free(mw_store *s)
{
	if (!s)
		return;
	for (mw_instance *in = s->instances, *n; in; in = n) {
		n = in->next;
		instance_destroy(in);
	}
	for (mw_func *f = s->host_funcs, *n; f; f = n) {
		n = f->next;
		free(f->own_type);
		free(f);
	}
	for (mw_memory *m = s->memories, *n; m; m = n) {
		n = m->next;
		if (m->data)
			m->backend.release(m->backend.ctx, m->data, (size_t)m->size);
		free(m);
	}
	for (mw_table *t = s->tables, *n; t; t = n) {
		n = t->next;
		free(t->elems);
		free(t);
	}
	for (mw_global *g = s->globals, *n; g; g = n) {
		n = g->next;
		free(g);
	}
	free(s->stack);
	free(s->frames);
	free(s);
}

void mw_store_set_fuel(mw_store *s, uint64_t fuel)
{
	s->fuel = fuel > INT64_MAX ? INT64_MAX : (int64_t)fuel;
}

uint64_t mw_store_fuel(const mw_store *s)
{
	return s->fuel < 0 ? 0 : (uint64_t)s->fuel;
}

/* ----------------------------------------------------------- host objects */

static mw_ftype *ftype_from(const mw_functype *t)
{
	mw_ftype *ft = malloc(sizeof *ft + (size_t)t->nparams + t->nresults + 1);
	if (!ft)
		return NULL;
	if (t->nparams)
		memcpy(ft->types, t->params, t->nparams);
	if (t->nresults)
		memcpy(ft->types + t->nparams, t->results, t->nresults);
	ft->pub.nparams = t->nparams;
	ft->pub.nresults = t->nresults;
	ft->pub.params = ft->types;
	ft->pub.results = ft->types + t->nparams;
	ft->canon = 0;
	return ft;
}

mw_func *mw_func_new_host(mw_store *s, const mw_functype *type, mw_host_fn fn, void *user)
{
	mw_func *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->own_type = ftype_from(type);
	if (!f->own_type) {
		free(f);
		return NULL;
	}
	f->type = f->own_type;
	f->host = fn;
	f->host_user = user;
	f->next = s->host_funcs;
	s->host_funcs = f;
	return f;
}

mw_global *mw_global_new(mw_store *s, mw_globaltype type, mw_val init)
{
	mw_global *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->type = type;
	g->val = (type.type == T_I32 || type.type == T_F32) ? init.u32 : init.u64;
	if (type.type == T_FUNCREF || type.type == T_EXTERNREF)
		g->val = (uint64_t)(uintptr_t)init.ref;
	g->next = s->globals;
	s->globals = g;
	return g;
}

static mw_memory *memory_alloc(mw_store *s, mw_memtype type)
{
	uint32_t cap = s->lim.max_memory_pages;
	if (cap > MW_MAX_PAGES)
		cap = MW_MAX_PAGES;
	if (type.min > cap)
		return NULL;
	mw_memory *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->type = type;
	m->max = type.has_max && type.max < cap ? type.max : cap;
	m->backend = s->mem_backend;
	if (type.min) {
		if ((uint64_t)type.min * MW_PAGE > (uint64_t)SIZE_MAX) {
			free(m);
			return NULL;
		}
		m->data = m->backend.resize(m->backend.ctx, NULL, 0, (size_t)type.min * MW_PAGE,
					    (size_t)((uint64_t)m->max * MW_PAGE));
		if (!m->data) {
			free(m);
			return NULL;
		}
	}
	m->pages = type.min;
	m->size = (uint64_t)type.min * MW_PAGE;
	m->next = s->memories;
	s->memories = m;
	return m;
}

mw_memory *mw_memory_new(mw_store *s, mw_memtype type)
{
	return memory_alloc(s, type);
}

static mw_table *table_alloc(mw_store *s, mw_tabletype type, uint64_t init)
{
	uint32_t cap = s->lim.max_table_size;
	if (type.min > cap)
		return NULL;
	mw_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->type = type;
	t->max = type.has_max && type.max < cap ? type.max : cap;
	if (type.min) {
		t->elems = malloc((size_t)type.min * 8);
		if (!t->elems) {
			free(t);
			return NULL;
		}
		for (uint32_t i = 0; i < type.min; i++)
			t->elems[i] = init;
	}
	t->size = type.min;
	t->next = s->tables;
	s->tables = t;
	return t;
}

mw_table *mw_table_new(mw_store *s, mw_tabletype type, mw_val init)
{
	return table_alloc(s, type, (uint64_t)(uintptr_t)init.ref);
}

int64_t mw__memory_grow(mw_memory *m, uint32_t delta)
{
	uint32_t old = m->pages;
	if (delta == 0)
		return old;
	if ((uint64_t)old + delta > m->max)
		return -1;
	uint64_t nsize = ((uint64_t)old + delta) * MW_PAGE;
	if (nsize > (uint64_t)SIZE_MAX)
		return -1;
	uint8_t *p = m->backend.resize(m->backend.ctx, m->data, (size_t)m->size, (size_t)nsize,
				       (size_t)((uint64_t)m->max * MW_PAGE));
	if (!p)
		return -1;
	m->data = p;
	m->size = nsize;
	m->pages = old + delta;
	return old;
}

int64_t mw__table_grow(mw_table *t, uint32_t delta, uint64_t init)
{
	uint32_t old = t->size;
	if ((uint64_t)old + delta > t->max)
		return -1;
	if (delta == 0)
		return old;
	uint64_t *p = realloc(t->elems, ((size_t)old + delta) * 8);
	if (!p)
		return -1;
	for (uint32_t i = old; i < old + delta; i++)
		p[i] = init;
	t->elems = p;
	t->size = old + delta;
	return old;
}

/* -------------------------------------------------------------- calling */

mw_trap mw__call_host(mw_store *s, mw_func *f, mw_instance *caller, uint64_t *fp)
{
	uint32_t np = f->type->pub.nparams, nr = f->type->pub.nresults;
	uint64_t *res = fp + np;
	uint64_t *top = res + nr;
	if (top > s->stack_end)
		return MW_TRAP_CALL_STACK_EXHAUSTED;
	uint64_t *saved = s->sp;
	s->sp = top;
	mw_trap t = f->host(f->host_user, caller, (const mw_val *)fp, (mw_val *)res);
	s->sp = saved;
	if (t != MW_TRAP_NONE)
		return t;
	memmove(fp, res, (size_t)nr * 8);
	return MW_TRAP_NONE;
}

#define MAX_NEST 64

mw_trap mw__call_nested(mw_store *s, mw_func *f, mw_instance *caller, uint64_t *fp)
{
	if (s->nest >= MAX_NEST)
		return MW_TRAP_CALL_STACK_EXHAUSTED;
	uint64_t *saved_sp = s->sp;
	mw_frame_rec *saved_fr = s->fr;
	s->nest++;
	mw_trap t = f->host ? mw__call_host(s, f, caller, fp) : mw__interp(s, f, fp, NULL);
	s->nest--;
	s->sp = saved_sp;
	s->fr = saved_fr;
	return t;
}

mw_trap mw_call(mw_store *s, mw_func *f, const mw_val *args, size_t nargs, mw_val *results,
		size_t nresults)
{
	const mw_ftype *ft = f->type;
	if (nargs != ft->pub.nparams || nresults != ft->pub.nresults)
		return MW_TRAP_BAD_CALL;
	if (!mw__store_stacks(s))
		return MW_TRAP_OUT_OF_MEMORY;
	uint64_t *fp = s->sp;
	size_t need = nargs > nresults ? nargs : nresults;
	if ((size_t)(s->stack_end - fp) < need + 1)
		return MW_TRAP_CALL_STACK_EXHAUSTED;
	for (size_t i = 0; i < nargs; i++) {
		uint8_t t = ft->pub.params[i];
		fp[i] = (t == T_I32 || t == T_F32) ? args[i].u32
			: mw_is_ref(t)		   ? (uint64_t)(uintptr_t)args[i].ref
						   : args[i].u64;
	}
	mw_trap t = mw__call_nested(s, f, NULL, fp);
	if (t == MW_TRAP_NONE) {
		for (size_t i = 0; i < nresults; i++) {
			uint8_t ty = ft->pub.results[i];
			results[i].u64 = (ty == T_I32 || ty == T_F32) ? (uint32_t)fp[i] : fp[i];
		}
	}
	return t;
}

const mw_functype *mw_func_type(const mw_func *f)
{
	return &f->type->pub;
}

mw_trap mw_invoke(mw_instance *inst, const char *name, const mw_typed_val *args, size_t nargs,
		  mw_typed_val *results, size_t nresults)
{
	mw_func *f = mw_instance_func(inst, name);
	if (!f)
		return MW_TRAP_BAD_CALL;
	const mw_ftype *ft = f->type;
	if (nargs != ft->pub.nparams || nresults != ft->pub.nresults || nargs > 64 ||
	    nresults > 64)
		return MW_TRAP_BAD_CALL;
	mw_val a[64], r[64];
	for (size_t i = 0; i < nargs; i++) {
		if (args[i].type != ft->pub.params[i])
			return MW_TRAP_BAD_CALL;
		a[i] = args[i].v;
	}
	mw_trap t = mw_call(inst->store, f, a, nargs, r, nresults);
	if (t == MW_TRAP_NONE) {
		for (size_t i = 0; i < nresults; i++) {
			results[i].type = (mw_valtype)ft->pub.results[i];
			results[i].v = r[i];
		}
	}
	return t;
}

/* ------------------------------------------------------------ instances */

static bool limits_match(uint32_t amin, bool ahas, uint32_t amax, uint32_t bmin, bool bhas,
			 uint32_t bmax)
{
	/* actual a is a subtype of declared b */
	if (amin < bmin)
		return false;
	if (bhas) {
		if (!ahas)
			return false;
		if (amax > bmax)
			return false;
	}
	return true;
}

static uint64_t eval_cexpr(const mw_instance *in, const mw_cexpr *ce)
{
	switch (ce->kind) {
	case CE_REF_NULL:
		return 0;
	case CE_REF_FUNC:
		return (uint64_t)(uintptr_t)in->funcs[ce->index];
	case CE_GLOBAL_GET:
		return *in->globals[ce->index];
	default:
		return ce->bits;
	}
}

static int inst_fail(mw_error *err, mw_errcode code, const char *fmt, const char *a,
		     const char *b)
{
	mw__errf(err, code, 0, fmt, a, b);
	return -1;
}

/* Resolve the module's imports and check each against its declared type. */
static int link_imports(mw_instance *in, mw_module *m, mw_resolver resolve, void *user,
			mw_error *err)
{
	uint32_t kf = 0, kt = 0, kg = 0;
	for (uint32_t i = 0; i < m->nimports; i++) {
		const mw_import *im = &m->imports[i];
		mw_import_info info;
		mw_module_import(m, i, &info);
		mw_extern ext;
		memset(&ext, 0, sizeof ext);
		if (!resolve || resolve(user, &info, &ext) != 0)
			return inst_fail(err, MW_ERR_UNLINKABLE, "unknown import %s.%s",
					 im->module.s, im->name.s);
		if ((uint8_t)ext.kind != im->kind)
			return inst_fail(err, MW_ERR_UNLINKABLE, "incompatible import type %s.%s",
					 im->module.s, im->name.s);
		switch (im->kind) {
		case 0:
			if (!ext.u.func || !mw__ftype_equal(ext.u.func->type, m->types[im->type]))
				return inst_fail(err, MW_ERR_UNLINKABLE,
						 "incompatible import type %s.%s", im->module.s,
						 im->name.s);
			in->funcs[kf++] = ext.u.func;
			break;
		case 1: {
			mw_table *t = ext.u.table;
			if (!t || t->type.elem != im->table.elem ||
			    !limits_match(t->size, t->type.has_max, t->type.max, im->table.min,
					  im->table.has_max, im->table.max))
				return inst_fail(err, MW_ERR_UNLINKABLE,
						 "incompatible import type %s.%s", im->module.s,
						 im->name.s);
			in->tables[kt++] = t;
			break;
		}
		case 2: {
			mw_memory *mm = ext.u.memory;
			if (!mm || !limits_match(mm->pages, mm->type.has_max, mm->type.max,
						 im->mem.min, im->mem.has_max, im->mem.max))
				return inst_fail(err, MW_ERR_UNLINKABLE,
						 "incompatible import type %s.%s", im->module.s,
						 im->name.s);
			in->mem = mm;
			break;
		}
		default: {
			mw_global *g = ext.u.global;
			if (!g || g->type.type != im->global.type || g->type.mut != im->global.mut)
				return inst_fail(err, MW_ERR_UNLINKABLE,
						 "incompatible import type %s.%s", im->module.s,
						 im->name.s);
			in->global_objs[kg] = g;
			in->globals[kg++] = &g->val;
			break;
		}
		}
	}

	return 0;
}

/* The instance's own functions, memory, globals and tables, and its
 * element segments evaluated. */
static int make_own(mw_instance *in, mw_store *s, mw_module *m, mw_error *err)
{
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	/* own functions */
	for (uint32_t i = 0; i < ndef; i++) {
		mw_func *f = &in->own_funcs[i];
		const mw_ftype *ft = m->types[m->fcode[i].type];
		f->type = m->types[ft->canon];
		f->inst = in;
		f->fc = &m->fcode[i];
		if (m->aot)
			mw__aot_bind(in, f, i);
		in->funcs[m->nfunc_imports + i] = f;
	}
	/* memory */
	if (!in->mem) {
		mw_memtype mt = {false, 0, 0};
		if (m->nmems)
			mt = m->mems[0];
		in->mem = memory_alloc(s, mt);
		if (!in->mem) {
			mw__errf(err, MW_ERR_LIMIT, 0, "cannot allocate memory of %u pages",
				 mt.min);
			return -1;
		}
	}
	/* globals */
	for (uint32_t i = m->nglobal_imports; i < m->nglobals; i++) {
		mw_val v;
		v.u64 = eval_cexpr(in, &m->globals[i].init);
		mw_global *g = mw_global_new(s, m->globals[i].type, v);
		if (!g) {
			mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
			return -1;
		}
		g->val = v.u64;
		in->global_objs[i] = g;
		in->globals[i] = &g->val;
	}
	/* tables */
	for (uint32_t i = m->ntable_imports; i < m->ntables; i++) {
		in->tables[i] = table_alloc(s, m->tables[i], 0);
		if (!in->tables[i]) {
			mw__errf(err, MW_ERR_LIMIT, 0, "cannot allocate table of %u entries",
				 m->tables[i].min);
			return -1;
		}
	}
	/* element segments: evaluate */
	for (uint32_t i = 0; i < m->nelems; i++) {
		const mw_elem *e = &m->elems[i];
		in->elem_items[i] = malloc(((size_t)e->count + 1) * 8);
		if (!in->elem_items[i]) {
			mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
			return -1;
		}
		for (uint32_t k = 0; k < e->count; k++)
			in->elem_items[i][k] = eval_cexpr(in, &e->items[k]);
		in->elem_len[i] = e->mode == 1 ? e->count : e->count;
	}
	for (uint32_t i = 0; i < m->ndatas; i++)
		in->data_len[i] = m->datas[i].len;

	return 0;
}

/* The active element and data segments written, in order (2.0 semantics:
 * earlier writes persist when a later one traps). */
static int init_segments(mw_instance *in, mw_module *m, mw_error *err)
{
	for (uint32_t i = 0; i < m->nelems; i++) {
		const mw_elem *e = &m->elems[i];
		if (e->mode == 0) {
			mw_table *t = in->tables[e->table];
			uint32_t off = (uint32_t)eval_cexpr(in, &e->offset);
			if ((uint64_t)off + e->count > t->size) {
				mw__errf(err, MW_ERR_TRAP, 0, "out of bounds table access");
				if (err)
					err->trap = MW_TRAP_TABLE_OOB;
				return -1;
			}
			if (e->count)
				memcpy(t->elems + off, in->elem_items[i], (size_t)e->count * 8);
		}
		if (e->mode != 1)
			in->elem_len[i] = 0; /* active and declarative segments are dropped */
	}
	for (uint32_t i = 0; i < m->ndatas; i++) {
		const mw_data *d = &m->datas[i];
		if (d->mode != 0)
			continue;
		uint32_t off = (uint32_t)eval_cexpr(in, &d->offset);
		if ((uint64_t)off + d->len > in->mem->size) {
			mw__errf(err, MW_ERR_TRAP, 0, "out of bounds memory access");
			if (err)
				err->trap = MW_TRAP_MEMORY_OOB;
			return -1;
		}
		if (d->len)
			memcpy(in->mem->data + off, d->bytes, d->len);
		in->data_len[i] = 0;
	}
	return 0;
}

int mw_instantiate(mw_store *s, mw_module *m, mw_resolver resolve, void *user,
		   mw_instance **out, mw_error *err)
{
	if (err) {
		err->code = MW_OK;
		err->trap = MW_TRAP_NONE;
		err->offset = 0;
		err->msg[0] = 0;
	}
	*out = NULL;
	mw_instance *in = calloc(1, sizeof *in);
	if (!in) {
		mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
		return -1;
	}
	m->refs++;
	in->mod = m;
	in->store = s;
	/* register immediately so partial state is released with the store */
	in->next = s->instances;
	s->instances = in;
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	in->funcs = calloc(m->nfuncs + 1, sizeof *in->funcs);
	in->own_funcs = calloc(ndef + 1, sizeof *in->own_funcs);
	in->tables = calloc(m->ntables + 1, sizeof *in->tables);
	in->globals = calloc(m->nglobals + 1, sizeof *in->globals);
	in->global_objs = calloc(m->nglobals + 1, sizeof *in->global_objs);
	in->elem_items = calloc(m->nelems + 1, sizeof *in->elem_items);
	in->elem_len = calloc(m->nelems + 1, sizeof *in->elem_len);
	in->data_len = calloc(m->ndatas + 1, sizeof *in->data_len);
	if (!in->funcs || !in->own_funcs || !in->tables || !in->globals || !in->global_objs ||
	    !in->elem_items || !in->elem_len || !in->data_len) {
		mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
		return -1;
	}

	if (link_imports(in, m, resolve, user, err) || make_own(in, s, m, err))
		return -1;
	in->aot = (mw_aot_inst){(mw_aot_mem *)in->mem, in->globals, (mw_aot_table **)in->tables,
				(mw_aot_func **)in->funcs, &s->aot_stack_limit, m->aot};
	if (init_segments(in, m, err))
		return -1;
	if (m->has_start) {
		mw_trap t = mw_call(s, in->funcs[m->start], NULL, 0, NULL, 0);
		if (t != MW_TRAP_NONE) {
			mw__errf(err, MW_ERR_TRAP, 0, "%s", mw_trap_message(t));
			if (err)
				err->trap = t;
			return -1;
		}
	}
	*out = in;
	return 0;
}

int mw_instance_export_at(mw_instance *in, uint32_t i, mw_extern *out)
{
	const mw_module *m = in->mod;
	if (i >= m->nexports)
		return -1;
	const mw_export *e = &m->exports[i];
	out->kind = (mw_extern_kind)e->kind;
	switch (e->kind) {
	case 0: out->u.func = in->funcs[e->index]; break;
	case 1: out->u.table = in->tables[e->index]; break;
	case 2: out->u.memory = in->mem; break;
	default: out->u.global = in->global_objs[e->index]; break;
	}
	return 0;
}

int mw_instance_export_n(mw_instance *in, const char *name, size_t len, mw_extern *out)
{
	const mw_module *m = in->mod;
	for (uint32_t i = 0; i < m->nexports; i++) {
		const mw_export *e = &m->exports[i];
		if (e->name.len == len && memcmp(e->name.s, name, len) == 0)
			return mw_instance_export_at(in, i, out);
	}
	return -1;
}

int mw_instance_export(mw_instance *in, const char *name, mw_extern *out)
{
	return mw_instance_export_n(in, name, strlen(name), out);
}

mw_func *mw_instance_func(mw_instance *in, const char *name)
{
	mw_extern e;
	if (mw_instance_export(in, name, &e) != 0 || e.kind != MW_EXTERN_FUNC)
		return NULL;
	return e.u.func;
}

mw_memory *mw_instance_memory(mw_instance *in)
{
	return in->mod->nmems ? in->mem : NULL;
}

const mw_module *mw_instance_module(const mw_instance *in)
{
	return in->mod;
}

/* ---------------------------------------------------------------- memory */

uint8_t *mw_memory_data(mw_memory *m)
{
	return m->data;
}
uint64_t mw_memory_size(const mw_memory *m)
{
	return m->size;
}
uint32_t mw_memory_pages(const mw_memory *m)
{
	return m->pages;
}
mw_memtype mw_memory_type(const mw_memory *m)
{
	mw_memtype t = m->type;
	t.min = m->pages;
	return t;
}

int mw_memory_read(const mw_memory *m, uint64_t off, void *dst, size_t n)
{
	if (off > m->size || n > m->size - off)
		return -1;
	if (n)
		memcpy(dst, m->data + off, n);
	return 0;
}

int mw_memory_write(mw_memory *m, uint64_t off, const void *src, size_t n)
{
	if (off > m->size || n > m->size - off)
		return -1;
	if (n)
		memcpy(m->data + off, src, n);
	return 0;
}

int64_t mw_memory_grow(mw_memory *m, uint32_t delta)
{
	return mw__memory_grow(m, delta);
}

/* ---------------------------------------------------------------- tables */

uint32_t mw_table_size(const mw_table *t)
{
	return t->size;
}
mw_tabletype mw_table_type(const mw_table *t)
{
	mw_tabletype ty = t->type;
	ty.min = t->size;
	return ty;
}
int mw_table_get(const mw_table *t, uint32_t i, mw_val *out)
{
	if (i >= t->size)
		return -1;
	out->ref = (void *)(uintptr_t)t->elems[i];
	return 0;
}
int mw_table_set(mw_table *t, uint32_t i, mw_val v)
{
	if (i >= t->size)
		return -1;
	t->elems[i] = (uint64_t)(uintptr_t)v.ref;
	return 0;
}
int64_t mw_table_grow(mw_table *t, uint32_t delta, mw_val init)
{
	return mw__table_grow(t, delta, (uint64_t)(uintptr_t)init.ref);
}

/* --------------------------------------------------------------- globals */

mw_globaltype mw_global_type(const mw_global *g)
{
	return g->type;
}
mw_val mw_global_get(const mw_global *g)
{
	mw_val v;
	v.u64 = g->val;
	return v;
}
int mw_global_set(mw_global *g, mw_val v)
{
	if (!g->type.mut)
		return -1;
	g->val = (g->type.type == T_I32 || g->type.type == T_F32) ? v.u32 : v.u64;
	return 0;
}
