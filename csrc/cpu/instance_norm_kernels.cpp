// Vectorized, multithreaded CPU kernels of the instance-norm family. Compiled once per
// CPU capability (see CMakeLists.txt); CPU_CAPABILITY names the namespace.
//
// Contiguous (N, C, HW): one task per (n, c) plane; its statistics pass (Welford, two
// independent chains over vectors) and its write pass run back to back, so the second
// read of the plane comes from cache. Channels-last (N, HW, C): lanes are channels, each
// its own Welford chain, over chunks of whole rows (see plan_channels_last).
#include <algorithm>
#include <cstdint>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "gentk/instance_norm.h"
#include "instance_norm.h"
#include "vec_utils.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Elements per parallel task at minimum: below this, threads cost more than they save.
constexpr int64_t kGrainElements = 32768;
// Backward sums run in float lanes for this many vectors, then move to double.
constexpr int64_t kFlushVectors = 256;

template <int ACT, class T>
inline Vectorized<T> activate_vec(const Vectorized<T>& v, const Vectorized<T>& slope) {
  if constexpr (ACT == kActRelu) return at::vec::clamp_min(v, Vectorized<T>(T(0)));
  else if constexpr (ACT == kActLeakyRelu) return Vectorized<T>::blendv(v * slope, v, v > Vectorized<T>(T(0)));
  else return v;
}

template <int ACT, class T>
inline Vectorized<T> activation_grad_vec(const Vectorized<T>& g, const Vectorized<T>& pre,
                                         const Vectorized<T>& slope) {
  // as torch's relu: the gradient passes unless the output is <= 0 (a NaN passes it)
  if constexpr (ACT == kActRelu) return Vectorized<T>::blendv(g, Vectorized<T>(T(0)), pre <= Vectorized<T>(T(0)));
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

// An infinite scale (an infinite weight) normalizes as torch does, x * scale + (bias - mean *
// scale), so that the output is NaN, +inf and -inf where torch's is; finite scales keep the
// centred form (x - mean) * scale + bias, exact for planes far from 0.
template <class T>
inline void uncentre_if_infinite(T& mean, T scale, T& bias) {
  if (std::isfinite(scale)) return;
  bias = bias - mean * scale;
  mean = T(0);
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
      T shift = bias != nullptr ? bias[c] : T(0);
      uncentre_if_infinite(m, scale, shift);
      normalize_run<ACT>(xp, residual != nullptr ? residual + p * HW : nullptr, y + p * HW, HW, V(m), V(scale),
                         V(shift), slope);
    }
  });
}

// Channels-last plan: each n's (HW, C) slab is cut into chunks of whole rows (about
// kChunkElements values, so a chunk's partial statistics and rows stay in L1/L2); a
// group of n's slabs (about kGroupBytes, so it is still in the last-level cache when it
// is read the second time) runs statistics over all its chunks in parallel, merges them,
// then writes the output chunk by chunk in parallel. Rows are read whole and in order,
// where walking a column of channels would stride by C and thrash the TLB and cache sets.
constexpr int64_t kChunkElements = 16384;
constexpr int64_t kGroupBytes = int64_t{16} << 20;

struct ChannelsLastPlan {
  int64_t rows, chunks, group;
};

ChannelsLastPlan plan_channels_last(int64_t N, int64_t C, int64_t HW, int64_t elem_size) {
  ChannelsLastPlan p{};
  p.rows = std::min<int64_t>(std::max<int64_t>(kChunkElements / std::max<int64_t>(C, 1), 1), HW);
  p.chunks = (HW + p.rows - 1) / p.rows;
  p.group = std::min<int64_t>(std::max<int64_t>(kGroupBytes / std::max<int64_t>(HW * C * elem_size, 1), 1), N);
  return p;
}

// Runs run_group(n0, gn) over the batch. With at least two samples per thread, one
// task per sample (the parallel_for calls inside run inline): one barrier in all, where
// a loaded machine makes every barrier cost a time slice. Otherwise groups of samples
// one after the other, each spread over all threads.
template <class F>
void run_by_samples(int64_t N, int64_t group, const F& run_group) {
  if (N >= 2 * at::get_num_threads()) {
    at::parallel_for(int64_t{0}, N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) run_group(n, 1);
    });
  } else {
    for (int64_t n0 = 0; n0 < N; n0 += group) run_group(n0, std::min(group, N - n0));
  }
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
  const ChannelsLastPlan plan = plan_channels_last(N, C, HW, sizeof(T));
  const int64_t rows = plan.rows, chunks = plan.chunks;
  // per task: partial (mean, m2) of its chunk; per n of the group: mean and scale
  std::vector<T> bias_of(C);
  for (int64_t c = 0; c < C; ++c) bias_of[c] = bias != nullptr ? bias[c] : T(0);
  auto run_group = [&](int64_t n0, int64_t gn) {
    std::vector<T> partial(compute ? gn * chunks * 2 * C : 0), shift_of(gn * C), scale_of(gn * C), bias_nl(gn * C);
    if (compute) {
      at::parallel_for(int64_t{0}, gn * chunks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t k = t % chunks;
          const T* slab = x + (n0 + t / chunks) * HW * C;  // its row 0 is the Welford origin
          const int64_t r0 = k * rows, r1 = std::min(HW, r0 + rows);
          T* const pm = partial.data() + t * 2 * C;
          T* const pq = pm + C;
          std::fill(pm, pm + 2 * C, T(0));
          for (int64_t r = r0; r < r1; ++r) {
            const V inv(T(1) / T(r - r0 + 1));
            const T* row = slab + r * C;
            for (int64_t c = 0; c < C; c += W) {
              const int64_t cnt = std::min(W, C - c);
              V m = load(pm + c, cnt), q = load(pq + c, cnt);
              welford_add(m, q, load(row + c, cnt) - load(slab + c, cnt), inv);
              store(m, pm + c, cnt);
              store(q, pq + c, cnt);
            }
          }
        }
      });
      for (int64_t nl = 0; nl < gn; ++nl) {
        const T* slab = x + (n0 + nl) * HW * C;
        for (int64_t c = 0; c < C; c += W) {
          const int64_t cnt = std::min(W, C - c);
          const T* p0 = partial.data() + nl * chunks * 2 * C;
          V m = load(p0 + c, cnt), q = load(p0 + C + c, cnt);
          int64_t count = std::min(rows, HW);
          for (int64_t k = 1; k < chunks; ++k) {
            const T* pk = p0 + k * 2 * C;
            const int64_t ck = std::min(HW, (k + 1) * rows) - k * rows;
            merge_chains(m, q, count, load(pk + c, cnt), load(pk + C + c, cnt), ck);
            count += ck;
          }
          m = m + load(slab + c, cnt);
          store(m, mean + (n0 + nl) * C + c, cnt);
          store(q / V(T(HW)), var + (n0 + nl) * C + c, cnt);
        }
      }
    }
    for (int64_t nl = 0; nl < gn; ++nl) {
      const T* m = compute ? mean + (n0 + nl) * C : mean;
      const T* v = compute ? var + (n0 + nl) * C : var;
      for (int64_t c = 0; c < C; c += W) {
        const int64_t cnt = std::min(W, C - c);
        const V w = weight != nullptr ? load(weight + c, cnt) : V(T(1));
        store(load(m + c, cnt), shift_of.data() + nl * C + c, cnt);
        store(w / (load(v + c, cnt) + eps).sqrt(), scale_of.data() + nl * C + c, cnt);
      }
      for (int64_t c = 0; c < C; ++c) {
        bias_nl[nl * C + c] = bias_of[c];
        uncentre_if_infinite(shift_of[nl * C + c], scale_of[nl * C + c], bias_nl[nl * C + c]);
      }
    }
    at::parallel_for(int64_t{0}, gn * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        // chunks in the reverse order of the statistics pass: the last ones read are still in cache
        const int64_t u = gn * chunks - 1 - t;
        const int64_t nl = u / chunks, k = u % chunks;
        const int64_t r0 = k * rows, r1 = std::min(HW, r0 + rows);
        const T* const ms = shift_of.data() + nl * C;
        const T* const ss = scale_of.data() + nl * C;
        const T* const bs = bias_nl.data() + nl * C;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t offset = ((n0 + nl) * HW + r) * C;
          const T* row = x + offset;
          const T* res = residual != nullptr ? residual + offset : nullptr;
          T* out = y + offset;
          for (int64_t c = 0; c < C; c += W) {
            const int64_t cnt = std::min(W, C - c);
            V o = activate_vec<ACT>(
                at::vec::fmadd(load(row + c, cnt) - load(ms + c, cnt), load(ss + c, cnt), load(bs + c, cnt)), slope);
            if (res != nullptr) o = o + load(res + c, cnt);
            store(o, out + c, cnt);
          }
        }
      }
    });
  };
  run_by_samples(N, plan.group, run_group);
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
  const ChannelsLastPlan plan = plan_channels_last(N, C, HW, sizeof(T));
  const int64_t rows = plan.rows, chunks = plan.chunks;
  std::vector<T> w_of(C), b_of(C);
  for (int64_t c = 0; c < C; ++c) {
    w_of[c] = weight != nullptr ? weight[c] : T(1);
    b_of[c] = bias != nullptr ? bias[c] : T(0);
  }
  auto run_group = [&](int64_t n0, int64_t gn) {
    std::vector<T> partial(gn * chunks * 2 * C);
    // per n of the group: mean, rstd, w * rstd, -mean(g), -mean(g * xhat)
    std::vector<T> m_of(gn * C), r_of(gn * C), k1_of(gn * C), k2_of(gn * C), k3_of(gn * C);
    for (int64_t nl = 0; nl < gn; ++nl) {
      for (int64_t c = 0; c < C; c += W) {
        const int64_t cnt = std::min(W, C - c);
        const V r = V(T(1)) / (load(var + (n0 + nl) * C + c, cnt) + eps).sqrt();
        store(load(mean + (n0 + nl) * C + c, cnt), m_of.data() + nl * C + c, cnt);
        store(r, r_of.data() + nl * C + c, cnt);
        store(r * load(w_of.data() + c, cnt), k1_of.data() + nl * C + c, cnt);
      }
    }
    at::parallel_for(int64_t{0}, gn * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t nl = t / chunks, k = t % chunks;
        const int64_t r0 = k * rows, r1 = std::min(HW, r0 + rows);
        const T* const ms = m_of.data() + nl * C;
        const T* const rs = r_of.data() + nl * C;
        T* const pg = partial.data() + t * 2 * C;
        T* const pgx = pg + C;
        std::fill(pg, pg + 2 * C, T(0));
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t offset = ((n0 + nl) * HW + r) * C;
          for (int64_t c = 0; c < C; c += W) {
            const int64_t cnt = std::min(W, C - c);
            const V xh = (load(x + offset + c, cnt) - load(ms + c, cnt)) * load(rs + c, cnt);
            const V pre = at::vec::fmadd(xh, load(w_of.data() + c, cnt), load(b_of.data() + c, cnt));
            const V g = activation_grad_vec<ACT>(load(grad_y + offset + c, cnt), pre, slope);
            store(load(pg + c, cnt) + g, pg + c, cnt);
            store(at::vec::fmadd(g, xh, load(pgx + c, cnt)), pgx + c, cnt);
          }
        }
      }
    });
    for (int64_t nl = 0; nl < gn; ++nl) {
      const int64_t n = n0 + nl;
      for (int64_t c = 0; c < C; ++c) {
        double sg = 0, sgx = 0;
        for (int64_t k = 0; k < chunks; ++k) {
          const T* pk = partial.data() + (nl * chunks + k) * 2 * C;
          sg += pk[c];
          sgx += pk[C + c];
        }
        sum_g[n * C + c] = sg;
        sum_gx[n * C + c] = sgx;
        // grad_x = k1 * (g - mean(g) - xhat * mean(g * xhat)), see backward_contiguous
        k2_of[nl * C + c] = input_stats ? static_cast<T>(-sg / double(HW)) : T(0);
        k3_of[nl * C + c] = input_stats ? static_cast<T>(-sgx / double(HW)) : T(0);
      }
    }
    at::parallel_for(int64_t{0}, gn * chunks, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t u = gn * chunks - 1 - t;  // reverse order, as in forward_channels_last
        const int64_t nl = u / chunks, k = u % chunks;
        const int64_t r0 = k * rows, r1 = std::min(HW, r0 + rows);
        const T* const ms = m_of.data() + nl * C;
        const T* const rs = r_of.data() + nl * C;
        const T* const k1s = k1_of.data() + nl * C;
        const T* const k2s = k2_of.data() + nl * C;
        const T* const k3s = k3_of.data() + nl * C;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t offset = ((n0 + nl) * HW + r) * C;
          for (int64_t c = 0; c < C; c += W) {
            const int64_t cnt = std::min(W, C - c);
            const V xh = (load(x + offset + c, cnt) - load(ms + c, cnt)) * load(rs + c, cnt);
            const V pre = at::vec::fmadd(xh, load(w_of.data() + c, cnt), load(b_of.data() + c, cnt));
            const V g = activation_grad_vec<ACT>(load(grad_y + offset + c, cnt), pre, slope);
            store(load(k1s + c, cnt) * at::vec::fmadd(load(k3s + c, cnt), xh, g + load(k2s + c, cnt)),
                  grad_x + offset + c, cnt);
          }
        }
      }
    });
  };
  run_by_samples(N, plan.group, run_group);
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
