// Schemas of the instance-norm family and their CPU implementations.
// The CUDA implementations of the same schemas would live in csrc/cuda/instance_norm.cu.
//
// instance_norm returns (y, mean, var): mean and the biased variance per (n, c) plane, in
// the math dtype (float32, or float64 for float64 input). Returning var rather than rstd
// lets the Python side update running_var without undoing 1 / sqrt(var + eps), which
// loses the variance when it is small next to eps. Given running_mean / running_var
// (eval mode), they normalize every plane and come back expanded to (N, C).
#include <sys/mman.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/Storage.h>
#include <torch/library.h>

#include "cpu/instance_norm.h"
#include "instance_norm_checks.h"

namespace gentk {
namespace {

const cpu::InstanceNormKernels& kernels() {
  using namespace cpu;
  static const InstanceNormKernels& table = GENTK_PICK_ISA_TABLE(instance_norm_kernels);
  return table;
}

// Activation-sized outputs (y, grad_x) come from a cache of freed buffers. malloc maps a
// buffer of tens of MiB fresh on every call and unmaps it on free, so each of its 4 KiB
// pages faults on first touch: measured on this kind of machine, a fresh 32 MiB output
// costs more than three passes over it, twice the whole kernel's useful traffic. Training
// repeats its shapes every step, so freed outputs come back at the same sizes. New buffers
// are 2 MiB aligned and advised as huge pages (one fault per 2 MiB where THP allows).
// GENTK_CPU_BUFFER_CACHE_MB caps the bytes held while free (default 512; 0 turns it off).
class BufferCache {
 public:
  static constexpr size_t kMinBytes = size_t{1} << 20;
  static constexpr size_t kAlign = size_t{2} << 20;

  static BufferCache& instance() {
    static BufferCache* cache = new BufferCache();  // never destroyed: freed tensors may outlive statics
    return *cache;
  }

  size_t capacity() const { return capacity_; }

  // A buffer of at least `bytes`, and its size class (what give() needs back).
  void* take(size_t bytes, size_t& size_class) {
    size_class = (bytes + kAlign - 1) / kAlign * kAlign;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size_class);
      if (it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        held_ -= size_class;
        return p;
      }
    }
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, size_class) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, size_class, MADV_HUGEPAGE);
#endif
    return p;
  }

  void give(void* p, size_t size_class) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (held_ + size_class <= capacity_) {
        free_.emplace(size_class, p);
        held_ += size_class;
        return;
      }
    }
    std::free(p);
  }

 private:
  BufferCache() {
    const char* env = std::getenv("GENTK_CPU_BUFFER_CACHE_MB");
    capacity_ = (env != nullptr ? size_t(std::strtoull(env, nullptr, 10)) : size_t{512}) << 20;
  }
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t held_ = 0;
  size_t capacity_ = 0;
};

// A cached buffer as a DataPtr's context: its deleter hands the buffer back to the cache.
struct CachedBuffer {
  void* data;
  size_t size_class;
};

void give_back(void* context) {
  const CachedBuffer* b = static_cast<CachedBuffer*>(context);
  BufferCache::instance().give(b->data, b->size_class);
  delete b;
}

// An uninitialized tensor with `like`'s sizes, strides and options (like at::empty_like of
// a dense tensor), from the buffer cache when it is large. Its storage is an ordinary
// resizable one (the user's tensor may be resize_()d or written with out=): growing it
// moves it to torch's CPU allocator and hands the cached buffer back.
at::Tensor cached_empty_like(const at::Tensor& like) {
  const size_t bytes = size_t(like.numel()) * like.element_size();
  BufferCache& cache = BufferCache::instance();
  if (bytes < BufferCache::kMinBytes || cache.capacity() == 0 || !like.is_non_overlapping_and_dense()) {
    return at::empty_like(like);
  }
  size_t size_class = 0;
  void* p = cache.take(bytes, size_class);
  c10::DataPtr data(p, new CachedBuffer{p, size_class}, &give_back, like.device());
  c10::Storage storage(c10::Storage::use_byte_size_t(), bytes, std::move(data), c10::GetCPUAllocator(),
                       /*resizable=*/true);
  return at::empty({0}, like.options()).set_(storage, 0, like.sizes(), like.strides());
}


// float16 / bfloat16 run in float32; the layout the kernel reads is `format`.
at::Tensor prepared(const at::Tensor& t, at::ScalarType math, at::MemoryFormat format) {
  const at::Tensor widened = t.scalar_type() == math ? t : t.to(math);
  return widened.contiguous(format);
}

at::Tensor prepared_vector(const std::optional<at::Tensor>& t, at::ScalarType math) {
  if (!t.has_value()) return at::Tensor();
  return prepared(*t, math, at::MemoryFormat::Contiguous);
}

const void* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

int64_t plane_size(const at::Tensor& x) {
  int64_t hw = 1;
  for (int64_t d = 2; d < x.dim(); ++d) hw *= x.size(d);
  return hw;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_cpu(
    const at::Tensor& x_in, const std::optional<at::Tensor>& weight_in, const std::optional<at::Tensor>& bias_in,
    const std::optional<at::Tensor>& running_mean, const std::optional<at::Tensor>& running_var, double eps,
    int64_t activation, double negative_slope, const std::optional<at::Tensor>& residual_in) {
  check_instance_norm_inputs("instance_norm", x_in, weight_in, bias_in, running_mean, running_var, "residual",
                             residual_in, activation, c10::DeviceType::CPU);
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = plane_size(x_in);
  const at::ScalarType math = instance_norm_math_type(x_in);
  const bool channels_last = instance_norm_channels_last(x_in);
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor x = prepared(x_in, math, format);
  const at::Tensor weight = prepared_vector(weight_in, math);
  const at::Tensor bias = prepared_vector(bias_in, math);
  const at::Tensor residual = residual_in.has_value() ? prepared(*residual_in, math, format) : at::Tensor();
  const bool compute_stats = !running_mean.has_value();
  at::Tensor y = cached_empty_like(x);
  at::Tensor mean, var;
  if (compute_stats) {
    mean = at::empty({N, C}, x.options().memory_format(at::MemoryFormat::Contiguous));
    var = at::empty_like(mean);
  } else {
    mean = prepared_vector(running_mean, math);
    var = prepared_vector(running_var, math);
  }
  if (x.numel() > 0) {
    cpu::InstanceNormForward a{};
    a.dtype = math;
    a.N = N;
    a.C = C;
    a.HW = HW;
    a.channels_last = channels_last;
    a.x = x.data_ptr();
    a.weight = ptr_or_null(weight);
    a.bias = ptr_or_null(bias);
    a.residual = ptr_or_null(residual);
    a.compute_stats = compute_stats;
    a.mean = mean.data_ptr();
    a.var = var.data_ptr();
    a.eps = eps;
    a.activation = static_cast<int>(activation);
    a.negative_slope = negative_slope;
    a.y = y.data_ptr();
    kernels().forward(a);
  } else if (compute_stats) {
    mean.fill_(std::numeric_limits<double>::quiet_NaN());
    var.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  if (!compute_stats) {
    mean = mean.unsqueeze(0).expand({N, C}).contiguous();
    var = var.unsqueeze(0).expand({N, C}).contiguous();
  }
  if (y.scalar_type() != x_in.scalar_type()) y = y.to(x_in.scalar_type());
  return {y, mean, var};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_backward_cpu(
    const at::Tensor& grad_y_in, const at::Tensor& x_in, const std::optional<at::Tensor>& weight_in,
    const std::optional<at::Tensor>& bias_in, const at::Tensor& mean_in, const at::Tensor& var_in, double eps,
    bool input_stats, int64_t activation, double negative_slope) {
  check_instance_norm_inputs("instance_norm_backward", x_in, weight_in, bias_in, std::nullopt, std::nullopt,
                             "grad_y", grad_y_in, activation, c10::DeviceType::CPU);
  const int64_t N = x_in.size(0), C = x_in.size(1), HW = plane_size(x_in);
  check_instance_norm_stats("instance_norm_backward", mean_in, var_in, x_in);
  const at::ScalarType math = instance_norm_math_type(x_in);
  const bool channels_last = instance_norm_channels_last(x_in);
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor x = prepared(x_in, math, format);
  const at::Tensor grad_y = prepared(grad_y_in, math, format);
  const at::Tensor weight = prepared_vector(weight_in, math);
  const at::Tensor bias = prepared_vector(bias_in, math);
  const at::Tensor mean = prepared(mean_in, math, at::MemoryFormat::Contiguous);
  const at::Tensor var = prepared(var_in, math, at::MemoryFormat::Contiguous);
  at::Tensor grad_x = cached_empty_like(x);
  at::Tensor grad_weight = at::zeros({C}, x.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor grad_bias = at::zeros_like(grad_weight);
  if (x.numel() > 0) {
    cpu::InstanceNormBackward a{};
    a.dtype = math;
    a.N = N;
    a.C = C;
    a.HW = HW;
    a.channels_last = channels_last;
    a.grad_y = grad_y.data_ptr();
    a.x = x.data_ptr();
    a.weight = ptr_or_null(weight);
    a.bias = ptr_or_null(bias);
    a.mean = mean.data_ptr();
    a.var = var.data_ptr();
    a.eps = eps;
    a.input_stats = input_stats;
    a.activation = static_cast<int>(activation);
    a.negative_slope = negative_slope;
    a.grad_x = grad_x.data_ptr();
    a.grad_weight = grad_weight.data_ptr();
    a.grad_bias = grad_bias.data_ptr();
    kernels().backward(a);
  }
  const at::ScalarType param_type = weight_in.has_value() ? weight_in->scalar_type() : x_in.scalar_type();
  if (grad_x.scalar_type() != x_in.scalar_type()) grad_x = grad_x.to(x_in.scalar_type());
  return {grad_x, grad_weight.to(param_type), grad_bias.to(param_type)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gentk, m) {
  m.def("instance_norm(Tensor x, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var,"
        " float eps, int activation, float negative_slope, Tensor? residual) -> (Tensor, Tensor, Tensor)");
  m.def("instance_norm_backward(Tensor grad_y, Tensor x, Tensor? weight, Tensor? bias, Tensor mean,"
        " Tensor var, float eps, bool input_stats, int activation, float negative_slope)"
        " -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gentk, CPU, m) {
  m.impl("instance_norm", &instance_norm_cpu);
  m.impl("instance_norm_backward", &instance_norm_backward_cpu);
}

}  // namespace gentk
