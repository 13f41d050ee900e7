#pragma once
// SIMD pieces shared by the CPU kernel files (each compiled once per CPU capability, see
// CMakeLists.txt): a log / sqrt / sincos policy for at::vec, and the Philox outputs of a
// whole noise group (gentk/philox.h) computed 8 or 16 counters at a time.
#include <cstdint>
#include <type_traits>

#include <ATen/cpu/vec/vec.h>

#include "gentk/philox.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {

using at::vec::Vectorized;

// Math policy of box_muller for at::vec. On x86 the Sleef 3.5-ulp log and the fused
// sincos (one range reduction for both) replace at::vec's 1-ulp log, sin and cos: the
// noise needs no more and Box-Muller is most of the cost of in-kernel sampling.
template <class T>
struct VecMath {
  using V = Vectorized<T>;
  static V sqrt(const V& x) { return x.sqrt(); }
#if defined(CPU_CAPABILITY_AVX512)
  static V log(const V& x) {
    if constexpr (std::is_same_v<T, float>) return Sleef_logf16_u35avx512f(x);
    else return Sleef_logd8_u35avx512f(x);
  }
  static void sincos(const V& x, V& s, V& c) {
    if constexpr (std::is_same_v<T, float>) {
      const auto sc = Sleef_sincosf16_u35avx512f(x);
      s = sc.x; c = sc.y;
    } else {
      const auto sc = Sleef_sincosd8_u35avx512f(x);
      s = sc.x; c = sc.y;
    }
  }
#elif defined(CPU_CAPABILITY_AVX2)
  static V log(const V& x) {
    if constexpr (std::is_same_v<T, float>) return Sleef_logf8_u35avx2(x);
    else return Sleef_logd4_u35avx2(x);
  }
  static void sincos(const V& x, V& s, V& c) {
    if constexpr (std::is_same_v<T, float>) {
      const auto sc = Sleef_sincosf8_u35avx2(x);
      s = sc.x; c = sc.y;
    } else {
      const auto sc = Sleef_sincosd4_u35avx2(x);
      s = sc.x; c = sc.y;
    }
  }
#else
  static V log(const V& x) { return x.log(); }
  static void sincos(const V& x, V& s, V& c) {
    s = x.sin();
    c = x.cos();
  }
#endif
};

// Philox outputs of the 16 counters of noise group g, as x[output][lane]. GCC does not
// vectorize the 32x32->64 multiplies on its own, so the x86 builds spell them out.
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
#if defined(CPU_CAPABILITY_AVX512)
using VecU32 = __m512i;
constexpr int kU32Lanes = 16;
inline VecU32 set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
inline VecU32 add(VecU32 a, VecU32 b) { return _mm512_add_epi32(a, b); }
inline VecU32 bxor(VecU32 a, VecU32 b) { return _mm512_xor_si512(a, b); }
inline void mulhilo(VecU32 a, VecU32 m, VecU32& hi, VecU32& lo) {
  const VecU32 even = _mm512_mul_epu32(a, m);                      // lanes 0, 2, ...
  const VecU32 odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1, 3, ...
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}
inline VecU32 lane_index() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
inline void store_u32(uint32_t* p, VecU32 v) { _mm512_storeu_si512(p, v); }
#else
using VecU32 = __m256i;
constexpr int kU32Lanes = 8;
inline VecU32 set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
inline VecU32 add(VecU32 a, VecU32 b) { return _mm256_add_epi32(a, b); }
inline VecU32 bxor(VecU32 a, VecU32 b) { return _mm256_xor_si256(a, b); }
inline void mulhilo(VecU32 a, VecU32 m, VecU32& hi, VecU32& lo) {
  const VecU32 even = _mm256_mul_epu32(a, m);
  const VecU32 odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}
inline VecU32 lane_index() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
inline void store_u32(uint32_t* p, VecU32 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
#endif

inline void philox_group(int64_t g, uint64_t seed, uint64_t stream, uint32_t x[4][kNoiseLanes]) {
  // counters g*16 + k: g*16 is a multiple of 16, so adding k < 16 never carries into hi
  const uint64_t first = static_cast<uint64_t>(g) * kNoiseLanes;
  const VecU32 mul0 = set1(0xD2511F53u), mul1 = set1(0xCD9E8D57u);
  const VecU32 bump0 = set1(0x9E3779B9u), bump1 = set1(0xBB67AE85u);
  for (int k = 0; k < kNoiseLanes; k += kU32Lanes) {
    VecU32 c0 = add(set1(static_cast<uint32_t>(first) + k), lane_index());
    VecU32 c1 = set1(static_cast<uint32_t>(first >> 32));
    VecU32 c2 = set1(static_cast<uint32_t>(stream)), c3 = set1(static_cast<uint32_t>(stream >> 32));
    VecU32 k0 = set1(static_cast<uint32_t>(seed)), k1 = set1(static_cast<uint32_t>(seed >> 32));
    for (int round = 0; round < 10; ++round) {
      VecU32 hi0, lo0, hi1, lo1;
      mulhilo(c0, mul0, hi0, lo0);
      mulhilo(c2, mul1, hi1, lo1);
      c0 = bxor(bxor(hi1, c1), k0);
      c1 = lo1;
      c2 = bxor(bxor(hi0, c3), k1);
      c3 = lo0;
      k0 = add(k0, bump0);
      k1 = add(k1, bump1);
    }
    store_u32(x[0] + k, c0);
    store_u32(x[1] + k, c1);
    store_u32(x[2] + k, c2);
    store_u32(x[3] + k, c3);
  }
}
#else
inline void philox_group(int64_t g, uint64_t seed, uint64_t stream, uint32_t x[4][kNoiseLanes]) {
  for (int k = 0; k < kNoiseLanes; ++k) {
    const Philox4 r = philox_at(static_cast<uint64_t>(g) * kNoiseLanes + k, seed, stream);
    x[0][k] = r.x[0]; x[1][k] = r.x[1]; x[2][k] = r.x[2]; x[3][k] = r.x[3];
  }
}
#endif

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
