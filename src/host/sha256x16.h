/* SHA-256 of sixteen equal-length messages at once, one per 32-bit lane of
 * AVX-512 registers. Snapshot blobs are hashed in fixed-size chunks, so the
 * verifier always has many equal-length messages; in lanes they hash about
 * 2.5x faster per core than one message at a time with SHA-NI (measured in
 * docs/benchmarks.md). The digests are plain SHA-256: nothing in the file
 * format depends on how they were computed. */
#ifndef MOTE_HOST_SHA256X16_H
#define MOTE_HOST_SHA256X16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOTE_SHA256X16_LANES 16

/* True when the CPU and kernel support AVX-512 (F and BW) and the
 * environment does not set MOTE_NO_AVX512. Decided once per process. */
bool mote_sha256x16_usable(void);

/* out[i] = SHA-256(msg[i][0..len)). Call only when usable() is true. */
void mote_sha256x16(const uint8_t *const msg[MOTE_SHA256X16_LANES], size_t len,
                    uint8_t out[MOTE_SHA256X16_LANES][32]);

/* Tests: force the one-message-at-a-time path (true) or restore detection. */
void mote_sha256x16__disable(bool disable);

#endif
