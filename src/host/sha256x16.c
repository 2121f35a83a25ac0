/* Sixteen-lane SHA-256 (FIPS 180-4) with AVX-512: lane i of every vector
 * holds message i's state, so one instruction does one step of sixteen
 * hashes. Per 64-byte block: load one block of each message, transpose the
 * 16x16 words so vector t holds word t of every block, then the 64 rounds
 * with vprord for the rotations and vpternlogd for Ch, Maj and the
 * three-way xors. Only functions marked TARGET use AVX-512, so the rest of
 * the library runs on any x86-64; callers check usable() first. */
#include "host/sha256x16.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int forced_off;

void mote_sha256x16__disable(bool disable)
{
	atomic_store(&forced_off, disable);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw")))

static const uint32_t round_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t initial_state[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* vpternlogd truth tables: a^b^c, a?b:c (Ch), majority (Maj). */
#define XOR3 0x96
#define CH   0xca
#define MAJ  0xe8

#define ADD(x, y)        _mm512_add_epi32(x, y)
#define ROR(x, n)        _mm512_ror_epi32(x, n)
#define TERN(x, y, z, f) _mm512_ternarylogic_epi32(x, y, z, f)
#define BIG_S0(x)        TERN(ROR(x, 2), ROR(x, 13), ROR(x, 22), XOR3)
#define BIG_S1(x)        TERN(ROR(x, 6), ROR(x, 11), ROR(x, 25), XOR3)
#define SMALL_S0(x)      TERN(ROR(x, 7), ROR(x, 18), _mm512_srli_epi32(x, 3), XOR3)
#define SMALL_S1(x)      TERN(ROR(x, 17), ROR(x, 19), _mm512_srli_epi32(x, 10), XOR3)

/* One round; the caller rotates the roles of a..h instead of moving data. */
#define ROUND(a, b, c, d, e, f, g, h, t)                                                           \
	do {                                                                                       \
		__m512i kw_ = ADD(_mm512_set1_epi32((int)round_k[t]), w[(t)&15]);                  \
		__m512i t1_ = ADD(ADD(h, BIG_S1(e)), ADD(TERN(e, f, g, CH), kw_));                 \
		__m512i t2_ = ADD(BIG_S0(a), TERN(a, b, c, MAJ));                                  \
		d = ADD(d, t1_);                                                                   \
		h = ADD(t1_, t2_);                                                                 \
	} while (0)

/* Message schedule in a 16-word ring: w[t] replaces w[t-16]. */
#define SCHEDULE(t)                                                                                \
	w[(t)&15] = ADD(ADD(SMALL_S1(w[((t)-2) & 15]), w[((t)-7) & 15]),                           \
	                ADD(SMALL_S0(w[((t)-15) & 15]), w[(t)&15]))

#define ROUNDS8(t)                                                                                 \
	ROUND(a, b, c, d, e, f, g, h, (t));                                                        \
	ROUND(h, a, b, c, d, e, f, g, (t) + 1);                                                    \
	ROUND(g, h, a, b, c, d, e, f, (t) + 2);                                                    \
	ROUND(f, g, h, a, b, c, d, e, (t) + 3);                                                    \
	ROUND(e, f, g, h, a, b, c, d, (t) + 4);                                                    \
	ROUND(d, e, f, g, h, a, b, c, (t) + 5);                                                    \
	ROUND(c, d, e, f, g, h, a, b, (t) + 6);                                                    \
	ROUND(b, c, d, e, f, g, h, a, (t) + 7)

#define SCHEDULE8(t)                                                                               \
	SCHEDULE(t);                                                                               \
	SCHEDULE((t) + 1);                                                                         \
	SCHEDULE((t) + 2);                                                                         \
	SCHEDULE((t) + 3);                                                                         \
	SCHEDULE((t) + 4);                                                                         \
	SCHEDULE((t) + 5);                                                                         \
	SCHEDULE((t) + 6);                                                                         \
	SCHEDULE((t) + 7)

/* w[t] = big-endian word t of the block at msg[i] + off, in lane i. Rows are
 * the sixteen blocks; a 16x16 transpose in four steps (pairs of words, pairs
 * of pairs, then 128-bit quarters twice) turns them into columns. */
TARGET static void load_words(__m512i w[16], const uint8_t *const msg[16], size_t off)
{
	__m512i row[16], pair[16], quad[16];
	for (int i = 0; i < 16; i++)
		row[i] = _mm512_loadu_si512(msg[i] + off);
	for (int i = 0; i < 16; i += 2) {
		pair[i] = _mm512_unpacklo_epi32(row[i], row[i + 1]);
		pair[i + 1] = _mm512_unpackhi_epi32(row[i], row[i + 1]);
	}
	/* quad[4g + c], quarter k = word 4k + c of rows 4g .. 4g+3 */
	for (int i = 0; i < 16; i += 4) {
		quad[i] = _mm512_unpacklo_epi64(pair[i], pair[i + 2]);
		quad[i + 1] = _mm512_unpackhi_epi64(pair[i], pair[i + 2]);
		quad[i + 2] = _mm512_unpacklo_epi64(pair[i + 1], pair[i + 3]);
		quad[i + 3] = _mm512_unpackhi_epi64(pair[i + 1], pair[i + 3]);
	}
	const __m512i byteswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
	for (int c = 0; c < 4; c++) {
		__m512i lo01 = _mm512_shuffle_i32x4(quad[c], quad[4 + c], 0x44);
		__m512i hi01 = _mm512_shuffle_i32x4(quad[c], quad[4 + c], 0xee);
		__m512i lo23 = _mm512_shuffle_i32x4(quad[8 + c], quad[12 + c], 0x44);
		__m512i hi23 = _mm512_shuffle_i32x4(quad[8 + c], quad[12 + c], 0xee);
		w[c] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(lo01, lo23, 0x88), byteswap);
		w[4 + c] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(lo01, lo23, 0xdd), byteswap);
		w[8 + c] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(hi01, hi23, 0x88), byteswap);
		w[12 + c] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(hi01, hi23, 0xdd), byteswap);
	}
}

TARGET static void compress_blocks(__m512i state[8], const uint8_t *const msg[16], size_t nblocks)
{
	__m512i a = state[0], b = state[1], c = state[2], d = state[3];
	__m512i e = state[4], f = state[5], g = state[6], h = state[7];
	for (size_t blk = 0; blk < nblocks; blk++) {
		__m512i w[16];
		load_words(w, msg, blk * 64);
		ROUNDS8(0);
		ROUNDS8(8);
		for (int t = 16; t < 64; t += 16) {
			SCHEDULE8(t);
			ROUNDS8(t);
			SCHEDULE8(t + 8);
			ROUNDS8(t + 8);
		}
		a = state[0] = ADD(a, state[0]);
		b = state[1] = ADD(b, state[1]);
		c = state[2] = ADD(c, state[2]);
		d = state[3] = ADD(d, state[3]);
		e = state[4] = ADD(e, state[4]);
		f = state[5] = ADD(f, state[5]);
		g = state[6] = ADD(g, state[6]);
		h = state[7] = ADD(h, state[7]);
	}
}

TARGET void mote_sha256x16(const uint8_t *const msg[MOTE_SHA256X16_LANES], size_t len,
                           uint8_t out[MOTE_SHA256X16_LANES][32])
{
	__m512i state[8];
	for (int i = 0; i < 8; i++)
		state[i] = _mm512_set1_epi32((int)initial_state[i]);
	size_t full = len / 64, rem = len % 64;
	compress_blocks(state, msg, full);

	/* The tail and padding: 0x80, zeros, the bit length big-endian. */
	size_t tail_blocks = rem + 9 > 64 ? 2 : 1;
	uint64_t bits = (uint64_t)len * 8;
	uint8_t tail[MOTE_SHA256X16_LANES][128];
	const uint8_t *tail_msg[MOTE_SHA256X16_LANES];
	for (int i = 0; i < MOTE_SHA256X16_LANES; i++) {
		memset(tail[i], 0, sizeof(tail[i]));
		if (rem)
			memcpy(tail[i], msg[i] + full * 64, rem);
		tail[i][rem] = 0x80;
		for (int k = 0; k < 8; k++)
			tail[i][tail_blocks * 64 - 1 - (size_t)k] = (uint8_t)(bits >> (8 * k));
		tail_msg[i] = tail[i];
	}
	compress_blocks(state, tail_msg, tail_blocks);

	uint32_t words[8][MOTE_SHA256X16_LANES];
	for (int i = 0; i < 8; i++)
		_mm512_storeu_si512(words[i], state[i]);
	for (int lane = 0; lane < MOTE_SHA256X16_LANES; lane++)
		for (int i = 0; i < 8; i++) {
			uint32_t v = words[i][lane];
			out[lane][4 * i] = (uint8_t)(v >> 24);
			out[lane][4 * i + 1] = (uint8_t)(v >> 16);
			out[lane][4 * i + 2] = (uint8_t)(v >> 8);
			out[lane][4 * i + 3] = (uint8_t)v;
		}
}

/* libgcc's check includes XGETBV: the kernel must save the AVX-512 state. */
static bool cpu_has_avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

#else

void mote_sha256x16(const uint8_t *const msg[MOTE_SHA256X16_LANES], size_t len,
                    uint8_t out[MOTE_SHA256X16_LANES][32])
{
	(void)msg;
	(void)len;
	(void)out;
}

static bool cpu_has_avx512(void)
{
	return false;
}

#endif

bool mote_sha256x16_usable(void)
{
	static atomic_int detected; /* 0 unknown, 1 no, 2 yes */
	int d = atomic_load(&detected);
	if (!d) {
		const char *off = getenv("MOTE_NO_AVX512");
		d = cpu_has_avx512() && !(off && *off && strcmp(off, "0")) ? 2 : 1;
		atomic_store(&detected, d);
	}
	return d == 2 && !atomic_load(&forced_off);
}
