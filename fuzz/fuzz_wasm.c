/* libFuzzer target for the mote wasm engine: decode + validate + translate,
 * instantiate with stub imports and, if the module exports a function with
 * no parameters, run it under a small fuel budget, a small call-depth limit
 * and a small memory cap. Any crash or sanitizer report is a bug: malformed
 * input must be rejected, and execution must stay within its sandbox.
 *
 *   make build-fuzz/fuzz_wasm   (clang -fsanitize=fuzzer,address,undefined)
 *   build-fuzz/fuzz_wasm CORPUS_DIR fuzz/seeds/fuzz_wasm
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct stubs {
	mw_store *store;
} stubs;

static mw_trap stub_fn(void *user, mw_instance *caller, const mw_val *args, mw_val *results)
{
	(void)args;
	const mw_functype *ft = user;
	for (uint32_t i = 0; i < ft->nresults; i++)
		results[i].u64 = 0;
	/* touch the caller's memory through the checked API */
	if (caller) {
		mw_memory *m = mw_instance_memory(caller);
		uint8_t b;
		if (m)
			(void)mw_memory_read(m, 0, &b, 1);
	}
	return MW_TRAP_NONE;
}

static int resolve(void *user, const mw_import_info *imp, mw_extern *out)
{
	stubs *s = user;
	mw_val zero;
	zero.u64 = 0;
	out->kind = imp->kind;
	switch (imp->kind) {
	case MW_EXTERN_FUNC: {
		mw_func *f = mw_func_new_host(s->store, &imp->func, stub_fn, NULL);
		if (!f)
			return -1;
		/* the stub needs its own signature: point user at the copy */
		mw_func *g = mw_func_new_host(s->store, mw_func_type(f), stub_fn,
					      (void *)mw_func_type(f));
		out->u.func = g;
		return g ? 0 : -1;
	}
	case MW_EXTERN_TABLE: {
		mw_tabletype t = imp->table;
		if (t.min > 1000)
			return -1;
		out->u.table = mw_table_new(s->store, t, zero);
		return out->u.table ? 0 : -1;
	}
	case MW_EXTERN_MEMORY:
		out->u.memory = mw_memory_new(s->store, imp->memory);
		return out->u.memory ? 0 : -1;
	default:
		out->u.global = mw_global_new(s->store, imp->global, zero);
		return out->u.global ? 0 : -1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mw_limits lim;
	mw_limits_default(&lim);
	lim.max_memory_pages = 16;
	lim.max_table_size = 4096;
	lim.max_call_depth = 200;
	lim.max_stack_bytes = 256 * 1024;
	lim.fuel = 20000;
	lim.max_function_locals = 5000;
	mw_module *m;
	mw_error err;
	if (mw_module_load(data, size, &lim, &m, &err) != 0)
		return 0;
	stubs s;
	s.store = mw_store_new(&lim);
	if (!s.store) {
		mw_module_free(m);
		return 0;
	}
	mw_instance *inst;
	if (mw_instantiate(s.store, m, resolve, &s, &inst, &err) == 0) {
		uint32_t n = mw_module_num_exports(m), calls = 0;
		for (uint32_t i = 0; i < n && calls < 4; i++) {
			mw_export_info ei;
			mw_extern ex;
			if (mw_module_export(m, i, &ei) != 0 || ei.kind != MW_EXTERN_FUNC ||
			    ei.func.nparams != 0 || ei.func.nresults > 16)
				continue;
			if (mw_instance_export_at(inst, i, &ex) != 0)
				continue;
			mw_val res[16];
			mw_store_set_fuel(s.store, 20000);
			(void)mw_call(s.store, ex.u.func, NULL, 0, res, ei.func.nresults);
			calls++;
		}
	}
	mw_store_free(s.store);
	mw_module_free(m);
	return 0;
}
