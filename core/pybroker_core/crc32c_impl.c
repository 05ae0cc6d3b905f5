/* CRC-32C (Castagnoli): portable slice-by-8, SSE4.2 three-stream, and AVX-512 VPCLMULQDQ folding.
 *
 * Notation. The CRC is reflected: in a 32-bit value, bit 31 holds the coefficient of x^0 and bit 0
 * that of x^31 ("reflected form"). The "state" is the complemented CRC. Feeding message bytes B to a
 * state s gives s' = s * x^(8|B|) + B * x^32 (mod P), which is exactly what the SSE4.2 `crc32`
 * instruction computes for 1, 2, 4 or 8 bytes. P = x^32 + ... with reflected low part 0x82F63B78.
 *
 * Because the map is linear, work can be split: the state of A||B equals
 * state(A) * x^(8|B|) + state_from_zero(B). Both hardware paths use this, with the multiplications
 * by x^k done by carry-less multiply (PCLMULQDQ) against constants computed at load time. */
#include "crc32c_impl.h"

#include <string.h>

#define POLY 0x82F63B78u /* P without its x^32 term, reflected */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_PATHS 1
#endif

/* ---------------------------------------------------------------------------------------------
 * GF(2) arithmetic mod P, in reflected form (used at load time to derive the hardware paths'
 * constants). */
#ifdef HAVE_X86_PATHS

/* a * b mod P. */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t bit = 0x80000000u; bit != 0; bit >>= 1) { /* bit = x^0, x^1, ... of a */
        if (a & bit) product ^= b;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;             /* b *= x */
    }
    return product;
}

/* x^k mod P. */
static uint32_t xpow_mod(uint64_t k) {
    uint32_t result = 0x80000000u; /* x^0 */
    uint32_t square = 0x40000000u; /* x^(2^i), starting at x^1 */
    for (; k != 0; k >>= 1) {
        if (k & 1) result = gf2_mulmod(result, square);
        square = gf2_mulmod(square, square);
    }
    return result;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Portable slice-by-8. table[0] is the classic byte table; table[k][b] is the state contribution
 * of byte b followed by k zero bytes, so eight bytes are folded with eight independent look-ups. */

static uint32_t table[8][256];

static void init_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t b = 0; b < 256; b++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFF];
}

static inline uint64_t load_le64(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static uint32_t state_portable(uint32_t s, const unsigned char *p, size_t n) {
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w = load_le64(p) ^ s;
        s = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
            table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^
            table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
    }
    while (n--) s = table[0][(s ^ *p++) & 0xFF] ^ (s >> 8);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * x86-64 hardware paths. Each function carries its own target attribute, so the file builds without
 * -m flags and the instructions only run after the CPU check in init_dispatch. */
#ifdef HAVE_X86_PATHS
#include <cpuid.h>
#include <immintrin.h>

#define TARGET_SSE42 __attribute__((target("sse4.2,pclmul")))
#define TARGET_AVX512 __attribute__((target("sse4.2,pclmul,avx512f,vpclmulqdq")))

/* Three-stream block lengths (bytes per stream), longest first; each needs its own constants. */
#define N_STREAM_LENS 4
static const size_t stream_lens[N_STREAM_LENS] = {4096, 1024, 256, 64};

/* For stream length L: shift[i][0] moves stream 0's state past 2L bytes, shift[i][1] stream 1's
 * past L bytes. A state c (reflected, bit j <-> x^(31-j)) times K = x^(8m-33) mod P, carry-less,
 * gives a 64-bit value V (bit j <-> x^(63-j)) with V * x^32 = c * x^(8m) (mod P): V can be fed to
 * crc32_u64 as if it were 8 message bytes. */
static uint64_t stream_shift[N_STREAM_LENS][2];

/* Folding constants for a 128-bit lane moved forward by D bits: the lane's low qword holds the
 * higher-degree half, so it is multiplied by x^(D+32) and the high qword by x^(D-32); both are
 * reflected and shifted left by one bit, which cancels the one-bit offset of a reflected clmul. */
typedef struct { uint64_t lo, hi; } fold_k;
static fold_k fold_2048, fold_1536, fold_1024, fold_512, fold_384, fold_256, fold_128;

static fold_k fold_constants(uint64_t d) {
    fold_k k = {(uint64_t)xpow_mod(d + 32) << 1, (uint64_t)xpow_mod(d - 32) << 1};
    return k;
}

static void init_constants(void) {
    for (int i = 0; i < N_STREAM_LENS; i++) {
        stream_shift[i][0] = xpow_mod(8 * 2 * stream_lens[i] - 33);
        stream_shift[i][1] = xpow_mod(8 * stream_lens[i] - 33);
    }
    fold_2048 = fold_constants(2048);
    fold_1536 = fold_constants(1536);
    fold_1024 = fold_constants(1024);
    fold_512 = fold_constants(512);
    fold_384 = fold_constants(384);
    fold_256 = fold_constants(256);
    fold_128 = fold_constants(128);
}

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* One stream, for short inputs and tails: latency-bound (one crc32 every 3 cycles). */
TARGET_SSE42 static uint64_t state_sse42_serial(uint64_t s, const unsigned char *p, size_t n) {
    for (; n >= 8; n -= 8, p += 8) s = _mm_crc32_u64(s, load64(p));
    if (n & 4) { uint32_t v; memcpy(&v, p, 4); s = _mm_crc32_u32((uint32_t)s, v); p += 4; }
    if (n & 2) { uint16_t v; memcpy(&v, p, 2); s = _mm_crc32_u16((uint32_t)s, v); p += 2; }
    if (n & 1) s = _mm_crc32_u8((uint32_t)s, *p);
    return s;
}

/* 3*L bytes as three streams of L bytes; the last 8 bytes of stream 2 carry the other two states
 * (shifted into place with clmul) into the final crc32. Throughput-bound: ~8 bytes per cycle. */
TARGET_SSE42 static uint64_t block_3way(uint64_t s, const unsigned char *p, size_t len,
                                        const uint64_t shift[2]) {
    uint64_t s0 = s, s1 = 0, s2 = 0;
    const unsigned char *end = p + len - 8;
    for (; p < end; p += 8) {
        s0 = _mm_crc32_u64(s0, load64(p));
        s1 = _mm_crc32_u64(s1, load64(p + len));
        s2 = _mm_crc32_u64(s2, load64(p + 2 * len));
    }
    s0 = _mm_crc32_u64(s0, load64(p));
    s1 = _mm_crc32_u64(s1, load64(p + len));
    __m128i a = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)s0),
                                     _mm_cvtsi64_si128((long long)shift[0]), 0x00);
    __m128i b = _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)s1),
                                     _mm_cvtsi64_si128((long long)shift[1]), 0x00);
    uint64_t v = (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(a, b)) ^ load64(p + 2 * len);
    return _mm_crc32_u64(s2, v);
}

TARGET_SSE42 static uint32_t state_sse42(uint32_t state, const unsigned char *p, size_t n) {
    uint64_t s = state;
    for (int i = 0; i < N_STREAM_LENS; i++) {
        size_t len = stream_lens[i];
        for (; n >= 3 * len; n -= 3 * len, p += 3 * len) s = block_3way(s, p, len, stream_shift[i]);
    }
    return (uint32_t)state_sse42_serial(s, p, n);
}

/* Fold a 128-bit lane (or four, in a zmm) forward by D bits: lo*k.lo ^ hi*k.hi, then add `next`. */
TARGET_AVX512 static inline __m512i fold512(__m512i x, __m512i k, __m512i next) {
    __m512i lo = _mm512_clmulepi64_epi128(x, k, 0x00);
    __m512i hi = _mm512_clmulepi64_epi128(x, k, 0x11);
    return _mm512_ternarylogic_epi64(lo, hi, next, 0x96); /* three-way xor */
}

TARGET_AVX512 static inline __m128i fold128(__m128i x, fold_k k, __m128i next) {
    __m128i kk = _mm_set_epi64x((long long)k.hi, (long long)k.lo);
    __m128i lo = _mm_clmulepi64_si128(x, kk, 0x00);
    __m128i hi = _mm_clmulepi64_si128(x, kk, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

TARGET_AVX512 static inline __m512i broadcast_k(fold_k k) {
    return _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k.hi, (long long)k.lo));
}

/* Reduce four 128-bit lanes (the last 512 bits of the folded message) to a state, then carry on. */
TARGET_AVX512 static uint64_t reduce512(__m512i x) {
    __m128i l0 = _mm512_extracti32x4_epi32(x, 0), l1 = _mm512_extracti32x4_epi32(x, 1);
    __m128i l2 = _mm512_extracti32x4_epi32(x, 2), l3 = _mm512_extracti32x4_epi32(x, 3);
    __m128i acc = fold128(l0, fold_384, fold128(l1, fold_256, fold128(l2, fold_128, l3)));
    /* acc stands for the last 16 message bytes with a zero state in front of them. */
    uint64_t s = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(acc));
    return _mm_crc32_u64(s, (uint64_t)_mm_extract_epi64(acc, 1));
}

/* n >= 256: four zmm accumulators fold 256 bytes per iteration; the incoming state is xored into
 * the first four message bytes (equivalent to starting from it). */
TARGET_AVX512 static uint32_t state_avx512(uint32_t state, const unsigned char *p, size_t n) {
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_castsi128_si512(
                                      _mm_cvtsi32_si128((int)state)));
    __m512i x1 = _mm512_loadu_si512(p + 64), x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    p += 256, n -= 256;
    const __m512i k2048 = broadcast_k(fold_2048);
    for (; n >= 256; n -= 256, p += 256) {
        x0 = fold512(x0, k2048, _mm512_loadu_si512(p));
        x1 = fold512(x1, k2048, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k2048, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k2048, _mm512_loadu_si512(p + 192));
    }
    __m512i x = fold512(x0, broadcast_k(fold_1536), fold512(x1, broadcast_k(fold_1024),
                                                            fold512(x2, broadcast_k(fold_512), x3)));
    const __m512i k512 = broadcast_k(fold_512);
    for (; n >= 64; n -= 64, p += 64) x = fold512(x, k512, _mm512_loadu_si512(p));
    return (uint32_t)state_sse42_serial(reduce512(x), p, n);
}

/* Smallest input for the AVX-512 path (its set-up needs 256 bytes; measured faster from there). */
#define AVX512_MIN_LEN 256

static int cpu_tier(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int sse42 = (c >> 20) & 1, pclmul = (c >> 1) & 1, osxsave = (c >> 27) & 1;
    if (!sse42 || !pclmul) return 0;
    if (!osxsave || __get_cpuid_max(0, 0) < 7) return 1;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    int os_zmm = (xcr0_lo & 0xE6) == 0xE6; /* XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM enabled */
    __cpuid_count(7, 0, a, b, c, d);
    int avx512f = (b >> 16) & 1, vpclmulqdq = (c >> 10) & 1;
    return (os_zmm && avx512f && vpclmulqdq) ? 2 : 1;
}
#endif /* x86-64 */

/* ---------------------------------------------------------------------------------------------
 * Dispatch. Tables, constants and the CPU check are set up once when the library loads. */

static int best_tier = 0;
static int tier_limit = 2; /* written by the test hooks, read with relaxed atomics */

static void init_dispatch(void) {
    init_tables();
#ifdef HAVE_X86_PATHS
    init_constants();
    best_tier = cpu_tier();
#endif
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((constructor)) static void crc32c_load(void) { init_dispatch(); }
#define ENSURE_INIT() ((void)0)
#define LOAD_LIMIT() __atomic_load_n(&tier_limit, __ATOMIC_RELAXED)
#define STORE_LIMIT(v) __atomic_store_n(&tier_limit, (v), __ATOMIC_RELAXED)
#else /* other compilers: lazy set-up; the first call must not race with another */
static int ready = 0;
#define ENSURE_INIT() (ready ? (void)0 : (init_dispatch(), (void)(ready = 1)))
#define LOAD_LIMIT() (tier_limit)
#define STORE_LIMIT(v) (tier_limit = (v))
#endif

int pybroker_crc32c_best_tier(void) {
    ENSURE_INIT();
    return best_tier;
}

int pybroker_crc32c_tier(void) {
    ENSURE_INIT();
    int limit = LOAD_LIMIT();
    return best_tier < limit ? best_tier : limit;
}

void pybroker_crc32c_limit_tier(int tier) { STORE_LIMIT(tier < 0 ? 2 : tier); }

int pybroker_crc32c_hw(void) { return pybroker_crc32c_tier() > 0; }

void pybroker_crc32c_force_portable(int on) { pybroker_crc32c_limit_tier(on ? 0 : -1); }

uint32_t pybroker_crc32c_update(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t state = ~crc;
    int tier = pybroker_crc32c_tier();
#ifdef HAVE_X86_PATHS
    if (tier == 2 && n >= AVX512_MIN_LEN) return ~state_avx512(state, p, n);
    if (tier >= 1) return ~state_sse42(state, p, n);
#endif
    (void)tier;
    return ~state_portable(state, p, n);
}
