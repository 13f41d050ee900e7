#pragma once
// Argument checks and mode tables of the loss family, shared by the CPU and CUDA
// implementations. gentk.functional checks the same things first with Python-side
// names; these guard direct torch.ops.gentk callers.
#include <cmath>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "checks.h"
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
  check_device_type(op, name, x, device_type);
  check_floating(op, name, x);
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

inline void check_batched(const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1, "gentk::", op, ": ", name, " needs a batch dimension, got a 0-d tensor");
}

}  // namespace gentk
