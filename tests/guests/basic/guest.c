/* The basic test guest: one function per value type, host calls, output. */
#include <mote/guest.h>

MOTE_FN0(void, noop)
{
}

MOTE_FN2(i32, add, i32, a, i32, b)
{
	return a + b;
}

MOTE_FN1(i32, echo_i32, i32, x)
{
	return x;
}
MOTE_FN1(u32, echo_u32, u32, x)
{
	return x;
}
MOTE_FN1(i64, echo_i64, i64, x)
{
	return x;
}
MOTE_FN1(u64, echo_u64, u64, x)
{
	return x;
}
MOTE_FN1(f32, echo_f32, f32, x)
{
	return x;
}
MOTE_FN1(f64, echo_f64, f64, x)
{
	return x;
}
MOTE_FN1(bool, echo_bool, bool, x)
{
	return x;
}
MOTE_FN1(str, echo_str, str, s)
{
	return s;
}
MOTE_FN1(bytes, echo_bytes, bytes, b)
{
	return b;
}

MOTE_FN1(u64, str_len_checked, str, s)
{
	/* The string must arrive NUL-terminated with the right length. */
	if (s.ptr[s.len] != 0 || strlen(s.ptr) != s.len)
		mote_fail("string not NUL-terminated");
	return s.len;
}

MOTE_FN4(f64, mix, i32, a, i64, b, f32, c, f64, d)
{
	return (double)a + (double)b + (double)c + d;
}

MOTE_FN1(str, greet, str, name)
{
	size_t n = name.len + 16;
	char *p = mote_call_alloc(n);
	int len = snprintf(p, n, "Hello, %s!", name.ptr);
	mote_printf("greeting %s\n", name.ptr);
	return (mote_str){p, (size_t)len};
}

/* Calls the host's "host_add" (i32, i32) -> i32, returns its result + 1. */
MOTE_FN2(i32, call_host_add, i32, a, i32, b)
{
	mote_value args[2] = {mote_val_i32(a), mote_val_i32(b)};
	mote_value r;
	int rc = mote_host_call("host_add", MOTE_I32, &r, args, 2);
	if (rc)
		return rc;
	return r.v.i32 + 1;
}

/* Calls "host_upper" (string) -> string. */
MOTE_FN1(str, call_host_upper, str, s)
{
	mote_value arg = mote_val_str(s.ptr);
	mote_value r;
	int rc = mote_host_call("host_upper", MOTE_STRING, &r, &arg, 1);
	if (rc) {
		mote_fail("host_upper failed");
		return (mote_str){"", 0};
	}
	char *copy = mote_call_alloc(r.v.buf.len);
	memcpy(copy, r.v.buf.ptr, r.v.buf.len);
	return (mote_str){copy, r.v.buf.len};
}

/* Calls a host function by name with no arguments, returns the status. */
MOTE_FN1(i32, call_host_status, str, name)
{
	mote_value r;
	return mote_host_call(name.ptr, MOTE_VOID, &r, 0, 0);
}

/* Calls "host_add" with the wrong argument types. */
MOTE_FN0(i32, call_host_wrong_types)
{
	mote_value args[1] = {mote_val_f64(1.5)};
	mote_value r;
	return mote_host_call("host_add", MOTE_I32, &r, args, 1);
}

MOTE_FN1(i32, log_levels, i32, n)
{
	for (int i = 0; i < n; i++)
		mote_log(MOTE_LOG_INFO, "line %d", i);
	mote_log(MOTE_LOG_ERROR, "an error");
	mote_print("plain\n");
	return n;
}

MOTE_FN1(bytes, make_bytes, u32, n)
{
	uint8_t *p = mote_call_alloc(n ? n : 1);
	for (uint32_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7);
	return (mote_buf){p, n};
}

MOTE_FN0(i32, fail_on_purpose)
{
	mote_fail("nothing to do");
	return 0;
}

static int counter;
MOTE_FN0(i32, bump)
{
	return ++counter;
}

MOTE_FN1(u64, heap_roundtrip, u32, n)
{
	/* Allocate, fill, verify, free: exercises the guest allocator. */
	uint64_t sum = 1;
	uint8_t **blocks = malloc(n * sizeof(*blocks));
	if (!blocks)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		blocks[i] = malloc(16 + (i * 37) % 1000);
		if (!blocks[i]) {
			mote_fail("out of memory");
			return 0;
		}
		memset(blocks[i], (int)i, 16);
	}
	for (uint32_t i = 0; i < n; i++) {
		sum += blocks[i][15];
		if (i % 2)
			free(blocks[i]);
	}
	for (uint32_t i = 0; i < n; i += 2) {
		uint8_t *grown = realloc(blocks[i], 1500);
		if (!grown) {
			mote_fail("out of memory");
			return 0;
		}
		blocks[i] = grown;
	}
	for (uint32_t i = 0; i < n; i += 2) {
		sum += blocks[i][0];
		free(blocks[i]);
	}
	free(blocks);
	return mote_heap_used() == 0 ? sum : 0;
}

/* CPUID as the guest sees it: ecx << 32 | edx of the leaf. */
MOTE_FN1(u64, cpuid_cx_dx, u32, leaf)
{
	uint32_t a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(0));
	(void)a;
	(void)b;
	return (uint64_t)c << 32 | d;
}
