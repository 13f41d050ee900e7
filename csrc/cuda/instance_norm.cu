// CUDA implementations of the instance-norm op family. The schemas and the CPU versions
// live in csrc/instance_norm.cpp; this file registers CUDA kernels for the same two ops
// with the same semantics (see that file for what each op computes).
//
// One block per (n, c) plane; the plane's elements sit at base + i * stride_hw with
// stride 1 (contiguous) or C (channels_last), so both layouts share the kernels (the
// channels-last reads are strided: correct, not yet tuned). Statistics are two passes
// (mean, then the centred sum of squares) with block reductions in the math type
// (float, or double for float64); backward recomputes xhat and the activation's mask
// from x and the per-plane (mean, var), as the CPU kernels do.
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "gentk/instance_norm.h"
#include "instance_norm_checks.h"

namespace gentk {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block; every thread gets the result. `shared` holds kWarps values.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // shared may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  A total = A(0);
  for (int w = 0; w < kWarps; ++w) total += shared[w];
  return total;
}

template <class T, class A>
struct ForwardArgs {
  const T* x;
  const A* weight;  // math type, or null
  const A* bias;
  const A* running_mean;  // C values (eval), or null: statistics of x
  const A* running_var;
  const T* residual;
  T* y;
  A* mean;  // N * C outputs
  A* var;
  int64_t C, HW, stride_n, stride_c, stride_hw;
  A eps, negative_slope;
};

template <class T, class A, int ACT>
__global__ void __launch_bounds__(kThreads) instance_norm_forward_kernel(const ForwardArgs<T, A> a) {
  __shared__ A shared[kWarps];
  const int64_t p = blockIdx.x;
  const int64_t c = p % a.C;
  const int64_t base = (p / a.C) * a.stride_n + c * a.stride_c;
  const int64_t HW = a.HW, step = a.stride_hw;
  A mean, var;
  if (a.running_mean != nullptr) {
    mean = a.running_mean[c];
    var = a.running_var[c];
  } else {
    A s = A(0);
    for (int64_t i = threadIdx.x; i < HW; i += kThreads) s += static_cast<A>(a.x[base + i * step]);
    mean = block_sum(s, shared) / A(HW);
    A q = A(0);
    for (int64_t i = threadIdx.x; i < HW; i += kThreads) {
      const A d = static_cast<A>(a.x[base + i * step]) - mean;
      q += d * d;
    }
    var = block_sum(q, shared) / A(HW);
    if (threadIdx.x == 0) {
      a.mean[p] = mean;
      a.var[p] = var;
    }
  }
  const A scale = (a.weight != nullptr ? a.weight[c] : A(1)) * inv_std(var, a.eps);
  const A shift = a.bias != nullptr ? a.bias[c] : A(0);
  for (int64_t i = threadIdx.x; i < HW; i += kThreads) {
    const int64_t o = base + i * step;
    A v = activate<A>((static_cast<A>(a.x[o]) - mean) * scale + shift, ACT, a.negative_slope);
    if (a.residual != nullptr) v += static_cast<A>(a.residual[o]);
    a.y[o] = static_cast<T>(v);
  }
}

template <class T, class A>
struct BackwardArgs {
  const T* grad_y;
  const T* x;
  const A* weight;
  const A* bias;
  const A* mean;  // N * C
  const A* var;
  T* grad_x;
  A* sum_g;  // N * C: sum of g, sum of g * xhat
  A* sum_gx;
  int64_t C, HW, stride_n, stride_c, stride_hw;
  A eps, negative_slope;
  bool input_stats;
};

template <class T, class A, int ACT>
__global__ void __launch_bounds__(kThreads) instance_norm_backward_kernel(const BackwardArgs<T, A> a) {
  __shared__ A shared[kWarps];
  const int64_t p = blockIdx.x;
  const int64_t c = p % a.C;
  const int64_t base = (p / a.C) * a.stride_n + c * a.stride_c;
  const int64_t HW = a.HW, step = a.stride_hw;
  const A mean = a.mean[p];
  const A rstd = inv_std(a.var[p], a.eps);
  const A w = a.weight != nullptr ? a.weight[c] : A(1);
  const A b = a.bias != nullptr ? a.bias[c] : A(0);
  A sg = A(0), sgx = A(0);
  for (int64_t i = threadIdx.x; i < HW; i += kThreads) {
    const int64_t o = base + i * step;
    const A xh = (static_cast<A>(a.x[o]) - mean) * rstd;
    const A g = activation_grad<A>(static_cast<A>(a.grad_y[o]), xh * w + b, ACT, a.negative_slope);
    sg += g;
    sgx += g * xh;
  }
  sg = block_sum(sg, shared);
  sgx = block_sum(sgx, shared);
  if (threadIdx.x == 0) {
    a.sum_g[p] = sg;
    a.sum_gx[p] = sgx;
  }
  // grad_x = w * rstd * (g - mean(g) - xhat * mean(g * xhat)), as on CPU
  const A k1 = w * rstd;
  const A k2 = a.input_stats ? -sg / A(HW) : A(0);
  const A k3 = a.input_stats ? -sgx / A(HW) : A(0);
  for (int64_t i = threadIdx.x; i < HW; i += kThreads) {
    const int64_t o = base + i * step;
    const A xh = (static_cast<A>(a.x[o]) - mean) * rstd;
    const A g = activation_grad<A>(static_cast<A>(a.grad_y[o]), xh * w + b, ACT, a.negative_slope);
    a.grad_x[o] = static_cast<T>(k1 * (g + k2 + k3 * xh));
  }
}


at::Tensor as_math(const std::optional<at::Tensor>& t, at::ScalarType math) {
  return t.has_value() ? t->to(math).contiguous() : at::Tensor();
}

template <class P>
const P* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<P>() : nullptr;
}

struct Layout {
  at::MemoryFormat format;
  int64_t N, C, HW, stride_n, stride_c, stride_hw;
};

Layout layout_of(const at::Tensor& x) {
  Layout l{};
  const bool cl = instance_norm_channels_last(x);
  l.format = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  l.N = x.size(0);
  l.C = x.size(1);
  l.HW = 1;
  for (int64_t d = 2; d < x.dim(); ++d) l.HW *= x.size(d);
  l.stride_n = l.C * l.HW;
  l.stride_c = cl ? 1 : l.HW;
  l.stride_hw = cl ? l.C : 1;
  return l;
}

template <class F>
void with_activation(int64_t activation, const F& f) {
  switch (activation) {
    case kActRelu: f(std::integral_constant<int, kActRelu>{}); break;
    case kActLeakyRelu: f(std::integral_constant<int, kActLeakyRelu>{}); break;
    default: f(std::integral_constant<int, kActNone>{}); break;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_cuda(
    const at::Tensor& x_in, const std::optional<at::Tensor>& weight_in, const std::optional<at::Tensor>& bias_in,
    const std::optional<at::Tensor>& running_mean_in, const std::optional<at::Tensor>& running_var_in, double eps,
    int64_t activation, double negative_slope, const std::optional<at::Tensor>& residual_in) {
  check_instance_norm_inputs("instance_norm", x_in, weight_in, bias_in, running_mean_in, running_var_in, "residual",
                             residual_in, activation, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const Layout l = layout_of(x_in);
  const at::ScalarType math = instance_norm_math_type(x_in);
  const at::Tensor x = x_in.contiguous(l.format);
  const at::Tensor weight = as_math(weight_in, math), bias = as_math(bias_in, math);
  const at::Tensor running_mean = as_math(running_mean_in, math), running_var = as_math(running_var_in, math);
  const at::Tensor residual = residual_in.has_value() ? residual_in->contiguous(l.format) : at::Tensor();
  at::Tensor y = at::empty_like(x, x.options().memory_format(l.format));
  at::Tensor mean = at::empty({l.N, l.C}, x.options().dtype(math).memory_format(at::MemoryFormat::Contiguous));
  at::Tensor var = at::empty_like(mean);
  const bool given = running_mean.defined();
  if (x.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gentk_instance_norm_cuda", [&] {
      using A = at::opmath_type<scalar_t>;
      ForwardArgs<scalar_t, A> a{};
      a.x = x.data_ptr<scalar_t>();
      a.weight = ptr_or_null<A>(weight);
      a.bias = ptr_or_null<A>(bias);
      a.running_mean = ptr_or_null<A>(running_mean);
      a.running_var = ptr_or_null<A>(running_var);
      a.residual = ptr_or_null<scalar_t>(residual);
      a.y = y.data_ptr<scalar_t>();
      a.mean = mean.data_ptr<A>();
      a.var = var.data_ptr<A>();
      a.C = l.C;
      a.HW = l.HW;
      a.stride_n = l.stride_n;
      a.stride_c = l.stride_c;
      a.stride_hw = l.stride_hw;
      a.eps = static_cast<A>(eps);
      a.negative_slope = static_cast<A>(negative_slope);
      const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
      with_activation(activation, [&](auto act) {
        instance_norm_forward_kernel<scalar_t, A, decltype(act)::value>
            <<<static_cast<unsigned>(l.N * l.C), kThreads, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  } else if (!given) {
    mean.fill_(std::numeric_limits<double>::quiet_NaN());
    var.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  if (given) {
    mean = running_mean.unsqueeze(0).expand({l.N, l.C}).contiguous();
    var = running_var.unsqueeze(0).expand({l.N, l.C}).contiguous();
  }
  return {y, mean, var};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_backward_cuda(
    const at::Tensor& grad_y_in, const at::Tensor& x_in, const std::optional<at::Tensor>& weight_in,
    const std::optional<at::Tensor>& bias_in, const at::Tensor& mean_in, const at::Tensor& var_in, double eps,
    bool input_stats, int64_t activation, double negative_slope) {
  check_instance_norm_inputs("instance_norm_backward", x_in, weight_in, bias_in, std::nullopt, std::nullopt,
                             "grad_y", grad_y_in, activation, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const Layout l = layout_of(x_in);
  check_instance_norm_stats("instance_norm_backward", mean_in, var_in, x_in);
  const at::ScalarType math = instance_norm_math_type(x_in);
  const at::Tensor x = x_in.contiguous(l.format);
  const at::Tensor grad_y = grad_y_in.contiguous(l.format);
  const at::Tensor weight = as_math(weight_in, math), bias = as_math(bias_in, math);
  const at::Tensor mean = mean_in.to(math).contiguous(), var = var_in.to(math).contiguous();
  at::Tensor grad_x = at::empty_like(x, x.options().memory_format(l.format));
  at::Tensor sum_g = at::zeros({l.N, l.C}, x.options().dtype(math).memory_format(at::MemoryFormat::Contiguous));
  at::Tensor sum_gx = at::zeros_like(sum_g);
  if (x.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gentk_instance_norm_backward_cuda",
                                    [&] {
      using A = at::opmath_type<scalar_t>;
      BackwardArgs<scalar_t, A> a{};
      a.grad_y = grad_y.data_ptr<scalar_t>();
      a.x = x.data_ptr<scalar_t>();
      a.weight = ptr_or_null<A>(weight);
      a.bias = ptr_or_null<A>(bias);
      a.mean = mean.data_ptr<A>();
      a.var = var.data_ptr<A>();
      a.grad_x = grad_x.data_ptr<scalar_t>();
      a.sum_g = sum_g.data_ptr<A>();
      a.sum_gx = sum_gx.data_ptr<A>();
      a.C = l.C;
      a.HW = l.HW;
      a.stride_n = l.stride_n;
      a.stride_c = l.stride_c;
      a.stride_hw = l.stride_hw;
      a.eps = static_cast<A>(eps);
      a.negative_slope = static_cast<A>(negative_slope);
      a.input_stats = input_stats;
      const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
      with_activation(activation, [&](auto act) {
        instance_norm_backward_kernel<scalar_t, A, decltype(act)::value>
            <<<static_cast<unsigned>(l.N * l.C), kThreads, 0, stream>>>(a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  const at::ScalarType param_type = weight_in.has_value() ? weight_in->scalar_type() : x_in.scalar_type();
  return {grad_x, sum_gx.sum(0).to(param_type), sum_g.sum(0).to(param_type)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, CUDA, m) {
  m.impl("instance_norm", &instance_norm_cuda);
  m.impl("instance_norm_backward", &instance_norm_backward_cuda);
}

}  // namespace gentk
