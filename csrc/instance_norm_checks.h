#pragma once
// Argument checks of the instance-norm ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace gentk {

// The kernels read 4-D channels-last tensors as (N, HW, C); everything else as (N, C, HW).
inline bool instance_norm_channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline void check_instance_norm_vector(const char* op, const char* name, const std::optional<at::Tensor>& t,
                                       const at::Tensor& x) {
  if (!t.has_value()) return;
  TORCH_CHECK(t->dim() == 1 && t->size(0) == x.size(1), "gentk::", op, ": ", name, " must have shape (",
              x.size(1), ",) to match x's channels, got ", t->sizes());
  TORCH_CHECK(at::isFloatingType(t->scalar_type()), "gentk::", op, ": ", name, " must be floating point, got ",
              t->scalar_type());
  TORCH_CHECK(t->device() == x.device(), "gentk::", op, ": ", name, " is on ", t->device(), " but x is on ",
              x.device());
}

inline void check_instance_norm_inputs(const char* op, const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                       const std::optional<at::Tensor>& bias,
                                       const std::optional<at::Tensor>& running_mean,
                                       const std::optional<at::Tensor>& running_var,
                                       const std::optional<at::Tensor>& like_x, int64_t activation,
                                       c10::DeviceType device_type) {
  TORCH_CHECK(x.device().type() == device_type, "gentk::", op, ": expected tensors on ",
              c10::DeviceTypeName(device_type), ", got x on ", x.device());
  TORCH_CHECK(x.dim() >= 3, "gentk::", op, ": x must be (N, C, ...) with at least one spatial dimension, got ",
              x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "gentk::", op, ": x must be floating point, got ",
              x.scalar_type());
  TORCH_CHECK(activation >= 0 && activation <= 2, "gentk::", op,
              ": activation must be 0 (none), 1 (relu) or 2 (leaky_relu), got ", activation);
  check_instance_norm_vector(op, "weight", weight, x);
  check_instance_norm_vector(op, "bias", bias, x);
  check_instance_norm_vector(op, "running_mean", running_mean, x);
  check_instance_norm_vector(op, "running_var", running_var, x);
  TORCH_CHECK(running_mean.has_value() == running_var.has_value(), "gentk::", op,
              ": give both running_mean and running_var, or neither");
  if (like_x.has_value()) {
    TORCH_CHECK(like_x->sizes() == x.sizes(), "gentk::", op, ": expected a tensor of x's shape ", x.sizes(),
                ", got ", like_x->sizes());
    TORCH_CHECK(like_x->scalar_type() == x.scalar_type() && like_x->device() == x.device(), "gentk::", op,
                ": residual / grad must match x's dtype and device");
  }
}

inline void check_instance_norm_stats(const char* op, const at::Tensor& mean, const at::Tensor& var, int64_t n,
                                      int64_t c) {
  TORCH_CHECK(mean.dim() == 2 && mean.size(0) == n && mean.size(1) == c && var.sizes() == mean.sizes(), "gentk::",
              op, ": mean and var must have shape (", n, ", ", c, "), got ", mean.sizes(), " and ", var.sizes());
}

}  // namespace gentk
