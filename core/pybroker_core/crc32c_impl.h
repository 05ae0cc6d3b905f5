/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by Kafka record batches v2.
 * crc32c_update(crc, p, n) continues a CRC: start with 0; the result is the finished CRC. */
#ifndef PYBROKER_CRC32C_IMPL_H
#define PYBROKER_CRC32C_IMPL_H
#include <stddef.h>
#include <stdint.h>

uint32_t pybroker_crc32c_update(uint32_t crc, const unsigned char *p, size_t n);
/* 1 when the hardware path is in use, 0 for the portable fallback. */
int pybroker_crc32c_hw(void);
/* Force the portable path (for tests): 1 = portable, 0 = best available. */
void pybroker_crc32c_force_portable(int on);

#endif
