// Vectorized, multithreaded CPU kernels of the Gaussian family. Compiled once per
// CPU capability (see CMakeLists.txt); CPU_CAPABILITY names the namespace.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "gaussian.h"
#include "gentk/gaussian.h"
#include "gentk/philox.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Elements per parallel task at minimum: below ~16K elements threads cost more than they save.
constexpr int64_t kGrainGroups = 256;
// KL sums run in the input dtype per vector lane for this many groups, then in double.
constexpr int64_t kFlushGroups = 32;

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

template <class T>
inline Vectorized<T> load(const T* p, int count) {
  return count == Vectorized<T>::size() ? Vectorized<T>::loadu(p) : Vectorized<T>::loadu(p, count);
}

template <class T>
inline void store(const Vectorized<T>& v, T* p, int count) {
  if (count == Vectorized<T>::size()) v.store(p); else v.store(p, count);
}

template <class T>
inline double horizontal_sum(const Vectorized<T>& v) {
  alignas(64) T lanes[Vectorized<T>::size()];
  v.store(lanes);
  double s = 0;
  for (int i = 0; i < Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

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

// The 64 standard normals of noise group g (layout in gentk/philox.h).
template <class T>
inline void noise_group(int64_t g, uint64_t seed, uint64_t stream, T* out) {
  alignas(64) uint32_t x[4][kNoiseLanes];
  philox_group(g, seed, stream, x);
  alignas(64) T u[4][kNoiseLanes];
  for (int k = 0; k < kNoiseLanes; ++k) {
    u[0][k] = uniform_open_closed(x[0][k]);
    u[1][k] = uniform_closed_open(x[1][k]);
    u[2][k] = uniform_open_closed(x[2][k]);
    u[3][k] = uniform_closed_open(x[3][k]);
  }
  constexpr int W = Vectorized<T>::size();
  static_assert(kNoiseLanes % W == 0, "a noise group must hold whole vectors");
  for (int pair = 0; pair < 2; ++pair) {
    for (int k = 0; k < kNoiseLanes; k += W) {
      Vectorized<T> n0, n1;
      box_muller<VecMath<T>>(Vectorized<T>::loadu(&u[2 * pair][k]),
                             Vectorized<T>::loadu(&u[2 * pair + 1][k]), n0, n1);
      n0.store(out + (2 * pair) * kNoiseLanes + k);
      n1.store(out + (2 * pair + 1) * kNoiseLanes + k);
    }
  }
}

// The noise of group g: the caller's eps, or Philox normals written to `buffer`.
template <class T>
inline const T* group_noise(const T* eps_in, int64_t g, uint64_t seed, uint64_t stream, T* buffer) {
  if (eps_in != nullptr) return eps_in + g * kNoiseGroup;
  noise_group(g, seed, stream, buffer);
  return buffer;
}

// Forward over noise groups [g0, g1); returns the KL sum of the range (0 if not asked).
// Everything is copied into locals so stores through z / kl cannot force reloads.
template <class T>
double forward_range(const GaussianForward& a, int64_t g0, int64_t g1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const mu = static_cast<const T*>(a.mu);
  const T* const logvar = static_cast<const T*>(a.logvar);
  const T* const eps_in = static_cast<const T*>(a.eps);
  T* const z = static_cast<T*>(a.z);
  T* const kl = static_cast<T*>(a.kl);
  const bool want_sum = a.kl_sum != nullptr;
  const bool want_kl = kl != nullptr || want_sum;
  const int64_t n = a.n;
  const uint64_t seed = a.seed, stream = a.stream;

  alignas(64) T noise[kNoiseGroup];
  double sum = 0;
  V acc(T(0));
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t base = g * kNoiseGroup;
    const int len = static_cast<int>(std::min<int64_t>(kNoiseGroup, n - base));
    const T* eps = z != nullptr ? group_noise(eps_in, g, seed, stream, noise) : nullptr;
    for (int i = 0; i < len; i += W) {
      const int cnt = std::min(W, len - i);
      const V m = load(mu + base + i, cnt);
      const V lv = load(logvar + base + i, cnt);
      const V sd = (lv * V(T(0.5))).exp_u20();
      if (z != nullptr) store(reparam_z(m, load(eps + i, cnt), sd), z + base + i, cnt);
      if (want_kl) {
        const V k = kl_term(m, lv, sd);  // lanes past `cnt` load zeros and add 0
        if (kl != nullptr) store(k, kl + base + i, cnt);
        acc = acc + k;
      }
    }
    if (want_sum && (g - g0) % kFlushGroups == kFlushGroups - 1) {
      sum += horizontal_sum(acc);
      acc = V(T(0));
    }
  }
  return want_sum ? sum + horizontal_sum(acc) : 0.0;
}

template <class T>
void forward_impl(const GaussianForward& a) {
  const int64_t groups = (a.n + kNoiseGroup - 1) / kNoiseGroup;
  if (a.kl_sum != nullptr) {
    *a.kl_sum = at::parallel_reduce(
        int64_t{0}, groups, kGrainGroups, 0.0,
        [&](int64_t g0, int64_t g1, double) { return forward_range<T>(a, g0, g1); }, std::plus<double>());
  } else {
    at::parallel_for(int64_t{0}, groups, kGrainGroups,
                     [&](int64_t g0, int64_t g1) { forward_range<T>(a, g0, g1); });
  }
}

template <class T>
void backward_range(const GaussianBackward& a, int64_t g0, int64_t g1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const mu = static_cast<const T*>(a.mu);
  const T* const logvar = static_cast<const T*>(a.logvar);
  const T* const eps_in = static_cast<const T*>(a.eps);
  const T* const grad_z = static_cast<const T*>(a.grad_z);
  const T* const grad_kl = static_cast<const T*>(a.grad_kl);
  T* const grad_mu = static_cast<T*>(a.grad_mu);
  T* const grad_logvar = static_cast<T*>(a.grad_logvar);
  const bool has_kl = grad_kl != nullptr || a.grad_kl_scalar != 0.0;
  const V kl_scalar(static_cast<T>(a.grad_kl_scalar));
  const int64_t n = a.n;
  const uint64_t seed = a.seed, stream = a.stream;

  alignas(64) T noise[kNoiseGroup];
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t base = g * kNoiseGroup;
    const int len = static_cast<int>(std::min<int64_t>(kNoiseGroup, n - base));
    const T* eps = grad_z != nullptr ? group_noise(eps_in, g, seed, stream, noise) : nullptr;
    for (int i = 0; i < len; i += W) {
      const int cnt = std::min(W, len - i);
      const V lv = load(logvar + base + i, cnt);
      const V sd = (lv * V(T(0.5))).exp_u20();
      V d_logvar(T(0));
      V d_mu(T(0));
      if (grad_z != nullptr) {
        const V gz = load(grad_z + base + i, cnt);
        d_logvar = reparam_dlogvar(gz, load(eps + i, cnt), sd);
        d_mu = gz;
      }
      if (has_kl) {
        const V gk = grad_kl != nullptr ? load(grad_kl + base + i, cnt) : kl_scalar;
        d_logvar = d_logvar + gk * kl_dlogvar(sd);
        if (grad_mu != nullptr) d_mu = d_mu + gk * load(mu + base + i, cnt);
      }
      store(d_logvar, grad_logvar + base + i, cnt);
      if (grad_mu != nullptr) store(d_mu, grad_mu + base + i, cnt);
    }
  }
}

template <class T>
void backward_impl(const GaussianBackward& a) {
  const int64_t groups = (a.n + kNoiseGroup - 1) / kNoiseGroup;
  at::parallel_for(int64_t{0}, groups, kGrainGroups,
                   [&](int64_t g0, int64_t g1) { backward_range<T>(a, g0, g1); });
}

void forward(const GaussianForward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_gaussian_forward", [&] { forward_impl<scalar_t>(a); });
}

void backward(const GaussianBackward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_gaussian_backward", [&] { backward_impl<scalar_t>(a); });
}

}  // namespace

extern const GaussianKernels gaussian_kernels{&forward, &backward};

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
