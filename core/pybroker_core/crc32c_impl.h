/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by Kafka record batches v2.
 * crc32c_update(crc, p, n) continues a CRC: start with 0; the result is the finished CRC.
 *
 * Three implementations ("tiers"), chosen once at load time from what the CPU supports:
 *   2  AVX-512 + VPCLMULQDQ folding of 4 x 512-bit lanes (large inputs), SSE4.2 crc32 for the rest
 *   1  SSE4.2 crc32 instruction, three interleaved streams joined with PCLMULQDQ
 *   0  portable slice-by-8 tables
 * All functions are thread-safe and never allocate. */
#ifndef PYBROKER_CRC32C_IMPL_H
#define PYBROKER_CRC32C_IMPL_H
#include <stddef.h>
#include <stdint.h>

uint32_t pybroker_crc32c_update(uint32_t crc, const unsigned char *p, size_t n);
/* 1 when the hardware path is in use, 0 for the portable fallback. */
int pybroker_crc32c_hw(void);
/* Force the portable path (for tests): 1 = portable, 0 = best available. */
void pybroker_crc32c_force_portable(int on);

/* Tier in use (0, 1 or 2 as above) and the best tier this CPU supports. */
int pybroker_crc32c_tier(void);
int pybroker_crc32c_best_tier(void);
/* Tests and benchmarks: use at most `tier` (clamped to what the CPU supports); -1 = best. */
void pybroker_crc32c_limit_tier(int tier);

#endif
