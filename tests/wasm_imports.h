/* The host functions tests/wasm-modules/imports.c imports, shared by the
 * Wasm sandbox tests (interpreted and compiled) and test_wasm_aot, which
 * compares compiled code with the interpreter against them. Each records
 * what it saw; host_add fails with host_error when that is set. */
#ifndef MOTE_TESTS_WASM_IMPORTS_H
#define MOTE_TESTS_WASM_IMPORTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mote.h"

static int32_t seen_a, seen_b;
static char seen_log[128];
static int host_error;

static int host_add(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)n;
	if (host_error)
		return host_error;
	seen_a = args[0].v.i32;
	seen_b = args[1].v.i32;
	result->v.i32 = args[0].v.i32 + args[1].v.i32;
	return 0;
}

static int host_mix(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)n;
	result->v.f64 = (double)args[0].v.i64 * 2 + args[1].v.f32 + args[2].v.f64;
	return 0;
}

static int host_log(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)n;
	(void)result;
	snprintf(seen_log, sizeof(seen_log), "%s", (const char *)args[0].v.buf.ptr);
	return 0;
}

static int host_sum(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                    mote_value *result)
{
	(void)user;
	(void)sb;
	(void)n;
	uint32_t s = 0;
	const uint8_t *p = args[0].v.buf.ptr;
	for (size_t i = 0; i < args[0].v.buf.len; i++)
		s += p[i];
	result->v.u32 = s;
	return 0;
}

static int greet_calls;

static int host_greet(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                      mote_value *result)
{
	(void)user;
	(void)n;
	greet_calls++;
	size_t len = args[0].v.buf.len;
	char *s = mote_hostcall_scratch(sb, 7 + len + 1);
	if (!s)
		return -MOTE_ENOMEM;
	snprintf(s, 7 + len + 1, "hello, %.*s", (int)len, (const char *)args[0].v.buf.ptr);
	result->v.buf.ptr = s;
	result->v.buf.len = strlen(s);
	return 0;
}

static int host_reverse(void *user, mote_sandbox *sb, const mote_value *args, size_t n,
                        mote_value *result)
{
	(void)user;
	(void)n;
	size_t len = args[0].v.buf.len;
	uint8_t *out = mote_hostcall_scratch(sb, len ? len : 1);
	if (!out)
		return -MOTE_ENOMEM;
	const uint8_t *in = args[0].v.buf.ptr;
	for (size_t i = 0; i < len; i++)
		out[i] = in[len - 1 - i];
	result->v.buf.ptr = out;
	result->v.buf.len = len;
	return 0;
}

static mote_host_functions *import_functions(bool wrong_add)
{
	mote_host_functions *fns;
	if (mote_host_functions_new(&fns))
		return NULL;
	const mote_type ii[2] = {MOTE_I32, MOTE_I32}, ll[2] = {MOTE_I64, MOTE_I64};
	const mote_type mix[3] = {MOTE_I64, MOTE_F32, MOTE_F64};
	const mote_type str[1] = {MOTE_STRING}, bytes[1] = {MOTE_BYTES};
	int rc = wrong_add
	             ? mote_host_functions_add(fns, "host_add", MOTE_I64, ll, 2, host_add, NULL)
	             : mote_host_functions_add(fns, "host_add", MOTE_I32, ii, 2, host_add, NULL);
	rc |= mote_host_functions_add(fns, "host_mix", MOTE_F64, mix, 3, host_mix, NULL);
	rc |= mote_host_functions_add(fns, "host_log", MOTE_VOID, str, 1, host_log, NULL);
	rc |= mote_host_functions_add(fns, "host_sum", MOTE_U32, bytes, 1, host_sum, NULL);
	rc |= mote_host_functions_add(fns, "host_greet", MOTE_STRING, str, 1, host_greet, NULL);
	rc |=
	    mote_host_functions_add(fns, "host_reverse", MOTE_BYTES, bytes, 1, host_reverse, NULL);
	if (rc) {
		mote_host_functions_free(fns);
		return NULL;
	}
	return fns;
}

#endif
