/* Converting between mote_value and its wire form (abi.h), shared by the
 * host library and the guest runtime so both sides agree bit for bit.
 * Freestanding. Strings and bytes are not handled here: each side places
 * their data in its own message area. */
#ifndef MOTE_WIRE_H
#define MOTE_WIRE_H

#include "common/abi.h"

/* The `bits` of a scalar value: f32/f64 as their bit patterns, bool 0/1,
 * 32-bit integers zero-extended. */
static inline uint64_t mote_wire_scalar(const mote_value *v)
{
	uint64_t bits = 0;
	switch (v->type) {
	case MOTE_I32:
	case MOTE_U32:
		return v->v.u32;
	case MOTE_F32: {
		uint32_t b;
		__builtin_memcpy(&b, &v->v.f32, 4);
		return b;
	}
	case MOTE_F64:
		__builtin_memcpy(&bits, &v->v.f64, 8);
		return bits;
	case MOTE_BOOL:
		return v->v.b ? 1 : 0;
	default:
		return v->v.u64;
	}
}

/* Decode a wire value; string/bytes data lives at `base` + bits (the
 * caller has checked the range). */
static inline void mote_wire_decode(const struct mote_wire_value *w, const uint8_t *base,
				    mote_value *v)
{
	v->type = (mote_type)w->type;
	switch (v->type) {
	case MOTE_I32:
	case MOTE_U32:
		v->v.u64 = 0;
		v->v.u32 = (uint32_t)w->bits;
		break;
	case MOTE_F32: {
		uint32_t b = (uint32_t)w->bits;
		__builtin_memcpy(&v->v.f32, &b, 4);
		break;
	}
	case MOTE_F64:
		__builtin_memcpy(&v->v.f64, &w->bits, 8);
		break;
	case MOTE_BOOL:
		v->v.b = w->bits != 0;
		break;
	case MOTE_STRING:
	case MOTE_BYTES:
		v->v.buf.ptr = base + w->bits;
		v->v.buf.len = w->len;
		break;
	default:
		v->v.u64 = w->bits;
		break;
	}
}

#endif
