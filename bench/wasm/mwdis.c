/* Developer tool: dump the internal code the mote engine generates for a
 * module (not built by default):
 *   gcc -O1 -Isrc/wasm bench/wasm/mwdis.c build/libmotewasm.a -o /tmp/mwdis
 *   /tmp/mwdis file.wasm [funcindex]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm_int.h"

#define N_(n) #n,
#define NI_(n) #n "_i",
#define NB_(n) "brc_" #n,
#define NAI_(n) #n "_ai",
#define NIB_(n) "ibrc_" #n,
#define NIBI_(n) "ibrc_" #n "_i",
#define NAS_(n) #n "_as",
#define NK_(n) #n "_k",
#define NBI_(n) "brc_" #n "_i",
static const char *const NAMES[] = {
	MW_OPS_CTRL(N_) MW_OPS_LOAD(N_) MW_OPS_LOAD(NAI_) MW_OPS_LOAD(NAS_) MW_OPS_STORE(N_)
	MW_OPS_STORE(NAI_) MW_OPS_STORE(NAS_) MW_OPS_STORE(NK_) MW_OPS_INTBIN(N_, i32) MW_OPS_INTBIN(NI_, i32) MW_OPS_INTBIN(N_, i64)
	MW_OPS_INTBIN(NI_, i64) MW_OPS_FBIN(N_, f32) MW_OPS_FBIN(N_, f64) MW_OPS_UN(N_)
	MW_OPS_BRC(NB_, i32) MW_OPS_BRC(NBI_, i32) MW_OPS_BRC(NB_, i64) MW_OPS_BRC(NBI_, i64)
	MW_OPS_BRC(NIB_, i32) MW_OPS_BRC(NIBI_, i32)};

static int op_size(int op, const uint32_t *ip)
{
	switch (op) {
	case OP_unreachable: case OP_exit: case OP_ret0: return 2;
	case OP_fuel: case OP_br: case OP_ret1: case OP_elem_drop: case OP_memory_size:
	case OP_data_drop: return 3;
	case OP_br_if: case OP_br_unless: case OP_call_import: case OP_retn: case OP_mov:
	case OP_const32: case OP_global_get: case OP_global_set: case OP_ref_func:
	case OP_table_size: case OP_memory_grow: return 4;
	case OP_br_table: return 4 + (int)ip[3] + 1;
	case OP_call: case OP_const64: case OP_table_get: case OP_table_set: case OP_store8_k: case OP_store16_k: case OP_store32_k:
	case OP_memory_copy: case OP_memory_fill: return 5;
	case OP_select: case OP_table_grow: case OP_table_fill: case OP_memory_init: return 6;
	case OP_call_indirect: case OP_table_copy: case OP_table_init: return 7;
	default: break;
	}
	if (op == OP_store64_k || op == OP_mov2)
		return 6;
	if (op >= OP_ibrc_i32_eq)
		return 7;
	if ((op >= OP_i32_load && op < OP_i32_load_ai) || (op >= OP_store8 && op < OP_store8_ai))
		return 5;
	if (op >= OP_i32_load && op < OP_i32_add)
		return 6;
	if (op >= OP_i64_add_i && op < OP_f32_add)
		return 6;
	if (op < OP_i32_eqz)
		return 5;
	if (op < OP_brc_i32_eq)
		return 4;
	if (op >= OP_brc_i64_eq_i)
		return 6;
	return 5;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return 1;
	static uint8_t buf[1 << 24];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	mw_module *m;
	mw_error err;
	if (mw_module_load(buf, n, NULL, &m, &err)) {
		printf("load: %s\n", err.msg);
		return 1;
	}
	if (argc > 3 && !strcmp(argv[2], "-run")) {
		mw_store *st = mw_store_new(NULL);
		mw_instance *inst;
		if (mw_instantiate(st, m, NULL, NULL, &inst, &err)) {
			printf("inst: %s\n", err.msg);
			return 1;
		}
		mw_val r;
		mw_trap t = mw_call(st, mw_instance_func(inst, argv[3]), NULL, 0, &r, 1);
		printf("result %u trap %d\n", r.u32, t);
		return 0;
	}
	const void *const *L = mw__labels();
	uint32_t ndef = m->nfuncs - m->nfunc_imports;
	for (uint32_t i = 0; i < ndef; i++) {
		if (argc > 2 && (uint32_t)atoi(argv[2]) != i + m->nfunc_imports)
			continue;
		const mw_fcode *fc = &m->fcode[i];
		const uint32_t *ip = fc->code;
		const uint32_t *end = i + 1 < ndef ? m->fcode[i + 1].code : m->code + m->code_len;
		printf("func %u: frame %u bytes, params %u, locals %u\n", i + m->nfunc_imports,
		       fc->frame_bytes, fc->param_bytes / 8, fc->local_bytes / 8);
		while (ip < end) {
			const void *h;
			memcpy(&h, ip, 8);
			int op = -1;
			for (int k = 0; k < OP_COUNT_; k++)
				if (L[k] == h)
					op = k;
			if (op < 0) {
				printf("  %5ld ???\n", (long)(ip - fc->code));
				break;
			}
			int sz = op_size(op, ip);
			printf("  %5ld %-18s", (long)(ip - fc->code), NAMES[op]);
			for (int k = 2; k < sz; k++)
				printf(" %d", (int32_t)ip[k]);
			printf("\n");
			ip += sz;
		}
	}
	return 0;
}

#ifdef MW_PROFILE
/* Dynamic op / op-pair counts:
 *   gcc -O2 -DMW_PROFILE -fno-math-errno -Isrc/wasm bench/wasm/mwdis.c src/wasm/[a-z]*.c
 *   /tmp/mwprof file.wasm -run EXPORT */
static uint64_t counts[OP_COUNT_], pairs[OP_COUNT_][OP_COUNT_];
static int prev_op = -1;
static const void *hkeys[4096];
static int hvals[4096];

void mw__prof(const void *h)
{
	uintptr_t k = ((uintptr_t)h >> 2) & 4095;
	while (hkeys[k] && hkeys[k] != h)
		k = (k + 1) & 4095;
	if (!hkeys[k]) {
		const void *const *L = mw__labels();
		hkeys[k] = h;
		hvals[k] = -1;
		for (int i = 0; i < OP_COUNT_; i++)
			if (L[i] == h)
				hvals[k] = i;
	}
	int op = hvals[k];
	if (op < 0)
		return;
	counts[op]++;
	if (prev_op >= 0)
		pairs[prev_op][op]++;
	prev_op = op;
}

static void prof_report(void)
{
	uint64_t total = 0;
	for (int i = 0; i < OP_COUNT_; i++)
		total += counts[i];
	printf("total ops %llu\n", (unsigned long long)total);
	for (int r = 0; r < 30; r++) {
		int best = -1;
		for (int i = 0; i < OP_COUNT_; i++)
			if (counts[i] && (best < 0 || counts[i] > counts[best]))
				best = i;
		if (best < 0)
			break;
		printf("  %6.2f%% %s\n", 100.0 * counts[best] / total, NAMES[best]);
		counts[best] = 0;
	}
	printf("pairs:\n");
	for (int r = 0; r < 30; r++) {
		int ba = -1, bb = -1;
		for (int i = 0; i < OP_COUNT_; i++)
			for (int j = 0; j < OP_COUNT_; j++)
				if (pairs[i][j] && (ba < 0 || pairs[i][j] > pairs[ba][bb])) {
					ba = i;
					bb = j;
				}
		if (ba < 0)
			break;
		printf("  %6.2f%% %s -> %s\n", 100.0 * pairs[ba][bb] / total, NAMES[ba], NAMES[bb]);
		pairs[ba][bb] = 0;
	}
}

__attribute__((constructor)) static void prof_init(void)
{
	atexit(prof_report);
}
#endif
