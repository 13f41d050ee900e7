#pragma once
// The CPU kernels run in float32 or float64; float16 / bfloat16 tensors are widened to
// float32 for the math (as on GPU) and the results narrowed back to the input dtype.
#include <ATen/core/Tensor.h>

namespace gentk::cpu {

inline at::Tensor widened(const at::Tensor& t) {
  const auto type = t.scalar_type();
  return (type == at::kFloat || type == at::kDouble) ? t.contiguous() : t.to(at::kFloat).contiguous();
}

inline at::Tensor narrowed(const at::Tensor& t, at::ScalarType type) {
  return t.defined() && t.scalar_type() != type ? t.to(type) : t;
}

}  // namespace gentk::cpu
