/* The one LEB128 reader (Wasm binary format, section 5.2.2): the decoder
 * (decode.c) and the compiler (compile.c) both read integers through it, so
 * they accept and refuse exactly the same encodings. Freestanding. */
#ifndef MOTE_WASM_LEB_H
#define MOTE_WASM_LEB_H

#include <stdint.h>

typedef enum mw_leb_status {
	MW_LEB_OK = 0,
	MW_LEB_END,      /* the bytes ran out */
	MW_LEB_TOO_LONG, /* more bytes than `bits` needs */
	MW_LEB_TOO_LARGE /* the last byte's unused bits are not a valid extension */
} mw_leb_status;

/* The spec interpreter's wording, which the spec tests expect. */
static inline const char *mw_leb_message(mw_leb_status s)
{
	switch (s) {
	case MW_LEB_END:
		return "unexpected end of section or function";
	case MW_LEB_TOO_LONG:
		return "integer representation too long";
	case MW_LEB_TOO_LARGE:
		return "integer too large";
	case MW_LEB_OK:
		break;
	}
	return "";
}

/* An unsigned (`is_signed` false) or signed integer of `bits` bits at *p,
 * which moves past each byte read. */
static inline mw_leb_status mw_leb_read(const uint8_t **p, const uint8_t *end, unsigned bits,
                                        int is_signed, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0, maxb = (bits + 6) / 7;
	uint8_t b = 0;
	for (unsigned i = 0;; i++) {
		if (*p >= end)
			return MW_LEB_END;
		b = *(*p)++;
		if (i == maxb - 1) {
			if (b & 0x80)
				return MW_LEB_TOO_LONG;
			unsigned used = bits - shift; /* 1..7 */
			if (!is_signed && used < 7 && (b >> used))
				return MW_LEB_TOO_LARGE;
			if (is_signed) {
				uint8_t mask = (uint8_t)(0x7f & ~((1u << (used - 1)) - 1));
				uint8_t hi = b & mask;
				if (hi != 0 && hi != mask)
					return MW_LEB_TOO_LARGE;
			}
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (is_signed && shift < 64 && (b & 0x40))
		v |= ~(uint64_t)0 << shift;
	*out = v;
	return MW_LEB_OK;
}

#endif
