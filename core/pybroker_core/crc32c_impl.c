/* Placeholder portable CRC-32C (bitwise table); the hardware implementation replaces it. */
#include "crc32c_impl.h"

static uint32_t table[256];
static int table_ready = 0;
static int force_portable = 0;

static void init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t pybroker_crc32c_update(uint32_t crc, const unsigned char *p, size_t n) {
    if (!table_ready) init_table();
    crc = ~crc;
    while (n--) crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

int pybroker_crc32c_hw(void) { return 0; }
void pybroker_crc32c_force_portable(int on) { force_portable = on; }
