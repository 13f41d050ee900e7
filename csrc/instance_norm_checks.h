#pragma once
// Argument checks of the instance-norm ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"

namespace gentk {

// The kernels read 4-D channels-last tensors as (N, HW, C); everything else as (N, C, HW).
inline bool instance_norm_channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// The dtype the kernels compute (and return the statistics) in.
inline at::ScalarType instance_norm_math_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_instance_norm_vector(const char* op, const char* name, const std::optional<at::Tensor>& t,
                                       const at::Tensor& x) {
  if (!t.has_value()) return;
  TORCH_CHECK(t->dim() == 1 && t->size(0) == x.size(1), "gentk::", op, ": ", name, " must have shape (",
              x.size(1), ",) to match x's channels, got ", t->sizes());
  check_floating(op, name, *t);
  check_same_device(op, name, *t, "x", x);
}

// weight and bias as torch's CPU norms take them: in x's dtype, or float32 for float16 /
// bfloat16 x (mixed precision); both in one dtype.
inline void check_instance_norm_param_dtype(const char* op, const char* name, const std::optional<at::Tensor>& t,
                                            const at::Tensor& x) {
  if (!t.has_value()) return;
  const at::ScalarType type = t->scalar_type();
  const bool reduced = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  TORCH_CHECK(type == x.scalar_type() || (reduced && type == at::kFloat), "gentk::", op, ": ", name,
              " has dtype ", type, " but x is ", x.scalar_type(), reduced ? " (give it in x's dtype or float32)" : "");
}

// residual (forward) or grad_y (backward): x's shape, dtype and device.
inline void check_instance_norm_inputs(const char* op, const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                       const std::optional<at::Tensor>& bias,
                                       const std::optional<at::Tensor>& running_mean,
                                       const std::optional<at::Tensor>& running_var,
                                       const char* like_x_name, const std::optional<at::Tensor>& like_x,
                                       int64_t activation, c10::DeviceType device_type) {
  check_device_type(op, "x", x, device_type);
  TORCH_CHECK(x.dim() >= 3, "gentk::", op, ": x must be (N, C, ...) with at least one spatial dimension, got ",
              x.sizes());
  check_floating(op, "x", x);
  TORCH_CHECK(activation >= 0 && activation <= 2, "gentk::", op,
              ": activation must be 0 (none), 1 (relu) or 2 (leaky_relu), got ", activation);
  check_instance_norm_vector(op, "weight", weight, x);
  check_instance_norm_vector(op, "bias", bias, x);
  check_instance_norm_param_dtype(op, "weight", weight, x);
  check_instance_norm_param_dtype(op, "bias", bias, x);
  if (weight.has_value() && bias.has_value()) check_like(op, "bias", *bias, "weight", *weight, false);
  check_instance_norm_vector(op, "running_mean", running_mean, x);
  check_instance_norm_vector(op, "running_var", running_var, x);
  TORCH_CHECK(running_mean.has_value() == running_var.has_value(), "gentk::", op,
              ": give both running_mean and running_var, or neither");
  if (like_x.has_value()) check_like(op, like_x_name, *like_x, "x", x, true);
}

// The per-plane statistics the forward returned: (N, C), in the math dtype, on x's device.
inline void check_instance_norm_stats(const char* op, const at::Tensor& mean, const at::Tensor& var,
                                      const at::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  const at::Tensor* stats[] = {&mean, &var};
  const char* names[] = {"mean", "var"};
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(stats[i]->dim() == 2 && stats[i]->size(0) == n && stats[i]->size(1) == c, "gentk::", op, ": ",
                names[i], " must have shape (", n, ", ", c, "), got ", stats[i]->sizes());
    check_dtype(op, names[i], *stats[i], instance_norm_math_type(x), "the statistics of x");
    check_same_device(op, names[i], *stats[i], "x", x);
  }
}

// Running statistics are buffers: as torch's norms do, refuse ones that require grad (under
// grad mode) rather than silently give them no gradient.
inline void check_running_stats_not_differentiable(const char* op, const std::optional<at::Tensor>& running_mean,
                                                   const std::optional<at::Tensor>& running_var) {
  const std::optional<at::Tensor>* stats[] = {&running_mean, &running_var};
  const char* names[] = {"running_mean", "running_var"};
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(!stats[i]->has_value() || !(*stats[i])->requires_grad(), "gentk::", op, ": ", names[i],
                " requires grad, but running statistics are not differentiable (detach it)");
  }
}

}  // namespace gentk
