#pragma once
// Argument checks and mode tables of the loss family, shared by the CPU and CUDA
// implementations. gentk.functional checks the same things first with Python-side
// names; these guard direct torch.ops.gentk callers.
#include <cmath>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "gentk/losses.h"

namespace gentk {

struct TermSpec {
  int kind;
  double param;
};

// The elementwise terms of one adversarial mode: real and fake for the discriminator,
// fake alone for the generator (whose "bce" is the non-saturating -log D(G(z))).
struct AdversarialSpec {
  TermSpec real, fake;
};

inline AdversarialSpec discriminator_spec(const char* op, const std::string& mode, double real_label,
                                          double fake_label) {
  if (mode == "bce" || mode == "lsgan") {
    if (mode == "bce") {
      TORCH_CHECK(real_label >= 0 && real_label <= 1, "gentk::", op,
                  ": real_label must lie in [0, 1] for mode 'bce', got ", real_label);
      TORCH_CHECK(fake_label >= 0 && fake_label <= 1, "gentk::", op,
                  ": fake_label must lie in [0, 1] for mode 'bce', got ", fake_label);
    }
    TORCH_CHECK(std::isfinite(real_label) && std::isfinite(fake_label), "gentk::", op,
                ": real_label and fake_label must be finite");
    const int kind = mode == "bce" ? kBce : kSquare;
    return {{kind, real_label}, {kind, fake_label}};
  }
  if (mode == "wgan") return {{kLinear, -1.0}, {kLinear, 1.0}};
  if (mode == "hinge") return {{kHinge, -1.0}, {kHinge, 1.0}};
  TORCH_CHECK(false, "gentk::", op, ": unknown mode '", mode, "'; choose one of bce, lsgan, wgan, hinge");
}

inline TermSpec generator_spec(const char* op, const std::string& mode) {
  if (mode == "bce" || mode == "nonsaturating") return {kBce, 1.0};
  if (mode == "lsgan") return {kSquare, 1.0};
  if (mode == "wgan" || mode == "hinge") return {kLinear, -1.0};
  TORCH_CHECK(false, "gentk::", op, ": unknown mode '", mode,
              "'; choose one of bce, nonsaturating, lsgan, wgan, hinge");
}

// Reductions: 0 none, 1 sum, 2 mean, 3 batchsum (sum over all but dim 0, mean over dim 0).
inline int reduction_code(const char* op, const std::string& reduction, bool allow_batchsum) {
  if (reduction == "none") return 0;
  if (reduction == "sum") return 1;
  if (reduction == "mean") return 2;
  if (allow_batchsum && reduction == "batchsum") return 3;
  TORCH_CHECK(false, "gentk::", op, ": unknown reduction '", reduction, "'; choose one of none, sum, mean",
              allow_batchsum ? ", batchsum" : "");
}

// The factor that turns the sum of loss elements into the reduction.
inline double reduction_scale(int code, const at::Tensor& x) {
  const double n = static_cast<double>(x.numel());
  if (code == 2) return n > 0 ? 1.0 / n : NAN;
  if (code == 3) {
    const double rows = x.dim() > 0 ? static_cast<double>(x.size(0)) : 1.0;
    return rows > 0 ? 1.0 / rows : NAN;
  }
  return 1.0;
}

inline void check_logits(const char* op, const char* name, const at::Tensor& x, c10::DeviceType device_type) {
  TORCH_CHECK(x.device().type() == device_type, "gentk::", op, ": expected tensors on ",
              c10::DeviceTypeName(device_type), ", got ", name, " on ", x.device());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "gentk::", op, ": ", name, " must be floating point, got ",
              x.scalar_type());
}

inline void check_like(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                       const at::Tensor& ref, bool same_shape) {
  TORCH_CHECK(t.device() == ref.device(), "gentk::", op, ": ", name, " is on ", t.device(), " but ", ref_name,
              " is on ", ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "gentk::", op, ": ", name, " has dtype ", t.scalar_type(),
              " but ", ref_name, " has ", ref.scalar_type());
  if (same_shape) {
    TORCH_CHECK(t.sizes() == ref.sizes(), "gentk::", op, ": ", name, " must have ", ref_name, "'s shape ",
                ref.sizes(), ", got ", t.sizes());
  }
}

// Real and fake logits pair when their shapes agree apart from the batch dimension
// (reductions sum / mean), or agree exactly (reduction none: the two terms are added).
inline void check_pairing(const char* op, const at::Tensor& real, const at::Tensor& fake, int reduction) {
  bool ok = real.dim() == fake.dim();
  if (ok && reduction == 0) ok = real.sizes() == fake.sizes();
  if (ok && real.dim() > 0) ok = real.sizes().slice(1) == fake.sizes().slice(1);
  TORCH_CHECK(ok, "gentk::", op, ": real_logits ", real.sizes(), " and fake_logits ", fake.sizes(),
              " cannot pair: they must have the same shape", reduction == 0 ? "" : " apart from the batch dimension",
              reduction == 0 ? " for reduction 'none'" : "");
}

inline void check_grad(const char* op, const at::Tensor& grad, const at::Tensor& ref, bool per_element) {
  TORCH_CHECK(grad.device() == ref.device(), "gentk::", op, ": grad is on ", grad.device(), " but the input is on ",
              ref.device());
  if (per_element) {
    TORCH_CHECK(grad.sizes() == ref.sizes(), "gentk::", op, ": grad must have the input's shape ", ref.sizes(),
                ", got ", grad.sizes());
  } else {
    TORCH_CHECK(grad.numel() == 1, "gentk::", op, ": grad of a reduced loss must hold one value, got shape ",
                grad.sizes());
  }
}

inline void check_seed(const char* op, const at::Tensor& seed, const at::Tensor& ref) {
  TORCH_CHECK(seed.scalar_type() == at::kLong && seed.numel() == 2, "gentk::", op,
              ": seed must be an int64 tensor of two elements (seed, stream)");
  TORCH_CHECK(seed.device() == ref.device(), "gentk::", op, ": seed is on ", seed.device(), " but real is on ",
              ref.device());
}

inline void check_batched(const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1, "gentk::", op, ": ", name, " needs a batch dimension, got a 0-d tensor");
}

}  // namespace gentk
