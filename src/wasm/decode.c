/* mote wasm engine: binary decoder and module-level validation. Function
 * bodies are validated and translated by compile.c. */
#include "leb.h"
#include "wasm_int.h"

/* ------------------------------------------------------------- formatting */

static void put_c(char *buf, size_t cap, size_t *n, char c)
{
	if (*n + 1 < cap)
		buf[*n] = c;
	(*n)++;
}

static void put_u(char *buf, size_t cap, size_t *n, uint64_t v, unsigned base)
{
	char tmp[24];
	int k = 0;
	do {
		unsigned d = (unsigned)(v % base);
		tmp[k++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (k)
		put_c(buf, cap, n, tmp[--k]);
}

/* Minimal formatter: %s %u %d %x %c %% (and %lu/%llu/%zu treated as 64-bit). */
void mw__vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
	size_t n = 0;
	if (!cap)
		return;
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			put_c(buf, cap, &n, *f);
			continue;
		}
		f++;
		int lng = 0;
		while (*f == 'l' || *f == 'z') {
			lng = 1;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			while (*s)
				put_c(buf, cap, &n, *s++);
			break;
		}
		case 'u':
			put_u(buf, cap, &n, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10);
			break;
		case 'x':
			put_u(buf, cap, &n, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16);
			break;
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				put_c(buf, cap, &n, '-');
				put_u(buf, cap, &n, (uint64_t)0 - (uint64_t)v, 10);
			} else {
				put_u(buf, cap, &n, (uint64_t)v, 10);
			}
			break;
		}
		case 'c':
			put_c(buf, cap, &n, (char)va_arg(ap, int));
			break;
		case '%':
			put_c(buf, cap, &n, '%');
			break;
		case 0:
			f--;
			break;
		default:
			put_c(buf, cap, &n, '?');
			break;
		}
	}
	buf[n < cap ? n : cap - 1] = 0;
}

void mw__errf(mw_error *err, mw_errcode code, uint32_t off, const char *fmt, ...)
{
	if (!err || err->code != MW_OK)
		return; /* keep the first error */
	err->code = code;
	err->trap = MW_TRAP_NONE;
	err->offset = off;
	va_list ap;
	va_start(ap, fmt);
	mw__vfmt(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ reader */

typedef struct rd {
	const uint8_t *base, *p, *end;
	mw_error *err;
} rd;

#define OFF(r) ((uint32_t)((r)->p - (r)->base))

static bool malformed(rd *r, const char *msg)
{
	mw__errf(r->err, MW_ERR_MALFORMED, OFF(r), "%s", msg);
	return false;
}

static bool invalid(rd *r, const char *msg)
{
	mw__errf(r->err, MW_ERR_INVALID, OFF(r), "%s", msg);
	return false;
}

static bool rd_byte(rd *r, uint8_t *b)
{
	if (r->p >= r->end)
		return malformed(r, "unexpected end");
	*b = *r->p++;
	return true;
}

static bool rd_uleb(rd *r, unsigned bits, uint64_t *out)
{
	mw_leb_status st = mw_leb_read(&r->p, r->end, bits, 0, out);
	return st ? malformed(r, mw_leb_message(st)) : true;
}

static bool rd_sleb(rd *r, unsigned bits, int64_t *out)
{
	uint64_t v;
	mw_leb_status st = mw_leb_read(&r->p, r->end, bits, 1, &v);
	if (st)
		return malformed(r, mw_leb_message(st));
	*out = (int64_t)v;
	return true;
}

static bool rd_u32(rd *r, uint32_t *out)
{
	uint64_t v;
	if (!rd_uleb(r, 32, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool rd_bytes(rd *r, size_t n, const uint8_t **out)
{
	if ((size_t)(r->end - r->p) < n)
		return malformed(r, "unexpected end of section or function");
	*out = r->p;
	r->p += n;
	return true;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t len;
		if ((c & 0xe0) == 0xc0) {
			cp = c & 0x1f;
			len = 2;
		} else if ((c & 0xf0) == 0xe0) {
			cp = c & 0x0f;
			len = 3;
		} else if ((c & 0xf8) == 0xf0) {
			cp = c & 0x07;
			len = 4;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
			return false;
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static bool rd_name(rd *r, mw_module *m, size_t *arena_used, mw_name *out)
{
	uint32_t n;
	const uint8_t *s;
	if (!rd_u32(r, &n) || !rd_bytes(r, n, &s))
		return false;
	if (!utf8_valid(s, n))
		return malformed(r, "malformed UTF-8 encoding");
	/* arena is sized to the module length + one NUL per name, see load */
	char *dst = m->names + *arena_used;
	memcpy(dst, s, n);
	dst[n] = 0;
	*arena_used += (size_t)n + 1;
	out->s = dst;
	out->len = n;
	return true;
}

static bool rd_valtype(rd *r, uint8_t *t)
{
	uint8_t b;
	if (!rd_byte(r, &b))
		return false;
	switch (b) {
	case T_I32:
	case T_I64:
	case T_F32:
	case T_F64:
	case T_FUNCREF:
	case T_EXTERNREF:
		*t = b;
		return true;
	default:
		return malformed(r, "malformed value type");
	}
}

static bool rd_reftype(rd *r, uint8_t *t)
{
	uint8_t b;
	if (!rd_byte(r, &b))
		return false;
	if (b != T_FUNCREF && b != T_EXTERNREF)
		return malformed(r, "malformed reference type");
	*t = b;
	return true;
}

static bool rd_limits(rd *r, bool *has_max, uint32_t *min, uint32_t *max)
{
	uint8_t flag;
	if (!rd_byte(r, &flag))
		return false;
	if (flag > 1)
		return malformed(r, "integer too large");
	*has_max = flag == 1;
	if (!rd_u32(r, min))
		return false;
	*max = 0;
	if (*has_max && !rd_u32(r, max))
		return false;
	return true;
}

static bool rd_tabletype(rd *r, mw_tabletype *t)
{
	if (!rd_reftype(r, &t->elem) || !rd_limits(r, &t->has_max, &t->min, &t->max))
		return false;
	if (t->has_max && t->min > t->max)
		return invalid(r, "size minimum must not be greater than maximum");
	return true;
}

static bool rd_memtype(rd *r, mw_memtype *t)
{
	if (!rd_limits(r, &t->has_max, &t->min, &t->max))
		return false;
	if (t->min > MW_MAX_PAGES || (t->has_max && t->max > MW_MAX_PAGES))
		return invalid(r, "memory size must be at most 65536 pages (4GiB)");
	if (t->has_max && t->min > t->max)
		return invalid(r, "size minimum must not be greater than maximum");
	return true;
}

static bool rd_globaltype(rd *r, mw_globaltype *g)
{
	uint8_t mut;
	if (!rd_valtype(r, &g->type) || !rd_byte(r, &mut))
		return false;
	if (mut > 1)
		return malformed(r, "malformed mutability");
	g->mut = mut;
	return true;
}

static bool known_opcode(uint8_t op)
{
	return op <= W_OP(else) || (op >= W_OP(end) && op <= W_OP(call_indirect)) ||
	       (op >= W_OP(drop) && op <= W_OP(select_t)) ||
	       (op >= W_OP(local_get) && op <= W_OP(table_set)) ||
	       (op >= W_OP(i32_load) && op <= 0xc4 /* the last numeric */) ||
	       (op >= W_OP(ref_null) && op <= W_OP(ref_func)) || op == W_OP(prefix_fc);
}

/* Constant expression: exactly one constant instruction then `end`. */
static bool rd_cexpr(rd *r, mw_module *m, uint8_t want, mw_cexpr *ce)
{
	uint8_t op;
	if (!rd_byte(r, &op))
		return false;
	ce->index = 0;
	ce->bits = 0;
	switch (op) {
	case W_OP(i32_const): {
		int64_t v;
		if (!rd_sleb(r, 32, &v))
			return false;
		ce->kind = CE_I32;
		ce->type = T_I32;
		ce->bits = (uint32_t)v;
		break;
	}
	case W_OP(i64_const): {
		int64_t v;
		if (!rd_sleb(r, 64, &v))
			return false;
		ce->kind = CE_I64;
		ce->type = T_I64;
		ce->bits = (uint64_t)v;
		break;
	}
	case W_OP(f32_const): {
		const uint8_t *b;
		if (!rd_bytes(r, 4, &b))
			return false;
		uint32_t v;
		memcpy(&v, b, 4);
		ce->kind = CE_F32;
		ce->type = T_F32;
		ce->bits = v;
		break;
	}
	case W_OP(f64_const): {
		const uint8_t *b;
		if (!rd_bytes(r, 8, &b))
			return false;
		memcpy(&ce->bits, b, 8);
		ce->kind = CE_F64;
		ce->type = T_F64;
		break;
	}
	case W_OP(ref_null):
		if (!rd_reftype(r, &ce->type))
			return false;
		ce->kind = CE_REF_NULL;
		break;
	case W_OP(ref_func):
		if (!rd_u32(r, &ce->index))
			return false;
		if (ce->index >= m->nfuncs)
			return invalid(r, "unknown function");
		m->func_refd[ce->index] = 1;
		ce->kind = CE_REF_FUNC;
		ce->type = T_FUNCREF;
		break;
	case W_OP(global_get):
		if (!rd_u32(r, &ce->index))
			return false;
		if (ce->index >= m->nglobal_imports)
			return invalid(r, "unknown global");
		if (m->globals[ce->index].type.mut)
			return invalid(r, "constant expression required");
		ce->kind = CE_GLOBAL_GET;
		ce->type = m->globals[ce->index].type.type;
		break;
	case W_OP(end):
		return invalid(r, "type mismatch");
	default:
		if (!known_opcode(op))
			return malformed(r, "illegal opcode");
		return invalid(r, "constant expression required");
	}
	if (!rd_byte(r, &op))
		return false;
	if (op != W_OP(end)) {
		if (op == W_OP(i32_const) || op == W_OP(i64_const) || op == W_OP(f32_const) ||
		    op == W_OP(f64_const) || op == W_OP(ref_null) || op == W_OP(ref_func) ||
		    op == W_OP(global_get))
			return invalid(r, "type mismatch");
		return invalid(r, "constant expression required");
	}
	if (ce->type != want)
		return invalid(r, "type mismatch");
	return true;
}

/* ------------------------------------------------------------ the module */

static void *xcalloc(size_t n, size_t sz)
{
	if (n == 0)
		n = 1;
	return calloc(n, sz);
}

static void module_destroy(mw_module *m)
{
	if (!m)
		return;
	if (m->types) {
		for (uint32_t i = 0; i < m->ntypes; i++)
			free(m->types[i]);
		free(m->types);
	}
	free(m->imports);
	free(m->func_types);
	free(m->fcode);
	free(m->tables);
	free(m->mems);
	free(m->globals);
	free(m->exports);
	if (m->elems) {
		for (uint32_t i = 0; i < m->nelems; i++)
			free(m->elems[i].items);
		free(m->elems);
	}
	free(m->datas);
	free(m->func_refd);
	free(m->code);
	free(m->names);
	free(m->bytes);
	free(m);
}

void mw_module_free(mw_module *m)
{
	if (m && --m->refs <= 0)
		module_destroy(m);
}

void mw_limits_default(mw_limits *lim)
{
	lim->max_memory_pages = MW_MAX_PAGES;
	lim->max_table_size = 10000000;
	lim->max_call_depth = 10000;
	lim->max_stack_bytes = 4u << 20;
	lim->fuel = 0;
	lim->max_module_bytes = 256u << 20;
	lim->max_function_locals = 50000;
	lim->max_native_stack = 512u << 10;
}

#define NOMEM()                                                                                    \
	do {                                                                                       \
		mw__errf(r->err, MW_ERR_NOMEM, OFF(r), "out of memory");                           \
		return false;                                                                      \
	} while (0)

static bool sec_type(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	m->types = xcalloc(n, sizeof *m->types);
	if (!m->types)
		NOMEM();
	for (uint32_t i = 0; i < n; i++) {
		uint8_t form;
		uint32_t np, nr;
		if (!rd_byte(r, &form))
			return false;
		if (form != 0x60)
			return malformed(r, "integer representation too long");
		if (!rd_u32(r, &np))
			return false;
		if (np > (uint32_t)(r->end - r->p))
			return malformed(r, "unexpected end of section or function");
		if (np > MW_MAX_ARITY) {
			mw__errf(r->err, MW_ERR_LIMIT, OFF(r), "too many parameters");
			return false;
		}
		const uint8_t *save = r->p;
		r->p += np;
		if (!rd_u32(r, &nr))
			return false;
		if (nr > (uint32_t)(r->end - r->p))
			return malformed(r, "unexpected end of section or function");
		if (nr > MW_MAX_ARITY) {
			mw__errf(r->err, MW_ERR_LIMIT, OFF(r), "too many results");
			return false;
		}
		mw_ftype *ft = malloc(sizeof *ft + (size_t)np + nr + 1);
		if (!ft)
			NOMEM();
		m->types[i] = ft;
		m->ntypes = i + 1;
		const uint8_t *after_nr = r->p;
		r->p = save;
		for (uint32_t k = 0; k < np; k++)
			if (!rd_valtype(r, &ft->types[k]))
				return false;
		r->p = after_nr;
		for (uint32_t k = 0; k < nr; k++)
			if (!rd_valtype(r, &ft->types[np + k]))
				return false;
		ft->pub.nparams = np;
		ft->pub.nresults = nr;
		ft->pub.params = ft->types;
		ft->pub.results = ft->types + np;
		ft->canon = i;
		for (uint32_t k = 0; k < i; k++) {
			if (mw__ftype_equal(m->types[k], ft)) {
				ft->canon = k;
				break;
			}
		}
	}
	return true;
}

static bool sec_import(rd *r, mw_module *m, size_t *arena)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	m->imports = xcalloc(n, sizeof *m->imports);
	if (!m->imports)
		NOMEM();
	m->nimports = n;
	for (uint32_t i = 0; i < n; i++) {
		mw_import *im = &m->imports[i];
		if (!rd_name(r, m, arena, &im->module) || !rd_name(r, m, arena, &im->name) ||
		    !rd_byte(r, &im->kind))
			return false;
		switch (im->kind) {
		case 0:
			if (!rd_u32(r, &im->type))
				return false;
			if (im->type >= m->ntypes)
				return invalid(r, "unknown type");
			m->nfunc_imports++;
			break;
		case 1:
			if (!rd_tabletype(r, &im->table))
				return false;
			m->ntable_imports++;
			break;
		case 2:
			if (!rd_memtype(r, &im->mem))
				return false;
			m->nmem_imports++;
			break;
		case 3:
			if (!rd_globaltype(r, &im->global))
				return false;
			m->nglobal_imports++;
			break;
		default:
			return malformed(r, "malformed import kind");
		}
	}
	return true;
}

/* Allocate the per-kind index spaces once imports and declarations are known. */
static bool sec_function(rd *r, mw_module *m, uint32_t *ndef)
{
	if (!rd_u32(r, ndef))
		return false;
	if (*ndef > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	m->fcode = xcalloc(*ndef, sizeof *m->fcode);
	if (!m->fcode)
		NOMEM();
	for (uint32_t i = 0; i < *ndef; i++) {
		if (!rd_u32(r, &m->fcode[i].type))
			return false;
		if (m->fcode[i].type >= m->ntypes)
			return invalid(r, "unknown type");
	}
	return true;
}

/* Make room for `n` defined entries after the `nimports` imported ones in
 * *arr (entries of `elem` bytes), keeping the imports. */
static bool grow_defs(rd *r, void **arr, size_t nimports, uint32_t n, size_t elem)
{
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	void *t = xcalloc(nimports + n, elem);
	if (!t)
		NOMEM();
	if (nimports)
		memcpy(t, *arr, nimports * elem);
	free(*arr);
	*arr = t;
	return true;
}

static bool sec_table(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n) ||
	    !grow_defs(r, (void **)&m->tables, m->ntable_imports, n, sizeof *m->tables))
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (!rd_tabletype(r, &m->tables[m->ntable_imports + i]))
			return false;
	m->ntables = m->ntable_imports + n;
	return true;
}

static bool sec_memory(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n) ||
	    !grow_defs(r, (void **)&m->mems, m->nmem_imports, n, sizeof *m->mems))
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (!rd_memtype(r, &m->mems[m->nmem_imports + i]))
			return false;
	m->nmems = m->nmem_imports + n;
	if (m->nmems > 1)
		return invalid(r, "multiple memories");
	return true;
}

static bool sec_global(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n) ||
	    !grow_defs(r, (void **)&m->globals, m->nglobal_imports, n, sizeof *m->globals))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		mw_globaldef *d = &m->globals[m->nglobal_imports + i];
		if (!rd_globaltype(r, &d->type) || !rd_cexpr(r, m, d->type.type, &d->init))
			return false;
	}
	m->nglobals = m->nglobal_imports + n;
	return true;
}

static bool sec_export(rd *r, mw_module *m, size_t *arena)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	m->exports = xcalloc(n, sizeof *m->exports);
	if (!m->exports)
		NOMEM();
	m->nexports = n;
	for (uint32_t i = 0; i < n; i++) {
		mw_export *e = &m->exports[i];
		if (!rd_name(r, m, arena, &e->name) || !rd_byte(r, &e->kind) ||
		    !rd_u32(r, &e->index))
			return false;
		uint32_t lim;
		switch (e->kind) {
		case 0:
			lim = m->nfuncs;
			break;
		case 1:
			lim = m->ntables;
			break;
		case 2:
			lim = m->nmems;
			break;
		case 3:
			lim = m->nglobals;
			break;
		default:
			return malformed(r, "malformed export kind");
		}
		if (e->index >= lim)
			return invalid(r, e->kind == 0   ? "unknown function"
					  : e->kind == 1 ? "unknown table"
					  : e->kind == 2 ? "unknown memory"
							 : "unknown global");
		if (e->kind == 0)
			m->func_refd[e->index] = 1;
	}
	/* duplicate names: O(n log n) would be nicer; n is small in practice,
	 * but guard against quadratic blowup with a simple hash. */
	if (n > 1) {
		uint32_t hcap = 1;
		while (hcap < n * 2)
			hcap <<= 1;
		uint32_t *h = malloc(hcap * sizeof *h);
		if (!h)
			NOMEM();
		for (uint32_t i = 0; i < hcap; i++)
			h[i] = UINT32_MAX;
		for (uint32_t i = 0; i < n; i++) {
			const mw_name *nm = &m->exports[i].name;
			uint32_t hv = 2166136261u;
			for (uint32_t k = 0; k < nm->len; k++)
				hv = (hv ^ (uint8_t)nm->s[k]) * 16777619u;
			uint32_t slot = hv & (hcap - 1);
			while (h[slot] != UINT32_MAX) {
				const mw_name *o = &m->exports[h[slot]].name;
				if (o->len == nm->len && memcmp(o->s, nm->s, nm->len) == 0) {
					free(h);
					return invalid(r, "duplicate export name");
				}
				slot = (slot + 1) & (hcap - 1);
			}
			h[slot] = i;
		}
		free(h);
	}
	return true;
}

static bool sec_start(rd *r, mw_module *m)
{
	if (!rd_u32(r, &m->start))
		return false;
	if (m->start >= m->nfuncs)
		return invalid(r, "unknown function");
	const mw_ftype *t = m->types[m->func_types[m->start]];
	if (t->pub.nparams || t->pub.nresults)
		return invalid(r, "start function");
	m->has_start = true;
	return true;
}

static bool sec_elem(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	m->elems = xcalloc(n, sizeof *m->elems);
	if (!m->elems)
		NOMEM();
	m->nelems = n;
	for (uint32_t i = 0; i < n; i++) {
		mw_elem *e = &m->elems[i];
		uint32_t flags;
		if (!rd_u32(r, &flags))
			return false;
		if (flags > 7)
			return malformed(r, "malformed elements segment kind");
		bool exprs = flags & 4;
		e->type = T_FUNCREF;
		e->table = 0;
		if (flags & 1)
			e->mode = (flags & 2) ? 2 : 1;
		else
			e->mode = 0;
		if (e->mode == 0) {
			if ((flags & 2) && !rd_u32(r, &e->table))
				return false;
			if (!rd_cexpr(r, m, T_I32, &e->offset))
				return false;
		}
		if (flags & 3) { /* elemkind or reftype present */
			if (exprs) {
				if (!rd_reftype(r, &e->type))
					return false;
			} else {
				uint8_t k;
				if (!rd_byte(r, &k))
					return false;
				if (k != 0)
					return malformed(r, "malformed element kind");
			}
		}
		if (e->mode == 0) {
			if (e->table >= m->ntables)
				return invalid(r, "unknown table");
			if (m->tables[e->table].elem != e->type)
				return invalid(r, "type mismatch");
		}
		uint32_t cnt;
		if (!rd_u32(r, &cnt))
			return false;
		if (cnt > (uint32_t)(r->end - r->p))
			return malformed(r, "unexpected end of section or function");
		e->items = xcalloc(cnt, sizeof *e->items);
		if (!e->items)
			NOMEM();
		e->count = cnt;
		for (uint32_t k = 0; k < cnt; k++) {
			mw_cexpr *ce = &e->items[k];
			if (exprs) {
				if (!rd_cexpr(r, m, e->type, ce))
					return false;
			} else {
				if (!rd_u32(r, &ce->index))
					return false;
				if (ce->index >= m->nfuncs)
					return invalid(r, "unknown function");
				m->func_refd[ce->index] = 1;
				ce->kind = CE_REF_FUNC;
				ce->type = T_FUNCREF;
			}
		}
	}
	return true;
}

static bool sec_data(rd *r, mw_module *m)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n > (uint32_t)(r->end - r->p))
		return malformed(r, "unexpected end of section or function");
	if (m->has_datacount && n != m->datacount)
		return malformed(r, "data count and data section have inconsistent lengths");
	m->datas = xcalloc(n, sizeof *m->datas);
	if (!m->datas)
		NOMEM();
	m->ndatas = n;
	for (uint32_t i = 0; i < n; i++) {
		mw_data *d = &m->datas[i];
		uint32_t flags, mem = 0;
		if (!rd_u32(r, &flags))
			return false;
		if (flags > 2)
			return malformed(r, "malformed data segment kind");
		d->mode = flags == 1 ? 1 : 0;
		if (flags == 2 && !rd_u32(r, &mem))
			return false;
		if (d->mode == 0) {
			if (mem >= m->nmems)
				return invalid(r, mem ? "unknown memory 1" : "unknown memory 0");
			if (!rd_cexpr(r, m, T_I32, &d->offset))
				return false;
		}
		if (!rd_u32(r, &d->len) || !rd_bytes(r, d->len, &d->bytes))
			return false;
	}
	return true;
}

static bool sec_code(rd *r, mw_module *m, uint32_t ndef)
{
	uint32_t n;
	if (!rd_u32(r, &n))
		return false;
	if (n != ndef)
		return malformed(r, "function and code section have inconsistent lengths");
	for (uint32_t i = 0; i < n; i++) {
		uint32_t size;
		if (!rd_u32(r, &size))
			return false;
		if (size > (uint32_t)(r->end - r->p))
			return malformed(r, "unexpected end of section or function");
		m->fcode[i].body_off = OFF(r);
		m->fcode[i].body_len = size;
		r->p += size;
	}
	return true;
}

/* Section order rank: custom sections are 0, others must strictly increase. */
static int sec_rank(uint8_t id)
{
	switch (id) {
	case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9:
		return id;
	case 12:
		return 10;
	case 10:
		return 11;
	case 11:
		return 12;
	default:
		return -1;
	}
}

/* Once the sections a later one depends on are complete, build the index
 * spaces (imports first). */
static bool stage(rd *r, mw_module *m, int rank, uint32_t ndef, bool *ready)
{
	if (*ready || rank <= 3)
		return true;
	*ready = true;
	m->nfuncs = m->nfunc_imports + ndef;
	m->func_types = xcalloc(m->nfuncs, sizeof *m->func_types);
	m->func_refd = xcalloc(m->nfuncs, 1);
	m->tables = xcalloc(m->ntable_imports, sizeof *m->tables);
	m->mems = xcalloc(m->nmem_imports, sizeof *m->mems);
	m->globals = xcalloc(m->nglobal_imports, sizeof *m->globals);
	if (!m->func_types || !m->func_refd || !m->tables || !m->mems || !m->globals)
		NOMEM();
	uint32_t kf = 0, kt = 0, km = 0, kg = 0;
	for (uint32_t i = 0; i < m->nimports; i++) {
		const mw_import *im = &m->imports[i];
		switch (im->kind) {
		case 0: m->func_types[kf++] = im->type; break;
		case 1: m->tables[kt++] = im->table; break;
		case 2: m->mems[km++] = im->mem; break;
		default: m->globals[kg++].type = im->global; break;
		}
	}
	for (uint32_t i = 0; i < ndef; i++)
		m->func_types[m->nfunc_imports + i] = m->fcode[i].type;
	m->ntables = m->ntable_imports;
	m->nmems = m->nmem_imports;
	m->nglobals = m->nglobal_imports;
	if (m->nmems > 1)
		return invalid(r, "multiple memories");
	return true;
}

static bool decode(rd *r, mw_module *m)
{
	const uint8_t *b;
	static const uint8_t magic[4] = {0, 'a', 's', 'm'};
	if ((size_t)(r->end - r->p) < 4 || memcmp(r->p, magic, 4) != 0) {
		if ((size_t)(r->end - r->p) < 4)
			return malformed(r, "unexpected end");
		return malformed(r, "magic header not detected");
	}
	r->p += 4;
	if (!rd_bytes(r, 4, &b))
		return malformed(r, "unexpected end");
	if (b[0] != 1 || b[1] || b[2] || b[3])
		return malformed(r, "unknown binary version");

	int last = 0;
	size_t arena = 0;
	uint32_t ndef = 0;
	bool have_code = false;
	bool funcs_ready = false;
	while (r->p < r->end) {
		uint8_t id;
		uint32_t size;
		if (!rd_byte(r, &id) || !rd_u32(r, &size))
			return false;
		if (size > (uint32_t)(r->end - r->p))
			return malformed(r, "section size mismatch: unexpected end");
		const uint8_t *send = r->p + size;
		const uint8_t *outer_end = r->end;
		r->end = send;
		if (id == 0) {
			mw_name nm;
			if (!rd_name(r, m, &arena, &nm))
				return false;
			r->p = send;
			r->end = outer_end;
			continue;
		}
		int rank = sec_rank(id);
		if (rank < 0)
			return malformed(r, "malformed section id");
		if (rank <= last)
			return malformed(r, "unexpected content after last section");
		last = rank;
		if (!stage(r, m, rank, ndef, &funcs_ready))
			return false;
		bool ok;
		switch (id) {
		case 1: ok = sec_type(r, m); break;
		case 2: ok = sec_import(r, m, &arena); break;
		case 3: ok = sec_function(r, m, &ndef); break;
		case 4: ok = sec_table(r, m); break;
		case 5: ok = sec_memory(r, m); break;
		case 6: ok = sec_global(r, m); break;
		case 7: ok = sec_export(r, m, &arena); break;
		case 8: ok = sec_start(r, m); break;
		case 9: ok = sec_elem(r, m); break;
		case 12:
			ok = rd_u32(r, &m->datacount);
			m->has_datacount = true;
			break;
		case 10: ok = sec_code(r, m, ndef); have_code = true; break;
		case 11: ok = sec_data(r, m); break;
		default: ok = false; break;
		}
		if (!ok)
			return false;
		if (r->p != send)
			return malformed(r, "section size mismatch");
		r->end = outer_end;
	}
	if (!stage(r, m, 99, ndef, &funcs_ready))
		return false;
	if (!have_code && ndef)
		return malformed(r, "function and code section have inconsistent lengths");
	if (m->has_datacount && !m->datas && m->datacount)
		return malformed(r, "data count and data section have inconsistent lengths");
	return true;
}

int mw_module_load(const uint8_t *bytes, size_t len, const mw_limits *lim, mw_module **out,
		   mw_error *err)
{
	if (err) {
		err->code = MW_OK;
		err->trap = MW_TRAP_NONE;
		err->offset = 0;
		err->msg[0] = 0;
	}
	*out = NULL;
	mw_module *m = calloc(1, sizeof *m);
	if (!m) {
		mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
		return -1;
	}
	m->refs = 1;
	if (lim)
		m->lim = *lim;
	else
		mw_limits_default(&m->lim);
	if (len > m->lim.max_module_bytes) {
		mw__errf(err, MW_ERR_LIMIT, 0, "module too large");
		module_destroy(m);
		return -1;
	}
	m->bytes = malloc(len ? len : 1);
	m->names = malloc(2 * len + 1);
	if (!m->bytes || !m->names) {
		mw__errf(err, MW_ERR_NOMEM, 0, "out of memory");
		module_destroy(m);
		return -1;
	}
	if (len)
		memcpy(m->bytes, bytes, len);
	m->len = len;
	mw_error local;
	local.code = MW_OK;
	rd r = {m->bytes, m->bytes, m->bytes + len, err ? err : &local};
	if (!decode(&r, m) || mw__compile_module(m, r.err) != 0) {
		module_destroy(m);
		return -1;
	}
	*out = m;
	return 0;
}

static void fill_functype(const mw_module *m, uint32_t type, mw_functype *out)
{
	*out = m->types[type]->pub;
}

uint32_t mw_module_num_imports(const mw_module *m)
{
	return m->nimports;
}

int mw_module_import(const mw_module *m, uint32_t i, mw_import_info *out)
{
	if (i >= m->nimports)
		return -1;
	const mw_import *im = &m->imports[i];
	memset(out, 0, sizeof *out);
	out->module = im->module.s;
	out->module_len = im->module.len;
	out->name = im->name.s;
	out->name_len = im->name.len;
	out->kind = (mw_extern_kind)im->kind;
	switch (im->kind) {
	case 0: fill_functype(m, im->type, &out->func); break;
	case 1: out->table = im->table; break;
	case 2: out->memory = im->mem; break;
	default: out->global = im->global; break;
	}
	return 0;
}

uint32_t mw_module_num_exports(const mw_module *m)
{
	return m->nexports;
}

int mw_module_export(const mw_module *m, uint32_t i, mw_export_info *out)
{
	if (i >= m->nexports)
		return -1;
	const mw_export *e = &m->exports[i];
	memset(out, 0, sizeof *out);
	out->name = e->name.s;
	out->name_len = e->name.len;
	out->kind = (mw_extern_kind)e->kind;
	out->index = e->index;
	switch (e->kind) {
	case 0: fill_functype(m, m->func_types[e->index], &out->func); break;
	case 1: out->table = m->tables[e->index]; break;
	case 2: out->memory = m->mems[e->index]; break;
	default: out->global = m->globals[e->index].type; break;
	}
	return 0;
}
