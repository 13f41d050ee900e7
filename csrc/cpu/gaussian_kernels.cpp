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
#include "philox_vec.h"
#include "vec_utils.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Elements per parallel task at minimum: below ~16K elements threads cost more than they save.
constexpr int64_t kGrainGroups = 256;
// KL sums run in the input dtype per vector lane for this many groups, then in double.
constexpr int64_t kFlushGroups = 32;

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
