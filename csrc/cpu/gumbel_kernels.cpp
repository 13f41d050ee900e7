// Vectorized, multithreaded CPU kernels of the Gumbel family. Compiled once per CPU
// capability (see CMakeLists.txt); CPU_CAPABILITY names the namespace.
//
// Two row layouts, picked by the number of categories K:
//  - K <= kMaxColumnTile (the usual latent code, K = 2..10): W rows at a time (W = vector
//    width), transposed into a small buffer so each vector lane holds one row. Max, sum and
//    argmax are then plain vertical vector ops over the K columns, with no horizontal
//    reductions and no per-row tail masks.
//  - longer rows: one row at a time, vectorized along the row (three short passes over a
//    row that sits in L1).
// Threads split the rows (at::parallel_for); Gumbel noise is drawn per element from Philox
// (gentk/gumbel.h), so the split does not change the result.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include "gentk/gumbel.h"
#include "gentk/philox.h"
#include "gumbel.h"
#include "philox_vec.h"
#include "vec_utils.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

constexpr int64_t kMaxColumnTile = 32;
// Elements per parallel task at minimum: below ~16K elements threads cost more than they save.
constexpr int64_t kGrainElements = 16384;

int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

// Lanes at or past `count` hold `fill`.
template <class T>
inline Vectorized<T> load_or(const T* p, int count, T fill) {
  if (count == Vectorized<T>::size()) return Vectorized<T>::loadu(p);
  return Vectorized<T>::set(Vectorized<T>(fill), Vectorized<T>::loadu(p, count), count);
}

template <class T>
inline T horizontal_max(const Vectorized<T>& v) {
  alignas(64) T lanes[Vectorized<T>::size()];
  v.store(lanes);
  T m = lanes[0];
  for (int i = 1; i < Vectorized<T>::size(); ++i) {
    if (lanes[i] > m || lanes[i] != lanes[i]) m = lanes[i];  // a NaN in any lane propagates, as at::vec::maximum
  }
  return m;
}

// 1/tau as T: the op clamps it to T's largest finite value, so (s - max) * inv_tau is 0 for
// the maximum and finite or -inf elsewhere, never NaN.
template <class T>
inline T inv_tau_as(double inv_tau) {
  return static_cast<T>(std::min<double>(inv_tau, std::numeric_limits<T>::max()));
}

// Gumbel noise of flat elements, made a 64-element noise group at a time. The last group is
// kept, so consecutive ranges that share a group compute it once.
template <class T>
class PhiloxGumbel {
 public:
  PhiloxGumbel(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

  void fill(int64_t start, int64_t count, T* out) {
    while (count > 0) {
      const int64_t g = start / kNoiseGroup;
      const int off = static_cast<int>(start - g * kNoiseGroup);
      const int n = static_cast<int>(std::min<int64_t>(kNoiseGroup - off, count));
      if (n == kNoiseGroup) {
        generate(g, out);
      } else {
        if (g != cached_) {
          generate(g, group_);
          cached_ = g;
        }
        std::copy(group_ + off, group_ + off + n, out);
      }
      start += n;
      count -= n;
      out += n;
    }
  }

 private:
  void generate(int64_t g, T* out) const {
    using V = Vectorized<T>;
    alignas(64) uint32_t x[4][kNoiseLanes];
    philox_group(g, seed_, stream_, x);
    const uint32_t* bits = &x[0][0];  // x[j][k] feeds element g*64 + j*16 + k: element order
    for (int i = 0; i < kNoiseGroup; ++i) out[i] = static_cast<T>(uniform_open_open(bits[i]));
    static_assert(kNoiseGroup % V::size() == 0, "a noise group must hold whole vectors");
    for (int i = 0; i < kNoiseGroup; i += V::size()) {
      gumbel_from_uniform<VecMath<T>>(V::loadu(out + i)).store(out + i);
    }
  }

  uint64_t seed_, stream_;
  int64_t cached_ = -1;
  alignas(64) T group_[kNoiseGroup];
};

// s = logits + noise over flat element ranges: the values whose softmax (times 1/tau) is
// the sample. One per task, since it caches noise.
template <class T>
class Perturbed {
 public:
  Perturbed(const void* logits, GumbelNoise noise, const void* gumbels, uint64_t seed, uint64_t stream)
      : logits_(static_cast<const T*>(logits)), noise_(noise), gumbels_(static_cast<const T*>(gumbels)),
        philox_(seed, stream) {}

  void fill(int64_t start, int64_t count, T* s) {
    using V = Vectorized<T>;
    constexpr int W = V::size();
    const T* l = logits_ + start;
    if (noise_ == GumbelNoise::kNone) {
      std::copy(l, l + count, s);
      return;
    }
    const T* g = s;
    if (noise_ == GumbelNoise::kPhilox) {
      philox_.fill(start, count, s);
    } else {
      g = gumbels_ + start;
    }
    for (int64_t i = 0; i < count; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, count - i));
      store(load(l + i, cnt) + load(g + i, cnt), s + i, cnt);
    }
  }

 private:
  const T* logits_;
  GumbelNoise noise_;
  const T* gumbels_;
  PhiloxGumbel<T> philox_;
};

// ---- column tiles: W rows of K <= kMaxColumnTile categories, one row per lane --------------

template <class T>
struct Tile {
  static constexpr int W = Vectorized<T>::size();
  alignas(64) T flat[W * kMaxColumnTile];  // row-major scratch
  alignas(64) T a[kMaxColumnTile * W];     // column j of the W rows at a + j * W
  alignas(64) T b[kMaxColumnTile * W];
};

// col[j*W + r] = rows[r*K + j]; lanes of rows past `nr` get `fill`.
template <class T>
inline void to_columns(const T* rows, int nr, int K, T fill, T* col) {
  constexpr int W = Vectorized<T>::size();
  for (int r = 0; r < W; ++r) {
    if (r < nr) {
      for (int j = 0; j < K; ++j) col[j * W + r] = rows[r * K + j];
    } else {
      for (int j = 0; j < K; ++j) col[j * W + r] = fill;
    }
  }
}

template <class T>
inline void from_columns(const T* col, int nr, int K, T* rows) {
  constexpr int W = Vectorized<T>::size();
  for (int r = 0; r < nr; ++r) {
    for (int j = 0; j < K; ++j) rows[r * K + j] = col[j * W + r];
  }
}

// In place: columns of s -> softmax((s - max) * inv_tau) per lane.
template <class T>
inline void softmax_columns(T* col, int K, T inv_tau) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  V m = V::loadu(col);
  for (int j = 1; j < K; ++j) m = at::vec::maximum(m, V::loadu(col + j * W));
  V sum(T(0));
  const V inv(inv_tau);
  for (int j = 0; j < K; ++j) {
    const V e = ((V::loadu(col + j * W) - m) * inv).exp_u20();
    e.store(col + j * W);
    sum = sum + e;
  }
  const V r = V(T(1)) / sum;
  for (int j = 0; j < K; ++j) (V::loadu(col + j * W) * r).store(col + j * W);
}

// In place: columns of s -> one-hot of the first maximum per lane. A lane whose soft
// sample is NaN (a NaN in s, or a maximum of s * inv_tau at +-inf) comes out all NaN, as the
// reference's straight-through y_hard - y + y does.
template <class T>
inline void one_hot_columns(T* col, int K, T inv_tau) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  V m = V::loadu(col);
  V idx(T(0));
  for (int j = 1; j < K; ++j) {
    const V c = V::loadu(col + j * W);
    idx = V::blendv(idx, V(static_cast<T>(j)), c > m);  // strictly greater: the first maximum wins
    m = at::vec::maximum(m, c);  // propagates NaN
  }
  const V finite = (m * V(inv_tau)).abs() < V(std::numeric_limits<T>::infinity());
  const V zero(T(0)), one(T(1)), nan(std::numeric_limits<T>::quiet_NaN());
  for (int j = 0; j < K; ++j) {
    V::blendv(nan, V::blendv(zero, one, idx == V(static_cast<T>(j))), finite).store(col + j * W);
  }
}

template <class T>
void softmax_forward_columns(const GumbelSoftmaxForward& a, int64_t r0, int64_t r1) {
  constexpr int W = Vectorized<T>::size();
  const int K = static_cast<int>(a.cols);
  T* const out = static_cast<T*>(a.out);
  const T inv_tau = inv_tau_as<T>(a.inv_tau);
  const bool hard = a.hard;
  Perturbed<T> perturbed(a.logits, a.noise, a.gumbels, a.seed, a.stream);
  Tile<T> t;
  for (int64_t r = r0; r < r1; r += W) {
    const int nr = static_cast<int>(std::min<int64_t>(W, r1 - r));
    perturbed.fill(r * K, static_cast<int64_t>(nr) * K, t.flat);
    to_columns(t.flat, nr, K, T(0), t.a);
    if (hard) one_hot_columns(t.a, K, inv_tau); else softmax_columns(t.a, K, inv_tau);
    from_columns(t.a, nr, K, out + r * K);
  }
}

template <class T>
void softmax_backward_columns(const GumbelSoftmaxBackward& a, int64_t r0, int64_t r1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const int K = static_cast<int>(a.cols);
  const T* const grad = static_cast<const T*>(a.grad);
  const T* const soft = static_cast<const T*>(a.soft);
  T* const grad_logits = static_cast<T*>(a.grad_logits);
  const T inv_tau = inv_tau_as<T>(a.inv_tau);
  Perturbed<T> perturbed(a.logits, a.noise, a.gumbels, a.seed, a.stream);
  Tile<T> t;
  const V inv(inv_tau);
  for (int64_t r = r0; r < r1; r += W) {
    const int nr = static_cast<int>(std::min<int64_t>(W, r1 - r));
    if (soft != nullptr) {
      to_columns(soft + r * K, nr, K, T(0), t.a);
    } else {
      perturbed.fill(r * K, static_cast<int64_t>(nr) * K, t.flat);
      to_columns(t.flat, nr, K, T(0), t.a);
      softmax_columns(t.a, K, inv_tau);
    }
    to_columns(grad + r * K, nr, K, T(0), t.b);
    V dot(T(0));
    for (int j = 0; j < K; ++j) dot = dot + V::loadu(t.a + j * W) * V::loadu(t.b + j * W);
    for (int j = 0; j < K; ++j) {
      softmax_grad(V::loadu(t.a + j * W), V::loadu(t.b + j * W), dot, inv).store(t.b + j * W);
    }
    from_columns(t.b, nr, K, grad_logits + r * K);
  }
}

// Per lane: m = max, e_j = exp(l_j - m) into `e`, and the entropy part H = sum q log q and
// log S (S = sum e). Lanes of -inf logits give e = 0 and add nothing (0 log 0 = 0).
template <class T>
inline void entropy_columns(const T* col, int K, T* e_out, Vectorized<T>& d_max, Vectorized<T>& sum,
                            Vectorized<T>& log_s, Vectorized<T>& h) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  V m = V::loadu(col);
  for (int j = 1; j < K; ++j) m = at::vec::maximum(m, V::loadu(col + j * W));
  const V lowest(std::numeric_limits<T>::lowest());
  V s(T(0)), sd(T(0));
  for (int j = 0; j < K; ++j) {
    const V d = at::vec::maximum(V::loadu(col + j * W) - m, lowest);  // -inf -> lowest: e * d = 0
    const V e = d.exp_u20();
    if (e_out != nullptr) e.store(e_out + j * W);
    s = s + e;
    sd = sd + e * d;
  }
  d_max = m;
  sum = s;
  log_s = s.log();
  h = sd / s - log_s;
}

template <class T>
double kl_forward_columns(const CategoricalKlForward& a, int64_t r0, int64_t r1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const int K = static_cast<int>(a.cols);
  const T* const logits = static_cast<const T*>(a.logits);
  T* const kl = static_cast<T*>(a.kl);
  const V log_k(static_cast<T>(std::log(static_cast<double>(K))));
  Tile<T> t;
  double sum = 0;
  for (int64_t r = r0; r < r1; r += W) {
    const int nr = static_cast<int>(std::min<int64_t>(W, r1 - r));
    to_columns(logits + r * K, nr, K, T(0), t.a);
    V m, s, log_s, h;
    entropy_columns(t.a, K, static_cast<T*>(nullptr), m, s, log_s, h);
    const V k = h + log_k;
    if (kl != nullptr) store(k, kl + r, nr);
    if (a.kl_sum != nullptr) {
      alignas(64) T lanes[W];
      k.store(lanes);
      for (int i = 0; i < nr; ++i) sum += lanes[i];
    }
  }
  return sum;
}

// dKL/dl_j = q_j * (log q_j - H), times the row's weight.
template <class T>
void kl_backward_columns(const CategoricalKlBackward& a, int64_t r0, int64_t r1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const int K = static_cast<int>(a.cols);
  const T* const logits = static_cast<const T*>(a.logits);
  const T* const grad = static_cast<const T*>(a.grad);
  T* const grad_logits = static_cast<T*>(a.grad_logits);
  const V lowest(std::numeric_limits<T>::lowest());
  Tile<T> t;
  for (int64_t r = r0; r < r1; r += W) {
    const int nr = static_cast<int>(std::min<int64_t>(W, r1 - r));
    to_columns(logits + r * K, nr, K, T(0), t.a);
    V m, s, log_s, h;
    entropy_columns(t.a, K, t.b, m, s, log_s, h);
    const V w = grad != nullptr ? load(grad + r, nr) : V(static_cast<T>(a.grad_scalar));
    const V w_over_s = w / s;
    const V shift = log_s + h;                     // log q_j - H = d_j - log S - H
    for (int j = 0; j < K; ++j) {
      const V d = at::vec::maximum(V::loadu(t.a + j * W) - m, lowest);
      (w_over_s * V::loadu(t.b + j * W) * (d - shift)).store(t.b + j * W);
    }
    from_columns(t.b, nr, K, grad_logits + r * K);
  }
}

// ---- long rows: one row at a time, vectorized along it -----------------------------------

template <class T>
inline T row_max(const T* x, int64_t K) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T ninf = -std::numeric_limits<T>::infinity();
  V m(ninf);
  for (int64_t i = 0; i < K; i += W) {
    const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
    m = at::vec::maximum(m, load_or(x + i, cnt, ninf));
  }
  return horizontal_max(m);
}

// In place: s -> softmax((s - max) * inv_tau).
template <class T>
inline void softmax_row(T* y, int64_t K, T inv_tau) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const V m(row_max(y, K));
  const V inv(inv_tau);
  V sum(T(0));
  for (int64_t i = 0; i < K; i += W) {
    const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
    const V e = ((load(y + i, cnt) - m) * inv).exp_u20();
    store(e, y + i, cnt);
    sum = sum + (cnt == W ? e : V::set(V(T(0)), e, cnt));
  }
  const V r(T(1) / horizontal_sum(sum));
  for (int64_t i = 0; i < K; i += W) {
    const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
    store(load(y + i, cnt) * r, y + i, cnt);
  }
}

template <class T>
void softmax_forward_rows(const GumbelSoftmaxForward& a, int64_t r0, int64_t r1) {
  const int64_t K = a.cols;
  T* const out = static_cast<T*>(a.out);
  const T inv_tau = inv_tau_as<T>(a.inv_tau);
  Perturbed<T> perturbed(a.logits, a.noise, a.gumbels, a.seed, a.stream);
  for (int64_t r = r0; r < r1; ++r) {
    T* y = out + r * K;
    perturbed.fill(r * K, K, y);
    if (a.hard) {  // a NaN soft sample gives a NaN row, as in one_hot_columns
      const T m = row_max(y, K);
      const bool nan = !std::isfinite(m * inv_tau);  // row_max propagates NaN
      const int64_t first = std::find(y, y + K, m) - y;
      std::fill(y, y + K, nan ? std::numeric_limits<T>::quiet_NaN() : T(0));
      if (!nan) y[first] = T(1);
    } else {
      softmax_row(y, K, inv_tau);
    }
  }
}

template <class T>
void softmax_backward_rows(const GumbelSoftmaxBackward& a, int64_t r0, int64_t r1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const int64_t K = a.cols;
  const T* const grad = static_cast<const T*>(a.grad);
  const T* const soft = static_cast<const T*>(a.soft);
  T* const grad_logits = static_cast<T*>(a.grad_logits);
  const T inv_tau = inv_tau_as<T>(a.inv_tau);
  const V inv(inv_tau);
  Perturbed<T> perturbed(a.logits, a.noise, a.gumbels, a.seed, a.stream);
  for (int64_t r = r0; r < r1; ++r) {
    T* gl = grad_logits + r * K;
    const T* g = grad + r * K;
    const T* y = gl;  // recomputed soft sample, in the output row until overwritten
    if (soft != nullptr) {
      y = soft + r * K;
    } else {
      perturbed.fill(r * K, K, gl);
      softmax_row(gl, K, inv_tau);
    }
    V dot_v(T(0));
    for (int64_t i = 0; i < K; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
      dot_v = dot_v + load(y + i, cnt) * load(g + i, cnt);  // loads past the end give zeros
    }
    const V dot(horizontal_sum(dot_v));
    for (int64_t i = 0; i < K; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
      store(softmax_grad(load(y + i, cnt), load(g + i, cnt), dot, inv), gl + i, cnt);
    }
  }
}

// max, log S and H = sum q log q of one row (see entropy_columns).
template <class T>
inline void entropy_row(const T* l, int64_t K, T& m_out, T& sum, T& log_s, T& h) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T m = row_max(l, K);
  const V mv(m);
  const V lowest(std::numeric_limits<T>::lowest());
  V s(T(0)), sd(T(0));
  for (int64_t i = 0; i < K; i += W) {
    const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
    const V d = at::vec::maximum(load(l + i, cnt) - mv, lowest);
    V e = d.exp_u20();
    if (cnt != W) e = V::set(V(T(0)), e, cnt);
    s = s + e;
    sd = sd + e * d;
  }
  const T s_sum = horizontal_sum(s);
  m_out = m;
  sum = s_sum;
  log_s = std::log(s_sum);
  h = horizontal_sum(sd) / s_sum - log_s;
}

template <class T>
double kl_forward_rows(const CategoricalKlForward& a, int64_t r0, int64_t r1) {
  const int64_t K = a.cols;
  const T* const logits = static_cast<const T*>(a.logits);
  T* const kl = static_cast<T*>(a.kl);
  const T log_k = static_cast<T>(std::log(static_cast<double>(K)));
  double sum = 0;
  for (int64_t r = r0; r < r1; ++r) {
    T m, s, log_s, h;
    entropy_row(logits + r * K, K, m, s, log_s, h);
    const T k = h + log_k;
    if (kl != nullptr) kl[r] = k;
    sum += k;
  }
  return sum;
}

template <class T>
void kl_backward_rows(const CategoricalKlBackward& a, int64_t r0, int64_t r1) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const int64_t K = a.cols;
  const T* const logits = static_cast<const T*>(a.logits);
  const T* const grad = static_cast<const T*>(a.grad);
  T* const grad_logits = static_cast<T*>(a.grad_logits);
  const V lowest(std::numeric_limits<T>::lowest());
  for (int64_t r = r0; r < r1; ++r) {
    const T* l = logits + r * K;
    T* gl = grad_logits + r * K;
    T m, s, log_s, h;
    entropy_row(l, K, m, s, log_s, h);
    const T w = grad != nullptr ? grad[r] : static_cast<T>(a.grad_scalar);
    const V mv(m), shift(log_s + h), w_over_s(w / s);
    for (int64_t i = 0; i < K; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, K - i));
      const V d = at::vec::maximum(load(l + i, cnt) - mv, lowest);
      store(w_over_s * d.exp_u20() * (d - shift), gl + i, cnt);
    }
  }
}

// ---- entry points ---------------------------------------------------------------------------

template <class T>
void softmax_forward_impl(const GumbelSoftmaxForward& a) {
  const bool columns = a.cols <= kMaxColumnTile;
  at::parallel_for(int64_t{0}, a.rows, grain_rows(a.cols), [&](int64_t r0, int64_t r1) {
    if (columns) softmax_forward_columns<T>(a, r0, r1); else softmax_forward_rows<T>(a, r0, r1);
  });
}

template <class T>
void softmax_backward_impl(const GumbelSoftmaxBackward& a) {
  const bool columns = a.cols <= kMaxColumnTile;
  at::parallel_for(int64_t{0}, a.rows, grain_rows(a.cols), [&](int64_t r0, int64_t r1) {
    if (columns) softmax_backward_columns<T>(a, r0, r1); else softmax_backward_rows<T>(a, r0, r1);
  });
}

template <class T>
void kl_forward_impl(const CategoricalKlForward& a) {
  const bool columns = a.cols <= kMaxColumnTile;
  auto range = [&](int64_t r0, int64_t r1) {
    return columns ? kl_forward_columns<T>(a, r0, r1) : kl_forward_rows<T>(a, r0, r1);
  };
  if (a.kl_sum != nullptr) {
    *a.kl_sum = at::parallel_reduce(
        int64_t{0}, a.rows, grain_rows(a.cols), 0.0,
        [&](int64_t r0, int64_t r1, double) { return range(r0, r1); }, std::plus<double>());
  } else {
    at::parallel_for(int64_t{0}, a.rows, grain_rows(a.cols), [&](int64_t r0, int64_t r1) { range(r0, r1); });
  }
}

template <class T>
void kl_backward_impl(const CategoricalKlBackward& a) {
  const bool columns = a.cols <= kMaxColumnTile;
  at::parallel_for(int64_t{0}, a.rows, grain_rows(a.cols), [&](int64_t r0, int64_t r1) {
    if (columns) kl_backward_columns<T>(a, r0, r1); else kl_backward_rows<T>(a, r0, r1);
  });
}

void softmax_forward(const GumbelSoftmaxForward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_gumbel_softmax", [&] { softmax_forward_impl<scalar_t>(a); });
}

void softmax_backward(const GumbelSoftmaxBackward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_gumbel_softmax_backward", [&] { softmax_backward_impl<scalar_t>(a); });
}

void kl_forward(const CategoricalKlForward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_categorical_kl_uniform", [&] { kl_forward_impl<scalar_t>(a); });
}

void kl_backward(const CategoricalKlBackward& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_categorical_kl_uniform_backward",
                             [&] { kl_backward_impl<scalar_t>(a); });
}

}  // namespace

extern const GumbelKernels gumbel_kernels{&softmax_forward, &softmax_backward, &kl_forward, &kl_backward};

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
