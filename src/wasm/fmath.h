/* mote wasm engine: float helpers with exact WebAssembly semantics, built from
 * bit manipulation and SSE2 arithmetic only (no libm, no SSE4.1). */
#ifndef MOTE_WASM_FMATH_H
#define MOTE_WASM_FMATH_H

#include <stdint.h>

static inline uint32_t mw_f2u(float f)
{
	uint32_t u;
	__builtin_memcpy(&u, &f, 4);
	return u;
}
static inline float mw_u2f(uint32_t u)
{
	float f;
	__builtin_memcpy(&f, &u, 4);
	return f;
}
static inline uint64_t mw_d2u(double d)
{
	uint64_t u;
	__builtin_memcpy(&u, &d, 8);
	return u;
}
static inline double mw_u2d(uint64_t u)
{
	double d;
	__builtin_memcpy(&d, &u, 8);
	return d;
}

#define F32_SIGN 0x80000000u
#define F64_SIGN 0x8000000000000000ull

static inline float mw_f32_sqrt(float x)
{
#if defined(__x86_64__) && defined(__SSE2__)
	float r;
	__asm__("sqrtss %1, %0" : "=x"(r) : "x"(x));
	return r;
#else
	return __builtin_sqrtf(x);
#endif
}

static inline double mw_f64_sqrt(double x)
{
#if defined(__x86_64__) && defined(__SSE2__)
	double r;
	__asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
	return r;
#else
	return __builtin_sqrt(x);
#endif
}

/* NaN in -> quieted NaN out (an "arithmetic NaN", as the spec requires). */
#define MW_NAN_PROP(x) ((x) + (x))

static inline float mw_f32_trunc(float x)
{
	uint32_t u = mw_f2u(x);
	int e = (int)((u >> 23) & 0xff) - 127;
	if (e >= 23)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0)
		return mw_u2f(u & F32_SIGN);
	uint32_t m = 0x007fffffu >> e;
	return mw_u2f(u & ~m);
}

static inline float mw_f32_floor(float x)
{
	uint32_t u = mw_f2u(x);
	int e = (int)((u >> 23) & 0xff) - 127;
	if (e >= 23)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0) {
		if (u & F32_SIGN)
			return (u << 1) ? -1.0f : x;
		return mw_u2f(0);
	}
	uint32_t m = 0x007fffffu >> e;
	if (!(u & m))
		return x;
	if (u & F32_SIGN)
		u += m + 1;
	return mw_u2f(u & ~m);
}

static inline float mw_f32_ceil(float x)
{
	uint32_t u = mw_f2u(x);
	int e = (int)((u >> 23) & 0xff) - 127;
	if (e >= 23)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0) {
		if (u & F32_SIGN)
			return mw_u2f(F32_SIGN);
		return (u << 1) ? 1.0f : x;
	}
	uint32_t m = 0x007fffffu >> e;
	if (!(u & m))
		return x;
	if (!(u & F32_SIGN))
		u += m + 1;
	return mw_u2f(u & ~m);
}

static inline float mw_f32_nearest(float x)
{
	uint32_t u = mw_f2u(x);
	uint32_t a = u & ~F32_SIGN;
	if (a >= 0x4b000000u) /* |x| >= 2^23, inf or NaN */
		return x != x ? MW_NAN_PROP(x) : x;
	volatile float big = 8388608.0f;
	float y = mw_u2f(a);
	y = (y + big) - big;
	return mw_u2f(mw_f2u(y) | (u & F32_SIGN));
}

static inline double mw_f64_trunc(double x)
{
	uint64_t u = mw_d2u(x);
	int e = (int)((u >> 52) & 0x7ff) - 1023;
	if (e >= 52)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0)
		return mw_u2d(u & F64_SIGN);
	uint64_t m = 0x000fffffffffffffull >> e;
	return mw_u2d(u & ~m);
}

static inline double mw_f64_floor(double x)
{
	uint64_t u = mw_d2u(x);
	int e = (int)((u >> 52) & 0x7ff) - 1023;
	if (e >= 52)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0) {
		if (u & F64_SIGN)
			return (u << 1) ? -1.0 : x;
		return mw_u2d(0);
	}
	uint64_t m = 0x000fffffffffffffull >> e;
	if (!(u & m))
		return x;
	if (u & F64_SIGN)
		u += m + 1;
	return mw_u2d(u & ~m);
}

static inline double mw_f64_ceil(double x)
{
	uint64_t u = mw_d2u(x);
	int e = (int)((u >> 52) & 0x7ff) - 1023;
	if (e >= 52)
		return x != x ? MW_NAN_PROP(x) : x;
	if (e < 0) {
		if (u & F64_SIGN)
			return mw_u2d(F64_SIGN);
		return (u << 1) ? 1.0 : x;
	}
	uint64_t m = 0x000fffffffffffffull >> e;
	if (!(u & m))
		return x;
	if (!(u & F64_SIGN))
		u += m + 1;
	return mw_u2d(u & ~m);
}

static inline double mw_f64_nearest(double x)
{
	uint64_t u = mw_d2u(x);
	uint64_t a = u & ~F64_SIGN;
	if (a >= 0x4330000000000000ull) /* |x| >= 2^52, inf or NaN */
		return x != x ? MW_NAN_PROP(x) : x;
	volatile double big = 4503599627370496.0;
	double y = mw_u2d(a);
	y = (y + big) - big;
	return mw_u2d(mw_d2u(y) | (u & F64_SIGN));
}

static inline float mw_f32_min(float a, float b)
{
	if (a != a || b != b)
		return a + b;
	if (a == b)
		return mw_u2f(mw_f2u(a) | mw_f2u(b));
	return a < b ? a : b;
}

static inline float mw_f32_max(float a, float b)
{
	if (a != a || b != b)
		return a + b;
	if (a == b)
		return mw_u2f(mw_f2u(a) & mw_f2u(b));
	return a > b ? a : b;
}

static inline double mw_f64_min(double a, double b)
{
	if (a != a || b != b)
		return a + b;
	if (a == b)
		return mw_u2d(mw_d2u(a) | mw_d2u(b));
	return a < b ? a : b;
}

static inline double mw_f64_max(double a, double b)
{
	if (a != a || b != b)
		return a + b;
	if (a == b)
		return mw_u2d(mw_d2u(a) & mw_d2u(b));
	return a > b ? a : b;
}

static inline uint32_t mw_popcnt32(uint32_t x)
{
	x = x - ((x >> 1) & 0x55555555u);
	x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
	x = (x + (x >> 4)) & 0x0f0f0f0fu;
	return (x * 0x01010101u) >> 24;
}

static inline uint64_t mw_popcnt64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (x * 0x0101010101010101ull) >> 56;
}

#endif
