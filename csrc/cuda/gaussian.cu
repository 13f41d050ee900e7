// CUDA implementations of the Gaussian op family. The schemas and the CPU versions live
// in csrc/gaussian.cpp; this file registers CUDA kernels for the same six ops with the
// same semantics (see that file for what each op computes).
//
// Work is split in "units" of four elements; one thread handles one unit per step of a
// grid-stride loop. Two unit layouts:
//  - strided: unit u is Philox counter u, and its elements are g*64 + j*16 + k (g = u/16,
//    k = u%16, j = 0..3), the noise layout of gentk/philox.h. One Philox call feeds the four
//    elements, so no normal is computed twice; stores coalesce per half-warp.
//  - packed: unit u holds elements 4u .. 4u+3, loaded and stored as one aligned vector.
//    Used when no noise is drawn in-kernel and every pointer is aligned to four elements.
// The (seed, stream) pair is read from device memory inside the kernel and a reduced KL is
// summed on the device (per-block partial sums, then one small block adds them in a fixed
// order), so nothing synchronizes with the host and the ops can be captured in CUDA graphs.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>

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

#include "gaussian_checks.h"
#include "gentk/gaussian.h"
#include "cuda/launch.cuh"
#include "gentk/philox.h"

namespace gentk {
namespace {

constexpr int kThreads = 256;
constexpr int kUnit = 4;          // elements per thread per loop step

// Where a unit's noise comes from, which is also whether a sample is involved at all.
enum NoiseSource : int { kNoNoise = 0, kNoiseFromEps = 1, kNoiseFromPhilox = 2 };

// ---- device math ----------------------------------------------------------------------

// Math policy of box_muller (gentk/philox.h) for float and double.
struct CudaMath {
  static __host__ __device__ __forceinline__ float log(float x) { return ::logf(x); }
  static __host__ __device__ __forceinline__ float sqrt(float x) { return ::sqrtf(x); }
  static __host__ __device__ __forceinline__ void sincos(float x, float& s, float& c) { ::sincosf(x, &s, &c); }
  static __host__ __device__ __forceinline__ double log(double x) { return ::log(x); }
  static __host__ __device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
  static __host__ __device__ __forceinline__ void sincos(double x, double& s, double& c) { ::sincos(x, &s, &c); }
};

__host__ __device__ __forceinline__ float std_from_logvar(float lv) { return ::expf(lv * 0.5f); }
__host__ __device__ __forceinline__ double std_from_logvar(double lv) { return ::exp(lv * 0.5); }

// The four standard normals of Philox counter `counter`, in output slots 0..3.
template <class op_t>
__host__ __device__ __forceinline__ void philox_normals(uint64_t counter, uint64_t seed, uint64_t stream,
                                                        op_t e[kUnit]) {
  const Philox4 r = philox_at(counter, seed, stream);
  box_muller<CudaMath>(static_cast<op_t>(uniform_open_closed(r.x[0])),
                       static_cast<op_t>(uniform_closed_open(r.x[1])), e[0], e[1]);
  box_muller<CudaMath>(static_cast<op_t>(uniform_open_closed(r.x[2])),
                       static_cast<op_t>(uniform_closed_open(r.x[3])), e[2], e[3]);
}

// ---- unit layouts, loads and stores -----------------------------------------------------

template <bool kPacked>
struct Layout {
  static __host__ __device__ __forceinline__ int64_t units(int64_t n) {
    return kPacked ? (n + kUnit - 1) / kUnit : (n + kNoiseGroup - 1) / kNoiseGroup * kNoiseLanes;
  }
  static __host__ __device__ __forceinline__ int64_t index(int64_t u, int j) {
    return kPacked ? u * kUnit + j : (u >> 4) * kNoiseGroup + j * kNoiseLanes + (u & 15);
  }
};

template <class T>
struct alignas(kUnit * sizeof(T)) Packed {
  T v[kUnit];
};

template <bool kPacked, class T, class op_t>
__host__ __device__ __forceinline__ void load_unit(const T* p, int64_t u, int64_t n, bool full, op_t out[kUnit]) {
  if (kPacked && full) {
    const Packed<T> x = *reinterpret_cast<const Packed<T>*>(p + u * kUnit);
#pragma unroll
    for (int j = 0; j < kUnit; ++j) out[j] = static_cast<op_t>(x.v[j]);
  } else {
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      const int64_t i = Layout<kPacked>::index(u, j);
      out[j] = i < n ? static_cast<op_t>(p[i]) : op_t(0);
    }
  }
}

template <bool kPacked, class T, class op_t>
__host__ __device__ __forceinline__ void store_unit(T* p, int64_t u, int64_t n, bool full, const op_t in[kUnit]) {
  if (kPacked && full) {
    Packed<T> x;
#pragma unroll
    for (int j = 0; j < kUnit; ++j) x.v[j] = static_cast<T>(in[j]);
    *reinterpret_cast<Packed<T>*>(p + u * kUnit) = x;
  } else {
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      const int64_t i = Layout<kPacked>::index(u, j);
      if (i < n) p[i] = static_cast<T>(in[j]);
    }
  }
}

template <class T>
bool is_packable(const T* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % (kUnit * sizeof(T)) == 0;
}

// ---- forward: z = mu + eps * std, KL per element or summed --------------------------------

template <class T>
struct ForwardArgs {
  int64_t n;
  const T* mu;
  const T* logvar;
  const T* eps;             // kNoiseFromEps
  const int64_t* seed;      // kNoiseFromPhilox: device int64[2] = (seed, stream)
  T* z;                     // set iff the noise source is not kNoNoise
  T* kl;                    // per-element KL; null: none
  at::opmath_type<T>* kl_partial;  // one partial KL sum per block; null: none
};

// One unit of the forward pass; returns the unit's KL sum (0 when no KL is wanted).
template <int kNoise, bool kPacked, class T>
__host__ __device__ __forceinline__ at::opmath_type<T> forward_unit(const ForwardArgs<T>& a, int64_t u,
                                                                    uint64_t seed, uint64_t stream) {
  using op_t = at::opmath_type<T>;
  const int64_t n = a.n;
  const bool full = Layout<kPacked>::index(u, kUnit - 1) < n;
  op_t m[kUnit], lv[kUnit], sd[kUnit];
  load_unit<kPacked>(a.mu, u, n, full, m);
  load_unit<kPacked>(a.logvar, u, n, full, lv);
#pragma unroll
  for (int j = 0; j < kUnit; ++j) sd[j] = std_from_logvar(lv[j]);
  if constexpr (kNoise != kNoNoise) {
    op_t e[kUnit], z[kUnit];
    if constexpr (kNoise == kNoiseFromPhilox) {
      philox_normals(static_cast<uint64_t>(u), seed, stream, e);
    } else {
      load_unit<kPacked>(a.eps, u, n, full, e);
    }
#pragma unroll
    for (int j = 0; j < kUnit; ++j) z[j] = reparam_z(m[j], e[j], sd[j]);
    store_unit<kPacked>(a.z, u, n, full, z);
  }
  op_t sum = 0;
  if (a.kl != nullptr || a.kl_partial != nullptr) {
    op_t k[kUnit];
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      k[j] = kl_term(m[j], lv[j], sd[j]);
      if (full || Layout<kPacked>::index(u, j) < n) sum += k[j];
    }
    if (a.kl != nullptr) store_unit<kPacked>(a.kl, u, n, full, k);
  }
  return sum;
}

template <class T, int kNoise, bool kPacked>
__global__ void __launch_bounds__(kThreads) gaussian_forward_kernel(const ForwardArgs<T> a) {
  uint64_t seed = 0, stream = 0;
  if constexpr (kNoise == kNoiseFromPhilox) {
    seed = static_cast<uint64_t>(a.seed[0]);
    stream = static_cast<uint64_t>(a.seed[1]);
  }
  const int64_t units = Layout<kPacked>::units(a.n);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  at::opmath_type<T> sum = 0;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units; u += step) {
    // In the strided layout, counters of the last group may lie wholly past the end.
    if (Layout<kPacked>::index(u, 0) >= a.n) continue;
    sum += forward_unit<kNoise, kPacked>(a, u, seed, stream);
  }
  if (a.kl_partial != nullptr) {
    sum = block_sum<kThreads>(sum);
    if (threadIdx.x == 0) a.kl_partial[blockIdx.x] = sum;
  }
}

// ---- backward ---------------------------------------------------------------------------

template <class T>
struct BackwardArgs {
  int64_t n;
  const T* mu;              // needed when grad_mu is wanted
  const T* logvar;
  const T* eps;             // kNoiseFromEps
  const int64_t* seed;      // kNoiseFromPhilox
  const T* grad_z;          // set iff the noise source is not kNoNoise
  const T* grad_kl;         // per-element KL weights; null: one weight for all elements
  const T* grad_kl_scalar;  // device pointer to that one weight (times `scale`); null: use the value
  double grad_kl_value;     // the weight when it lives on the host (already times scale); 0: no KL
  double scale;
  T* grad_mu;               // null: not wanted
  T* grad_logvar;
};

template <int kNoise, bool kPacked, class T>
__host__ __device__ __forceinline__ void backward_unit(const BackwardArgs<T>& a, int64_t u, uint64_t seed,
                                                       uint64_t stream, bool has_kl, at::opmath_type<T> gk_all) {
  using op_t = at::opmath_type<T>;
  const int64_t n = a.n;
  const bool full = Layout<kPacked>::index(u, kUnit - 1) < n;
  op_t lv[kUnit], sd[kUnit], d_logvar[kUnit], d_mu[kUnit];
  load_unit<kPacked>(a.logvar, u, n, full, lv);
#pragma unroll
  for (int j = 0; j < kUnit; ++j) {
    sd[j] = std_from_logvar(lv[j]);
    d_logvar[j] = op_t(0);
    d_mu[j] = op_t(0);
  }
  if constexpr (kNoise != kNoNoise) {
    op_t gz[kUnit], e[kUnit];
    load_unit<kPacked>(a.grad_z, u, n, full, gz);
    if constexpr (kNoise == kNoiseFromPhilox) {
      philox_normals(static_cast<uint64_t>(u), seed, stream, e);
    } else {
      load_unit<kPacked>(a.eps, u, n, full, e);
    }
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      d_logvar[j] = reparam_dlogvar(gz[j], e[j], sd[j]);
      d_mu[j] = gz[j];
    }
  }
  if (has_kl) {
    op_t gk[kUnit];
    if (a.grad_kl != nullptr) {
      load_unit<kPacked>(a.grad_kl, u, n, full, gk);
    } else {
#pragma unroll
      for (int j = 0; j < kUnit; ++j) gk[j] = gk_all;
    }
#pragma unroll
    for (int j = 0; j < kUnit; ++j) d_logvar[j] = d_logvar[j] + gk[j] * kl_dlogvar(sd[j]);
    if (a.grad_mu != nullptr) {
      op_t m[kUnit];
      load_unit<kPacked>(a.mu, u, n, full, m);
#pragma unroll
      for (int j = 0; j < kUnit; ++j) d_mu[j] = d_mu[j] + gk[j] * m[j];
    }
  }
  store_unit<kPacked>(a.grad_logvar, u, n, full, d_logvar);
  if (a.grad_mu != nullptr) store_unit<kPacked>(a.grad_mu, u, n, full, d_mu);
}

template <class T, int kNoise, bool kPacked>
__global__ void __launch_bounds__(kThreads) gaussian_backward_kernel(const BackwardArgs<T> a) {
  using op_t = at::opmath_type<T>;
  uint64_t seed = 0, stream = 0;
  if constexpr (kNoise == kNoiseFromPhilox) {
    seed = static_cast<uint64_t>(a.seed[0]);
    stream = static_cast<uint64_t>(a.seed[1]);
  }
  // The single KL weight, as the CPU computes it: double(grad) * scale, then rounded.
  const double gk_double =
      a.grad_kl_scalar != nullptr ? static_cast<double>(*a.grad_kl_scalar) * a.scale : a.grad_kl_value;
  const bool has_kl = a.grad_kl != nullptr || gk_double != 0.0;
  const op_t gk_all = static_cast<op_t>(gk_double);
  const int64_t units = Layout<kPacked>::units(a.n);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; u < units; u += step) {
    if (Layout<kPacked>::index(u, 0) >= a.n) continue;
    backward_unit<kNoise, kPacked>(a, u, seed, stream, has_kl, gk_all);
  }
}

// ---- launch helpers ------------------------------------------------------------------------

// Calls f(std::integral_constant<int, kNoise>, std::bool_constant<kPacked>). Philox noise
// always uses the strided layout; the other sources use the packed one when aligned.
template <class F>
void dispatch_layout(int noise, bool packable, const F& f) {
  if (noise == kNoiseFromPhilox) {
    f(std::integral_constant<int, kNoiseFromPhilox>{}, std::false_type{});
  } else if (noise == kNoiseFromEps) {
    if (packable) f(std::integral_constant<int, kNoiseFromEps>{}, std::true_type{});
    else f(std::integral_constant<int, kNoiseFromEps>{}, std::false_type{});
  } else {
    if (packable) f(std::integral_constant<int, kNoNoise>{}, std::true_type{});
    else f(std::integral_constant<int, kNoNoise>{}, std::false_type{});
  }
}

template <class T>
void launch_forward(const ForwardArgs<T>& args, int noise, bool reduce, double scale, T* kl_out,
                    const at::TensorOptions& options) {
  using op_t = at::opmath_type<T>;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool packable = is_packable(args.mu) && is_packable(args.logvar) && is_packable(args.eps) &&
                        is_packable(args.z) && is_packable(args.kl);
  dispatch_layout(noise, packable, [&](auto noise_c, auto packed_c) {
    constexpr int kNoise = decltype(noise_c)::value;
    constexpr bool kPacked = decltype(packed_c)::value;
    const int blocks = grid_size(Layout<kPacked>::units(args.n), kThreads);
    ForwardArgs<T> a = args;
    at::Tensor partial;
    if (reduce) {
      partial = at::empty({blocks}, options.dtype(c10::CppTypeToScalarType<op_t>::value));
      a.kl_partial = partial.data_ptr<op_t>();
    }
    gaussian_forward_kernel<T, kNoise, kPacked><<<blocks, kThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (reduce) {
      sum_partials_kernel<kThreads, T, op_t><<<1, kThreads, 0, stream>>>(a.kl_partial, blocks, scale, kl_out);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

template <class T>
void launch_backward(const BackwardArgs<T>& a, int noise) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool packable = is_packable(a.mu) && is_packable(a.logvar) && is_packable(a.eps) &&
                        is_packable(a.grad_z) && is_packable(a.grad_kl) && is_packable(a.grad_mu) &&
                        is_packable(a.grad_logvar);
  dispatch_layout(noise, packable, [&](auto noise_c, auto packed_c) {
    constexpr int kNoise = decltype(noise_c)::value;
    constexpr bool kPacked = decltype(packed_c)::value;
    const int blocks = grid_size(Layout<kPacked>::units(a.n), kThreads);
    gaussian_backward_kernel<T, kNoise, kPacked><<<blocks, kThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

// ---- host side of the ops ------------------------------------------------------------------

// Operand on the device of `ref`, with ref's dtype, contiguous (no-ops when already so).
at::Tensor like_ref(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), "gentk::", op, ": ", name, " is on ", t.device(), " but logvar is on ",
              ref.device());
  TORCH_CHECK(t.sizes() == ref.sizes(), "gentk::", op, ": ", name, " must have shape ", ref.sizes(), ", got ",
              t.sizes());
  return t.to(ref.scalar_type()).contiguous();
}

// Noise source of a sample: the given eps, else Philox keyed by the device seed tensor.
int noise_source(const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed,
                 at::Tensor* eps_c, at::Tensor* seed_c) {
  if (eps.has_value()) {
    *eps_c = eps->contiguous();
    return kNoiseFromEps;
  }
  *seed_c = seed->contiguous();
  return kNoiseFromPhilox;
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& mu_in, const at::Tensor& logvar_in,
                                                const std::optional<at::Tensor>& eps,
                                                const std::optional<at::Tensor>& seed, bool want_z,
                                                bool want_kl, bool reduce, double scale) {
  const c10::cuda::CUDAGuard guard(mu_in.device());
  const at::Tensor mu = mu_in.contiguous();
  const at::Tensor logvar = logvar_in.contiguous();
  const int64_t n = mu.numel();
  at::Tensor eps_c, seed_c, z, kl;
  int noise = kNoNoise;
  if (want_z) {
    noise = noise_source(eps, seed, &eps_c, &seed_c);
    z = at::empty_like(mu);
  }
  if (want_kl) kl = reduce ? at::empty({}, mu.options()) : at::empty_like(mu);
  if (n == 0) {
    if (want_kl && reduce) kl = at::scalar_tensor(0.0 * scale, mu.options());
    return {z, kl};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mu.scalar_type(), "gentk_gaussian_forward_cuda", [&] {
    ForwardArgs<scalar_t> a{};
    a.n = n;
    a.mu = mu.const_data_ptr<scalar_t>();
    a.logvar = logvar.const_data_ptr<scalar_t>();
    a.eps = eps_c.defined() ? eps_c.const_data_ptr<scalar_t>() : nullptr;
    a.seed = seed_c.defined() ? seed_c.const_data_ptr<int64_t>() : nullptr;
    a.z = want_z ? z.mutable_data_ptr<scalar_t>() : nullptr;
    a.kl = want_kl && !reduce ? kl.mutable_data_ptr<scalar_t>() : nullptr;
    a.kl_partial = nullptr;
    launch_forward<scalar_t>(a, noise, want_kl && reduce, scale,
                             want_kl && reduce ? kl.mutable_data_ptr<scalar_t>() : nullptr, mu.options());
  });
  return {z, kl};
}

// grad_kl is either per element (same shape as logvar, logvar.dim() > 0) or one value for
// the whole sum, which is then multiplied by `scale`.
std::tuple<at::Tensor, at::Tensor> backward_cuda(const char* op, const std::optional<at::Tensor>& grad_z_in,
                                                 const std::optional<at::Tensor>& grad_kl_in,
                                                 const at::Tensor& mu_in, const at::Tensor& logvar_in,
                                                 const std::optional<at::Tensor>& eps,
                                                 const std::optional<at::Tensor>& seed, double scale,
                                                 bool want_grad_mu) {
  const c10::cuda::CUDAGuard guard(logvar_in.device());
  const at::Tensor logvar = logvar_in.contiguous();
  const at::Tensor mu = mu_in.defined() ? mu_in.contiguous() : mu_in;
  const int64_t n = logvar.numel();
  at::Tensor grad_z, grad_kl, grad_kl_scalar, eps_c, seed_c;
  double grad_kl_value = 0;
  int noise = kNoNoise;
  if (grad_z_in.has_value()) {
    grad_z = like_ref(*grad_z_in, logvar, op, "grad_z");
    noise = noise_source(eps, seed, &eps_c, &seed_c);
  }
  if (grad_kl_in.has_value()) {
    const at::Tensor& g = *grad_kl_in;
    if (g.sizes() == logvar.sizes() && logvar.dim() > 0) {
      grad_kl = like_ref(g, logvar, op, "grad_kl");
    } else {
      TORCH_CHECK(g.numel() == 1, "gentk::", op, ": grad_kl must have logvar's shape ", logvar.sizes(),
                  " or hold one value, got shape ", g.sizes());
      if (g.is_cpu()) {
        grad_kl_value = g.item<double>() * scale;  // a host value: no device sync
      } else {
        TORCH_CHECK(g.device() == logvar.device(), "gentk::", op, ": grad_kl is on ", g.device(),
                    " but logvar is on ", logvar.device());
        grad_kl_scalar = g.to(logvar.scalar_type());  // read in the kernel, never on the host
      }
    }
  }
  at::Tensor grad_mu = want_grad_mu ? at::empty_like(logvar) : at::Tensor();
  at::Tensor grad_logvar = at::empty_like(logvar);
  if (n == 0) return {grad_mu, grad_logvar};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logvar.scalar_type(), "gentk_gaussian_backward_cuda",
                                  [&] {
    BackwardArgs<scalar_t> a{};
    a.n = n;
    a.mu = mu.defined() ? mu.const_data_ptr<scalar_t>() : nullptr;
    a.logvar = logvar.const_data_ptr<scalar_t>();
    a.eps = eps_c.defined() ? eps_c.const_data_ptr<scalar_t>() : nullptr;
    a.seed = seed_c.defined() ? seed_c.const_data_ptr<int64_t>() : nullptr;
    a.grad_z = grad_z.defined() ? grad_z.const_data_ptr<scalar_t>() : nullptr;
    a.grad_kl = grad_kl.defined() ? grad_kl.const_data_ptr<scalar_t>() : nullptr;
    a.grad_kl_scalar = grad_kl_scalar.defined() ? grad_kl_scalar.const_data_ptr<scalar_t>() : nullptr;
    a.grad_kl_value = grad_kl_value;
    a.scale = scale;
    a.grad_mu = want_grad_mu ? grad_mu.mutable_data_ptr<scalar_t>() : nullptr;
    a.grad_logvar = grad_logvar.mutable_data_ptr<scalar_t>();
    launch_backward<scalar_t>(a, noise);
  });
  return {grad_mu, grad_logvar};
}

at::Tensor reparameterize_cuda(const at::Tensor& mu, const at::Tensor& logvar, const std::optional<at::Tensor>& eps,
                               const std::optional<at::Tensor>& seed) {
  check_gaussian_inputs("reparameterize", "mu", mu, logvar, eps, seed, at::kCUDA, true);
  return std::get<0>(forward_cuda(mu, logvar, eps, seed, true, false, false, 1.0));
}

at::Tensor reparameterize_backward_cuda(const at::Tensor& grad, const at::Tensor& logvar,
                                        const std::optional<at::Tensor>& eps,
                                        const std::optional<at::Tensor>& seed) {
  check_gaussian_inputs("reparameterize_backward", "grad", grad, logvar, eps, seed, at::kCUDA, true);
  return std::get<1>(
      backward_cuda("reparameterize_backward", grad, std::nullopt, at::Tensor(), logvar, eps, seed, 1.0, false));
}

at::Tensor gaussian_kl_cuda(const at::Tensor& mu, const at::Tensor& logvar, bool reduce, double scale) {
  check_gaussian_inputs("gaussian_kl", "mu", mu, logvar, std::nullopt, std::nullopt, at::kCUDA, false);
  return std::get<1>(forward_cuda(mu, logvar, std::nullopt, std::nullopt, false, true, reduce, scale));
}

std::tuple<at::Tensor, at::Tensor> gaussian_kl_backward_cuda(const at::Tensor& grad, const at::Tensor& mu,
                                                             const at::Tensor& logvar, double scale) {
  check_gaussian_inputs("gaussian_kl_backward", "mu", mu, logvar, std::nullopt, std::nullopt, at::kCUDA, false);
  check_kl_grad("gaussian_kl_backward", "grad", grad, mu);
  return backward_cuda("gaussian_kl_backward", std::nullopt, grad, mu, logvar, std::nullopt, std::nullopt, scale,
                       true);
}

std::tuple<at::Tensor, at::Tensor> reparameterize_kl_cuda(const at::Tensor& mu, const at::Tensor& logvar,
                                                          const std::optional<at::Tensor>& eps,
                                                          const std::optional<at::Tensor>& seed, bool reduce,
                                                          double scale) {
  check_gaussian_inputs("reparameterize_kl", "mu", mu, logvar, eps, seed, at::kCUDA, true);
  return forward_cuda(mu, logvar, eps, seed, true, true, reduce, scale);
}

std::tuple<at::Tensor, at::Tensor> reparameterize_kl_backward_cuda(
    const std::optional<at::Tensor>& grad_z, const at::Tensor& grad_kl, const at::Tensor& mu,
    const at::Tensor& logvar, const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed,
    double scale) {
  check_gaussian_inputs("reparameterize_kl_backward", "mu", mu, logvar, eps, seed, at::kCUDA, true);
  if (grad_z.has_value()) check_like("reparameterize_kl_backward", "grad_z", *grad_z, "mu", mu, true);
  check_kl_grad("reparameterize_kl_backward", "grad_kl", grad_kl, mu);
  return backward_cuda("reparameterize_kl_backward", grad_z, grad_kl, mu, logvar, eps, seed, scale, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, CUDA, m) {
  m.impl("reparameterize", &reparameterize_cuda);
  m.impl("reparameterize_backward", &reparameterize_backward_cuda);
  m.impl("gaussian_kl", &gaussian_kl_cuda);
  m.impl("gaussian_kl_backward", &gaussian_kl_backward_cuda);
  m.impl("reparameterize_kl", &reparameterize_kl_cuda);
  m.impl("reparameterize_kl_backward", &reparameterize_kl_backward_cuda);
}

}  // namespace gentk
