#pragma once
// Argument checks of the Gumbel ops, shared by the CPU and CUDA implementations.
// gentk.functional checks the same things first with Python-side names; these guard
// direct torch.ops.gentk callers.
#include <cmath>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace gentk {

inline void check_logits(const char* op, const at::Tensor& logits, c10::DeviceType device_type) {
  TORCH_CHECK(logits.device().type() == device_type, "gentk::", op, ": expected tensors on ",
              c10::DeviceTypeName(device_type), ", got logits on ", logits.device());
  TORCH_CHECK(at::isFloatingType(logits.scalar_type()), "gentk::", op, ": logits must be floating point, got ",
              logits.scalar_type());
  TORCH_CHECK(logits.dim() >= 1, "gentk::", op, ": logits must have at least one dimension (the categories)");
}

inline void check_like_logits(const char* op, const char* name, const at::Tensor& t, const at::Tensor& logits) {
  TORCH_CHECK(t.sizes() == logits.sizes(), "gentk::", op, ": ", name, " must have logits' shape ", logits.sizes(),
              ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == logits.scalar_type() && t.device() == logits.device(), "gentk::", op, ": ", name,
              " must match logits' dtype and device");
}

// Noise: gumbels given, else Philox from seed, else none (no sampling).
inline void check_gumbel_noise(const char* op, const at::Tensor& logits, const std::optional<at::Tensor>& gumbels,
                               const std::optional<at::Tensor>& seed) {
  if (gumbels.has_value()) {
    check_like_logits(op, "gumbels", *gumbels, logits);
  } else if (seed.has_value()) {
    TORCH_CHECK(seed->scalar_type() == at::kLong && seed->numel() == 2, "gentk::", op,
                ": seed must be an int64 tensor of two elements (seed, stream)");
    TORCH_CHECK(seed->device() == logits.device(), "gentk::", op, ": seed is on ", seed->device(),
                " but logits is on ", logits.device());
  }
}

inline void check_tau(const char* op, double tau) {
  TORCH_CHECK(std::isfinite(tau) && tau > 0, "gentk::", op, ": tau must be finite and > 0, got ", tau);
}

}  // namespace gentk
