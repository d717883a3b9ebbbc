#pragma once
/// @file random.hpp
/// A seeded random generator whose output is identical on every platform and compiler.
/// (std::normal_distribution and friends are implementation-defined, so radprobe does not use
/// them for anything that must be reproducible.)

#include <cmath>
#include <cstdint>

namespace radprobe {

/// SplitMix64 seeding + xoshiro256** generation, with uniform and normal draws defined here.
class Rng {
public:
    explicit Rng(std::uint64_t seed) { reseed(seed); }

    void reseed(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& s : s_) {
            x += 0x9E3779B97F4A7C15ULL;
            std::uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            s = z ^ (z >> 31);
        }
        has_spare_ = false;
    }

    /// A stream derived from this seed and an index: independent and reproducible per index
    /// (used to give each image / bootstrap replicate its own stream).
    static Rng derive(std::uint64_t seed, std::uint64_t index) {
        return Rng(seed * 0x9E3779B97F4A7C15ULL ^ (index + 0x632BE59BD9B4E019ULL) * 0xD1B54A32D192ED03ULL);
    }

    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    /// Uniform integer in [0, n) without modulo bias.
    std::uint64_t below(std::uint64_t n) {
        if (n <= 1) {
            return 0;
        }
        const std::uint64_t limit = (~std::uint64_t{0}) - (~std::uint64_t{0}) % n;
        std::uint64_t r;
        do {
            r = next_u64();
        } while (r >= limit);
        return r % n;
    }
    bool bernoulli(double p) { return uniform() < p; }
    /// Standard normal (Marsaglia polar method).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u, v, s;
        do {
            u = uniform() * 2.0 - 1.0;
            v = uniform() * 2.0 - 1.0;
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        const double m = std::sqrt(-2.0 * std::log(s) / s);
        spare_ = v * m;
        has_spare_ = true;
        return u * m;
    }
    double normal(double mean, double sd) { return mean + sd * normal(); }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace radprobe
