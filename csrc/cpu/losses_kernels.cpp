// Vectorized, multithreaded CPU kernels of the loss family. Compiled once per CPU
// capability (see CMakeLists.txt); CPU_CAPABILITY names the namespace.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "gentk/losses.h"
#include "losses.h"
#include "vec_utils.h"

namespace gentk::cpu {
namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// Elements per parallel task at minimum: below ~16K elements threads cost more than they save.
constexpr int64_t kGrain = 16384;
// Elements per block of the elementwise loss kernel (for_blocks).
constexpr int64_t kBlock = 32768;
// Sums run in the input dtype per vector lane for this many elements, then in double.
constexpr int64_t kFlush = 1024;

// Math policy of gentk/losses.h for at::vec vectors.
template <class T>
struct VecMath {
  using V = Vectorized<T>;
  static V exp(const V& x) { return x.exp_u20(); }
  // log1p of e = exp(-|x|) in (0, 1]: log(u) - ((u - 1) - e) / u with u = 1 + e (1 / u is
  // r, already computed for the sigmoid) corrects the rounding of u, so the 3.5-ulp Sleef
  // log (as in the Gaussian kernels) stands in for the slower 1-ulp log1p.
  static V log1p(const V& e, const V& u, const V& r) { return fast_log(u) - ((u - V(T(1))) - e) * r; }
  static V fast_log(const V& x) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (std::is_same_v<T, float>) return Sleef_logf16_u35avx512f(x);
    else return Sleef_logd8_u35avx512f(x);
#elif defined(CPU_CAPABILITY_AVX2)
    if constexpr (std::is_same_v<T, float>) return Sleef_logf8_u35avx2(x);
    else return Sleef_logd4_u35avx2(x);
#else
    return x.log();
#endif
  }
  static V abs(const V& x) { return x.abs(); }
  static V max0(const V& x) { return at::vec::clamp_min(x, V(T(0))); }
  static V select(const V& c, const V& a, const V& b) { return V::blendv(b, a, c >= V(T(0))); }
  static V step(const V& x) { return V::blendv(V(T(0)), V(T(1)), x > V(T(0))); }
};

struct RangeResult {
  double sum = 0;
  int64_t bad = 0;
};

// Elements [i0, i1). Everything is copied into locals so stores cannot force reloads.
template <int K, class T>
RangeResult loss_range(const LossTerm& a, int64_t i0, int64_t i1) {
  using V = Vectorized<T>;
  using M = VecMath<T>;
  constexpr int W = V::size();
  const T* const x = static_cast<const T*>(a.x);
  const T* const target = static_cast<const T*>(a.target);
  const T* const grad_out = static_cast<const T*>(a.grad_out);
  T* const loss = static_cast<T*>(a.loss);
  T* const grad = static_cast<T*>(a.grad);
  const bool accumulate = a.accumulate;
  const bool want_sum = a.loss_sum != nullptr;
  const bool check = a.bad_targets != nullptr && target != nullptr;
  const V label(static_cast<T>(a.param));
  const V loss_scale(static_cast<T>(a.loss_scale));
  const V grad_scale(static_cast<T>(a.grad_scale));
  const V zero(T(0)), one(T(1));

  RangeResult r;
  V acc(T(0));
  V bad(T(0));
  int64_t since_flush = 0;
  for (int64_t i = i0; i < i1; i += W) {
    const int cnt = static_cast<int>(std::min<int64_t>(W, i1 - i));
    const V xv = load(x + i, cnt);
    const V y = target != nullptr ? load(target + i, cnt) : label;
    V l, g;
    loss_term<K, M>(xv, y, l, g);
    if (cnt < W) {  // lanes past the end loaded zeros; keep them out of the sum
      const V live = V::set(zero, one, cnt);
      l = l * live;
    }
    if (loss != nullptr) {
      V out = l * loss_scale;
      if (accumulate) out = out + load(loss + i, cnt);
      store(out, loss + i, cnt);
    }
    if (want_sum) {
      acc = acc + l;
      since_flush += W;
      if (since_flush >= kFlush) {
        r.sum += horizontal_sum(acc);
        acc = zero;
        since_flush = 0;
      }
    }
    if (grad != nullptr) {
      V gv = g * grad_scale;
      if (grad_out != nullptr) gv = gv * load(grad_out + i, cnt);
      store(gv, grad + i, cnt);
    }
    if (check) bad = bad + V::blendv(zero, one, (y < zero) | (y > one));
  }
  if (want_sum) r.sum += horizontal_sum(acc);
  if (check) r.bad = static_cast<int64_t>(horizontal_sum(bad));
  return r;
}

// f(b, i0, i1) for the blocks [i0, i1) = [b * block, (b + 1) * block) of [0, n). Threads take
// blocks from a shared counter instead of one fixed half each: on a shared, oversubscribed
// machine a descheduled thread then delays the call by at most one block, not by half the
// work. Results stored per block are combined in block order, so sums do not depend on
// the thread count or on which thread ran which block.
template <class F>
void for_blocks(int64_t n, int64_t block, const F& f) {
  const int64_t blocks = (n + block - 1) / block;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), blocks);
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t b = 0; b < blocks; ++b) f(b, b * block, std::min(n, (b + 1) * block));
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(int64_t{0}, threads, 1, [&](int64_t, int64_t) {
    for (int64_t b = next.fetch_add(1, std::memory_order_relaxed); b < blocks;
         b = next.fetch_add(1, std::memory_order_relaxed)) {
      f(b, b * block, std::min(n, (b + 1) * block));
    }
  });
}

// The terms, laid end to end, in one parallel region (the real and the fake logits of a
// discriminator loss: one fork and join instead of two). Same kind and dtype; no two
// terms may write the same per-element loss (accumulate runs them one after the other).
template <int K, class T>
void loss_impl(const LossTerm* terms, int count) {
  int64_t n = 0;
  for (int t = 0; t < count; ++t) n += terms[t].n;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<RangeResult> part(static_cast<size_t>(blocks * count));
  for_blocks(n, kBlock, [&](int64_t b, int64_t i0, int64_t i1) {
    int64_t offset = 0;
    for (int t = 0; t < count; ++t) {
      const int64_t lo = std::max(i0, offset), hi = std::min(i1, offset + terms[t].n);
      if (lo < hi) part[static_cast<size_t>(b * count + t)] = loss_range<K, T>(terms[t], lo - offset, hi - offset);
      offset += terms[t].n;
    }
  });
  for (int t = 0; t < count; ++t) {
    RangeResult total;
    for (int64_t b = 0; b < blocks; ++b) {
      total.sum += part[static_cast<size_t>(b * count + t)].sum;
      total.bad += part[static_cast<size_t>(b * count + t)].bad;
    }
    if (terms[t].loss_sum != nullptr) *terms[t].loss_sum = total.sum;
    if (terms[t].bad_targets != nullptr) *terms[t].bad_targets = total.bad;
  }
}

void loss_terms_kernel(const LossTerm* terms, int count) {
  AT_DISPATCH_FLOATING_TYPES(terms[0].dtype, "gentk_loss_terms", [&] {
    switch (terms[0].kind) {
      case kBce: return loss_impl<kBce, scalar_t>(terms, count);
      case kSquare: return loss_impl<kSquare, scalar_t>(terms, count);
      case kLinear: return loss_impl<kLinear, scalar_t>(terms, count);
      case kHinge: return loss_impl<kHinge, scalar_t>(terms, count);
      default: return loss_impl<kAbs, scalar_t>(terms, count);
    }
  });
}

// Rows are split across threads when there are enough of them, else each row's columns are.
template <class F>
void for_rows(int64_t rows, int64_t cols, const F& f) {
  const int64_t row_grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1));
  at::parallel_for(int64_t{0}, rows, row_grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) f(r);
  });
}

template <class T>
void row_sumsq_impl(const RowsOp& a) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const x = static_cast<const T*>(a.a);
  double* const out = static_cast<double*>(a.out);
  const int64_t cols = a.cols;
  const auto row_sum = [&](int64_t r, int64_t c0, int64_t c1) {
    const T* p = x + r * cols;
    double s = 0;
    V acc(T(0));
    int64_t since_flush = 0;
    for (int64_t c = c0; c < c1; c += W) {
      const V v = load(p + c, static_cast<int>(std::min<int64_t>(W, c1 - c)));
      acc = at::vec::fmadd(v, v, acc);
      since_flush += W;
      if (since_flush >= kFlush) {
        s += horizontal_sum(acc);
        acc = V(T(0));
        since_flush = 0;
      }
    }
    return s + horizontal_sum(acc);
  };
  if (a.rows >= at::get_num_threads() || cols < 2 * kGrain) {
    for_rows(a.rows, cols, [&](int64_t r) { out[r] = row_sum(r, 0, cols); });
  } else {
    for (int64_t r = 0; r < a.rows; ++r) {
      out[r] = at::parallel_reduce(int64_t{0}, cols, kGrain, 0.0,
                                   [&](int64_t c0, int64_t c1, double) { return row_sum(r, c0, c1); },
                                   std::plus<double>());
    }
  }
}

template <class T>
void scale_rows_impl(const RowsOp& a) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const x = static_cast<const T*>(a.a);
  T* const out = static_cast<T*>(a.out);
  const double* const coef = a.coef;
  const int64_t cols = a.cols;
  at::parallel_for(int64_t{0}, a.rows * cols, kGrain, [&](int64_t i0, int64_t i1) {
    while (i0 < i1) {
      const int64_t r = i0 / cols;
      const int64_t end = std::min(i1, (r + 1) * cols);
      const V k(static_cast<T>(coef[r]));
      for (int64_t i = i0; i < end; i += W) {
        const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
        store(load(x + i, cnt) * k, out + i, cnt);
      }
      i0 = end;
    }
  });
}

// x = alpha * real + (1 - alpha) * fake = fake + alpha * (real - fake), alpha per row.
template <class T>
void interpolate_impl(const RowsOp& a) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const real = static_cast<const T*>(a.a);
  const T* const fake = static_cast<const T*>(a.b);
  T* const out = static_cast<T*>(a.out);
  const int64_t cols = a.cols;
  const uint64_t seed = a.seed, stream = a.stream;
  at::parallel_for(int64_t{0}, a.rows * cols, kGrain, [&](int64_t i0, int64_t i1) {
    while (i0 < i1) {
      const int64_t r = i0 / cols;
      const int64_t end = std::min(i1, (r + 1) * cols);
      const V al(static_cast<T>(gp_alpha(static_cast<uint64_t>(r), seed, stream)));
      for (int64_t i = i0; i < end; i += W) {
        const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
        const V f = load(fake + i, cnt);
        store(at::vec::fmadd(al, load(real + i, cnt) - f, f), out + i, cnt);
      }
      i0 = end;
    }
  });
}

template <class T>
void interpolate_backward_impl(const RowsOp& a) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const grad = static_cast<const T*>(a.a);
  T* const grad_real = static_cast<T*>(a.out);
  T* const grad_fake = static_cast<T*>(a.out2);
  const int64_t cols = a.cols;
  const uint64_t seed = a.seed, stream = a.stream;
  at::parallel_for(int64_t{0}, a.rows * cols, kGrain, [&](int64_t i0, int64_t i1) {
    while (i0 < i1) {
      const int64_t r = i0 / cols;
      const int64_t end = std::min(i1, (r + 1) * cols);
      const T alpha = static_cast<T>(gp_alpha(static_cast<uint64_t>(r), seed, stream));
      const V al(alpha), rest(T(1) - alpha);
      for (int64_t i = i0; i < end; i += W) {
        const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
        const V g = load(grad + i, cnt);
        if (grad_real != nullptr) store(g * al, grad_real + i, cnt);
        if (grad_fake != nullptr) store(g * rest, grad_fake + i, cnt);
      }
      i0 = end;
    }
  });
}

void row_sumsq(const RowsOp& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_row_sumsq", [&] { row_sumsq_impl<scalar_t>(a); });
}
void scale_rows(const RowsOp& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_scale_rows", [&] { scale_rows_impl<scalar_t>(a); });
}
void interpolate(const RowsOp& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_interpolate", [&] { interpolate_impl<scalar_t>(a); });
}
void interpolate_backward(const RowsOp& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "gentk_interpolate_backward",
                             [&] { interpolate_backward_impl<scalar_t>(a); });
}

}  // namespace

extern const LossKernels loss_kernels{&loss_terms_kernel, &row_sumsq, &scale_rows, &interpolate,
                                      &interpolate_backward};

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
