#pragma once
// Argument checks of the Gumbel ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <cmath>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"

namespace gentk {

// The tensor the op reduces over its last dimension: logits, or the saved soft sample.
inline void check_logits(const char* op, const at::Tensor& logits, c10::DeviceType device_type,
                         const char* name = "logits") {
  check_device_type(op, name, logits, device_type);
  check_floating(op, name, logits);
  TORCH_CHECK(logits.dim() >= 1, "gentk::", op, ": ", name, " must have at least one dimension (the categories)");
}

// Noise: gumbels given, else Philox from seed, else none (no sampling).
inline void check_gumbel_noise(const char* op, const char* ref_name, const at::Tensor& ref,
                               const std::optional<at::Tensor>& gumbels, const std::optional<at::Tensor>& seed) {
  if (gumbels.has_value()) {
    check_like(op, "gumbels", *gumbels, ref_name, ref, true);
  } else if (seed.has_value()) {
    check_seed(op, *seed, ref_name, ref);
  }
}

inline void check_tau(const char* op, double tau) {
  TORCH_CHECK(std::isfinite(tau) && tau > 0, "gentk::", op, ": tau must be finite and > 0, got ", tau);
}

// gumbel_softmax_backward reads the soft sample, or the logits (and noise) to recompute it;
// returns the one that sets the shape, dtype and device of the others.
inline const at::Tensor& check_gumbel_softmax_backward(const char* op, const at::Tensor& grad,
                                                       const std::optional<at::Tensor>& soft,
                                                       const std::optional<at::Tensor>& logits,
                                                       const std::optional<at::Tensor>& gumbels,
                                                       const std::optional<at::Tensor>& seed, double tau,
                                                       c10::DeviceType device_type) {
  TORCH_CHECK(soft.has_value() || logits.has_value(), "gentk::", op, ": give either soft or logits");
  const char* ref_name = soft.has_value() ? "soft" : "logits";
  const at::Tensor& ref = soft.has_value() ? *soft : *logits;
  check_logits(op, ref, device_type, ref_name);
  check_like(op, "grad", grad, ref_name, ref, true);
  if (soft.has_value() && logits.has_value()) check_like(op, "logits", *logits, ref_name, ref, true);
  check_gumbel_noise(op, ref_name, ref, gumbels, seed);
  check_tau(op, tau);
  return ref;
}

// categorical_kl_uniform_backward: grad per row (reduce=False) or one value (the reduced KL).
inline void check_categorical_kl_grad(const char* op, const at::Tensor& grad, const at::Tensor& logits) {
  check_grad_either(op, "grad", grad, "logits", logits, logits.sizes().slice(0, logits.dim() - 1));
}

}  // namespace gentk
