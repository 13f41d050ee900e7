// CUDA implementations of the loss family. The schemas and the CPU versions live in
// csrc/losses.cpp; this file registers CUDA kernels for the same twelve ops with the same
// semantics (see that file and csrc/include/gentk/losses.h for what each computes).
//
// Elementwise losses: a grid-stride loop computes each term in the op math type (float
// for half / bfloat16 / float, double for double); reduced losses write one partial sum
// per block and a one-block kernel adds them in a fixed order (deterministic) and scales
// them. Upstream gradients of reduced losses are read from device memory, so nothing
// synchronizes with the host. The gradient penalty reduces one row per block.
// Out-of-range BCE targets are checked by gentk.functional (a host check would sync).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/launch.cuh"

#include "gentk/losses.h"
#include "losses_checks.h"

namespace gentk {
namespace {

constexpr int kThreads = 256;

// Math policy of gentk/losses.h for float and double.
struct CudaMath {
  static __device__ __forceinline__ float exp(float x) { return ::expf(x); }
  static __device__ __forceinline__ double exp(double x) { return ::exp(x); }
  static __device__ __forceinline__ float log1p(float e, float, float) { return ::log1pf(e); }
  static __device__ __forceinline__ double log1p(double e, double, double) { return ::log1p(e); }
  template <class T>
  static __device__ __forceinline__ T recip(T u) { return T(1) / u; }
  static __device__ __forceinline__ float abs(float x) { return ::fabsf(x); }
  static __device__ __forceinline__ double abs(double x) { return ::fabs(x); }
  template <class T>
  static __device__ __forceinline__ T max0(T x) { return x > T(0) ? x : T(0); }
  template <class T>
  static __device__ __forceinline__ T select(T c, T a, T b) { return c >= T(0) ? a : b; }
  template <class T>
  static __device__ __forceinline__ T step(T x) { return x > T(0) ? T(1) : T(0); }
};

// ---- elementwise terms --------------------------------------------------------------------

template <class T>
struct TermArgs {
  int64_t n;
  const T* x;
  const T* target;         // null: param
  double param;
  T* loss;                 // per-element loss times loss_scale; null: none
  double loss_scale;
  bool accumulate;
  at::opmath_type<T>* partial;  // one partial sum per block; null: none
  const T* grad_out;       // per-element upstream gradient; null: none
  const T* grad_scalar;    // device scalar upstream gradient (times grad_scale); null: none
  double grad_scale;
  T* grad;                 // null: none
};

template <int K, class T>
__global__ void __launch_bounds__(kThreads) loss_term_kernel(const TermArgs<T> a) {
  using op_t = at::opmath_type<T>;
  const op_t label = static_cast<op_t>(a.param);
  const op_t loss_scale = static_cast<op_t>(a.loss_scale);
  // the one upstream value, as the CPU forms it: double(grad) * scale, rounded once
  const op_t grad_scale = static_cast<op_t>(
      a.grad_scalar != nullptr ? static_cast<double>(*a.grad_scalar) * a.grad_scale : a.grad_scale);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  op_t sum = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += step) {
    const op_t x = static_cast<op_t>(a.x[i]);
    const op_t y = a.target != nullptr ? static_cast<op_t>(a.target[i]) : label;
    op_t l, g;
    loss_term<K, CudaMath>(x, y, l, g);
    sum += l;
    if (a.loss != nullptr) {
      const op_t prev = a.accumulate ? static_cast<op_t>(a.loss[i]) : op_t(0);
      a.loss[i] = static_cast<T>(prev + l * loss_scale);
    }
    if (a.grad != nullptr) {
      op_t gv = g * grad_scale;
      if (a.grad_out != nullptr) gv = gv * static_cast<op_t>(a.grad_out[i]);
      a.grad[i] = static_cast<T>(gv);
    }
  }
  if (a.partial != nullptr) {
    sum = block_sum<kThreads>(sum);
    if (threadIdx.x == 0) a.partial[blockIdx.x] = sum;
  }
}

// out = scale1 * sum(partial[0:count1]) + scale2 * sum(partial[count1:count1+count2]).
template <class T, class A>
__global__ void __launch_bounds__(kThreads) finalize_kernel(const A* partial, int count1, double scale1,
                                                            int count2, double scale2, T* out) {
  double s1 = 0, s2 = 0;
  for (int i = threadIdx.x; i < count1; i += blockDim.x) s1 += static_cast<double>(partial[i]);
  for (int i = threadIdx.x; i < count2; i += blockDim.x) s2 += static_cast<double>(partial[count1 + i]);
  s1 = block_sum<kThreads>(s1);
  __syncthreads();
  s2 = block_sum<kThreads>(s2);
  if (threadIdx.x == 0) *out = static_cast<T>((count1 ? s1 * scale1 : 0.0) + (count2 ? s2 * scale2 : 0.0));
}

template <class F>
void dispatch_kind(int kind, const F& f) {
  switch (kind) {
    case kBce: return f(std::integral_constant<int, kBce>{});
    case kSquare: return f(std::integral_constant<int, kSquare>{});
    case kLinear: return f(std::integral_constant<int, kLinear>{});
    case kHinge: return f(std::integral_constant<int, kHinge>{});
    default: return f(std::integral_constant<int, kAbs>{});
  }
}

struct Term {
  const at::Tensor* x;
  TermSpec spec;
  const at::Tensor* target;
  double scale;   // reduction scale of the sum
};

// Reduced loss of up to two terms (discriminator: real and fake), as a 0-d tensor.
at::Tensor reduced_loss(const Term* terms, int count, double extra_scale) {
  const at::Tensor& ref = *terms[0].x;
  at::Tensor out = at::empty({}, ref.options());
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ref.scalar_type(), "gentk_reduced_loss", [&] {
    using op_t = at::opmath_type<scalar_t>;
    int blocks[2] = {0, 0};
    for (int t = 0; t < count; ++t) {
      blocks[t] = terms[t].x->numel() > 0 ? grid_size(terms[t].x->numel(), kThreads) : 0;
    }
    at::Tensor partial = at::empty({std::max(1, blocks[0] + blocks[1])},
                                   ref.options().dtype(c10::CppTypeToScalarType<op_t>::value));
    int offset = 0;
    for (int t = 0; t < count; ++t) {
      if (blocks[t] == 0) continue;
      TermArgs<scalar_t> a{};
      a.n = terms[t].x->numel();
      a.x = terms[t].x->data_ptr<scalar_t>();
      a.target = terms[t].target != nullptr ? terms[t].target->data_ptr<scalar_t>() : nullptr;
      a.param = terms[t].spec.param;
      a.partial = partial.data_ptr<op_t>() + offset;
      a.grad_scale = 1.0;
      dispatch_kind(terms[t].spec.kind, [&](auto k) {
        loss_term_kernel<decltype(k)::value, scalar_t><<<blocks[t], kThreads, 0, stream>>>(a);
      });
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      offset += blocks[t];
    }
    // an empty term under 'mean' is NaN, as on CPU
    const double s1 = (terms[0].x->numel() > 0 ? terms[0].scale : (terms[0].scale == 1.0 ? 0.0 : NAN));
    double s2 = 0.0;
    if (count > 1) s2 = terms[1].x->numel() > 0 ? terms[1].scale : (terms[1].scale == 1.0 ? 0.0 : NAN);
    finalize_kernel<scalar_t, op_t><<<1, kThreads, 0, stream>>>(
        partial.data_ptr<op_t>(), blocks[0], s1 * extra_scale, blocks[1], s2 * extra_scale,
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (std::isnan(s1) || std::isnan(s2)) out.fill_(NAN);
  });
  return out;
}

// Per-element loss (reduction none) of one term, written or added into out.
void elementwise_loss(const at::Tensor& x, TermSpec spec, const at::Tensor* target, at::Tensor& out,
                      bool accumulate, double loss_scale) {
  if (x.numel() == 0) return;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gentk_elementwise_loss", [&] {
    TermArgs<scalar_t> a{};
    a.n = x.numel();
    a.x = x.data_ptr<scalar_t>();
    a.target = target != nullptr ? target->data_ptr<scalar_t>() : nullptr;
    a.param = spec.param;
    a.loss = out.data_ptr<scalar_t>();
    a.loss_scale = loss_scale;
    a.accumulate = accumulate;
    a.grad_scale = 1.0;
    dispatch_kind(spec.kind, [&](auto k) {
      loss_term_kernel<decltype(k)::value, scalar_t><<<grid_size(a.n, kThreads), kThreads, 0, stream>>>(a);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor term_grad(const at::Tensor& grad_in, const at::Tensor& x, TermSpec spec, const at::Tensor* target,
                     int reduction, double scale) {
  at::Tensor out = at::empty_like(x);
  if (x.numel() == 0) return out;
  const at::Tensor grad = grad_in.to(x.scalar_type()).contiguous();
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gentk_term_grad", [&] {
    TermArgs<scalar_t> a{};
    a.n = x.numel();
    a.x = x.data_ptr<scalar_t>();
    a.target = target != nullptr ? target->data_ptr<scalar_t>() : nullptr;
    a.param = spec.param;
    a.grad_scale = scale;
    if (reduction == 0) a.grad_out = grad.data_ptr<scalar_t>();
    else a.grad_scalar = grad.data_ptr<scalar_t>();
    a.grad = out.data_ptr<scalar_t>();
    dispatch_kind(spec.kind, [&](auto k) {
      loss_term_kernel<decltype(k)::value, scalar_t><<<grid_size(a.n, kThreads), kThreads, 0, stream>>>(a);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// ---- ops ----------------------------------------------------------------------------------

at::Tensor discriminator_loss_cuda(const at::Tensor& real_in, const at::Tensor& fake_in, std::string mode,
                                   double real_label, double fake_label, std::string reduction) {
  const char* op = "discriminator_loss";
  check_logits(op, "real_logits", real_in, at::kCUDA);
  check_like(op, "fake_logits", fake_in, "real_logits", real_in, false);
  const AdversarialSpec spec = discriminator_spec(op, mode, real_label, fake_label);
  const int red = reduction_code(op, reduction, false);
  check_pairing(op, real_in, fake_in, red);
  const c10::cuda::CUDAGuard guard(real_in.device());
  const at::Tensor real = real_in.contiguous(), fake = fake_in.contiguous();
  if (red == 0) {
    at::Tensor out = at::empty_like(real);
    elementwise_loss(real, spec.real, nullptr, out, false, 1.0);
    elementwise_loss(fake, spec.fake, nullptr, out, true, 1.0);
    return out;
  }
  const Term terms[2] = {{&real, spec.real, nullptr, reduction_scale(red, real)},
                         {&fake, spec.fake, nullptr, reduction_scale(red, fake)}};
  return reduced_loss(terms, 2, 1.0);
}

std::tuple<at::Tensor, at::Tensor> discriminator_loss_backward_cuda(const at::Tensor& grad,
                                                                    const at::Tensor& real_in,
                                                                    const at::Tensor& fake_in, std::string mode,
                                                                    double real_label, double fake_label,
                                                                    std::string reduction) {
  const char* op = "discriminator_loss_backward";
  check_logits(op, "real_logits", real_in, at::kCUDA);
  check_like(op, "fake_logits", fake_in, "real_logits", real_in, false);
  const AdversarialSpec spec = discriminator_spec(op, mode, real_label, fake_label);
  const int red = reduction_code(op, reduction, false);
  check_pairing(op, real_in, fake_in, red);
  check_grad(op, "grad", grad, "real_logits", real_in, real_in.sizes(), red == 0);
  const c10::cuda::CUDAGuard guard(real_in.device());
  const at::Tensor real = real_in.contiguous(), fake = fake_in.contiguous();
  return {term_grad(grad, real, spec.real, nullptr, red, reduction_scale(red, real)),
          term_grad(grad, fake, spec.fake, nullptr, red, reduction_scale(red, fake))};
}

at::Tensor generator_loss_cuda(const at::Tensor& fake_in, std::string mode, std::string reduction) {
  const char* op = "generator_loss";
  check_logits(op, "fake_logits", fake_in, at::kCUDA);
  const TermSpec spec = generator_spec(op, mode);
  const int red = reduction_code(op, reduction, false);
  const c10::cuda::CUDAGuard guard(fake_in.device());
  const at::Tensor fake = fake_in.contiguous();
  if (red == 0) {
    at::Tensor out = at::empty_like(fake);
    elementwise_loss(fake, spec, nullptr, out, false, 1.0);
    return out;
  }
  const Term terms[1] = {{&fake, spec, nullptr, reduction_scale(red, fake)}};
  return reduced_loss(terms, 1, 1.0);
}

at::Tensor generator_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& fake_in, std::string mode,
                                        std::string reduction) {
  const char* op = "generator_loss_backward";
  check_logits(op, "fake_logits", fake_in, at::kCUDA);
  const TermSpec spec = generator_spec(op, mode);
  const int red = reduction_code(op, reduction, false);
  check_grad(op, "grad", grad, "fake_logits", fake_in, fake_in.sizes(), red == 0);
  const c10::cuda::CUDAGuard guard(fake_in.device());
  const at::Tensor fake = fake_in.contiguous();
  return term_grad(grad, fake, spec, nullptr, red, reduction_scale(red, fake));
}

at::Tensor target_loss_cuda(const char* op, const at::Tensor& x_in, const at::Tensor& target_in, int kind,
                            double weight, int red) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), target = target_in.contiguous();
  if (red == 0) {
    at::Tensor out = at::empty_like(x);
    elementwise_loss(x, {kind, 0.0}, &target, out, false, weight);
    return out;
  }
  const Term terms[1] = {{&x, {kind, 0.0}, &target, reduction_scale(red, x)}};
  return reduced_loss(terms, 1, weight);
}

at::Tensor bernoulli_recon_cuda(const at::Tensor& logits, const at::Tensor& target, std::string reduction) {
  const char* op = "bernoulli_recon";
  check_logits(op, "logits", logits, at::kCUDA);
  check_like(op, "target", target, "logits", logits, true);
  const int red = reduction_code(op, reduction, true);
  if (red == 3) check_batched(op, "logits", logits);
  return target_loss_cuda(op, logits, target, kBce, 1.0, red);
}

at::Tensor bernoulli_recon_backward_cuda(const at::Tensor& grad, const at::Tensor& logits,
                                         const at::Tensor& target_in, std::string reduction) {
  const char* op = "bernoulli_recon_backward";
  check_logits(op, "logits", logits, at::kCUDA);
  check_like(op, "target", target_in, "logits", logits, true);
  const int red = reduction_code(op, reduction, true);
  check_grad(op, "grad", grad, "logits", logits, logits.sizes(), red == 0);
  const c10::cuda::CUDAGuard guard(logits.device());
  const at::Tensor x = logits.contiguous(), target = target_in.contiguous();
  return term_grad(grad, x, {kBce, 0.0}, &target, red, reduction_scale(red, x));
}

at::Tensor l1_loss_cuda(const at::Tensor& input, const at::Tensor& target, double weight, std::string reduction) {
  const char* op = "l1_loss";
  check_logits(op, "input", input, at::kCUDA);
  check_like(op, "target", target, "input", input, true);
  const int red = reduction_code(op, reduction, false);
  return target_loss_cuda(op, input, target, kAbs, weight, red);
}

at::Tensor l1_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& target_in,
                                 double weight, std::string reduction) {
  const char* op = "l1_loss_backward";
  check_logits(op, "input", input, at::kCUDA);
  check_like(op, "target", target_in, "input", input, true);
  const int red = reduction_code(op, reduction, false);
  check_grad(op, "grad", grad, "input", input, input.sizes(), red == 0);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), target = target_in.contiguous();
  return term_grad(grad, x, {kAbs, 0.0}, &target, red, weight * reduction_scale(red, x));
}

// ---- gradient penalty ----------------------------------------------------------------------

// forward: out = fake + alpha_r (real - fake); backward: out = alpha_r g, out2 = (1 - alpha_r) g.
template <class T, bool kBackward>
__global__ void __launch_bounds__(kThreads) interpolate_kernel(const T* a, const T* b, const int64_t* seed_ptr,
                                                               T* out, T* out2, int64_t rows, int64_t cols) {
  using op_t = at::opmath_type<T>;
  const uint64_t seed = static_cast<uint64_t>(seed_ptr[0]);
  const uint64_t stream = static_cast<uint64_t>(seed_ptr[1]);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const op_t alpha = static_cast<op_t>(gp_alpha(static_cast<uint64_t>(r), seed, stream));
    for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const int64_t i = r * cols + c;
      const op_t v = static_cast<op_t>(a[i]);
      if constexpr (kBackward) {
        out[i] = static_cast<T>(alpha * v);
        out2[i] = static_cast<T>((op_t(1) - alpha) * v);
      } else {
        const op_t f = static_cast<op_t>(b[i]);
        out[i] = static_cast<T>(f + alpha * (v - f));
      }
    }
  }
}

dim3 row_grid(int64_t rows, int64_t cols) {
  const int col_blocks = static_cast<int>(std::min<int64_t>((cols + kThreads - 1) / kThreads, 1024));
  return dim3(std::max(1, col_blocks), static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 65535)));
}

// One block per row (grid-stride over rows): sums of squares in double.
template <class T>
__global__ void __launch_bounds__(kThreads) row_sumsq_kernel(const T* x, int64_t rows, int64_t cols, double* out) {
  using op_t = at::opmath_type<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    op_t s = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const op_t v = static_cast<op_t>(x[r * cols + c]);
      s += v * v;
    }
    const double total = block_sum<kThreads>(static_cast<double>(s));
    if (threadIdx.x == 0) out[r] = total;
    __syncthreads();
  }
}

// mean over rows of (sqrt(s_r) - target)^2, or of s_r (r1).
template <class T>
__global__ void __launch_bounds__(kThreads) penalty_finalize_kernel(const double* sumsq, int64_t rows, double target,
                                                                    bool r1, T* out) {
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const double d = r1 ? sumsq[r] : (::sqrt(sumsq[r]) - target) * (::sqrt(sumsq[r]) - target);
    s += d;
  }
  s = block_sum<kThreads>(s);
  if (threadIdx.x == 0) *out = static_cast<T>(rows > 0 ? s / static_cast<double>(rows) : NAN);
}

// out_r = c_r g_r, c_r = 2 w (1 - target / ||g_r||) / N (0 where g_r = 0), or 2 w / N (r1).
template <class T>
__global__ void __launch_bounds__(kThreads) penalty_backward_kernel(const T* grad, const T* g, const double* sumsq,
                                                                    int64_t rows, int64_t cols, double target,
                                                                    bool r1, T* out) {
  using op_t = at::opmath_type<T>;
  const double w = 2.0 * static_cast<double>(*grad) / static_cast<double>(rows);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    double c = w;
    if (!r1) {
      const double n = ::sqrt(sumsq[r]);
      c = n > 0 ? w * (1.0 - target / n) : 0.0;
    }
    const op_t k = static_cast<op_t>(c);
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      out[r * cols + j] = static_cast<T>(k * static_cast<op_t>(g[r * cols + j]));
    }
  }
}

std::pair<int64_t, int64_t> rows_cols(const at::Tensor& x) {
  const int64_t rows = x.size(0);
  return {rows, rows > 0 ? x.numel() / rows : 0};
}

at::Tensor gp_interpolate_cuda(const at::Tensor& real_in, const at::Tensor& fake_in, const at::Tensor& seed_in) {
  const char* op = "gp_interpolate";
  check_logits(op, "real", real_in, at::kCUDA);
  check_like(op, "fake", fake_in, "real", real_in, true);
  check_batched(op, "real", real_in);
  check_seed(op, seed_in, "real", real_in);
  const c10::cuda::CUDAGuard guard(real_in.device());
  const at::Tensor real = real_in.contiguous(), fake = fake_in.contiguous(), seed = seed_in.contiguous();
  at::Tensor out = at::empty_like(real);
  const auto [rows, cols] = rows_cols(real);
  if (rows == 0 || cols == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, real.scalar_type(), "gentk_gp_interpolate", [&] {
    interpolate_kernel<scalar_t, false><<<row_grid(rows, cols), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        real.data_ptr<scalar_t>(), fake.data_ptr<scalar_t>(), seed.data_ptr<int64_t>(), out.data_ptr<scalar_t>(),
        nullptr, rows, cols);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gp_interpolate_backward_cuda(const at::Tensor& grad_in, const at::Tensor& seed_in) {
  const char* op = "gp_interpolate_backward";
  check_logits(op, "grad", grad_in, at::kCUDA);
  check_batched(op, "grad", grad_in);
  check_seed(op, seed_in, "grad", grad_in);
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous(), seed = seed_in.contiguous();
  at::Tensor grad_real = at::empty_like(grad), grad_fake = at::empty_like(grad);
  const auto [rows, cols] = rows_cols(grad);
  if (rows == 0 || cols == 0) return {grad_real, grad_fake};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gentk_gp_interpolate_bwd", [&] {
    interpolate_kernel<scalar_t, true><<<row_grid(rows, cols), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad.data_ptr<scalar_t>(), nullptr, seed.data_ptr<int64_t>(), grad_real.data_ptr<scalar_t>(),
        grad_fake.data_ptr<scalar_t>(), rows, cols);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_real, grad_fake};
}

at::Tensor row_sumsq(const at::Tensor& grads, int64_t rows, int64_t cols) {
  at::Tensor sumsq = at::empty({std::max<int64_t>(rows, 1)}, grads.options().dtype(at::kDouble));
  if (rows == 0) return sumsq;
  if (cols == 0) return sumsq.zero_();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "gentk_row_sumsq", [&] {
    const int blocks = static_cast<int>(std::min<int64_t>(rows, 65535));
    row_sumsq_kernel<scalar_t><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grads.data_ptr<scalar_t>(), rows, cols, sumsq.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return sumsq;
}

at::Tensor grad_norm_penalty_cuda(const at::Tensor& grads_in, double target, bool r1) {
  const char* op = "grad_norm_penalty";
  check_logits(op, "grads", grads_in, at::kCUDA);
  check_batched(op, "grads", grads_in);
  const c10::cuda::CUDAGuard guard(grads_in.device());
  const at::Tensor grads = grads_in.contiguous();
  const auto [rows, cols] = rows_cols(grads);
  const at::Tensor sumsq = row_sumsq(grads, rows, cols);
  at::Tensor out = at::empty({}, grads.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "gentk_grad_norm_penalty", [&] {
    penalty_finalize_kernel<scalar_t><<<1, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        sumsq.data_ptr<double>(), rows, target, r1, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor grad_norm_penalty_backward_cuda(const at::Tensor& grad_in, const at::Tensor& grads_in, double target,
                                           bool r1) {
  const char* op = "grad_norm_penalty_backward";
  check_logits(op, "grads", grads_in, at::kCUDA);
  check_batched(op, "grads", grads_in);
  check_grad(op, "grad", grad_in, "grads", grads_in, grads_in.sizes(), false);
  const c10::cuda::CUDAGuard guard(grads_in.device());
  const at::Tensor grads = grads_in.contiguous();
  const at::Tensor grad = grad_in.to(grads.scalar_type()).contiguous();
  at::Tensor out = at::empty_like(grads);
  const auto [rows, cols] = rows_cols(grads);
  if (rows == 0 || cols == 0) return out;
  const at::Tensor sumsq = r1 ? at::Tensor() : row_sumsq(grads, rows, cols);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "gentk_penalty_backward", [&] {
    penalty_backward_kernel<scalar_t><<<row_grid(rows, cols), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad.data_ptr<scalar_t>(), grads.data_ptr<scalar_t>(), r1 ? nullptr : sumsq.data_ptr<double>(), rows,
        cols, target, r1, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, CUDA, m) {
  m.impl("discriminator_loss", &discriminator_loss_cuda);
  m.impl("discriminator_loss_backward", &discriminator_loss_backward_cuda);
  m.impl("generator_loss", &generator_loss_cuda);
  m.impl("generator_loss_backward", &generator_loss_backward_cuda);
  m.impl("bernoulli_recon", &bernoulli_recon_cuda);
  m.impl("bernoulli_recon_backward", &bernoulli_recon_backward_cuda);
  m.impl("l1_loss", &l1_loss_cuda);
  m.impl("l1_loss_backward", &l1_loss_backward_cuda);
  m.impl("gp_interpolate", &gp_interpolate_cuda);
  m.impl("gp_interpolate_backward", &gp_interpolate_backward_cuda);
  m.impl("grad_norm_penalty", &grad_norm_penalty_cuda);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward_cuda);
}

}  // namespace gentk
