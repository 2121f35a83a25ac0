/* Unit tests for the mote wasm engine API: loading errors, host imports,
 * traps (instance stays usable), limits (memory pages, call depth, fuel),
 * bounds-checked memory access, globals, tables, linking, re-entrancy. */
#include "test.h"
#include "test_modules.h"
#include "wasm.h"

/* ------------------------------------------------------------ fixtures */

typedef struct env {
	mw_store *store;
	mw_module *mod;
	mw_instance *inst;
	mw_func *add3;
	mw_global *g;
	int host_calls;
	mw_instance *last_caller;
	mw_trap host_trap; /* returned by add3 when nonzero */
} env;

static mw_trap host_add3(void *user, mw_instance *caller, const mw_val *args, mw_val *results)
{
	env *e = user;
	e->host_calls++;
	e->last_caller = caller;
	if (e->host_trap)
		return e->host_trap;
	results[0].i32 = args[0].i32 + args[1].i32 + args[2].i32;
	return MW_TRAP_NONE;
}

static int env_resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	env *e = user;
	if (imp->module_len != 3 || memcmp(imp->module, "env", 3) != 0)
		return -1;
	if (imp->kind == MW_EXTERN_FUNC && !strcmp(imp->name, "add3")) {
		out->kind = MW_EXTERN_FUNC;
		out->u.func = e->add3;
		return 0;
	}
	if (imp->kind == MW_EXTERN_GLOBAL && !strcmp(imp->name, "g")) {
		out->kind = MW_EXTERN_GLOBAL;
		out->u.global = e->g;
		return 0;
	}
	return -1;
}

static int env_setup(env *e, const mw_limits *lim)
{
	memset(e, 0, sizeof *e);
	mw_error err;
	if (mw_module_load(wasm_basic, sizeof wasm_basic, lim, &e->mod, &err) != 0) {
		TEST_FAILF("load: %s", err.msg);
		return -1;
	}
	e->store = mw_store_new(lim);
	static const uint8_t p3[] = {MW_I32, MW_I32, MW_I32}, r1[] = {MW_I32};
	mw_functype ft = {3, 1, p3, r1};
	e->add3 = mw_func_new_host(e->store, &ft, host_add3, e);
	mw_val v;
	v.u64 = 0;
	v.i32 = 41;
	e->g = mw_global_new(e->store, (mw_globaltype){MW_I32, true}, v);
	if (mw_instantiate(e->store, e->mod, env_resolve, e, &e->inst, &err) != 0) {
		TEST_FAILF("instantiate: %s", err.msg);
		return -1;
	}
	return 0;
}

static void env_free(env *e)
{
	mw_store_free(e->store);
	mw_module_free(e->mod);
}

static mw_trap call1(env *e, const char *name, int32_t a, int32_t *out)
{
	mw_func *f = mw_instance_func(e->inst, name);
	if (!f)
		return MW_TRAP_BAD_CALL;
	mw_val arg, res;
	arg.u64 = 0;
	arg.i32 = a;
	mw_trap t = mw_call(e->store, f, &arg, 1, &res, 1);
	if (!t && out)
		*out = res.i32;
	return t;
}

static mw_trap call2(env *e, const char *name, int32_t a, int32_t b, int32_t *out)
{
	mw_func *f = mw_instance_func(e->inst, name);
	if (!f)
		return MW_TRAP_BAD_CALL;
	mw_val args[2], res;
	args[0].u64 = args[1].u64 = 0;
	args[0].i32 = a;
	args[1].i32 = b;
	mw_trap t = mw_call(e->store, f, args, 2, &res, out ? 1 : 0);
	if (!t && out)
		*out = res.i32;
	return t;
}

/* ---------------------------------------------------------------- tests */

TEST(load_rejects_garbage)
{
	mw_module *m = NULL;
	mw_error err;
	static const uint8_t junk[] = {1, 2, 3, 4, 5, 6, 7, 8};
	CHECK(mw_module_load(junk, sizeof junk, NULL, &m, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_MALFORMED);
	CHECK_CONTAINS(err.msg, "magic");
	CHECK(m == NULL);
	/* truncated module */
	CHECK(mw_module_load(wasm_basic, sizeof wasm_basic - 3, NULL, &m, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_MALFORMED);
	/* empty input */
	CHECK(mw_module_load(junk, 0, NULL, &m, &err) != 0);
	/* every prefix of a valid module is rejected without crashing */
	for (size_t n = 0; n < sizeof wasm_basic; n++) {
		if (mw_module_load(wasm_basic, n, NULL, &m, &err) == 0) {
			/* a prefix ending exactly at a section boundary may be valid */
			mw_module_free(m);
		}
	}
}

TEST(load_rejects_invalid)
{
	mw_module *m = NULL;
	mw_error err;
	CHECK(mw_module_load(wasm_invalid, sizeof wasm_invalid, NULL, &m, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "type mismatch");
}

TEST(module_introspection)
{
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_basic, sizeof wasm_basic, NULL, &m, &err) == 0);
	CHECK_EQ_INT(mw_module_num_imports(m), 2);
	mw_import_info ii;
	REQUIRE(mw_module_import(m, 0, &ii) == 0);
	CHECK_EQ_INT(ii.kind, MW_EXTERN_FUNC);
	CHECK_EQ_STR(ii.module, "env");
	CHECK_EQ_STR(ii.name, "add3");
	CHECK_EQ_INT(ii.func.nparams, 3);
	CHECK_EQ_INT(ii.func.nresults, 1);
	CHECK_EQ_INT(ii.func.params[2], MW_I32);
	REQUIRE(mw_module_import(m, 1, &ii) == 0);
	CHECK_EQ_INT(ii.kind, MW_EXTERN_GLOBAL);
	CHECK(ii.global.mut);
	CHECK(mw_module_import(m, 2, &ii) != 0);
	int found_swap = 0;
	for (uint32_t i = 0; i < mw_module_num_exports(m); i++) {
		mw_export_info ei;
		REQUIRE(mw_module_export(m, i, &ei) == 0);
		if (!strcmp(ei.name, "swap")) {
			found_swap = 1;
			CHECK_EQ_INT(ei.kind, MW_EXTERN_FUNC);
			CHECK_EQ_INT(ei.func.nparams, 2);
			CHECK_EQ_INT(ei.func.nresults, 2);
			CHECK_EQ_INT(ei.func.results[0], MW_I64);
			CHECK_EQ_INT(ei.func.results[1], MW_I32);
		}
		if (!strcmp(ei.name, "mem")) {
			CHECK_EQ_INT(ei.kind, MW_EXTERN_MEMORY);
			CHECK_EQ_INT(ei.memory.min, 1);
			CHECK_EQ_INT(ei.memory.max, 4);
		}
	}
	CHECK(found_swap);
	mw_module_free(m);
}

TEST(host_import_called)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "call_add3", 5, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 115);
	CHECK_EQ_INT(e.host_calls, 1);
	CHECK(e.last_caller == e.inst);
	env_free(&e);
}

TEST(host_trap_propagates)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	e.host_trap = MW_TRAP_HOST;
	CHECK_EQ_INT(call1(&e, "call_add3", 5, NULL), MW_TRAP_HOST);
	e.host_trap = MW_TRAP_NONE;
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "call_add3", 1, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 111);
	env_free(&e);
}

TEST(traps_leave_instance_usable)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	int32_t r = 0;
	CHECK_EQ_INT(call2(&e, "div", 7, 0, &r), MW_TRAP_DIV_BY_ZERO);
	CHECK_EQ_INT(call2(&e, "div", INT32_MIN, -1, &r), MW_TRAP_INT_OVERFLOW);
	CHECK_EQ_INT(call2(&e, "div", 42, 6, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 7);
	mw_func *boom = mw_instance_func(e.inst, "boom");
	REQUIRE(boom);
	CHECK_EQ_INT(mw_call(e.store, boom, NULL, 0, NULL, 0), MW_TRAP_UNREACHABLE);
	CHECK_EQ_INT(call1(&e, "load", 65536 - 3, &r), MW_TRAP_MEMORY_OOB);
	CHECK_EQ_INT(call1(&e, "load", -1, &r), MW_TRAP_MEMORY_OOB);
	CHECK_EQ_INT(call1(&e, "load", 65536 - 4, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(call2(&e, "div", 9, 3, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 3);
	CHECK_EQ_STR(mw_trap_message(MW_TRAP_DIV_BY_ZERO), "integer divide by zero");
	CHECK_EQ_STR(mw_trap_message(MW_TRAP_CALL_STACK_EXHAUSTED), "call stack exhausted");
	env_free(&e);
}

TEST(call_argument_checks)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	mw_func *f = mw_instance_func(e.inst, "div");
	REQUIRE(f);
	mw_val a[2] = {{.i32 = 1}, {.i32 = 1}}, r;
	CHECK_EQ_INT(mw_call(e.store, f, a, 1, &r, 1), MW_TRAP_BAD_CALL);
	CHECK_EQ_INT(mw_call(e.store, f, a, 2, &r, 0), MW_TRAP_BAD_CALL);
	CHECK(mw_instance_func(e.inst, "nope") == NULL);
	CHECK(mw_instance_func(e.inst, "mem") == NULL); /* not a function */
	/* typed invoke */
	mw_typed_val ta[2] = {{MW_I32, {.i32 = 84}}, {MW_I32, {.i32 = 2}}}, tr;
	CHECK_EQ_INT(mw_invoke(e.inst, "div", ta, 2, &tr, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(tr.type, MW_I32);
	CHECK_EQ_INT(tr.v.i32, 42);
	ta[1].type = MW_I64;
	CHECK_EQ_INT(mw_invoke(e.inst, "div", ta, 2, &tr, 1), MW_TRAP_BAD_CALL);
	env_free(&e);
}

TEST(multi_value)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	mw_typed_val a[2] = {{MW_I32, {.i32 = -5}}, {MW_I64, {.i64 = 1234567890123LL}}}, r[2];
	CHECK_EQ_INT(mw_invoke(e.inst, "swap", a, 2, r, 2), MW_TRAP_NONE);
	CHECK_EQ_INT(r[0].type, MW_I64);
	CHECK_EQ_INT(r[0].v.i64, 1234567890123LL);
	CHECK_EQ_INT(r[1].type, MW_I32);
	CHECK_EQ_INT(r[1].v.i32, -5);
	env_free(&e);
}

TEST(memory_api_bounds)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	mw_memory *mem = mw_instance_memory(e.inst);
	REQUIRE(mem);
	CHECK_EQ_U64(mw_memory_size(mem), 65536);
	uint32_t v = 0xdeadbeef, got = 0;
	CHECK_EQ_INT(mw_memory_write(mem, 100, &v, 4), 0);
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "load", 100, &r), MW_TRAP_NONE);
	CHECK_EQ_U64((uint32_t)r, 0xdeadbeef);
	CHECK_EQ_INT(call2(&e, "store", 200, 0x12345678, NULL), MW_TRAP_NONE);
	CHECK_EQ_INT(mw_memory_read(mem, 200, &got, 4), 0);
	CHECK_EQ_U64(got, 0x12345678);
	CHECK_EQ_INT(mw_memory_read(mem, 65533, &got, 4), -1);
	CHECK_EQ_INT(mw_memory_write(mem, 65536, &v, 1), -1);
	CHECK_EQ_INT(mw_memory_write(mem, UINT64_MAX - 1, &v, 4), -1);
	CHECK_EQ_INT(mw_memory_read(mem, 65536, &got, 0), 0);
	env_free(&e);
}

TEST(memory_grow_and_page_limit)
{
	mw_limits lim;
	mw_limits_default(&lim);
	lim.max_memory_pages = 2; /* the module declares max 4 */
	env e;
	if (env_setup(&e, &lim))
		return;
	int32_t r = 0;
	mw_func *size = mw_instance_func(e.inst, "size");
	mw_val res;
	CHECK_EQ_INT(call1(&e, "grow", 1, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 1);
	CHECK_EQ_INT(mw_call(e.store, size, NULL, 0, &res, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(res.i32, 2);
	CHECK_EQ_INT(call1(&e, "grow", 1, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, -1); /* limit reached */
	/* the new page is usable, beyond it traps */
	CHECK_EQ_INT(call2(&e, "store", 65536 + 8, 77, NULL), MW_TRAP_NONE);
	CHECK_EQ_INT(call1(&e, "load", 65536 + 8, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 77);
	CHECK_EQ_INT(call1(&e, "load", 2 * 65536 - 2, &r), MW_TRAP_MEMORY_OOB);
	env_free(&e);

	/* a module whose minimum exceeds the limit cannot be instantiated */
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_bigmem, sizeof wasm_bigmem, &lim, &m, &err) == 0);
	mw_store *s = mw_store_new(&lim);
	mw_instance *inst;
	CHECK(mw_instantiate(s, m, NULL, NULL, &inst, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_LIMIT);
	mw_store_free(s);
	mw_module_free(m);
}

TEST(call_depth_limit)
{
	mw_limits lim;
	mw_limits_default(&lim);
	lim.max_call_depth = 100;
	env e;
	if (env_setup(&e, &lim))
		return;
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "rec", 50, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 50);
	CHECK_EQ_INT(call1(&e, "rec", 1000, &r), MW_TRAP_CALL_STACK_EXHAUSTED);
	CHECK_EQ_INT(call1(&e, "rec", 98, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 98);
	env_free(&e);
}

TEST(deep_recursion_does_not_use_native_stack)
{
	/* a million wasm frames: bounded by the value stack, not the C stack */
	mw_limits lim;
	mw_limits_default(&lim);
	lim.max_call_depth = 2000000;
	lim.max_stack_bytes = 64u << 20;
	env e;
	if (env_setup(&e, &lim))
		return;
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "rec", 1000000, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 1000000);
	/* and the value stack limit also traps cleanly */
	CHECK_EQ_INT(call1(&e, "rec", 100000000, &r), MW_TRAP_CALL_STACK_EXHAUSTED);
	env_free(&e);
}

TEST(fuel)
{
	mw_limits lim;
	mw_limits_default(&lim);
	lim.fuel = 10000;
	env e;
	if (env_setup(&e, &lim))
		return;
	mw_func *spin = mw_instance_func(e.inst, "spin");
	REQUIRE(spin);
	CHECK_EQ_INT(mw_call(e.store, spin, NULL, 0, NULL, 0), MW_TRAP_FUEL_EXHAUSTED);
	CHECK_EQ_U64(mw_store_fuel(e.store), 0);
	mw_store_set_fuel(e.store, 100000);
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "count", 100, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 5050);
	uint64_t left = mw_store_fuel(e.store);
	CHECK(left < 100000 && left > 90000);
	mw_store_set_fuel(e.store, 50);
	CHECK_EQ_INT(call1(&e, "count", 1000, &r), MW_TRAP_FUEL_EXHAUSTED);
	env_free(&e);
}

TEST(globals)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	mw_func *inc = mw_instance_func(e.inst, "inc_g");
	REQUIRE(inc);
	CHECK_EQ_INT(mw_call(e.store, inc, NULL, 0, NULL, 0), MW_TRAP_NONE);
	CHECK_EQ_INT(mw_global_get(e.g).i32, 42);
	mw_val v = {.u64 = 0};
	v.i32 = 100;
	CHECK_EQ_INT(mw_global_set(e.g, v), 0);
	CHECK_EQ_INT(mw_call(e.store, inc, NULL, 0, NULL, 0), MW_TRAP_NONE);
	CHECK_EQ_INT(mw_global_get(e.g).i32, 101);
	mw_extern ex;
	REQUIRE(mw_instance_export(e.inst, "counter", &ex) == 0);
	CHECK_EQ_INT(ex.kind, MW_EXTERN_GLOBAL);
	CHECK_EQ_INT(mw_global_type(ex.u.global).type, MW_I64);
	CHECK_EQ_INT(mw_global_get(ex.u.global).i64, 7);
	v.i64 = -3;
	CHECK_EQ_INT(mw_global_set(ex.u.global, v), 0);
	mw_typed_val r;
	CHECK_EQ_INT(mw_invoke(e.inst, "get_counter", NULL, 0, &r, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(r.v.i64, -3);
	mw_global *imm = mw_global_new(e.store, (mw_globaltype){MW_I32, false}, v);
	CHECK_EQ_INT(mw_global_set(imm, v), -1);
	env_free(&e);
}

TEST(tables_and_indirect_calls)
{
	env e;
	if (env_setup(&e, NULL))
		return;
	int32_t r = 0;
	CHECK_EQ_INT(call2(&e, "indirect", 1, 21, &r), MW_TRAP_NONE); /* twice */
	CHECK_EQ_INT(r, 42);
	CHECK_EQ_INT(call2(&e, "indirect", 0, 21, &r), MW_TRAP_INDIRECT_TYPE_MISMATCH);
	CHECK_EQ_INT(call2(&e, "indirect", 2, 21, &r), MW_TRAP_UNDEFINED_ELEMENT);
	mw_extern ex;
	REQUIRE(mw_instance_export(e.inst, "tab", &ex) == 0);
	mw_table *t = ex.u.table;
	CHECK_EQ_INT(mw_table_size(t), 2);
	mw_val nul = {.ref = NULL}, got;
	CHECK_EQ_INT(mw_table_set(t, 1, nul), 0);
	CHECK_EQ_INT(call2(&e, "indirect", 1, 21, &r), MW_TRAP_UNINITIALIZED_ELEMENT);
	CHECK_EQ_INT(mw_table_grow(t, 3, nul), 2);
	CHECK_EQ_INT(mw_table_size(t), 5);
	mw_val twice = {.ref = mw_instance_func(e.inst, "twice")};
	CHECK_EQ_INT(mw_table_set(t, 4, twice), 0);
	CHECK_EQ_INT(mw_table_get(t, 4, &got), 0);
	CHECK(got.ref == twice.ref);
	CHECK_EQ_INT(mw_table_get(t, 5, &got), -1);
	CHECK_EQ_INT(call2(&e, "indirect", 4, 5, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 10);
	env_free(&e);
}

TEST(unlinkable_imports)
{
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_basic, sizeof wasm_basic, NULL, &m, &err) == 0);
	mw_store *s = mw_store_new(NULL);
	mw_instance *inst;
	CHECK(mw_instantiate(s, m, NULL, NULL, &inst, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_UNLINKABLE);
	CHECK_CONTAINS(err.msg, "env.add3");
	/* wrong function type */
	env e;
	memset(&e, 0, sizeof e);
	e.store = s;
	static const uint8_t p1[] = {MW_I32}, r1[] = {MW_I32};
	mw_functype ft = {1, 1, p1, r1};
	e.add3 = mw_func_new_host(s, &ft, host_add3, &e);
	mw_val v = {.u64 = 0};
	e.g = mw_global_new(s, (mw_globaltype){MW_I32, true}, v);
	CHECK(mw_instantiate(s, m, env_resolve, &e, &inst, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_UNLINKABLE);
	/* wrong global mutability */
	static const uint8_t p3[] = {MW_I32, MW_I32, MW_I32};
	mw_functype ft3 = {3, 1, p3, r1};
	e.add3 = mw_func_new_host(s, &ft3, host_add3, &e);
	e.g = mw_global_new(s, (mw_globaltype){MW_I32, false}, v);
	CHECK(mw_instantiate(s, m, env_resolve, &e, &inst, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_UNLINKABLE);
	mw_store_free(s);
	mw_module_free(m);
}

TEST(start_function_trap)
{
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_start_trap, sizeof wasm_start_trap, NULL, &m, &err) == 0);
	mw_store *s = mw_store_new(NULL);
	mw_instance *inst;
	CHECK(mw_instantiate(s, m, NULL, NULL, &inst, &err) != 0);
	CHECK_EQ_INT(err.code, MW_ERR_TRAP);
	CHECK_EQ_INT(err.trap, MW_TRAP_UNREACHABLE);
	mw_store_free(s);
	mw_module_free(m);
}

typedef struct reenter_ctx {
	mw_store *store;
	mw_func *inner;
} reenter_ctx;

static mw_trap host_cb(void *user, mw_instance *caller, const mw_val *args, mw_val *results)
{
	reenter_ctx *rc = user;
	(void)caller;
	mw_val a = args[0];
	a.i32 *= 2;
	return mw_call(rc->store, rc->inner, &a, 1, results, 1);
}

static int reenter_resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	(void)imp;
	out->kind = MW_EXTERN_FUNC;
	out->u.func = user;
	return 0;
}

TEST(host_reenters_wasm)
{
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_reenter, sizeof wasm_reenter, NULL, &m, &err) == 0);
	mw_store *s = mw_store_new(NULL);
	reenter_ctx rc = {s, NULL};
	static const uint8_t p1[] = {MW_I32};
	mw_functype ft = {1, 1, p1, p1};
	mw_func *cb = mw_func_new_host(s, &ft, host_cb, &rc);
	mw_instance *inst;
	REQUIRE(mw_instantiate(s, m, reenter_resolve, cb, &inst, &err) == 0);
	rc.inner = mw_instance_func(inst, "inner");
	mw_typed_val a = {MW_I32, {.i32 = 21}}, r;
	CHECK_EQ_INT(mw_invoke(inst, "outer", &a, 1, &r, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(r.v.i32, 1042);
	mw_store_free(s);
	mw_module_free(m);
}

typedef struct link_ctx {
	mw_instance *prov;
} link_ctx;

static int link_resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	link_ctx *lc = user;
	if (imp->module_len != 4 || memcmp(imp->module, "prov", 4) != 0)
		return -1;
	return mw_instance_export_n(lc->prov, imp->name, imp->name_len, out);
}

TEST(cross_module_linking)
{
	mw_module *pm, *cm;
	mw_error err;
	REQUIRE(mw_module_load(wasm_provider, sizeof wasm_provider, NULL, &pm, &err) == 0);
	REQUIRE(mw_module_load(wasm_consumer, sizeof wasm_consumer, NULL, &cm, &err) == 0);
	mw_store *s = mw_store_new(NULL);
	link_ctx lc;
	REQUIRE(mw_instantiate(s, pm, NULL, NULL, &lc.prov, &err) == 0);
	mw_instance *ci;
	REQUIRE(mw_instantiate(s, cm, link_resolve, &lc, &ci, &err) == 0);
	mw_typed_val a[2] = {{MW_I32, {.i32 = 5}}, {MW_I32, {.i32 = 0x1ab}}}, r;
	CHECK_EQ_INT(mw_invoke(ci, "roundtrip", a, 2, &r, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(r.v.i32, 0xab);
	/* the consumer wrote into the provider's memory */
	uint8_t b = 0;
	CHECK_EQ_INT(mw_memory_read(mw_instance_memory(lc.prov), 5, &b, 1), 0);
	CHECK_EQ_INT(b, 0xab);
	mw_store_free(s);
	mw_module_free(pm);
	mw_module_free(cm);
}

TEST(module_outlives_free_call)
{
	/* the instance keeps the module alive after the caller frees it */
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_provider, sizeof wasm_provider, NULL, &m, &err) == 0);
	mw_store *s = mw_store_new(NULL);
	mw_instance *inst;
	REQUIRE(mw_instantiate(s, m, NULL, NULL, &inst, &err) == 0);
	mw_module_free(m);
	mw_typed_val a[2] = {{MW_I32, {.i32 = 9}}, {MW_I32, {.i32 = 3}}}, r;
	CHECK_EQ_INT(mw_invoke(inst, "poke", a, 2, NULL, 0), MW_TRAP_NONE);
	CHECK_EQ_INT(mw_invoke(inst, "peek", a, 1, &r, 1), MW_TRAP_NONE);
	CHECK_EQ_INT(r.v.i32, 3);
	mw_store_free(s);
}

typedef struct backend_stats {
	int resizes, releases;
	size_t max_seen;
} backend_stats;

static void *counting_resize(void *ctx, void *old, size_t old_size, size_t new_size,
			     size_t max_size)
{
	backend_stats *st = ctx;
	st->resizes++;
	st->max_seen = max_size;
	unsigned char *p = realloc(old, new_size);
	if (p && new_size > old_size)
		memset(p + old_size, 0, new_size - old_size);
	return p;
}

static void counting_release(void *ctx, void *base, size_t size)
{
	backend_stats *st = ctx;
	(void)size;
	st->releases++;
	free(base);
}

TEST(custom_memory_backend)
{
	backend_stats st = {0, 0, 0};
	mw_mem_backend b = {counting_resize, counting_release, &st};
	mw_module *m;
	mw_error err;
	REQUIRE(mw_module_load(wasm_basic, sizeof wasm_basic, NULL, &m, &err) == 0);
	env e;
	memset(&e, 0, sizeof e);
	e.mod = m;
	e.store = mw_store_new(NULL);
	mw_store_set_mem_backend(e.store, &b);
	static const uint8_t p3[] = {MW_I32, MW_I32, MW_I32}, r1[] = {MW_I32};
	mw_functype ft = {3, 1, p3, r1};
	e.add3 = mw_func_new_host(e.store, &ft, host_add3, &e);
	mw_val v = {.u64 = 0};
	e.g = mw_global_new(e.store, (mw_globaltype){MW_I32, true}, v);
	REQUIRE(mw_instantiate(e.store, m, env_resolve, &e, &e.inst, &err) == 0);
	CHECK_EQ_INT(st.resizes, 1);
	CHECK_EQ_U64(st.max_seen, 4 * 65536); /* declared maximum */
	int32_t r = 0;
	CHECK_EQ_INT(call1(&e, "grow", 2, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 1);
	CHECK_EQ_INT(st.resizes, 2);
	CHECK_EQ_INT(call2(&e, "store", 3 * 65536 - 4, 9, NULL), MW_TRAP_NONE);
	CHECK_EQ_INT(call1(&e, "load", 3 * 65536 - 4, &r), MW_TRAP_NONE);
	CHECK_EQ_INT(r, 9);
	env_free(&e);
	CHECK_EQ_INT(st.releases, 1);
}

TEST_MAIN()
