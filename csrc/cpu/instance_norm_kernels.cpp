// Vectorized, multithreaded CPU kernels of the instance-norm family. Compiled once per
// CPU capability (see CMakeLists.txt); CPU_CAPABILITY names the namespace.
//
// Contiguous (N, C, HW): one task per (n, c) plane; its statistics pass (Welford, two
// independent chains over vectors) and its write pass run back to back, so the second
// read of the plane comes from cache. Channels-last (N, HW, C): one task per (n, block of
// one vector of channels); lanes are channels, so each lane is its own Welford chain and
// the rows are walked twice (statistics, then output), again while they are in cache.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "gentk/instance_norm.h"
#include "instance_norm.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Elements per parallel task at minimum: below this, threads cost more than they save.
constexpr int64_t kGrainElements = 32768;
// Backward sums run in float lanes for this many vectors, then move to double.
constexpr int64_t kFlushVectors = 256;

template <class T>
inline Vectorized<T> load(const T* p, int64_t count) {
  return count >= Vectorized<T>::size() ? Vectorized<T>::loadu(p) : Vectorized<T>::loadu(p, count);
}

template <class T>
inline void store(const Vectorized<T>& v, T* p, int64_t count) {
  if (count >= Vectorized<T>::size()) v.store(p); else v.store(p, count);
}

template <class T>
inline double horizontal_sum(const Vectorized<T>& v) {
  alignas(64) T lanes[Vectorized<T>::size()];
  v.store(lanes);
  double s = 0;
  for (int i = 0; i < Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

template <int ACT, class T>
inline Vectorized<T> activate_vec(const Vectorized<T>& v, const Vectorized<T>& slope) {
  if constexpr (ACT == kActRelu) return at::vec::clamp_min(v, Vectorized<T>(T(0)));
  else if constexpr (ACT == kActLeakyRelu) return Vectorized<T>::blendv(v * slope, v, v > Vectorized<T>(T(0)));
  else return v;
}

template <int ACT, class T>
inline Vectorized<T> activation_grad_vec(const Vectorized<T>& g, const Vectorized<T>& pre,
                                         const Vectorized<T>& slope) {
  if constexpr (ACT == kActRelu) return Vectorized<T>::blendv(Vectorized<T>(T(0)), g, pre > Vectorized<T>(T(0)));
  else if constexpr (ACT == kActLeakyRelu) return Vectorized<T>::blendv(g * slope, g, pre > Vectorized<T>(T(0)));
  else return g;
}

// Merge of two vector Welford chains of scalar counts ca, cb (cb may be 0: chain b is zeros).
template <class T>
inline void merge_chains(Vectorized<T>& mean, Vectorized<T>& m2, int64_t ca, const Vectorized<T>& mean_b,
                         const Vectorized<T>& m2_b, int64_t cb) {
  const int64_t total = ca + cb;
  if (total == 0) return;
  const Vectorized<T> delta = mean_b - mean;
  mean = mean + delta * Vectorized<T>(T(double(cb) / double(total)));
  m2 = m2 + m2_b + delta * delta * Vectorized<T>(T(double(ca) * double(cb) / double(total)));
}

// Mean and m2 (sum of squared deviations) of n > 0 contiguous values, in double. The
// chains run on x - p[0]: near the data, so float32 running means keep their precision
// for planes far from 0 (x - p[0] is exact there, by Sterbenz's lemma).
template <class T>
void run_stats(const T* p, int64_t n, double& mean_out, double& m2_out) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T origin = p[0];
  const V vorigin(origin);
  const int64_t steps = n / (2 * W);  // per chain
  V ma(T(0)), qa(T(0)), mb(T(0)), qb(T(0));
  for (int64_t i = 0; i < steps; ++i) {
    const V inv(T(1) / T(i + 1));
    welford_add(ma, qa, V::loadu(p + 2 * i * W) - vorigin, inv);
    welford_add(mb, qb, V::loadu(p + 2 * i * W + W) - vorigin, inv);
  }
  merge_chains(ma, qa, steps, mb, qb, steps);
  alignas(64) T lm[W], lq[W];
  ma.store(lm);
  qa.store(lq);
  double m = 0, q = 0, count = 0;
  for (int64_t l = 0; l < W; ++l) welford_merge<double>(m, q, count, lm[l], lq[l], double(2 * steps));
  for (int64_t i = 2 * steps * W; i < n; ++i) welford_merge<double>(m, q, count, double(p[i] - origin), 0.0, 1.0);
  mean_out = double(origin) + m;
  m2_out = q;
}

// y = act((x - mean) * scale + bias) [+ residual] over n contiguous values. Centring
// first keeps planes far from 0 exact: x * scale + shift would cancel two large terms.
template <int ACT, class T>
inline void normalize_run(const T* x, const T* residual, T* y, int64_t n, const Vectorized<T>& mean,
                          const Vectorized<T>& scale, const Vectorized<T>& bias, const Vectorized<T>& slope) {
  constexpr int64_t W = Vectorized<T>::size();
  for (int64_t i = 0; i < n; i += W) {
    const int64_t cnt = std::min(W, n - i);
    Vectorized<T> v = activate_vec<ACT>(at::vec::fmadd(load(x + i, cnt) - mean, scale, bias), slope);
    if (residual != nullptr) v = v + load(residual + i, cnt);
    store(v, y + i, cnt);
  }
}

template <int ACT, class T>
void forward_contiguous(const InstanceNormForward& a) {
  using V = Vectorized<T>;
  const T* const x = static_cast<const T*>(a.x);
  const T* const weight = static_cast<const T*>(a.weight);
  const T* const bias = static_cast<const T*>(a.bias);
  const T* const residual = static_cast<const T*>(a.residual);
  T* const mean = static_cast<T*>(a.mean);
  T* const var = static_cast<T*>(a.var);
  T* const y = static_cast<T*>(a.y);
  const int64_t C = a.C, HW = a.HW, planes = a.N * a.C;
  const bool compute = a.compute_stats;
  const T eps = static_cast<T>(a.eps);
  const V slope(static_cast<T>(a.negative_slope));
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(HW, 1));
  at::parallel_for(int64_t{0}, planes, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p % C;
      const T* xp = x + p * HW;
      T m, v;
      if (compute) {
        double dm, dq;
        run_stats(xp, HW, dm, dq);
        m = static_cast<T>(dm);
        v = static_cast<T>(dq / double(HW));
        mean[p] = m;
        var[p] = v;
      } else {
        m = mean[c];
        v = var[c];
      }
      const T scale = (weight != nullptr ? weight[c] : T(1)) * inv_std(v, eps);
      const T shift = bias != nullptr ? bias[c] : T(0);
      normalize_run<ACT>(xp, residual != nullptr ? residual + p * HW : nullptr, y + p * HW, HW, V(m), V(scale),
                         V(shift), slope);
    }
  });
}

template <int ACT, class T>
void forward_channels_last(const InstanceNormForward& a) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T* const x = static_cast<const T*>(a.x);
  const T* const weight = static_cast<const T*>(a.weight);
  const T* const bias = static_cast<const T*>(a.bias);
  const T* const residual = static_cast<const T*>(a.residual);
  T* const mean = static_cast<T*>(a.mean);
  T* const var = static_cast<T*>(a.var);
  T* const y = static_cast<T*>(a.y);
  const int64_t N = a.N, C = a.C, HW = a.HW;
  const bool compute = a.compute_stats;
  const V eps(static_cast<T>(a.eps));
  const V slope(static_cast<T>(a.negative_slope));
  const int64_t blocks = (C + W - 1) / W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(HW * W, 1));
  at::parallel_for(int64_t{0}, N * blocks, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * W, cnt = std::min(W, C - c0);
      const int64_t offset = n * HW * C + c0;
      const T* xb = x + offset;
      V m, v;
      if (compute) {
        // even rows feed chain a, odd rows chain b: two independent dependency chains,
        // on x minus row 0 (see run_stats)
        const V origin = load(xb, cnt);
        V mb(T(0)), qb(T(0));
        m = V(T(0));
        v = V(T(0));
        const int64_t pairs = HW / 2;
        for (int64_t r = 0; r < pairs; ++r) {
          const V inv(T(1) / T(r + 1));
          welford_add(m, v, load(xb + (2 * r) * C, cnt) - origin, inv);
          welford_add(mb, qb, load(xb + (2 * r + 1) * C, cnt) - origin, inv);
        }
        if (HW % 2 == 1) {
          const V last = load(xb + (HW - 1) * C, cnt) - origin;
          welford_add(m, v, last, V(T(1) / T(pairs + 1)));
        }
        merge_chains(m, v, HW - pairs, mb, qb, pairs);
        m = m + origin;
        v = v / V(T(HW));
        store(m, mean + n * C + c0, cnt);
        store(v, var + n * C + c0, cnt);
      } else {
        m = load(mean + c0, cnt);
        v = load(var + c0, cnt);
      }
      const V w = weight != nullptr ? load(weight + c0, cnt) : V(T(1));
      const V b = bias != nullptr ? load(bias + c0, cnt) : V(T(0));
      const V scale = w / (v + eps).sqrt();
      const T* rb = residual != nullptr ? residual + offset : nullptr;
      T* yb = y + offset;
      for (int64_t r = 0; r < HW; ++r) {
        V out = activate_vec<ACT>(at::vec::fmadd(load(xb + r * C, cnt) - m, scale, b), slope);
        if (rb != nullptr) out = out + load(rb + r * C, cnt);
        store(out, yb + r * C, cnt);
      }
    }
  });
}

// Backward. Per plane (or channel lane): sums of g and g * xhat, then grad_x.
template <int ACT, class T>
void backward_contiguous(const InstanceNormBackward& a, double* sum_g, double* sum_gx) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T* const grad_y = static_cast<const T*>(a.grad_y);
  const T* const x = static_cast<const T*>(a.x);
  const T* const weight = static_cast<const T*>(a.weight);
  const T* const bias = static_cast<const T*>(a.bias);
  const T* const mean = static_cast<const T*>(a.mean);
  const T* const var = static_cast<const T*>(a.var);
  T* const grad_x = static_cast<T*>(a.grad_x);
  const int64_t C = a.C, HW = a.HW, planes = a.N * a.C;
  const bool input_stats = a.input_stats;
  const T eps = static_cast<T>(a.eps);
  const V slope(static_cast<T>(a.negative_slope));
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(HW, 1));
  at::parallel_for(int64_t{0}, planes, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p % C;
      const T* xp = x + p * HW;
      const T* gp = grad_y + p * HW;
      const T rstd = inv_std(var[p], eps);
      const T wc = weight != nullptr ? weight[c] : T(1);
      const V r(rstd), m(mean[p]), w(wc), b(bias != nullptr ? bias[c] : T(0));
      double sg = 0, sgx = 0;
      V acc_g(T(0)), acc_gx(T(0));
      int64_t since_flush = 0;
      for (int64_t i = 0; i < HW; i += W) {
        const int64_t cnt = std::min(W, HW - i);
        const V xh = (load(xp + i, cnt) - m) * r;
        // padded lanes load grad 0, so they add nothing
        const V g = activation_grad_vec<ACT>(load(gp + i, cnt), at::vec::fmadd(xh, w, b), slope);
        acc_g = acc_g + g;
        acc_gx = at::vec::fmadd(g, xh, acc_gx);
        if (++since_flush == kFlushVectors) {
          sg += horizontal_sum(acc_g);
          sgx += horizontal_sum(acc_gx);
          acc_g = V(T(0));
          acc_gx = V(T(0));
          since_flush = 0;
        }
      }
      sg += horizontal_sum(acc_g);
      sgx += horizontal_sum(acc_gx);
      sum_g[p] = sg;
      sum_gx[p] = sgx;
      const T k1 = wc * rstd;
      const V vk1(k1);
      // grad_x = k1 * (g - mean(g) - xhat * mean(g * xhat)): centring g before scaling
      // by k1 (large when var << eps) keeps constant planes' gradients at 0
      const V vk2(input_stats ? static_cast<T>(-sg / double(HW)) : T(0));
      const V vk3(input_stats ? static_cast<T>(-sgx / double(HW)) : T(0));
      T* gxp = grad_x + p * HW;
      for (int64_t i = 0; i < HW; i += W) {
        const int64_t cnt = std::min(W, HW - i);
        const V xh = (load(xp + i, cnt) - m) * r;
        const V g = activation_grad_vec<ACT>(load(gp + i, cnt), at::vec::fmadd(xh, w, b), slope);
        store(vk1 * at::vec::fmadd(vk3, xh, g + vk2), gxp + i, cnt);
      }
    }
  });
}

template <int ACT, class T>
void backward_channels_last(const InstanceNormBackward& a, double* sum_g, double* sum_gx) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  const T* const grad_y = static_cast<const T*>(a.grad_y);
  const T* const x = static_cast<const T*>(a.x);
  const T* const weight = static_cast<const T*>(a.weight);
  const T* const bias = static_cast<const T*>(a.bias);
  const T* const mean = static_cast<const T*>(a.mean);
  const T* const var = static_cast<const T*>(a.var);
  T* const grad_x = static_cast<T*>(a.grad_x);
  const int64_t N = a.N, C = a.C, HW = a.HW;
  const bool input_stats = a.input_stats;
  const V eps(static_cast<T>(a.eps));
  const V slope(static_cast<T>(a.negative_slope));
  const int64_t blocks = (C + W - 1) / W;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(HW * W, 1));
  at::parallel_for(int64_t{0}, N * blocks, grain, [&](int64_t t0, int64_t t1) {
    alignas(64) T lanes_g[W], lanes_gx[W];
    alignas(64) double tot_g[W], tot_gx[W];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / blocks, c0 = (t % blocks) * W, cnt = std::min(W, C - c0);
      const int64_t offset = n * HW * C + c0;
      const T* xb = x + offset;
      const T* gb = grad_y + offset;
      const V r = V(T(1)) / (load(var + n * C + c0, cnt) + eps).sqrt();
      const V m = load(mean + n * C + c0, cnt);
      const V w = weight != nullptr ? load(weight + c0, cnt) : V(T(1));
      const V b = bias != nullptr ? load(bias + c0, cnt) : V(T(0));
      std::fill(tot_g, tot_g + W, 0.0);
      std::fill(tot_gx, tot_gx + W, 0.0);
      for (int64_t r0 = 0; r0 < HW; r0 += kFlushVectors) {
        const int64_t r1 = std::min(HW, r0 + kFlushVectors);
        V acc_g(T(0)), acc_gx(T(0));
        for (int64_t row = r0; row < r1; ++row) {
          const V xh = (load(xb + row * C, cnt) - m) * r;
          const V g = activation_grad_vec<ACT>(load(gb + row * C, cnt), at::vec::fmadd(xh, w, b), slope);
          acc_g = acc_g + g;
          acc_gx = at::vec::fmadd(g, xh, acc_gx);
        }
        acc_g.store(lanes_g);
        acc_gx.store(lanes_gx);
        for (int64_t l = 0; l < W; ++l) {
          tot_g[l] += lanes_g[l];
          tot_gx[l] += lanes_gx[l];
        }
      }
      alignas(64) T k2[W], k3[W];
      const V k1 = w * r;
      for (int64_t l = 0; l < cnt; ++l) {
        sum_g[n * C + c0 + l] = tot_g[l];
        sum_gx[n * C + c0 + l] = tot_gx[l];
      }
      for (int64_t l = 0; l < W; ++l) {
        k2[l] = input_stats ? static_cast<T>(-tot_g[l] / double(HW)) : T(0);
        k3[l] = input_stats ? static_cast<T>(-tot_gx[l] / double(HW)) : T(0);
      }
      const V vk2 = V::loadu(k2), vk3 = V::loadu(k3);
      T* gxb = grad_x + offset;
      for (int64_t row = 0; row < HW; ++row) {
        const V xh = (load(xb + row * C, cnt) - m) * r;
        const V g = activation_grad_vec<ACT>(load(gb + row * C, cnt), at::vec::fmadd(xh, w, b), slope);
        store(k1 * at::vec::fmadd(vk3, xh, g + vk2), gxb + row * C, cnt);
      }
    }
  });
}

template <class T>
void forward_impl(const InstanceNormForward& a) {
  auto run = [&](auto act) {
    constexpr int ACT = decltype(act)::value;
    if (a.channels_last) forward_channels_last<ACT, T>(a); else forward_contiguous<ACT, T>(a);
  };
  switch (a.activation) {
    case kActRelu: run(std::integral_constant<int, kActRelu>{}); break;
    case kActLeakyRelu: run(std::integral_constant<int, kActLeakyRelu>{}); break;
    default: run(std::integral_constant<int, kActNone>{}); break;
  }
}

template <class T>
void backward_impl(const InstanceNormBackward& a) {
  const int64_t planes = a.N * a.C;
  std::vector<double> sum_g(planes), sum_gx(planes);
  auto run = [&](auto act) {
    constexpr int ACT = decltype(act)::value;
    if (a.channels_last) backward_channels_last<ACT, T>(a, sum_g.data(), sum_gx.data());
    else backward_contiguous<ACT, T>(a, sum_g.data(), sum_gx.data());
  };
  switch (a.activation) {
    case kActRelu: run(std::integral_constant<int, kActRelu>{}); break;
    case kActLeakyRelu: run(std::integral_constant<int, kActLeakyRelu>{}); break;
    default: run(std::integral_constant<int, kActNone>{}); break;
  }
  T* const grad_weight = static_cast<T*>(a.grad_weight);
  T* const grad_bias = static_cast<T*>(a.grad_bias);
  for (int64_t c = 0; c < a.C; ++c) {
    double gw = 0, gb = 0;
    for (int64_t n = 0; n < a.N; ++n) {
      gw += sum_gx[n * a.C + c];
      gb += sum_g[n * a.C + c];
    }
    grad_weight[c] = static_cast<T>(gw);
    grad_bias[c] = static_cast<T>(gb);
  }
}

void forward(const InstanceNormForward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_instance_norm_forward", [&] { forward_impl<scalar_t>(a); });
}

void backward(const InstanceNormBackward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_instance_norm_backward", [&] { backward_impl<scalar_t>(a); });
}

}  // namespace

extern const InstanceNormKernels instance_norm_kernels{&forward, &backward};

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
