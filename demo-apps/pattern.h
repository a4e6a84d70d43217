/* Deterministic pseudo-random payloads.  A stream is named by a 64-bit key
 * (e.g. connection and message number, or file index) and its content is a
 * pure function of (key, offset), so a receiver can verify any byte range
 * without a reference copy, and a lost, duplicated, reordered or corrupted
 * byte shows up as a mismatch. */
#ifndef DEMO_PATTERN_H
#define DEMO_PATTERN_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* splitmix64's finalizer: cheap and well mixed. */
static inline uint64_t pattern_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline uint64_t pattern_key(uint64_t a, uint64_t b)
{
    return pattern_mix(pattern_mix(a + 0x9e3779b97f4a7c15ull) ^ b);
}

/* Fills buf with bytes [offset, offset + len) of stream key.  Every 8-byte
 * word of the stream is mix(key + word index), little-endian. */
static inline void pattern_fill(uint64_t key, uint64_t offset, void *buf, size_t len)
{
    unsigned char *out = buf;
    uint64_t word_index = offset / 8;
    unsigned skip = (unsigned)(offset % 8);
    while (len > 0) {
        uint64_t word = htole64(pattern_mix(key + word_index++));
        if (skip == 0 && len >= 8) {
            memcpy(out, &word, 8);   /* the common case: a whole word */
            out += 8;
            len -= 8;
            continue;
        }
        size_t n = 8 - skip < len ? 8 - skip : len;
        memcpy(out, (unsigned char *)&word + skip, n);
        out += n;
        len -= n;
        skip = 0;
    }
}

#endif
