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

// Math policy of gentk/losses.h for at::vec vectors. The BCE loop is bound by vector-op
// throughput (about one 512-bit FP op per cycle here), so float uses short polynomials
// with just the accuracy the losses need (a few ulp) and, on AVX-512, single instructions
// where at::vec's generic forms take several (vscalefps, mask blends, NaN-ignoring min/max).
template <class T>
struct VecMath {
  using V = Vectorized<T>;
  static constexpr bool kAvx512Float =
#if defined(CPU_CAPABILITY_AVX512)
      std::is_same_v<T, float>;
#else
      false;
#endif

  // float on AVX-512: exp(t) = 2^n p(r), n = round(t / ln 2), r = t - n ln 2 (two-constant
  // Cody-Waite), p of degree 5 fitted on [-ln2/2, ln2/2] (relative error 5e-7), 2^n by
  // vscalefps; t clamped to [-104, 88.7], where the result is 0 / overflows anyway.
  // Otherwise at::vec's 20-ulp exp.
  static V exp(const V& t) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (kAvx512Float) {
      const __m512 v = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
      const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269502f)),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693147182f), v);
      r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-1.90465421e-09f), r);
      __m512 p = _mm512_set1_ps(0.00836589001f);
      p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0418524072f));
      p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.16666536f));
      p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.499995202f));
      p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
      p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
      return V(_mm512_scalef_ps(p, n));
    }
#endif
    return t.exp_u20();
  }
  // float: log1p(e) for e = exp(-|x|) in (0, 1] as e * p(e), p of degree 8 fitted to
  // log1p(e) / e on [0, 1] (Chebyshev fit; relative error 2.5e-7 in float arithmetic, so
  // small e keep their relative accuracy): nine FMAs instead of a general log's range
  // reduction and special cases. double: log(u) - ((u - 1) - e) / u with u = 1 + e and r =
  // 1 / u corrects the rounding of u, so the 3.5-ulp Sleef log stands in for log1p.
  static V log1p(const V& e, const V& u, const V& r) {
    if constexpr (std::is_same_v<T, float>) {
      V p(0.0051860036f);
      p = at::vec::fmadd(p, e, V(-0.029210268f));
      p = at::vec::fmadd(p, e, V(0.07754038f));
      p = at::vec::fmadd(p, e, V(-0.13583942f));
      p = at::vec::fmadd(p, e, V(0.19055955f));
      p = at::vec::fmadd(p, e, V(-0.24825649f));
      p = at::vec::fmadd(p, e, V(0.3331601f));
      p = at::vec::fmadd(p, e, V(-0.49999255f));
      p = at::vec::fmadd(p, e, V(0.99999994f));
      return p * e;
    } else {
      return fast_log(u) - ((u - V(T(1))) - e) * r;
    }
  }
  // 1 / u for u in [1, 2]. float: the hardware reciprocal estimate and one Newton step
  // (relative error about 2^-23 from AVX2's 12-bit estimate, below 2^-27 from AVX-512's
  // 14-bit one): a division's throughput is several times lower.
  static V recip(const V& u) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (std::is_same_v<T, float>) {
      const V r0(_mm512_rcp14_ps(u));
      return r0 * at::vec::fnmadd(u, r0, V(2.0f));
    }
#elif defined(CPU_CAPABILITY_AVX2)
    if constexpr (std::is_same_v<T, float>) {
      const V r0(_mm256_rcp_ps(u));
      return r0 * at::vec::fnmadd(u, r0, V(2.0f));
    }
#endif
    return V(T(1)) / u;
  }
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
  static V select(const V& c, const V& a, const V& b) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (kAvx512Float) {
      return V(_mm512_mask_blend_ps(_mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_GE_OQ), b, a));
    }
#endif
    return V::blendv(b, a, c >= V(T(0)));
  }
  static V step(const V& x) { return V::blendv(V(T(0)), V(T(1)), x > V(T(0))); }
  // Running min / max of targets that skip NaN lanes (a NaN target is not out of range).
  static V min_skip_nan(const V& y, const V& acc) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (kAvx512Float) return V(_mm512_min_ps(y, acc));  // NaN in y: returns acc
#endif
    return V::blendv(acc, y, y < acc);
  }
  static V max_skip_nan(const V& y, const V& acc) {
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (kAvx512Float) return V(_mm512_max_ps(y, acc));
#endif
    return V::blendv(acc, y, y > acc);
  }
};

struct RangeResult {
  double sum = 0;
  int64_t bad = 0;
};

// Number of targets outside [0, 1] in [i0, i1): a cold path, run only when the hot loop's
// running min / max left [0, 1].
template <class T>
int64_t count_bad(const T* target, int64_t i0, int64_t i1) {
  int64_t bad = 0;
  for (int64_t i = i0; i < i1; ++i) bad += (target[i] < T(0)) | (target[i] > T(1));
  return bad;
}

// Elements [i0, i1). Everything is copied into locals so stores cannot force reloads. The
// target / gradient choices are template arguments and full vectors run apart from the
// tail, so the hot loop carries no per-vector test of them.
template <int K, class T, bool kTarget, bool kGrad>
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
  const bool check = kTarget && a.bad_targets != nullptr;
  const V label(static_cast<T>(a.param));
  const V loss_scale(static_cast<T>(a.loss_scale));
  const V grad_scale(static_cast<T>(a.grad_scale));
  const V zero(T(0)), one(T(1));

  V acc(T(0));
  V lo(T(0)), hi(T(1));  // targets' min and max (NaN skipped), so [0, 1] shows at the end
  const auto body = [&](int64_t i, auto full) {
    constexpr bool kFull = decltype(full)::value;
    const int cnt = kFull ? W : static_cast<int>(i1 - i);
    const V xv = kFull ? V::loadu(x + i) : V::loadu(x + i, cnt);
    V y = label;
    if constexpr (kTarget) {
      y = kFull ? V::loadu(target + i) : V::loadu(target + i, cnt);
      if (check) {
        lo = M::min_skip_nan(y, lo);
        hi = M::max_skip_nan(y, hi);
      }
    }
    V l, g;
    loss_term<K, M>(xv, y, l, g);
    if constexpr (!kFull) l = l * V::set(zero, one, cnt);  // lanes past the end loaded zeros
    if (loss != nullptr) {
      V out = l * loss_scale;
      if (accumulate) out = out + (kFull ? V::loadu(loss + i) : V::loadu(loss + i, cnt));
      if constexpr (kFull) out.store(loss + i); else out.store(loss + i, cnt);
    }
    if (want_sum) acc = acc + l;
    if constexpr (kGrad) {
      V gv = g * grad_scale;
      if (grad_out != nullptr) gv = gv * (kFull ? V::loadu(grad_out + i) : V::loadu(grad_out + i, cnt));
      if constexpr (kFull) gv.store(grad + i); else gv.store(grad + i, cnt);
    }
  };

  RangeResult r;
  const int64_t full_end = i0 + (i1 - i0) / W * W;
  int64_t i = i0;
  while (i < full_end) {  // sums run in the input dtype per lane for kFlush elements, then in double
    const int64_t stop = std::min(full_end, i + kFlush);
    for (; i < stop; i += W) body(i, std::true_type{});
    if (want_sum) {
      r.sum += horizontal_sum(acc);
      acc = zero;
    }
  }
  if (i < i1) {
    body(i, std::false_type{});
    if (want_sum) r.sum += horizontal_sum(acc);
  }
  if (check) {
    alignas(64) T low[W], high[W];
    lo.store(low);
    hi.store(high);
    bool any = false;
    for (int k = 0; k < W; ++k) any |= low[k] < T(0) || high[k] > T(1);
    if (any) r.bad = count_bad(target, i0, i1);
  }
  return r;
}

template <int K, class T>
RangeResult loss_range(const LossTerm& a, int64_t i0, int64_t i1) {
  if (a.target != nullptr) {
    return a.grad != nullptr ? loss_range<K, T, true, true>(a, i0, i1) : loss_range<K, T, true, false>(a, i0, i1);
  }
  return a.grad != nullptr ? loss_range<K, T, false, true>(a, i0, i1) : loss_range<K, T, false, false>(a, i0, i1);
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

// Calls f(row, begin, end) for the row-wise pieces of [0, rows * cols), split over threads
// by elements (so a few long rows still spread), each piece inside one row.
template <class F>
void for_each_row_piece(int64_t rows, int64_t cols, const F& f) {
  at::parallel_for(int64_t{0}, rows * cols, kGrain, [&](int64_t i0, int64_t i1) {
    while (i0 < i1) {
      const int64_t r = i0 / cols;
      const int64_t end = std::min(i1, (r + 1) * cols);
      f(r, i0, end);
      i0 = end;
    }
  });
}

template <class T>
void scale_rows_impl(const RowsOp& a) {
  using V = Vectorized<T>;
  constexpr int W = V::size();
  const T* const x = static_cast<const T*>(a.a);
  T* const out = static_cast<T*>(a.out);
  const double* const coef = a.coef;
  for_each_row_piece(a.rows, a.cols, [&](int64_t r, int64_t begin, int64_t end) {
    const V k(static_cast<T>(coef[r]));
    for (int64_t i = begin; i < end; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
      store(load(x + i, cnt) * k, out + i, cnt);
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
  const uint64_t seed = a.seed, stream = a.stream;
  for_each_row_piece(a.rows, a.cols, [&](int64_t r, int64_t begin, int64_t end) {
    const V al(static_cast<T>(gp_alpha(static_cast<uint64_t>(r), seed, stream)));
    for (int64_t i = begin; i < end; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
      const V f = load(fake + i, cnt);
      store(at::vec::fmadd(al, load(real + i, cnt) - f, f), out + i, cnt);
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
  const uint64_t seed = a.seed, stream = a.stream;
  for_each_row_piece(a.rows, a.cols, [&](int64_t r, int64_t begin, int64_t end) {
    const T alpha = static_cast<T>(gp_alpha(static_cast<uint64_t>(r), seed, stream));
    const V al(alpha), rest(T(1) - alpha);
    for (int64_t i = begin; i < end; i += W) {
      const int cnt = static_cast<int>(std::min<int64_t>(W, end - i));
      const V g = load(grad + i, cnt);
      if (grad_real != nullptr) store(g * al, grad_real + i, cnt);
      if (grad_fake != nullptr) store(g * rest, grad_fake + i, cnt);
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
