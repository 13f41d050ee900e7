#pragma once
// Counter-based Philox4x32-10 (Salmon et al., SC'11) and gentk's mapping from a flat
// element index to one standard-normal draw. CPU, CUDA and Triton kernels all produce
// the same stream, so a (seed, stream) pair names the same noise on every backend.
//
// Noise layout: elements are grouped by 64. In group g, counter c = g*16 + k
// (k = 0..15) yields four normals n0..n3; n_j lands on element g*64 + j*16 + k.
// A group is one AVX-512 vector of counters, or half a CUDA warp.
#include <cstdint>

#include "gentk/macros.h"

namespace gentk {

constexpr int kNoiseGroup = 64;       // elements per group
constexpr int kNoiseLanes = 16;       // Philox counters per group
constexpr float kUniformScale = 5.9604644775390625e-08f;  // 2^-24
constexpr double kTwoPi = 6.283185307179586476925286766559;

struct Philox4 {
  uint32_t x[4];
};

GENTK_HOST_DEVICE uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds. counter = (c0, c1, c2, c3), key = (k0, k1).
GENTK_HOST_DEVICE Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                       uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Counter of Philox call `counter` (a 64-bit index) in stream `stream`, keyed by `seed`.
GENTK_HOST_DEVICE Philox4 philox_at(uint64_t counter, uint64_t seed, uint64_t stream) {
  return philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                       static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// (0, 1]: safe under log.
GENTK_HOST_DEVICE float uniform_open_closed(uint32_t x) {
  return static_cast<float>((x >> 8) + 1u) * kUniformScale;
}

// [0, 1): an angle fraction.
GENTK_HOST_DEVICE float uniform_closed_open(uint32_t x) {
  return static_cast<float>(x >> 8) * kUniformScale;
}

// (0, 1) strictly: (k + 1/2) * 2^-23 for the top 23 bits k, so 2^-24 <= u <= 1 - 2^-24,
// every value exact in float. Both log(u) and log(-log(u)) are finite.
GENTK_HOST_DEVICE float uniform_open_open(uint32_t x) {
  return (static_cast<float>(static_cast<int32_t>(x >> 9)) + 0.5f) * 1.1920928955078125e-07f;  // 2^-23
}

// Box-Muller on (u1 in (0, 1], u2 in [0, 1)). M supplies log, sqrt and sincos for T,
// so the same formula serves scalars, at::vec vectors and CUDA.
template <class M, class T>
GENTK_HOST_DEVICE void box_muller(T u1, T u2, T& n0, T& n1) {
  const T r = M::sqrt(T(-2) * M::log(u1));
  T s, c;
  M::sincos(T(kTwoPi) * u2, s, c);
  n0 = r * c;
  n1 = r * s;
}

// Which counter and which of its four outputs feed element `index`.
GENTK_HOST_DEVICE uint64_t noise_counter(uint64_t index) {
  return (index >> 6) * kNoiseLanes + (index & 15u);
}
GENTK_HOST_DEVICE int noise_slot(uint64_t index) { return static_cast<int>((index >> 4) & 3u); }

}  // namespace gentk
