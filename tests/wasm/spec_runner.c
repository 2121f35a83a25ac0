/* Runs the official WebAssembly spec tests (converted by wast2json) against the
 * mote wasm engine.
 *
 *   wasm_spec [-v] [DIR | FILE.json ...]
 *
 * DIR defaults to ../shared/wasm-spec-tests/json (relative to the repo root)
 * and holds NAME/NAME.json + NAME/NAME.N.wasm. Prints per-file counts and a
 * final "N passed, M failed, K skipped" line; exits non-zero on any failure.
 *
 * Built with -DSPEC_IN_SANDBOX (wasm_spec_sandbox) the same runner executes
 * the modules inside mote Wasm sandboxes through the public API
 * (include/mote/wasm.h) instead of the linked engine, for the subset of
 * files in SANDBOX_SUBSET (--all: every file). What that API cannot express
 * (imports, register, named/multi-module actions, reference values, global
 * gets) is counted as skipped. See tests/wasm/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "wasm.h"

#ifdef SPEC_IN_SANDBOX
#include <unistd.h>

#include "mote.h"
#include "mote/wasm.h"
#endif
#ifdef SPEC_AOT
#include <dlfcn.h>
#include <unistd.h>
#endif

#define DEFAULT_DIR "../shared/wasm-spec-tests/json"

static int verbose;
static int run_all; /* --all: every file, not only the sandbox subset */

/* ------------------------------------------------------------------ JSON */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct json {
	int type;
	char *str; /* J_STR / J_NUM: bytes (may contain NUL), J_OBJ: unused */
	size_t len;
	struct json **items; /* J_ARR values, J_OBJ values */
	char **keys;         /* J_OBJ */
	size_t n;
} json;

typedef struct jp {
	const char *p, *end;
	int err;
} jp;

static void jfree(json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		jfree(j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	free(j);
}

static void jws(jp *p)
{
	while (p->p < p->end && (*p->p == ' ' || *p->p == '\n' || *p->p == '\r' || *p->p == '\t'))
		p->p++;
}

static void put_utf8(char **buf, size_t *len, size_t *cap, unsigned cp)
{
	char tmp[4];
	int n;
	if (cp < 0x80) {
		tmp[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (char)(0xc0 | (cp >> 6));
		tmp[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (char)(0xe0 | (cp >> 12));
		tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		tmp[0] = (char)(0xf0 | (cp >> 18));
		tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		tmp[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*len + (size_t)n + 1 > *cap) {
		*cap = (*cap + (size_t)n + 1) * 2;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
}

static int hex4(jp *p, unsigned *out)
{
	if (p->end - p->p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = *p->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static char *jstring(jp *p, size_t *outlen)
{
	size_t len = 0, cap = 16;
	char *buf = malloc(cap);
	p->p++; /* opening quote */
	while (p->p < p->end && *p->p != '"') {
		unsigned cp;
		if (*p->p == '\\') {
			p->p++;
			if (p->p >= p->end)
				break;
			char e = *p->p++;
			switch (e) {
			case 'n': cp = '\n'; break;
			case 't': cp = '\t'; break;
			case 'r': cp = '\r'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'u':
				if (hex4(p, &cp)) {
					p->err = 1;
					free(buf);
					return NULL;
				}
				if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->p >= 6 && p->p[0] == '\\' &&
				    p->p[1] == 'u') {
					unsigned lo;
					p->p += 2;
					if (hex4(p, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				break;
			default: cp = (unsigned char)e; break;
			}
			put_utf8(&buf, &len, &cap, cp);
		} else {
			if (len + 2 > cap) {
				cap *= 2;
				buf = realloc(buf, cap);
			}
			buf[len++] = *p->p++;
		}
	}
	if (p->p >= p->end) {
		p->err = 1;
		free(buf);
		return NULL;
	}
	p->p++;
	buf[len] = 0;
	*outlen = len;
	return buf;
}

static json *jparse(jp *p)
{
	jws(p);
	if (p->p >= p->end) {
		p->err = 1;
		return NULL;
	}
	json *j = calloc(1, sizeof *j);
	char c = *p->p;
	if (c == '{' || c == '[') {
		int obj = c == '{';
		j->type = obj ? J_OBJ : J_ARR;
		p->p++;
		size_t cap = 0;
		for (;;) {
			jws(p);
			if (p->p < p->end && *p->p == (obj ? '}' : ']')) {
				p->p++;
				break;
			}
			char *key = NULL;
			if (obj) {
				size_t kl;
				if (p->p >= p->end || *p->p != '"' || !(key = jstring(p, &kl))) {
					p->err = 1;
					break;
				}
				jws(p);
				if (p->p >= p->end || *p->p != ':') {
					free(key);
					p->err = 1;
					break;
				}
				p->p++;
			}
			json *v = jparse(p);
			if (!v) {
				free(key);
				break;
			}
			if (j->n == cap) {
				cap = cap ? cap * 2 : 8;
				j->items = realloc(j->items, cap * sizeof *j->items);
				if (obj)
					j->keys = realloc(j->keys, cap * sizeof *j->keys);
			}
			j->items[j->n] = v;
			if (obj)
				j->keys[j->n] = key;
			j->n++;
			jws(p);
			if (p->p < p->end && *p->p == ',')
				p->p++;
		}
	} else if (c == '"') {
		j->type = J_STR;
		j->str = jstring(p, &j->len);
	} else if (c == 't' || c == 'f' || c == 'n') {
		j->type = c == 'n' ? J_NULL : J_BOOL;
		j->len = c == 't';
		while (p->p < p->end && *p->p >= 'a' && *p->p <= 'z')
			p->p++;
	} else {
		j->type = J_NUM;
		const char *s = p->p;
		while (p->p < p->end && strchr("+-0123456789.eE", *p->p))
			p->p++;
		j->len = (size_t)(p->p - s);
		j->str = malloc(j->len + 1);
		memcpy(j->str, s, j->len);
		j->str[j->len] = 0;
	}
	return j;
}

static json *jget(const json *o, const char *key)
{
	if (!o || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return o->items[i];
	return NULL;
}

static const char *jstr(const json *o, const char *key)
{
	json *v = jget(o, key);
	return v && (v->type == J_STR || v->type == J_NUM) ? v->str : NULL;
}

/* ------------------------------------------------------------- spectest */

typedef struct reg {
	char *name;
	size_t len;
	mw_instance *inst;
	struct reg *next;
} reg;

typedef struct ctx {
	const char *dir;
	mw_store *store;
	reg *registered; /* register "as" */
	reg *named;      /* module $names */
	mw_instance *current;
	/* spectest host objects */
	mw_func *print[7];
	mw_global *g_i32, *g_i64, *g_f32, *g_f64;
	mw_table *table;
	mw_memory *memory;
	int passed, failed, skipped;
	const char *file;
	int line;
#ifdef SPEC_IN_SANDBOX
	int state;		/* SB_NONE / SB_LOADED / SB_SKIPPED */
	char *cur_name;		/* $name of the loaded module, if any */
	unsigned char *cur_wasm; /* its bytes, to reload after a replacement */
	size_t cur_len;
	mote_wasm_exports *exports;
	/* Set when a skipped call that may have changed the module's state (it
	 * takes a reference or v128 argument, e.g. table.set / table.grow) or
	 * a register (later importing modules may write to it) makes its state
	 * unknown: later calls on it are skipped too. A call skipped only for
	 * a reference result (getters, select) does not set it. */
	int tainted;
#endif
#ifdef SPEC_AOT
	void *so;         /* every module of the file, compiled */
	char **aot_files; /* module file name per compiled module */
	size_t naot;
#endif
} ctx;

#ifndef SPEC_IN_SANDBOX

static mw_trap host_print(void *user, mw_instance *caller, const mw_val *args, mw_val *results)
{
	(void)user;
	(void)caller;
	(void)args;
	(void)results;
	return MW_TRAP_NONE;
}

static const char *const PRINT_NAMES[7] = {"print",	  "print_i32",     "print_i64",
					   "print_f32",	  "print_f64",     "print_i32_f32",
					   "print_f64_f64"};

static void spectest_init(ctx *c)
{
	static const uint8_t p_i32[] = {MW_I32}, p_i64[] = {MW_I64}, p_f32[] = {MW_F32},
			     p_f64[] = {MW_F64}, p_i32_f32[] = {MW_I32, MW_F32},
			     p_f64_f64[] = {MW_F64, MW_F64};
	const mw_functype types[7] = {
		{0, 0, NULL, NULL},    {1, 0, p_i32, NULL},	{1, 0, p_i64, NULL},
		{1, 0, p_f32, NULL},   {1, 0, p_f64, NULL},	{2, 0, p_i32_f32, NULL},
		{2, 0, p_f64_f64, NULL},
	};
	for (int i = 0; i < 7; i++)
		c->print[i] = mw_func_new_host(c->store, &types[i], host_print, NULL);
	mw_val v;
	v.u64 = 0;
	v.i32 = 666;
	c->g_i32 = mw_global_new(c->store, (mw_globaltype){MW_I32, false}, v);
	v.i64 = 666;
	c->g_i64 = mw_global_new(c->store, (mw_globaltype){MW_I64, false}, v);
	v.u64 = 0;
	v.f32 = 666.6f;
	c->g_f32 = mw_global_new(c->store, (mw_globaltype){MW_F32, false}, v);
	v.f64 = 666.6;
	c->g_f64 = mw_global_new(c->store, (mw_globaltype){MW_F64, false}, v);
	v.ref = NULL;
	c->table = mw_table_new(c->store, (mw_tabletype){MW_FUNCREF, true, 10, 20}, v);
	c->memory = mw_memory_new(c->store, (mw_memtype){true, 1, 2});
}

static int resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	ctx *c = user;
	if (imp->module_len == 8 && memcmp(imp->module, "spectest", 8) == 0) {
		for (int i = 0; i < 7; i++) {
			if (imp->name_len == strlen(PRINT_NAMES[i]) &&
			    memcmp(imp->name, PRINT_NAMES[i], imp->name_len) == 0) {
				out->kind = MW_EXTERN_FUNC;
				out->u.func = c->print[i];
				return 0;
			}
		}
		struct {
			const char *n;
			mw_extern_kind k;
			void *o;
		} objs[] = {
			{"global_i32", MW_EXTERN_GLOBAL, c->g_i32},
			{"global_i64", MW_EXTERN_GLOBAL, c->g_i64},
			{"global_f32", MW_EXTERN_GLOBAL, c->g_f32},
			{"global_f64", MW_EXTERN_GLOBAL, c->g_f64},
			{"table", MW_EXTERN_TABLE, c->table},
			{"memory", MW_EXTERN_MEMORY, c->memory},
		};
		for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
			if (imp->name_len == strlen(objs[i].n) &&
			    memcmp(imp->name, objs[i].n, imp->name_len) == 0) {
				out->kind = objs[i].k;
				switch (objs[i].k) {
				case MW_EXTERN_GLOBAL: out->u.global = objs[i].o; break;
				case MW_EXTERN_TABLE: out->u.table = objs[i].o; break;
				default: out->u.memory = objs[i].o; break;
				}
				return 0;
			}
		}
		return -1;
	}
	for (reg *r = c->registered; r; r = r->next)
		if (r->len == imp->module_len && memcmp(r->name, imp->module, r->len) == 0)
			return mw_instance_export_n(r->inst, imp->name, imp->name_len, out);
	return -1;
}

static void add_reg(reg **list, const char *name, size_t len, mw_instance *inst)
{
	reg *r = calloc(1, sizeof *r);
	r->name = malloc(len + 1);
	memcpy(r->name, name, len);
	r->name[len] = 0;
	r->len = len;
	r->inst = inst;
	r->next = *list;
	*list = r;
}

static void free_regs(reg *r)
{
	while (r) {
		reg *n = r->next;
		free(r->name);
		free(r);
		r = n;
	}
}

static mw_instance *find_reg(reg *list, const char *name)
{
	for (reg *r = list; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r->inst;
	return NULL;
}

#endif /* !SPEC_IN_SANDBOX */

/* --------------------------------------------------------------- helpers */

static void failf(ctx *c, const char *fmt, ...)
{
	c->failed++;
	if (c->failed > 30 && !verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("  FAIL %s:%d: ", c->file, c->line);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
	if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

#ifndef SPEC_IN_SANDBOX
static int load_module(ctx *c, const char *filename, mw_module **out, mw_error *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", c->dir, filename);
	size_t len;
	unsigned char *b = read_file(path, &len);
	if (!b) {
		snprintf(err->msg, sizeof err->msg, "cannot read %.120s", path);
		err->code = MW_ERR_ARG;
		return -1;
	}
	int r = mw_module_load(b, len, NULL, out, err);
	free(b);
#ifdef SPEC_AOT
	if (r == 0) {
		size_t k = 0;
		while (k < c->naot && strcmp(c->aot_files[k], filename) != 0)
			k++;
		char sym[64];
		snprintf(sym, sizeof sym, "m%zu_module", k);
		const struct mw_aot_module *aot = k < c->naot && c->so ? dlsym(c->so, sym) : NULL;
		if (!aot) {
			snprintf(err->msg, sizeof err->msg, "no compiled code for %.100s",
			         filename);
			err->code = MW_ERR_ARG;
			mw_module_free(*out);
			return -1;
		}
		if (mw_module_set_native(*out, aot, err)) {
			mw_module_free(*out);
			return -1;
		}
	}
#endif
	return r;
}
#endif

#ifdef SPEC_AOT
/* Translate every valid binary module the file names into one C file,
 * compile it into a shared object and load it: one compiler run per file. */
static double aot_compile_s;

static void aot_prepare(ctx *c, const json *cmds)
{
	char tmpl[] = "/tmp/mote-spec-aot-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		return;
	char cpath[4200], sopath[4200], cmd[9000];
	snprintf(cpath, sizeof cpath, "%s/all.c", dir);
	snprintf(sopath, sizeof sopath, "%s/all.so", dir);
	FILE *f = fopen(cpath, "w");
	if (!f)
		return;
	c->aot_files = calloc(cmds->n + 1, sizeof(char *));
	for (size_t i = 0; i < cmds->n && c->aot_files; i++) {
		const json *cmd0 = cmds->items[i];
		const char *fn = jstr(cmd0, "filename");
		const char *mt = jstr(cmd0, "module_type");
		const char *type = jstr(cmd0, "type");
		if (!fn || !type || (mt && strcmp(mt, "binary") != 0) ||
		    !strcmp(type, "assert_invalid") || !strcmp(type, "assert_malformed"))
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", c->dir, fn);
		size_t len;
		unsigned char *b = read_file(path, &len);
		if (!b)
			continue;
		char pfx[32], sym[32];
		snprintf(pfx, sizeof pfx, "m%zu_", c->naot);
		snprintf(sym, sizeof sym, "m%zu_module", c->naot);
		mw_aot_options opt = {.prefix = pfx, .symbol = sym};
		char *src;
		size_t srclen;
		mw_error err;
		if (mw_aot_translate(b, len, &opt, &src, &srclen, &err) == 0) {
			fwrite(src, 1, srclen, f);
			free(src);
			c->aot_files[c->naot++] = strdup(fn);
		}
		free(b);
	}
	fclose(f);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(cmd, sizeof cmd,
	         "cc -std=gnu11 -O2 -fPIC -shared -fno-math-errno -fno-optimize-sibling-calls -I%s "
	         "-o %s %s 2>%s/cc.log",
	         SPEC_AOT_INCLUDE, sopath, cpath, dir);
	int rc = system(cmd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	aot_compile_s += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (rc != 0) {
		failf(c, "the C compiler rejected the translation (see %s)", dir);
		return;
	}
	c->so = dlopen(sopath, RTLD_NOW | RTLD_LOCAL);
	if (!c->so)
		failf(c, "dlopen: %s", dlerror());
	if (!getenv("SPEC_AOT_KEEP")) {
		unlink(cpath);
		unlink(sopath);
		snprintf(cmd, sizeof cmd, "%s/cc.log", dir);
		unlink(cmd);
		rmdir(dir);
	}
}

static void aot_release(ctx *c)
{
	for (size_t i = 0; i < c->naot; i++)
		free(c->aot_files[i]);
	free(c->aot_files);
	if (c->so)
		dlclose(c->so);
}
#endif

typedef struct val {
	uint8_t type;
	int nan; /* 1 canonical, 2 arithmetic */
	int any; /* reference without a value: any non-null */
	mw_val v;
} val;

static int parse_val(const json *j, val *out)
{
	const char *t = jstr(j, "type"), *v = jstr(j, "value");
	memset(out, 0, sizeof *out);
	if (!t)
		return -1;
	if (!strcmp(t, "i32"))
		out->type = MW_I32;
	else if (!strcmp(t, "i64"))
		out->type = MW_I64;
	else if (!strcmp(t, "f32"))
		out->type = MW_F32;
	else if (!strcmp(t, "f64"))
		out->type = MW_F64;
	else if (!strcmp(t, "funcref"))
		out->type = MW_FUNCREF;
	else if (!strcmp(t, "externref"))
		out->type = MW_EXTERNREF;
	else
		return -1;
	if (!v) {
		out->any = 1;
		return 0;
	}
	if (!strncmp(v, "nan:canonical", 13)) {
		out->nan = 1;
		return 0;
	}
	if (!strncmp(v, "nan:arithmetic", 14)) {
		out->nan = 2;
		return 0;
	}
	if (out->type == MW_FUNCREF || out->type == MW_EXTERNREF) {
		if (!strcmp(v, "null"))
			out->v.ref = NULL;
		else
			out->v.ref = (void *)(uintptr_t)(strtoull(v, NULL, 10) + 1);
		return 0;
	}
	unsigned long long x = strtoull(v, NULL, 10);
	if (out->type == MW_I32 || out->type == MW_F32) {
		out->v.u64 = 0;
		out->v.u32 = (uint32_t)x;
	} else {
		out->v.u64 = x;
	}
	return 0;
}

static int val_match(const val *exp, uint8_t type, mw_val got)
{
	if (exp->type != type)
		return 0;
	switch (type) {
	case MW_I32:
		return got.u32 == exp->v.u32;
	case MW_I64:
		return got.u64 == exp->v.u64;
	case MW_F32:
		if (exp->nan == 1)
			return (got.u32 & 0x7fffffffu) == 0x7fc00000u;
		if (exp->nan == 2)
			return (got.u32 & 0x7fc00000u) == 0x7fc00000u;
		return got.u32 == exp->v.u32;
	case MW_F64:
		if (exp->nan == 1)
			return (got.u64 & 0x7fffffffffffffffull) == 0x7ff8000000000000ull;
		if (exp->nan == 2)
			return (got.u64 & 0x7ff8000000000000ull) == 0x7ff8000000000000ull;
		return got.u64 == exp->v.u64;
	default:
		if (exp->any)
			return got.ref != NULL;
		return got.ref == exp->v.ref;
	}
}

static void fmt_val(char *buf, size_t n, uint8_t type, mw_val v)
{
	switch (type) {
	case MW_I32: snprintf(buf, n, "i32:0x%x", v.u32); break;
	case MW_I64: snprintf(buf, n, "i64:0x%llx", (unsigned long long)v.u64); break;
	case MW_F32: snprintf(buf, n, "f32:0x%x(%g)", v.u32, (double)v.f32); break;
	case MW_F64: snprintf(buf, n, "f64:0x%llx(%g)", (unsigned long long)v.u64, v.f64); break;
	default: snprintf(buf, n, "ref:%p", v.ref); break;
	}
}

#define MAXV 64

/* Compare an action's results with the command's expected values; counts
 * a pass or records the first mismatch. Shared by both modes. */
static void check_results(ctx *c, const json *exp, const uint8_t *rt, const mw_val *res)
{
	size_t ne = exp ? exp->n : 0;
	for (size_t i = 0; i < ne; i++) {
		val v;
		if (parse_val(exp->items[i], &v) != 0 || !val_match(&v, rt[i], res[i])) {
			char got[64], want[64];
			fmt_val(got, sizeof got, rt[i], res[i]);
			fmt_val(want, sizeof want, v.type, v.v);
			failf(c, "result %zu: got %s, expected %s%s", i, got, want,
			      v.nan == 1 ? " (nan:canonical)" : v.nan == 2 ? " (nan:arithmetic)" : "");
			return;
		}
	}
	c->passed++;
}

#ifndef SPEC_IN_SANDBOX

/* Run an action. Returns 0 and fills results (types in rtypes), or -1 for a
 * setup error (message printed), or 1 for a trap (*trap set). */
static int do_action(ctx *c, const json *a, mw_val *res, uint8_t *rtypes, size_t *nres,
		     mw_trap *trap)
{
	const char *type = jstr(a, "type");
	const char *modname = jstr(a, "module");
	json *fieldj = jget(a, "field");
	mw_instance *inst = modname ? find_reg(c->named, modname) : c->current;
	if (!inst || !fieldj || fieldj->type != J_STR) {
		failf(c, "no module instance for action");
		return -1;
	}
	mw_extern ext;
	if (mw_instance_export_n(inst, fieldj->str, fieldj->len, &ext) != 0) {
		failf(c, "export \"%s\" not found", fieldj->str);
		return -1;
	}
	if (type && !strcmp(type, "get")) {
		if (ext.kind != MW_EXTERN_GLOBAL) {
			failf(c, "export \"%s\" is not a global", fieldj->str);
			return -1;
		}
		res[0] = mw_global_get(ext.u.global);
		rtypes[0] = mw_global_type(ext.u.global).type;
		*nres = 1;
		return 0;
	}
	if (ext.kind != MW_EXTERN_FUNC) {
		failf(c, "export \"%s\" is not a function", fieldj->str);
		return -1;
	}
	const mw_functype *ft = mw_func_type(ext.u.func);
	json *args = jget(a, "args");
	size_t nargs = args ? args->n : 0;
	if (nargs > MAXV || ft->nresults > MAXV || nargs != ft->nparams) {
		failf(c, "bad argument count for \"%s\"", fieldj->str);
		return -1;
	}
	mw_val av[MAXV];
	for (size_t i = 0; i < nargs; i++) {
		val v;
		if (parse_val(args->items[i], &v) != 0) {
			failf(c, "bad argument");
			return -1;
		}
		av[i] = v.v;
	}
	*nres = ft->nresults;
	for (size_t i = 0; i < ft->nresults; i++)
		rtypes[i] = ft->results[i];
	*trap = mw_call(c->store, ext.u.func, av, nargs, res, ft->nresults);
	return *trap ? 1 : 0;
}

static void cmd_assert_return(ctx *c, const json *cmd)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres = 0;
	mw_trap trap = MW_TRAP_NONE;
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, &trap);
	if (r < 0)
		return;
	if (r > 0) {
		failf(c, "unexpected trap: %s", mw_trap_message(trap));
		return;
	}
	json *exp = jget(cmd, "expected");
	size_t ne = exp ? exp->n : 0;
	if (ne != nres) {
		failf(c, "result count %zu, expected %zu", nres, ne);
		return;
	}
	check_results(c, exp, rt, res);
}

static int trap_text_match(const char *expected, mw_trap t)
{
	const char *msg = mw_trap_message(t);
	return expected && strncmp(expected, msg, strlen(msg)) == 0;
}

static void cmd_assert_trap(ctx *c, const json *cmd, int exhaustion)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres = 0;
	mw_trap trap = MW_TRAP_NONE;
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, &trap);
	if (r < 0)
		return;
	const char *text = jstr(cmd, "text");
	if (r == 0) {
		failf(c, "expected trap \"%s\", got a result", text ? text : "?");
		return;
	}
	if (exhaustion ? trap != MW_TRAP_CALL_STACK_EXHAUSTED : !trap_text_match(text, trap)) {
		failf(c, "expected trap \"%s\", got \"%s\"", text ? text : "?",
		      mw_trap_message(trap));
		return;
	}
	c->passed++;
}

static void cmd_module(ctx *c, const json *cmd)
{
	const char *fn = jstr(cmd, "filename");
	const char *name = jstr(cmd, "name");
	mw_module *m;
	mw_error err;
	if (!fn || load_module(c, fn, &m, &err) != 0) {
		failf(c, "module %s failed to load: %s", fn ? fn : "?", err.msg);
		c->current = NULL;
		return;
	}
	mw_instance *inst;
	if (mw_instantiate(c->store, m, resolve, c, &inst, &err) != 0) {
		failf(c, "module %s failed to instantiate: %s", fn, err.msg);
		mw_module_free(m);
		c->current = NULL;
		return;
	}
	mw_module_free(m);
	c->current = inst;
	if (name)
		add_reg(&c->named, name, strlen(name), inst);
	c->passed++;
}

static void cmd_register(ctx *c, const json *cmd)
{
	const char *name = jstr(cmd, "name");
	json *as = jget(cmd, "as");
	mw_instance *inst = name ? find_reg(c->named, name) : c->current;
	if (!inst || !as || as->type != J_STR) {
		failf(c, "register: no such module");
		return;
	}
	add_reg(&c->registered, as->str, as->len, inst);
	c->passed++;
}

static void cmd_action(ctx *c, const json *cmd)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres;
	mw_trap trap;
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, &trap);
	if (r == 0)
		c->passed++;
	else if (r > 0)
		failf(c, "action trapped: %s", mw_trap_message(trap));
}

static void cmd_bad_module(ctx *c, const json *cmd, const char *kind)
{
	const char *mt = jstr(cmd, "module_type");
	if (mt && strcmp(mt, "binary") != 0) {
		c->skipped++;
		return;
	}
	const char *fn = jstr(cmd, "filename");
	const char *text = jstr(cmd, "text");
	mw_module *m;
	mw_error err;
	int r = load_module(c, fn, &m, &err);
	if (!strcmp(kind, "assert_invalid") || !strcmp(kind, "assert_malformed")) {
		if (r == 0) {
			failf(c, "%s: module %s loaded, expected \"%s\"", kind, fn, text);
			mw_module_free(m);
			return;
		}
		if (verbose) {
			int want = !strcmp(kind, "assert_invalid") ? MW_ERR_INVALID : MW_ERR_MALFORMED;
			if ((int)err.code != want)
				printf("  note %s:%d: %s \"%s\" rejected as %s: %s\n", c->file, c->line,
				       kind, text, err.code == MW_ERR_INVALID ? "invalid" : "malformed",
				       err.msg);
		}
		c->passed++;
		return;
	}
	/* unlinkable / uninstantiable: must decode and validate */
	if (r != 0) {
		failf(c, "%s: module %s failed to load: %s", kind, fn, err.msg);
		return;
	}
	mw_instance *inst;
	r = mw_instantiate(c->store, m, resolve, c, &inst, &err);
	mw_module_free(m);
	if (r == 0) {
		failf(c, "%s: module %s instantiated, expected \"%s\"", kind, fn, text);
		return;
	}
	if (!strcmp(kind, "assert_unlinkable") && err.code != MW_ERR_UNLINKABLE) {
		failf(c, "%s: wrong failure: %s", kind, err.msg);
		return;
	}
	if (!strcmp(kind, "assert_uninstantiable") &&
	    (err.code != MW_ERR_TRAP || !trap_text_match(text, err.trap))) {
		failf(c, "%s: wrong failure: %s (expected \"%s\")", kind, err.msg, text);
		return;
	}
	c->passed++;
}

static void file_begin(ctx *c)
{
	c->store = mw_store_new(NULL);
	spectest_init(c);
}

static void file_end(ctx *c)
{
	free_regs(c->registered);
	free_regs(c->named);
	mw_store_free(c->store);
#ifdef SPEC_AOT
	aot_release(c);
#endif
}

static int mode_init(void)
{
	return 0;
}

static void mode_fini(void)
{
}

static int in_subset(const char *name)
{
	(void)name;
	return 1;
}

#else /* SPEC_IN_SANDBOX */
/* ---------------------------------------------------------- sandbox mode */

/* Files run by default in sandbox mode (--all runs every file). Each load
 * or call is one VM exit (~100 us here under kvm-pvm): this subset, ~23,000
 * commands, runs in ~2.5 s, and --all in about the same. Left out are the
 * files where the sandbox API can express little, so that most of their
 * commands would be skipped: imports/linking (spectest and registered
 * modules), global (gets), ref_func, ref_is_null, ref_null, table_copy,
 * table_fill, table_get, table_set (reference values), token, type and
 * utf8-invalid-encoding (text modules). They pass with --all. */
static const char *const SANDBOX_SUBSET[] = {
	"address", "align", "binary", "binary-leb128", "block", "br", "br_if", "br_table",
	"bulk", "call", "comments", "const", "conversions", "custom", "data", "elem",
	"endianness", "exports", "f32", "f32_bitwise", "f32_cmp", "f64", "f64_bitwise",
	"f64_cmp", "float_literals", "float_memory", "float_misc", "forward", "func",
	"func_ptrs", "i32", "i64", "if", "inline-module", "int_exprs", "int_literals",
	"labels", "load", "local_get", "local_set", "loop", "memory", "memory_copy",
	"memory_fill", "memory_init", "memory_redundancy", "memory_size", "memory_trap",
	"nop", "return", "select", "skip-stack-guard-page", "stack", "start", "store",
	"table", "table-sub", "table_grow", "table_init", "table_size", "tokens", "traps",
	"unreachable", "unreached-invalid", "unreached-valid", "unwind",
	"utf8-custom-section-id", "utf8-import-field", "utf8-import-module",
};

enum { SB_NONE, SB_LOADED, SB_SKIPPED };

static mote_sandbox *g_sb;  /* runs `module` commands and actions */
static mote_sandbox *g_bad; /* loads modules that must fail to load */

/* --compiled: every module is compiled ahead of time (mote_wasm_compile)
 * and run in a sandbox started from its ELF. The compile cache is
 * SPEC_CACHE_DIR unless $MOTE_CACHE_DIR says otherwise: a run in the test VM
 * (which sees this tree read-only, and compiles slowly) reuses what the run
 * here compiled. */
#ifndef SPEC_COMPILED
#define SPEC_COMPILED 0
#endif
static int compiled = SPEC_COMPILED;
static char g_elf_dir[64];
static char g_elf[128]; /* the current module's ELF */
static unsigned g_nelf;
static const char *const COMPILED_SUBSET[] = {
    "address", "br_table", "call",      "conversions", "f32",         "f64",   "float_exprs",
    "i32",     "i64",      "int_exprs", "memory_grow", "memory_trap", "traps", "unwind",
};

/* Compile `b` into a new ELF path: 0 or the error. */
static int compile_module(const unsigned char *b, size_t len, char *elf, size_t cap)
{
	snprintf(elf, cap, "%s/m%u.elf", g_elf_dir, g_nelf++);
	return mote_wasm_compile(b, len, elf, 0);
}

static int in_subset(const char *name)
{
	if (run_all)
		return 1;
	if (compiled) {
		for (size_t i = 0; i < sizeof COMPILED_SUBSET / sizeof COMPILED_SUBSET[0]; i++)
			if (!strcmp(COMPILED_SUBSET[i], name))
				return 1;
		return 0;
	}
	for (size_t i = 0; i < sizeof SANDBOX_SUBSET / sizeof SANDBOX_SUBSET[0]; i++)
		if (!strcmp(SANDBOX_SUBSET[i], name))
			return 1;
	return 0;
}

/* Per-call limit, so that a hung call poisons (and replaces) its sandbox
 * instead of stalling CI. --timeout-us changes it. */
static unsigned long long g_timeout_us = 10ull * 1000 * 1000;

/* A sandbox: the runtime, or the compiled module `elf`. */
static int sb_new_from(mote_sandbox **out, const char *elf)
{
	*out = NULL;
	mote_config *cfg = NULL;
	int rc = mote_config_new(&cfg);
	if (!rc)
		rc = mote_config_set_timeout_us(cfg, g_timeout_us);
	if (!rc)
		rc = elf ? mote_wasm_sandbox_new_compiled(elf, cfg, NULL, out)
		         : mote_wasm_sandbox_new(cfg, NULL, out);
	mote_config_free(cfg);
	return rc;
}

static int sb_new(mote_sandbox **out)
{
	*out = NULL;
	mote_config *cfg = NULL;
	int rc = mote_config_new(&cfg);
	if (!rc)
		rc = mote_config_set_timeout_us(cfg, g_timeout_us);
	if (!rc)
		rc = mote_wasm_sandbox_new(cfg, NULL, out);
	mote_config_free(cfg);
	if (rc) {
		printf("wasm_spec_sandbox: cannot create a Wasm sandbox: %s (%s)\n",
		       mote_strerror(rc), mote_last_error());
		*out = NULL;
	}
	return rc;
}

static int mode_init(void)
{
	if (compiled) {
#ifdef SPEC_CACHE_DIR
		setenv("MOTE_CACHE_DIR", SPEC_CACHE_DIR, 0);
#endif
		snprintf(g_elf_dir, sizeof g_elf_dir, "/tmp/mote-spec-compiled-XXXXXX");
		if (!mkdtemp(g_elf_dir)) {
			printf("wasm_spec_sandbox: cannot make a temporary directory\n");
			return -1;
		}
	}
	if (sb_new(&g_sb) || sb_new(&g_bad)) {
		if (g_sb)
			mote_sandbox_free(g_sb);
		g_sb = NULL;
		return -1;
	}
	return 0;
}

static void mode_fini(void)
{
	if (g_sb)
		mote_sandbox_free(g_sb);
	if (g_bad)
		mote_sandbox_free(g_bad);
	g_sb = g_bad = NULL;
	if (compiled) {
		for (unsigned i = 0; i < g_nelf; i++) {
			char p[128];
			snprintf(p, sizeof p, "%s/m%u.elf", g_elf_dir, i);
			unlink(p);
		}
		rmdir(g_elf_dir);
	}
}

static const char *sb_detail(mote_sandbox *sb)
{
	const char *d = sb ? mote_sandbox_last_error(sb) : mote_last_error();
	return d ? d : "";
}

/* Codes the API returns without running anything or after a clean trap;
 * anything else (fault, timeout, protocol error...) may leave the sandbox
 * unusable, so it is replaced. */
static int sb_code_is_clean(mote_sandbox *sb, int rc)
{
	if (mote_sandbox_poisoned(sb))
		return 0;
	return rc == 0 || rc == -MOTE_EGUEST || rc == -MOTE_EINVAL || rc == -MOTE_EBADWASM ||
	       rc == -MOTE_ENOFUNC || rc == -MOTE_ESIGNATURE || rc == -MOTE_ETOOBIG;
}

static void sb_clear_module(ctx *c)
{
	mote_wasm_exports_free(c->exports);
	c->exports = NULL;
	free(c->cur_wasm);
	c->cur_wasm = NULL;
	c->cur_len = 0;
	free(c->cur_name);
	c->cur_name = NULL;
	c->state = SB_NONE;
	c->tainted = 0;
}

/* Replace a sandbox after an unexpected failure. For the main one, reload
 * the current module (its state starts afresh). Returns 0 when usable. */
static int sb_replace(ctx *c, mote_sandbox **sb)
{
	if (*sb)
		mote_sandbox_free(*sb);
	if (compiled && sb == &g_sb && c->state == SB_LOADED) {
		int rc = sb_new_from(sb, g_elf);
		if (!rc)
			rc = mote_wasm_exports_get(g_sb, &c->exports);
		if (rc) {
			failf(c, "restarting the compiled module failed: %s (%s)",
			      mote_strerror(rc), sb_detail(*sb));
			sb_clear_module(c);
			return -1;
		}
		return 0;
	}
	if (sb_new(sb))
		return -1;
	if (sb != &g_sb || c->state != SB_LOADED)
		return 0;
	mote_wasm_exports_free(c->exports);
	c->exports = NULL;
	int rc = mote_wasm_load(g_sb, c->cur_wasm, c->cur_len);
	if (!rc)
		rc = mote_wasm_exports_get(g_sb, &c->exports);
	if (rc) {
		failf(c, "reloading the module in a new sandbox failed: %s (%s)", mote_strerror(rc),
		      sb_detail(g_sb));
		sb_clear_module(c);
		return -1;
	}
	return 0;
}

static unsigned char *read_module(ctx *c, const char *filename, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", c->dir, filename ? filename : "?");
	return read_file(path, len);
}

static int leb_u32(const unsigned char **p, const unsigned char *end, uint32_t *out)
{
	uint32_t v = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		if (*p >= end)
			return -1;
		unsigned char b = *(*p)++;
		v |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* 1 when the binary has a non-empty import section (the sandbox resolves
 * only "env" and WASI imports, never "spectest" or registered modules), 0
 * when it has none, -1 when the sections cannot be walked. */
static int wasm_has_imports(const unsigned char *b, size_t len)
{
	if (len < 8 || memcmp(b, "\0asm", 4) != 0)
		return -1;
	const unsigned char *p = b + 8, *end = b + len;
	while (p < end) {
		unsigned char id = *p++;
		uint32_t size, count;
		if (leb_u32(&p, end, &size) || size > (size_t)(end - p))
			return -1;
		if (id == 2) {
			const unsigned char *q = p;
			if (leb_u32(&q, p + size, &count))
				return -1;
			return count > 0;
		}
		p += size;
	}
	return 0;
}

static void sb_skip(ctx *c, const char *why)
{
	c->skipped++;
	if (verbose)
		printf("  skip %s:%d: %s\n", c->file, c->line, why);
}

static int mote_to_mw(mote_type t, uint8_t *out)
{
	switch (t) {
	case MOTE_I32: *out = MW_I32; return 0;
	case MOTE_I64: *out = MW_I64; return 0;
	case MOTE_F32: *out = MW_F32; return 0;
	case MOTE_F64: *out = MW_F64; return 0;
	default: return -1;
	}
}

static mote_value val_to_mote(const val *v)
{
	mote_value m;
	memset(&m, 0, sizeof m);
	switch (v->type) {
	case MW_I32: m.type = MOTE_I32; m.v.u32 = v->v.u32; break;
	case MW_I64: m.type = MOTE_I64; m.v.u64 = v->v.u64; break;
	case MW_F32: m.type = MOTE_F32; m.v.u32 = v->v.u32; break;
	default: m.type = MOTE_F64; m.v.u64 = v->v.u64; break;
	}
	return m;
}

enum { ACT_SKIP = -2, ACT_ERR = -1, ACT_OK = 0, ACT_TRAP = 1 };

/* Run an action in the sandbox: ACT_OK with results, ACT_TRAP with the trap
 * message in trap[], ACT_ERR (failure counted) or ACT_SKIP (counted). */
static int do_action(ctx *c, const json *a, mw_val *res, uint8_t *rtypes, size_t *nres,
		     char *trap, size_t trapsz)
{
	const char *type = jstr(a, "type");
	const char *modname = jstr(a, "module");
	json *fieldj = jget(a, "field");
	if (!fieldj || fieldj->type != J_STR) {
		failf(c, "malformed action");
		return ACT_ERR;
	}
	if (c->state == SB_SKIPPED) {
		sb_skip(c, "action on a module the sandbox cannot load");
		return ACT_SKIP;
	}
	if (modname && (!c->cur_name || strcmp(modname, c->cur_name) != 0)) {
		sb_skip(c, "action on another named module");
		return ACT_SKIP;
	}
	if (type && !strcmp(type, "get")) {
		sb_skip(c, "get of a global export");
		return ACT_SKIP;
	}
	if (c->state != SB_LOADED || !g_sb) {
		failf(c, "no module instance for action");
		return ACT_ERR;
	}
	if (c->tainted) {
		sb_skip(c, "module state depends on a skipped command");
		return ACT_SKIP;
	}
	if (strlen(fieldj->str) != fieldj->len) {
		sb_skip(c, "export name with a NUL byte");
		return ACT_SKIP;
	}
	mote_wasm_export_info info;
	if (mote_wasm_export_find(c->exports, fieldj->str, &info) != 0) {
		failf(c, "export \"%s\" not found", fieldj->str);
		return ACT_ERR;
	}
	if (info.kind != MOTE_WASM_FUNCTION) {
		failf(c, "export \"%s\" is not a function", fieldj->str);
		return ACT_ERR;
	}
	json *args = jget(a, "args");
	size_t nargs = args ? args->n : 0;
	if (nargs > MAXV || info.nresults > MAXV || nargs != info.nparams) {
		failf(c, "bad argument count for \"%s\"", fieldj->str);
		return ACT_ERR;
	}
	for (size_t i = 0; i < info.nresults; i++) {
		if (mote_to_mw(info.results[i], &rtypes[i]) != 0) {
			sb_skip(c, "reference-typed result");
			return ACT_SKIP;
		}
	}
	mote_value av[MAXV];
	for (size_t i = 0; i < nargs; i++) {
		val v;
		const char *t = jstr(args->items[i], "type");
		if (t && (!strcmp(t, "funcref") || !strcmp(t, "externref"))) {
			sb_skip(c, "reference-typed argument");
			c->tainted = 1;
			return ACT_SKIP;
		}
		if (parse_val(args->items[i], &v) != 0) {
			if (t && !strcmp(t, "v128")) {
				sb_skip(c, "v128 argument");
				c->tainted = 1;
				return ACT_SKIP;
			}
			failf(c, "bad argument");
			return ACT_ERR;
		}
		av[i] = val_to_mote(&v);
	}
	mote_value rv[MAXV];
	size_t n = 0;
	int rc = mote_wasm_call(g_sb, fieldj->str, av, nargs, rv, MAXV, &n);
	if (rc == 0) {
		if (n != info.nresults) {
			failf(c, "\"%s\" returned %zu results, its type has %zu", fieldj->str, n,
			      info.nresults);
			return ACT_ERR;
		}
		for (size_t i = 0; i < n; i++) {
			uint8_t t;
			if (mote_to_mw(rv[i].type, &t) != 0 || t != rtypes[i]) {
				failf(c, "\"%s\" result %zu has type %d", fieldj->str, i,
				      (int)rv[i].type);
				return ACT_ERR;
			}
			res[i].u64 = 0;
			if (t == MW_I32 || t == MW_F32)
				res[i].u32 = rv[i].v.u32;
			else
				res[i].u64 = rv[i].v.u64;
		}
		*nres = n;
		return ACT_OK;
	}
	const char *d = sb_detail(g_sb);
	static const char pfx[] = "wasm trap: ";
	if (rc == -MOTE_EGUEST && !strncmp(d, pfx, sizeof pfx - 1)) {
		snprintf(trap, trapsz, "%s", d + sizeof pfx - 1);
		return ACT_TRAP;
	}
	failf(c, "calling \"%s\": %s (%s)", fieldj->str, mote_strerror(rc), d);
	if (!sb_code_is_clean(g_sb, rc))
		sb_replace(c, &g_sb);
	return ACT_ERR;
}

static void cmd_action(ctx *c, const json *cmd)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres = 0;
	char trap[512];
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, trap, sizeof trap);
	if (r == ACT_OK)
		c->passed++;
	else if (r == ACT_TRAP)
		failf(c, "action trapped: %s", trap);
}

static void cmd_assert_return(ctx *c, const json *cmd)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres = 0;
	char trap[512];
	json *exp = jget(cmd, "expected");
	size_t ne = exp ? exp->n : 0;
	for (size_t i = 0; i < ne; i++) {
		const char *t = jstr(exp->items[i], "type");
		if (!t || (strcmp(t, "i32") && strcmp(t, "i64") && strcmp(t, "f32") &&
			   strcmp(t, "f64"))) {
			sb_skip(c, "expected value of a type the sandbox API cannot return");
			return;
		}
	}
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, trap, sizeof trap);
	if (r == ACT_SKIP || r == ACT_ERR)
		return;
	if (r == ACT_TRAP) {
		failf(c, "unexpected trap: %s", trap);
		return;
	}
	if (ne != nres) {
		failf(c, "result count %zu, expected %zu", nres, ne);
		return;
	}
	check_results(c, exp, rt, res);
}

/* The engine's message is a prefix of the spec's text, as in host mode. */
static int trap_text_match(const char *expected, const char *msg)
{
	return expected && msg[0] && strncmp(expected, msg, strlen(msg)) == 0;
}

static void cmd_assert_trap(ctx *c, const json *cmd, int exhaustion)
{
	mw_val res[MAXV];
	uint8_t rt[MAXV];
	size_t nres = 0;
	char trap[512];
	int r = do_action(c, jget(cmd, "action"), res, rt, &nres, trap, sizeof trap);
	if (r == ACT_SKIP || r == ACT_ERR)
		return;
	const char *text = jstr(cmd, "text");
	if (r == ACT_OK) {
		failf(c, "expected trap \"%s\", got a result", text ? text : "?");
		return;
	}
	if (exhaustion ? strcmp(trap, "call stack exhausted") != 0 : !trap_text_match(text, trap)) {
		failf(c, "expected trap \"%s\", got \"%s\"", text ? text : "?", trap);
		return;
	}
	c->passed++;
}

static void cmd_module(ctx *c, const json *cmd)
{
	const char *fn = jstr(cmd, "filename");
	const char *name = jstr(cmd, "name");
	sb_clear_module(c);
	size_t len;
	unsigned char *b = read_module(c, fn, &len);
	if (!b) {
		failf(c, "module %s: cannot read it", fn ? fn : "?");
		return;
	}
	if (wasm_has_imports(b, len) == 1) {
		free(b);
		c->state = SB_SKIPPED;
		sb_skip(c, "module with imports");
		return;
	}
	if (!g_sb && sb_replace(c, &g_sb) != 0) {
		free(b);
		failf(c, "module %s: no sandbox", fn);
		return;
	}
	int rc;
	if (compiled) {
		rc = compile_module(b, len, g_elf, sizeof g_elf);
		if (rc) {
			failf(c, "module %s failed to compile: %s (%s)", fn, mote_strerror(rc),
			      mote_last_error());
			free(b);
			return;
		}
		mote_sandbox *nsb;
		rc = sb_new_from(&nsb, g_elf);
		if (!rc) {
			mote_sandbox_free(g_sb);
			g_sb = nsb;
		}
	} else {
		rc = mote_wasm_load(g_sb, b, len);
	}
	if (!rc)
		rc = mote_wasm_exports_get(g_sb, &c->exports);
	if (rc) {
		failf(c, "module %s failed to load: %s (%s)", fn, mote_strerror(rc),
		      compiled ? mote_last_error() : sb_detail(g_sb));
		free(b);
		if (!sb_code_is_clean(g_sb, rc))
			sb_replace(c, &g_sb);
		return;
	}
	c->cur_wasm = b;
	c->cur_len = len;
	c->cur_name = name ? strdup(name) : NULL;
	c->state = SB_LOADED;
	c->passed++;
}

/* Modules loaded later (skipped: they import) may change the state of a
 * registered module, so the current one is not trusted after it. */
static void cmd_register(ctx *c, const json *cmd)
{
	const char *name = jstr(cmd, "name");
	if (!name || (c->cur_name && !strcmp(name, c->cur_name)))
		c->tainted = 1;
	sb_skip(c, "register");
}

/* Every kind of bad module must fail to load (any error but one that
 * breaks the sandbox); modules with imports are skipped, as their failure
 * would say nothing. */
static void cmd_bad_module(ctx *c, const json *cmd, const char *kind)
{
	const char *mt = jstr(cmd, "module_type");
	if (mt && strcmp(mt, "binary") != 0) {
		c->skipped++;
		return;
	}
	const char *fn = jstr(cmd, "filename");
	const char *text = jstr(cmd, "text");
	size_t len;
	unsigned char *b = read_module(c, fn, &len);
	if (!b) {
		failf(c, "%s: cannot read module %s", kind, fn ? fn : "?");
		return;
	}
	int imports = wasm_has_imports(b, len);
	if ((!strcmp(kind, "assert_unlinkable") || !strcmp(kind, "assert_uninstantiable")) &&
	    imports != 0) {
		free(b);
		sb_skip(c, "bad module with imports");
		return;
	}
	if (compiled) {
		/* Invalid modules: refused by the compiler, with the validator's
		 * error; the others must fail to start. */
		char elf[128];
		int rc = compile_module(b, len, elf, sizeof elf);
		free(b);
		int bad = !strcmp(kind, "assert_invalid") || !strcmp(kind, "assert_malformed");
		if (bad) {
			if (rc != -MOTE_EBADWASM)
				failf(c, "%s: compiling %s gave %s, not MOTE_EBADWASM (%s)", kind,
				      fn, mote_errname(rc), mote_last_error());
			else
				c->passed++;
			return;
		}
		mote_sandbox *nsb = NULL;
		if (!rc)
			rc = sb_new_from(&nsb, elf);
		if (rc == 0) {
			failf(c, "%s: module %s started, expected \"%s\"", kind, fn,
			      text ? text : "?");
			mote_sandbox_free(nsb);
			return;
		}
		if (rc != -MOTE_EGUEST && rc != -MOTE_ENOFUNC && rc != -MOTE_ETOOBIG) {
			failf(c, "%s: module %s: %s (%s)", kind, fn, mote_errname(rc),
			      mote_last_error());
			return;
		}
		c->passed++;
		return;
	}
	if (!g_bad && sb_replace(c, &g_bad) != 0) {
		free(b);
		failf(c, "%s: no sandbox", kind);
		return;
	}
	int rc = mote_wasm_load(g_bad, b, len);
	free(b);
	if (rc == 0) {
		failf(c, "%s: module %s loaded, expected \"%s\"", kind, fn, text ? text : "?");
		mote_wasm_unload(g_bad);
		return;
	}
	if (!sb_code_is_clean(g_bad, rc)) {
		failf(c, "%s: module %s broke the sandbox: %s (%s)", kind, fn, mote_strerror(rc),
		      sb_detail(g_bad));
		sb_replace(c, &g_bad);
		return;
	}
	if (verbose)
		printf("  note %s:%d: %s \"%s\" rejected: %s\n", c->file, c->line, kind,
		       text ? text : "?", sb_detail(g_bad));
	c->passed++;
}

static void file_begin(ctx *c)
{
	c->state = SB_NONE;
}

static void file_end(ctx *c)
{
	sb_clear_module(c);
}
#endif

static int run_file(const char *path, int *tp, int *tf, int *ts)
{
	size_t len;
	char *buf = (char *)read_file(path, &len);
	if (!buf) {
		printf("%s: cannot read\n", path);
		(*tf)++;
		return -1;
	}
	jp p = {buf, buf + len, 0};
	json *root = jparse(&p);
	free(buf);
	json *cmds = jget(root, "commands");
	if (p.err || !cmds) {
		printf("%s: bad JSON\n", path);
		jfree(root);
		(*tf)++;
		return -1;
	}
	ctx c;
	memset(&c, 0, sizeof c);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	c.dir = dir;
	const char *base = strrchr(path, '/');
	c.file = base ? base + 1 : path;
	file_begin(&c);
#ifdef SPEC_AOT
	aot_prepare(&c, cmds);
#endif
	for (size_t i = 0; i < cmds->n; i++) {
		const json *cmd = cmds->items[i];
		const char *type = jstr(cmd, "type");
		const char *line = jstr(cmd, "line");
		c.line = line ? atoi(line) : 0;
		if (!type)
			continue;
		if (!strcmp(type, "module"))
			cmd_module(&c, cmd);
		else if (!strcmp(type, "register"))
			cmd_register(&c, cmd);
		else if (!strcmp(type, "action"))
			cmd_action(&c, cmd);
		else if (!strcmp(type, "assert_return"))
			cmd_assert_return(&c, cmd);
		else if (!strcmp(type, "assert_trap"))
			cmd_assert_trap(&c, cmd, 0);
		else if (!strcmp(type, "assert_exhaustion"))
			cmd_assert_trap(&c, cmd, 1);
		else if (!strcmp(type, "assert_invalid") || !strcmp(type, "assert_malformed") ||
			 !strcmp(type, "assert_unlinkable") ||
			 !strcmp(type, "assert_uninstantiable"))
			cmd_bad_module(&c, cmd, type);
		else {
			c.skipped++;
			if (verbose)
				printf("  skip %s:%d: unknown command %s\n", c.file, c.line, type);
		}
	}
	printf("%-32s %5d passed, %d failed, %d skipped\n", c.file, c.passed, c.failed,
	       c.skipped);
	fflush(stdout);
	*tp += c.passed;
	*tf += c.failed;
	*ts += c.skipped;
	file_end(&c);
	jfree(root);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, int *tp, int *tf, int *ts)
{
	DIR *d = opendir(dir);
	if (!d) {
		printf("wasm_spec: cannot open spec test directory %s: %s\n", dir, strerror(errno));
		printf("(expected the converted spec tests at %s relative to the repo root)\n",
		       DEFAULT_DIR);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof *names);
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s/%s.json", dir, names[i], names[i]);
		if (in_subset(names[i]) && stat(path, &st) == 0) {
			run_file(path, tp, tf, ts);
			found++;
		}
		free(names[i]);
	}
	free(names);
	if (!found) {
		printf("wasm_spec: no NAME/NAME.json files in %s\n", dir);
		return -1;
	}
	return 0;
}

/* Options: -v, --all (sandbox mode: every file, not only SANDBOX_SUBSET),
 * --timeout-us N (sandbox mode: per-call limit). Returns 1 when argv[*i]
 * was an option (and advances *i past its value). */
static int parse_option(int argc, char **argv, int *i)
{
	if (!strcmp(argv[*i], "-v")) {
		verbose = 1;
		return 1;
	}
	if (!strcmp(argv[*i], "--all")) {
		run_all = 1;
		return 1;
	}
#ifdef SPEC_IN_SANDBOX
	if (!strcmp(argv[*i], "--compiled")) {
		compiled = 1;
		return 1;
	}
	if (!strcmp(argv[*i], "--timeout-us") && *i + 1 < argc) {
		g_timeout_us = strtoull(argv[++*i], NULL, 10);
		return 1;
	}
#else
	(void)argc;
#endif
	return 0;
}

int main(int argc, char **argv)
{
	int tp = 0, tf = 0, ts = 0, nargs = 0, bad = 0;
	for (int i = 1; i < argc; i++)
		parse_option(argc, argv, &i);
	if (mode_init() != 0) {
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (parse_option(argc, argv, &i))
			continue;
		nargs++;
		size_t l = strlen(argv[i]);
		if (l > 5 && !strcmp(argv[i] + l - 5, ".json")) {
			if (run_file(argv[i], &tp, &tf, &ts) != 0)
				bad = 1;
		} else if (run_dir(argv[i], &tp, &tf, &ts) != 0) {
			bad = 1;
		}
	}
	if (!nargs && run_dir(DEFAULT_DIR, &tp, &tf, &ts) != 0)
		bad = 1;
	if (bad)
		tf++;
	mode_fini();
#ifdef SPEC_AOT
	printf("C compiler: %.1f s in all\n", aot_compile_s);
#endif
	printf("%d passed, %d failed, %d skipped\n", tp, tf, ts);
	return tf ? 1 : 0;
}
