#!/usr/bin/env python3
"""Pinned values of radprobe's seeded generator and content hash, computed independently of the
C++ code (tests/core/test_core.cpp, tests/features/test_pooling.cpp pin them).

- Rng: SplitMix64 seeding of a xoshiro256** state, as published by Blackman & Vigna
  (https://prng.di.unimi.it/xoshiro256starstar.c, splitmix64.c), implemented here from the
  reference algorithms; uniform() = (next >> 11) * 2^-53; derive(seed, i) seeds
  seed * 0x9E3779B97F4A7C15 ^ (i + 0x632BE59BD9B4E019) * 0xD1B54A32D192ED03 (mod 2^64).
- content_hash: radprobe's 64-bit store hash (src/features/pooling.cpp documents the definition:
  two lanes over little-endian 8-byte words with the murmur3 finaliser, a byte tail, the length).
A change of either changes every seeded result and every cache key, so the tests must notice.
Run: /usr/bin/python3 tests/golden/core/make_core_golden.py   (prints the constants)
"""
M = (1 << 64) - 1


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Rng:
    def __init__(self, seed):
        x = seed & M
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def derive(seed, index):
        return Rng(((seed * 0x9E3779B97F4A7C15) & M) ^ (((index + 0x632BE59BD9B4E019) * 0xD1B54A32D192ED03) & M))

    def next_u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * 2.0 ** -53


def mix(x):
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M
    x ^= x >> 33
    return x


def content_hash(data: bytes):
    a, b = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F
    i = 0
    while i + 8 <= len(data):
        w = int.from_bytes(data[i:i + 8], "little")
        a = (((a ^ mix(w)) * 0x100000001B3) + 0x632BE59BD9B4E019) & M
        b = ((b + w) * 0x9E3779B97F4A7C15) & M
        b ^= b >> 29
        i += 8
    for c in data[i:]:
        a = ((a ^ c) * 0x100000001B3) & M
    return "%016x" % mix(a ^ mix((b + len(data)) & M))


if __name__ == "__main__":
    r = Rng(1)
    print("Rng(1) first three:", ", ".join("0x%016XULL" % r.next_u64() for _ in range(3)))
    print("Rng(42).uniform():", repr(Rng(42).uniform()))
    print("Rng::derive(7, 3) first:", "0x%016XULL" % Rng.derive(7, 3).next_u64())
    for s in [b"", b"abc", b"a" * 16, b"a" * 17, b"radprobe"]:
        print("content_hash(%r) = %s" % (s, content_hash(s)))
