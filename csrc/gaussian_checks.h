#pragma once
// Argument checks of the Gaussian ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace gentk {

inline void check_gaussian_inputs(const char* op, const at::Tensor& mu, const at::Tensor& logvar,
                                  const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed,
                                  c10::DeviceType device_type, bool needs_noise) {
  TORCH_CHECK(mu.device().type() == device_type, "gentk::", op, ": expected tensors on ",
              c10::DeviceTypeName(device_type), ", got mu on ", mu.device());
  TORCH_CHECK(logvar.device() == mu.device(), "gentk::", op, ": logvar is on ", logvar.device(),
              " but mu is on ", mu.device());
  TORCH_CHECK(at::isFloatingType(mu.scalar_type()), "gentk::", op, ": mu must be floating point, got ",
              mu.scalar_type());
  TORCH_CHECK(logvar.scalar_type() == mu.scalar_type(), "gentk::", op, ": logvar has dtype ",
              logvar.scalar_type(), " but mu has ", mu.scalar_type());
  TORCH_CHECK(logvar.sizes() == mu.sizes(), "gentk::", op, ": mu and logvar must have the same shape, got ",
              mu.sizes(), " and ", logvar.sizes());
  if (eps.has_value()) {
    TORCH_CHECK(eps->sizes() == mu.sizes(), "gentk::", op, ": eps must have mu's shape ", mu.sizes(),
                ", got ", eps->sizes());
    TORCH_CHECK(eps->scalar_type() == mu.scalar_type() && eps->device() == mu.device(), "gentk::", op,
                ": eps must match mu's dtype and device");
  } else if (needs_noise) {
    TORCH_CHECK(seed.has_value(), "gentk::", op, ": give either eps or seed");
    TORCH_CHECK(seed->scalar_type() == at::kLong && seed->numel() == 2, "gentk::", op,
                ": seed must be an int64 tensor of two elements (seed, stream)");
    TORCH_CHECK(seed->device() == mu.device(), "gentk::", op, ": seed is on ", seed->device(),
                " but mu is on ", mu.device());
  }
}

}  // namespace gentk
