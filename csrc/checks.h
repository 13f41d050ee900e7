#pragma once
// Argument checks shared by every op family (the *_checks.h headers build on them), for the
// CPU and CUDA implementations alike. Registered ops are public: torch.compile, opcheck and
// users call them directly, so every tensor an op reads is checked here, forward and
// backward, with a one-line message naming the op and the argument.
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace gentk {

inline void check_device_type(const char* op, const char* name, const at::Tensor& t, c10::DeviceType type) {
  TORCH_CHECK(t.device().type() == type, "gentk::", op, ": expected tensors on ", c10::DeviceTypeName(type), ", got ",
              name, " on ", t.device());
}

inline void check_floating(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "gentk::", op, ": ", name, " must be floating point, got ",
              t.scalar_type());
}

inline void check_same_device(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                              const at::Tensor& ref) {
  TORCH_CHECK(t.device() == ref.device(), "gentk::", op, ": ", name, " is on ", t.device(), " but ", ref_name,
              " is on ", ref.device());
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType type,
                        const char* why) {
  TORCH_CHECK(t.scalar_type() == type, "gentk::", op, ": ", name, " has dtype ", t.scalar_type(), " but ", why,
              " is ", type);
}

// t on ref's device, in ref's dtype and (same_shape) of ref's shape.
inline void check_like(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref, bool same_shape) {
  check_same_device(op, name, t, ref_name, ref);
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "gentk::", op, ": ", name, " has dtype ", t.scalar_type(),
              " but ", ref_name, " has ", ref.scalar_type());
  if (same_shape) {
    TORCH_CHECK(t.sizes() == ref.sizes(), "gentk::", op, ": ", name, " must have ", ref_name, "'s shape ",
                ref.sizes(), ", got ", t.sizes());
  }
}

// The upstream gradient of an op's output: on ref's device and in its dtype, and either of
// `per_element_shape` (an unreduced output) or one value (a reduced one), as `per_element` says.
inline void check_grad(const char* op, const char* name, const at::Tensor& grad, const char* ref_name,
                       const at::Tensor& ref, at::IntArrayRef per_element_shape, bool per_element) {
  check_like(op, name, grad, ref_name, ref, false);
  if (per_element) {
    TORCH_CHECK(grad.sizes() == per_element_shape, "gentk::", op, ": ", name, " must have shape ",
                per_element_shape, " to match ", ref_name, ", got ", grad.sizes());
  } else {
    TORCH_CHECK(grad.numel() == 1, "gentk::", op, ": ", name, " of a reduced output must hold one value, got shape ",
                grad.sizes(), " (", ref_name, " is ", ref.sizes(), ")");
  }
}

// The upstream gradient of an op whose output may be reduced or not (its backward schema
// does not say): of `per_element_shape` or one value.
inline void check_grad_either(const char* op, const char* name, const at::Tensor& grad, const char* ref_name,
                              const at::Tensor& ref, at::IntArrayRef per_element_shape) {
  check_like(op, name, grad, ref_name, ref, false);
  TORCH_CHECK(grad.sizes() == per_element_shape || grad.numel() == 1, "gentk::", op, ": ", name,
              " must have shape ", per_element_shape, " to match ", ref_name,
              " or hold one value (a reduced output), got ", grad.sizes());
}

// (seed, stream) of in-kernel Philox noise.
inline void check_seed(const char* op, const at::Tensor& seed, const char* ref_name, const at::Tensor& ref) {
  TORCH_CHECK(seed.scalar_type() == at::kLong && seed.numel() == 2, "gentk::", op,
              ": seed must be an int64 tensor of two elements (seed, stream), got ", seed.scalar_type(), " of shape ",
              seed.sizes());
  check_same_device(op, "seed", seed, ref_name, ref);
}

}  // namespace gentk
