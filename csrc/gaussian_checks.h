#pragma once
// Argument checks of the Gaussian ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"

namespace gentk {

// mu (named mu_name: reparameterize_backward passes its grad in mu's place), logvar of its
// shape, dtype and device, and the noise: eps like mu, else (needs_noise) a seed.
inline void check_gaussian_inputs(const char* op, const char* mu_name, const at::Tensor& mu,
                                  const at::Tensor& logvar, const std::optional<at::Tensor>& eps,
                                  const std::optional<at::Tensor>& seed, c10::DeviceType device_type,
                                  bool needs_noise) {
  check_device_type(op, mu_name, mu, device_type);
  check_floating(op, mu_name, mu);
  check_like(op, "logvar", logvar, mu_name, mu, true);
  if (eps.has_value()) {
    check_like(op, "eps", *eps, mu_name, mu, true);
  } else if (needs_noise) {
    TORCH_CHECK(seed.has_value(), "gentk::", op, ": give either eps or seed");
    check_seed(op, *seed, mu_name, mu);
  }
}

// The gradient of the KL: per element (reduction none) or one value (a reduced KL).
inline void check_kl_grad(const char* op, const char* name, const at::Tensor& grad, const at::Tensor& mu) {
  check_grad_either(op, name, grad, "mu", mu, mu.sizes());
}

}  // namespace gentk
