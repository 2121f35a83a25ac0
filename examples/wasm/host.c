/* Embedding a WebAssembly module: mote runs it inside a sandbox with its
 * own engine; the module reaches only the host functions given to it.
 *   cc host.c $(pkg-config --cflags --libs mote) -o host && ./host pricing.wasm */
#include <mote.h>
#include <mote/wasm.h>
#include <stdio.h>

static int tax_rate(void *user, mote_sandbox *sb, const mote_value *args, size_t nargs,
		    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)nargs;
	result->v.f64 = args[0].v.i32 == 1 ? 0.20 : 0.07;
	return 0;
}

int main(int argc, char **argv)
{
	const char *module = argc > 1 ? argv[1] : "pricing.wasm";
	mote_host_functions *imports;
	mote_sandbox *sb;
	mote_host_functions_new(&imports);
	mote_host_functions_add(imports, "tax_rate", MOTE_F64, (mote_type[]){MOTE_I32}, 1,
				tax_rate, NULL);

	/* Starts from a snapshot of the booted Wasm runtime, not a boot. */
	int rc = mote_wasm_sandbox_new(NULL, imports, &sb);
	if (rc == 0)
		rc = mote_wasm_load_file(sb, module); /* decode, validate, instantiate */
	if (rc) {
		fprintf(stderr, "%s: %s\n", mote_strerror(rc), mote_last_error());
		return 1;
	}
	mote_value args[2] = {mote_f64(19.99), mote_i32(1)}, price, cents;
	size_t n;
	rc = mote_wasm_call(sb, "price", args, 2, &price, 1, &n);
	if (rc == 0)
		rc = mote_wasm_call(sb, "cents", &price, 1, &cents, 1, &n);
	if (rc == 0)
		printf("19.99 in region 1 costs %lld cents\n", (long long)cents.v.i64);
	else
		printf("call failed: %s\n", mote_sandbox_last_error(sb));

	/* A snapshot with the module loaded starts without decoding it again. */
	mote_snapshot *snap;
	if (mote_sandbox_snapshot(sb, &snap) == 0) {
		mote_sandbox *again;
		if (mote_wasm_sandbox_from_snapshot(snap, imports, NULL, &again) == 0) {
			args[1] = mote_i32(2);
			if (mote_wasm_call(again, "price", args, 2, &price, 1, &n) == 0)
				printf("from the snapshot: 19.99 in region 2 costs %.4f\n",
				       price.v.f64);
			mote_sandbox_free(again);
		}
		mote_snapshot_free(snap);
	}
	mote_sandbox_free(sb);
	mote_host_functions_free(imports);
	return rc ? 1 : 0;
}
