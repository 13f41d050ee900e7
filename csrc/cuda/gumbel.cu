// CUDA implementations of the Gumbel op family. The schemas and the CPU versions live in
// csrc/gumbel.cpp; this file registers CUDA kernels for the same four ops with the same
// semantics (softmax over the last dim of contiguous inputs; see that file).
//
// Rows are handled by groups of kTpr threads (1 to 32 lanes of one warp, chosen from K);
// lane l of a group takes the row's elements l, l + kTpr, ... Row maxima and sums are
// reduced with warp shuffles, so a row never leaves its group. Rows of up to kTpr * kCache
// elements keep their values in registers between the passes; longer rows (K > 1024)
// recompute them (noise included) in each pass instead of storing them.
//
// Noise: element e of the flattened input draws Philox counter noise_counter(e) and keeps
// output noise_slot(e) (gentk/gumbel.h), the stream of the CPU and Triton kernels. Each
// element runs its own counter (4x the integer work of sharing one between 4 elements),
// which keeps the row layout free.
// The (seed, stream) pair is read from device memory inside the kernel and a reduced KL is
// summed on the device in a fixed order, so nothing synchronizes with the host.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "gentk/gumbel.h"
#include "cuda/launch.cuh"
#include "gentk/philox.h"
#include "gumbel_checks.h"

namespace gentk {
namespace {

constexpr int kThreads = 256;

enum NoiseSource : int { kNoNoise = 0, kNoiseGiven = 1, kNoisePhilox = 2 };

struct CudaLog {
  static __host__ __device__ __forceinline__ float log(float x) { return ::logf(x); }
  static __host__ __device__ __forceinline__ double log(double x) { return ::log(x); }
};

__device__ __forceinline__ float exp_of(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_of(double x) { return ::exp(x); }
__device__ __forceinline__ float log_of(float x) { return ::logf(x); }
__device__ __forceinline__ double log_of(double x) { return ::log(x); }

template <class A>
__device__ __forceinline__ A group_max(A v, int width) {
  for (int offset = width / 2; offset > 0; offset >>= 1) v = ::max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <class A>
__device__ __forceinline__ A group_sum(A v, int width) {
  for (int offset = width / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Max over the group and the smallest index among its maxima.
template <class A>
__device__ __forceinline__ void group_argmax(A& m, int& arg, int width) {
  for (int offset = width / 2; offset > 0; offset >>= 1) {
    const A om = __shfl_xor_sync(0xffffffffu, m, offset);
    const int oa = __shfl_xor_sync(0xffffffffu, arg, offset);
    if (om > m || (om == m && oa < arg)) {
      m = om;
      arg = oa;
    }
  }
}

// ---- gumbel_softmax ------------------------------------------------------------------------

template <class T>
struct SoftmaxArgs {
  int64_t rows;
  int K;
  const T* grad;      // backward only
  const T* soft;      // backward: the saved soft sample; null: recompute it
  const T* logits;
  const T* gumbels;
  const int64_t* seed;
  int noise;
  double inv_tau;     // clamped to T's opmath largest finite value on the host
  bool hard;
  T* out;
};

template <class T>
__device__ __forceinline__ at::opmath_type<T> perturbed(const SoftmaxArgs<T>& a, int64_t e, uint64_t seed,
                                                        uint64_t stream) {
  using op_t = at::opmath_type<T>;
  op_t s = static_cast<op_t>(a.logits[e]);
  if (a.noise == kNoiseGiven) {
    s += static_cast<op_t>(a.gumbels[e]);
  } else if (a.noise == kNoisePhilox) {
    const Philox4 r = philox_at(noise_counter(static_cast<uint64_t>(e)), seed, stream);
    s += gumbel_from_uniform<CudaLog>(static_cast<op_t>(gumbel_uniform(r, static_cast<uint64_t>(e))));
  }
  return s;
}

// The soft sample of one row, handed to `emit(j, y_j, i)` element by element (i: the lane's
// slot). kCache > 0: the row fits the registers (K <= kTpr * kCache).
template <int kTpr, int kCache, class T, class Emit>
__device__ __forceinline__ void soft_row(const SoftmaxArgs<T>& a, int64_t row, int lane, bool valid, uint64_t seed,
                                         uint64_t stream, at::opmath_type<T> (&cache)[kCache > 0 ? kCache : 1],
                                         const Emit& emit) {
  using op_t = at::opmath_type<T>;
  const int K = a.K;
  const int64_t base = row * K;
  const op_t inv = static_cast<op_t>(a.inv_tau);
  op_t m = -INFINITY;
  if constexpr (kCache > 0) {
#pragma unroll
    for (int i = 0; i < kCache; ++i) {
      const int j = lane + i * kTpr;
      cache[i] = valid && j < K ? perturbed(a, base + j, seed, stream) : op_t(-INFINITY);
      m = ::max(m, cache[i]);
    }
  } else {
    for (int j = lane; valid && j < K; j += kTpr) m = ::max(m, perturbed(a, base + j, seed, stream));
  }
  m = group_max(m, kTpr);
  op_t sum = 0;
  if constexpr (kCache > 0) {
#pragma unroll
    for (int i = 0; i < kCache; ++i) {
      cache[i] = exp_of((cache[i] - m) * inv);  // -inf (padding) -> 0
      sum += cache[i];
    }
  } else {
    for (int j = lane; valid && j < K; j += kTpr) sum += exp_of((perturbed(a, base + j, seed, stream) - m) * inv);
  }
  sum = group_sum(sum, kTpr);
  const op_t r = op_t(1) / sum;
  if constexpr (kCache > 0) {
#pragma unroll
    for (int i = 0; i < kCache; ++i) {
      const int j = lane + i * kTpr;
      if (valid && j < K) emit(j, cache[i] * r, i);
    }
  } else {
    int i = 0;
    for (int j = lane; valid && j < K; j += kTpr, ++i) {
      emit(j, exp_of((perturbed(a, base + j, seed, stream) - m) * inv) * r, i);
    }
  }
}

template <class T, int kTpr, int kCache>
__global__ void __launch_bounds__(kThreads) gumbel_softmax_forward_kernel(const SoftmaxArgs<T> a) {
  using op_t = at::opmath_type<T>;
  uint64_t seed = 0, stream = 0;
  if (a.noise == kNoisePhilox) {
    seed = static_cast<uint64_t>(a.seed[0]);
    stream = static_cast<uint64_t>(a.seed[1]);
  }
  constexpr int kRowsPerBlock = kThreads / kTpr;
  const int lane = threadIdx.x % kTpr;
  const int K = a.K;
  op_t cache[kCache > 0 ? kCache : 1];
  // every thread runs the same iterations: the group shuffles need the whole warp
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t row = first + threadIdx.x / kTpr;
    const bool valid = row < a.rows;
    const int64_t base = row * K;
    if (a.hard) {
      op_t m = -INFINITY;
      int arg = K;
      for (int j = lane; valid && j < K; j += kTpr) {
        const op_t s = perturbed(a, base + j, seed, stream);
        if (s > m) {  // a lane's j increase: strict > keeps its first maximum
          m = s;
          arg = j;
        }
      }
      group_argmax(m, arg, kTpr);
      for (int j = lane; valid && j < K; j += kTpr) a.out[base + j] = static_cast<T>(j == arg ? 1 : 0);
    } else {
      soft_row<kTpr, kCache>(a, row, lane, valid, seed, stream, cache,
                             [&](int j, op_t y, int) { a.out[base + j] = static_cast<T>(y); });
    }
  }
}

template <class T, int kTpr, int kCache>
__global__ void __launch_bounds__(kThreads) gumbel_softmax_backward_kernel(const SoftmaxArgs<T> a) {
  using op_t = at::opmath_type<T>;
  uint64_t seed = 0, stream = 0;
  if (a.noise == kNoisePhilox && a.soft == nullptr) {
    seed = static_cast<uint64_t>(a.seed[0]);
    stream = static_cast<uint64_t>(a.seed[1]);
  }
  constexpr int kRowsPerBlock = kThreads / kTpr;
  const int lane = threadIdx.x % kTpr;
  const int K = a.K;
  const op_t inv = static_cast<op_t>(a.inv_tau);
  op_t cache[kCache > 0 ? kCache : 1];
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t row = first + threadIdx.x / kTpr;
    const bool valid = row < a.rows;
    const int64_t base = row * K;
    // y lands in `out` first (or is read from `soft`), then out = y * (g - <g, y>) / tau
    op_t dot = 0;
    if (a.soft != nullptr) {
      for (int j = lane; valid && j < K; j += kTpr) {
        dot += static_cast<op_t>(a.soft[base + j]) * static_cast<op_t>(a.grad[base + j]);
      }
    } else {
      soft_row<kTpr, kCache>(a, row, lane, valid, seed, stream, cache, [&](int j, op_t y, int i) {
        dot += y * static_cast<op_t>(a.grad[base + j]);
        if constexpr (kCache > 0) {
          cache[i] = y;
        } else {
          a.out[base + j] = static_cast<T>(y);
        }
      });
    }
    dot = group_sum(dot, kTpr);
    if (a.soft == nullptr && kCache > 0) {
#pragma unroll
      for (int i = 0; i < (kCache > 0 ? kCache : 1); ++i) {
        const int j = lane + i * kTpr;
        if (valid && j < K) {
          a.out[base + j] = static_cast<T>(softmax_grad(cache[i], static_cast<op_t>(a.grad[base + j]), dot, inv));
        }
      }
    } else {
      // the soft sample of each element was read or written by this same thread
      const T* y_src = a.soft != nullptr ? a.soft : a.out;
      for (int j = lane; valid && j < K; j += kTpr) {
        const op_t y = static_cast<op_t>(y_src[base + j]);
        a.out[base + j] = static_cast<T>(softmax_grad(y, static_cast<op_t>(a.grad[base + j]), dot, inv));
      }
    }
  }
}

// ---- categorical_kl_uniform -----------------------------------------------------------------

template <class T>
struct KlArgs {
  int64_t rows;
  int K;
  const T* logits;
  T* kl;                              // per row; null: reduce
  at::opmath_type<T>* partial;        // one partial sum per block when reducing
  const T* grad;                      // backward: per row; null: one value
  const T* grad_one;                  // backward: device pointer to that one value (times scale)
  double scale;
  T* grad_logits;
};

// Per row: max m, S = sum exp(l - m), H = sum q log q (0 log 0 = 0, -inf logits included).
template <int kTpr, class T>
__device__ __forceinline__ void row_entropy(const KlArgs<T>& a, int64_t base, int lane, bool valid,
                                            at::opmath_type<T>& m, at::opmath_type<T>& s, at::opmath_type<T>& h) {
  using op_t = at::opmath_type<T>;
  const int K = a.K;
  m = -INFINITY;
  for (int j = lane; valid && j < K; j += kTpr) m = ::max(m, static_cast<op_t>(a.logits[base + j]));
  m = group_max(m, kTpr);
  op_t sum = 0, sum_ed = 0;
  for (int j = lane; valid && j < K; j += kTpr) {
    const op_t d = static_cast<op_t>(a.logits[base + j]) - m;
    const op_t e = exp_of(d);
    sum += e;
    if (e > op_t(0)) sum_ed += e * d;
  }
  sum = group_sum(sum, kTpr);
  sum_ed = group_sum(sum_ed, kTpr);
  s = valid ? sum : op_t(1);
  h = sum_ed / s - log_of(s);
}

template <class T, int kTpr>
__global__ void __launch_bounds__(kThreads) kl_forward_kernel(const KlArgs<T> a) {
  using op_t = at::opmath_type<T>;
  constexpr int kRowsPerBlock = kThreads / kTpr;
  const int lane = threadIdx.x % kTpr;
  const op_t log_k = log_of(static_cast<op_t>(a.K));
  op_t total = 0;
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t row = first + threadIdx.x / kTpr;
    const bool valid = row < a.rows;
    op_t m, s, h;
    row_entropy<kTpr>(a, row * a.K, lane, valid, m, s, h);
    if (valid && lane == 0) {
      if (a.kl != nullptr) a.kl[row] = static_cast<T>(h + log_k);
      total += h + log_k;
    }
  }
  if (a.partial != nullptr) {
    total = block_sum<kThreads>(total);
    if (threadIdx.x == 0) a.partial[blockIdx.x] = total;
  }
}

template <class T, int kTpr>
__global__ void __launch_bounds__(kThreads) kl_backward_kernel(const KlArgs<T> a) {
  using op_t = at::opmath_type<T>;
  constexpr int kRowsPerBlock = kThreads / kTpr;
  const int lane = threadIdx.x % kTpr;
  const int K = a.K;
  // the single weight, as the CPU computes it: double(grad) * scale, then rounded
  const op_t w_one = a.grad == nullptr ? static_cast<op_t>(static_cast<double>(*a.grad_one) * a.scale) : op_t(0);
  for (int64_t first = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock; first < a.rows;
       first += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const int64_t row = first + threadIdx.x / kTpr;
    const bool valid = row < a.rows;
    const int64_t base = row * K;
    op_t m, s, h;
    row_entropy<kTpr>(a, base, lane, valid, m, s, h);
    if (!valid) continue;  // no shuffles below
    const op_t w = a.grad != nullptr ? static_cast<op_t>(a.grad[row]) : w_one;
    const op_t w_over_s = w / s;
    const op_t shift = log_of(s) + h;  // log q_j - H = d_j - log S - H
    for (int j = lane; j < K; j += kTpr) {
      const op_t d = static_cast<op_t>(a.logits[base + j]) - m;
      const op_t e = exp_of(d);
      a.grad_logits[base + j] = static_cast<T>(e > op_t(0) ? w_over_s * e * (d - shift) : op_t(0));
    }
  }
}

// ---- launch helpers --------------------------------------------------------------------------

// Calls f(std::integral_constant<int, kTpr>, std::integral_constant<int, kCache>) for K:
// K <= 128: 4 elements per lane on the fewest lanes; K <= 1024: a warp, 32 per lane in
// registers; longer rows: a warp, values recomputed per pass.
template <class F>
void dispatch_row_layout(int K, const F& f) {
  using std::integral_constant;
  if (K <= 4) f(integral_constant<int, 1>{}, integral_constant<int, 4>{});
  else if (K <= 8) f(integral_constant<int, 2>{}, integral_constant<int, 4>{});
  else if (K <= 16) f(integral_constant<int, 4>{}, integral_constant<int, 4>{});
  else if (K <= 32) f(integral_constant<int, 8>{}, integral_constant<int, 4>{});
  else if (K <= 64) f(integral_constant<int, 16>{}, integral_constant<int, 4>{});
  else if (K <= 128) f(integral_constant<int, 32>{}, integral_constant<int, 4>{});
  else if (K <= 1024) f(integral_constant<int, 32>{}, integral_constant<int, 32>{});
  else f(integral_constant<int, 32>{}, integral_constant<int, 0>{});
}

template <class F>
void dispatch_group(int K, const F& f) {
  using std::integral_constant;
  if (K <= 4) f(integral_constant<int, 1>{});
  else if (K <= 16) f(integral_constant<int, 4>{});
  else if (K <= 64) f(integral_constant<int, 16>{});
  else f(integral_constant<int, 32>{});
}

int64_t rows_of(const at::Tensor& t) {
  const int64_t k = t.size(-1);
  return k == 0 ? 0 : t.numel() / k;
}

int checked_cols(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.size(-1) <= std::numeric_limits<int>::max(), "gentk::", op, ": at most 2^31 - 1 categories, got ",
              t.size(-1));
  return static_cast<int>(t.size(-1));
}

template <class T>
double clamped_inv_tau(double tau) {
  using op_t = at::opmath_type<T>;
  return std::min<double>(1.0 / tau, static_cast<double>(std::numeric_limits<op_t>::max()));
}

int noise_of(const std::optional<at::Tensor>& gumbels, const std::optional<at::Tensor>& seed, at::Tensor* g,
             at::Tensor* s) {
  if (gumbels.has_value()) {
    *g = gumbels->contiguous();
    return kNoiseGiven;
  }
  if (seed.has_value()) {
    *s = seed->contiguous();
    return kNoisePhilox;
  }
  return kNoNoise;
}

// ---- host side of the ops ----------------------------------------------------------------------

at::Tensor gumbel_softmax_cuda(const at::Tensor& logits_in, const std::optional<at::Tensor>& gumbels,
                               const std::optional<at::Tensor>& seed, double tau, bool hard) {
  const char* op = "gumbel_softmax";
  check_logits(op, logits_in, at::kCUDA);
  check_gumbel_noise(op, "logits", logits_in, gumbels, seed);
  check_tau(op, tau);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  at::Tensor out = at::empty_like(logits);
  const int64_t rows = rows_of(logits);
  if (rows == 0) return out;
  const int K = checked_cols(op, logits);
  at::Tensor g, s;
  const int noise = noise_of(gumbels, seed, &g, &s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "gentk_gumbel_softmax_cuda", [&] {
    SoftmaxArgs<scalar_t> a{};
    a.rows = rows;
    a.K = K;
    a.logits = logits.const_data_ptr<scalar_t>();
    a.gumbels = g.defined() ? g.const_data_ptr<scalar_t>() : nullptr;
    a.seed = s.defined() ? s.const_data_ptr<int64_t>() : nullptr;
    a.noise = noise;
    a.inv_tau = clamped_inv_tau<scalar_t>(tau);
    a.hard = hard;
    a.out = out.mutable_data_ptr<scalar_t>();
    dispatch_row_layout(K, [&](auto tpr, auto cache) {
      constexpr int kTpr = decltype(tpr)::value;
      constexpr int kCache = decltype(cache)::value;
      gumbel_softmax_forward_kernel<scalar_t, kTpr, kCache>
          <<<grid_size(rows, kThreads / kTpr), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

at::Tensor gumbel_softmax_backward_cuda(const at::Tensor& grad_in, const std::optional<at::Tensor>& soft_in,
                                        const std::optional<at::Tensor>& logits_in,
                                        const std::optional<at::Tensor>& gumbels,
                                        const std::optional<at::Tensor>& seed, double tau) {
  const char* op = "gumbel_softmax_backward";
  check_gumbel_softmax_backward(op, grad_in, soft_in, logits_in, gumbels, seed, tau, at::kCUDA);
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous();
  const at::Tensor soft = soft_in.has_value() ? soft_in->contiguous() : at::Tensor();
  const at::Tensor logits = soft_in.has_value() ? at::Tensor() : logits_in->contiguous();
  at::Tensor out = at::empty_like(grad);
  const int64_t rows = rows_of(grad);
  if (rows == 0) return out;
  const int K = checked_cols(op, grad);
  at::Tensor g, s;
  const int noise = soft.defined() ? kNoNoise : noise_of(gumbels, seed, &g, &s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gentk_gumbel_softmax_backward_cuda",
                                  [&] {
    SoftmaxArgs<scalar_t> a{};
    a.rows = rows;
    a.K = K;
    a.grad = grad.const_data_ptr<scalar_t>();
    a.soft = soft.defined() ? soft.const_data_ptr<scalar_t>() : nullptr;
    a.logits = logits.defined() ? logits.const_data_ptr<scalar_t>() : nullptr;
    a.gumbels = g.defined() ? g.const_data_ptr<scalar_t>() : nullptr;
    a.seed = s.defined() ? s.const_data_ptr<int64_t>() : nullptr;
    a.noise = noise;
    a.inv_tau = clamped_inv_tau<scalar_t>(tau);
    a.out = out.mutable_data_ptr<scalar_t>();
    dispatch_row_layout(K, [&](auto tpr, auto cache) {
      constexpr int kTpr = decltype(tpr)::value;
      constexpr int kCache = decltype(cache)::value;
      gumbel_softmax_backward_kernel<scalar_t, kTpr, kCache>
          <<<grid_size(rows, kThreads / kTpr), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

at::Tensor categorical_kl_uniform_cuda(const at::Tensor& logits_in, bool reduce, double scale) {
  const char* op = "categorical_kl_uniform";
  check_logits(op, logits_in, at::kCUDA);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const auto row_shape = logits.sizes().slice(0, logits.dim() - 1);
  at::Tensor kl = reduce ? at::empty({}, logits.options()) : at::empty(row_shape, logits.options());
  const int64_t rows = rows_of(logits);
  if (rows == 0) {
    if (reduce) kl = at::scalar_tensor(0.0 * scale, logits.options());
    return kl;
  }
  const int K = checked_cols(op, logits);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "gentk_categorical_kl_cuda", [&] {
    using op_t = at::opmath_type<scalar_t>;
    dispatch_group(K, [&](auto tpr) {
      constexpr int kTpr = decltype(tpr)::value;
      const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
      const int blocks = grid_size(rows, kThreads / kTpr);
      KlArgs<scalar_t> a{};
      a.rows = rows;
      a.K = K;
      a.logits = logits.const_data_ptr<scalar_t>();
      at::Tensor partial;
      if (reduce) {
        partial = at::empty({blocks}, logits.options().dtype(c10::CppTypeToScalarType<op_t>::value));
        a.partial = partial.mutable_data_ptr<op_t>();
      } else {
        a.kl = kl.mutable_data_ptr<scalar_t>();
      }
      kl_forward_kernel<scalar_t, kTpr><<<blocks, kThreads, 0, stream>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (reduce) {
        sum_partials_kernel<kThreads, scalar_t, op_t><<<1, kThreads, 0, stream>>>(a.partial, blocks, scale,
                                                                       kl.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  });
  return kl;
}

at::Tensor categorical_kl_uniform_backward_cuda(const at::Tensor& grad_in, const at::Tensor& logits_in, double scale) {
  const char* op = "categorical_kl_uniform_backward";
  check_logits(op, logits_in, at::kCUDA);
  check_categorical_kl_grad(op, grad_in, logits_in);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const auto row_shape = logits.sizes().slice(0, logits.dim() - 1);
  at::Tensor grad_logits = at::empty_like(logits);
  const int64_t rows = rows_of(logits);
  if (rows == 0) return grad_logits;
  const int K = checked_cols(op, logits);
  const bool per_row = grad_in.sizes() == row_shape && logits.dim() > 1;
  const at::Tensor grad = grad_in.contiguous();  // read on the device, never the host
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "gentk_categorical_kl_bwd_cuda",
                                  [&] {
    dispatch_group(K, [&](auto tpr) {
      constexpr int kTpr = decltype(tpr)::value;
      KlArgs<scalar_t> a{};
      a.rows = rows;
      a.K = K;
      a.logits = logits.const_data_ptr<scalar_t>();
      a.grad = per_row ? grad.const_data_ptr<scalar_t>() : nullptr;
      a.grad_one = per_row ? nullptr : grad.const_data_ptr<scalar_t>();
      a.scale = scale;
      a.grad_logits = grad_logits.mutable_data_ptr<scalar_t>();
      kl_backward_kernel<scalar_t, kTpr>
          <<<grid_size(rows, kThreads / kTpr), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, CUDA, m) {
  m.impl("gumbel_softmax", &gumbel_softmax_cuda);
  m.impl("gumbel_softmax_backward", &gumbel_softmax_backward_cuda);
  m.impl("categorical_kl_uniform", &categorical_kl_uniform_cuda);
  m.impl("categorical_kl_uniform_backward", &categorical_kl_uniform_backward_cuda);
}

}  // namespace gentk
