// Autograd of the compiled loss ops, in C++: the Python-registered autograd of
// torch.library costs more per call than the kernels themselves on PatchGAN-sized maps
// (figures in BENCHMARKS.md). On CPU the adversarial and Bernoulli losses write their
// elementwise gradient in the forward pass (*_with_grad ops) and backward scales it; on
// other devices (and for L1, whose gradient is a sign) the op saves its inputs and
// backward calls the op's backward schema, which recomputes the gradient in one pass. The
// gradient penalty's ops follow. The Triton twins keep the Python registration
// (gentk/ops/losses/registration.py), whose formulas these mirror.
#include <string>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "autograd_helpers.h"

namespace gentk {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using autograd::handle;

// On CPU the forward writes d loss / d input along with the loss (the *_with_grad ops) and
// backward only scales it; elsewhere backward recomputes it from the saved inputs.
// `grad_mode` is the caller's GradMode: Function::apply runs forward with it disabled.
bool fuse_gradient(const at::Tensor& x, bool needs_grad, bool grad_mode) {
  return needs_grad && x.device().is_cpu() && grad_mode;
}

// The saved gradient times the upstream gradient. An upstream 1 (the loss is the last op,
// or summed with others) returns the saved gradient itself: autograd copies it before
// accumulating in place.
// Only plain CPU tensors are read: under tracing (fake, functional, Python subclasses) the
// value is unknown, and the multiply is what gets traced.
at::Tensor scale_saved(const at::Tensor& saved, const at::Tensor& grad) {
  const c10::DispatchKeySet keys = grad.key_set();
  const bool plain = grad.device().is_cpu() && grad.has_storage() && !keys.has(c10::DispatchKey::Python) &&
                     !keys.has(c10::DispatchKey::Functionalize) && !keys.has(c10::DispatchKey::FuncTorchBatched);
  if (plain && grad.numel() == 1 && grad.item<double>() == 1.0) return saved;
  return saved.mul(grad);
}

void check_first_order(const char* op) { autograd::check_first_order(op, "loss", "this loss"); }

// The upstream gradient of a reduced loss as a per-element factor. Sizes are read as SymInts:
// under torch.compile(dynamic=True) they are symbolic, and numel() would throw.
at::Tensor per_element_upstream(const std::string& reduction, const at::Tensor& grad, const at::Tensor& x) {
  if (reduction == "mean") return grad.div(c10::Scalar(x.sym_numel()));
  if (reduction == "batchsum") return grad.div(c10::Scalar(x.sym_size(0)));
  return grad;
}

class DiscriminatorLoss : public torch::autograd::Function<DiscriminatorLoss> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                            const std::string& mode, double real_label, double fake_label,
                            const std::string& reduction, bool grad_mode) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, std::string, double, double,
                                             std::string)>("gentk::discriminator_loss");
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["real_label"] = real_label;
    ctx->saved_data["fake_label"] = fake_label;
    ctx->saved_data["reduction"] = reduction;
    const bool fused = fuse_gradient(real, real.requires_grad() || fake.requires_grad(), grad_mode);
    ctx->saved_data["fused"] = fused;
    if (fused) {
      static const auto with_grad =
          handle<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, std::string,
                                                                double, double, std::string)>(
              "gentk::discriminator_loss_with_grad");
      auto [loss, grad_real, grad_fake] = with_grad.call(real, fake, mode, real_label, fake_label, reduction);
      ctx->save_for_backward({grad_real, grad_fake});
      return loss;
    }
    ctx->save_for_backward({real, fake});
    return op.call(real, fake, mode, real_label, fake_label, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("discriminator_loss");
    static const auto op =
        handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                  std::string, double, double, std::string)>(
            "gentk::discriminator_loss_backward");
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["fused"].toBool()) {
      return {scale_saved(saved[0], grads[0]), scale_saved(saved[1], grads[0]), at::Tensor(), at::Tensor(),
              at::Tensor(), at::Tensor(), at::Tensor()};
    }
    auto [gr, gf] = op.call(grads[0].contiguous(), saved[0], saved[1], ctx->saved_data["mode"].toStringRef(),
                            ctx->saved_data["real_label"].toDouble(), ctx->saved_data["fake_label"].toDouble(),
                            ctx->saved_data["reduction"].toStringRef());
    return {gr, gf, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class GeneratorLoss : public torch::autograd::Function<GeneratorLoss> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& fake, const std::string& mode,
                            const std::string& reduction, bool grad_mode) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, std::string, std::string)>("gentk::generator_loss");
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["reduction"] = reduction;
    const bool fused = fuse_gradient(fake, fake.requires_grad(), grad_mode);
    ctx->saved_data["fused"] = fused;
    if (fused) {
      static const auto with_grad = handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, std::string,
                                                                               std::string)>(
          "gentk::generator_loss_with_grad");
      auto [loss, grad] = with_grad.call(fake, mode, reduction);
      ctx->save_for_backward({grad});
      return loss;
    }
    ctx->save_for_backward({fake});
    return op.call(fake, mode, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("generator_loss");
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, std::string, std::string)>(
        "gentk::generator_loss_backward");
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["fused"].toBool()) {
      return {scale_saved(saved[0], grads[0]), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    return {op.call(grads[0].contiguous(), saved[0], ctx->saved_data["mode"].toStringRef(),
                    ctx->saved_data["reduction"].toStringRef()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// d/dlogits = sigmoid(x) - t (the backward kernel); d/dtarget = -x times the upstream gradient.
class BernoulliRecon : public torch::autograd::Function<BernoulliRecon> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                            const std::string& reduction, bool grad_mode) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, std::string)>("gentk::bernoulli_recon");
    ctx->saved_data["reduction"] = reduction;
    const bool fused = fuse_gradient(logits, logits.requires_grad(), grad_mode) && !target.requires_grad();
    ctx->saved_data["fused"] = fused;
    if (fused) {
      static const auto with_grad = handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                               std::string)>(
          "gentk::bernoulli_recon_with_grad");
      auto [loss, grad] = with_grad.call(logits, target, reduction);
      ctx->save_for_backward({grad});
      return loss;
    }
    ctx->save_for_backward({logits, target});
    return op.call(logits, target, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("bernoulli_recon");
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, std::string)>(
        "gentk::bernoulli_recon_backward");
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["fused"].toBool()) {
      return {scale_saved(saved[0], grads[0]), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const std::string reduction = ctx->saved_data["reduction"].toStringRef();
    const at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_logits, grad_target;
    if (ctx->needs_input_grad(0)) grad_logits = op.call(grad, saved[0], saved[1], reduction);
    if (ctx->needs_input_grad(1)) grad_target = saved[0].mul(per_element_upstream(reduction, grad, saved[0])).neg();
    return {grad_logits, grad_target, at::Tensor(), at::Tensor()};
  }
};

// d/dinput = weight * sign(x - t) = -d/dtarget.
class L1Loss : public torch::autograd::Function<L1Loss> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& target, double weight,
                            const std::string& reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, double, std::string)>("gentk::l1_loss");
    ctx->save_for_backward({input, target});
    ctx->saved_data["weight"] = weight;
    ctx->saved_data["reduction"] = reduction;
    return op.call(input, target, weight, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("l1_loss");
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double, std::string)>(
            "gentk::l1_loss_backward");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor grad_input = op.call(grads[0].contiguous(), saved[0], saved[1],
                                          ctx->saved_data["weight"].toDouble(),
                                          ctx->saved_data["reduction"].toStringRef());
    return {ctx->needs_input_grad(0) ? grad_input : at::Tensor(),
            ctx->needs_input_grad(1) ? grad_input.neg() : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The gradient penalty's ops. gp_interpolate saves only the seed: backward regenerates alpha.
class GpInterpolate : public torch::autograd::Function<GpInterpolate> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                            const at::Tensor& seed) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>("gentk::gp_interpolate");
    ctx->save_for_backward({seed});
    return op.call(real, fake, seed);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&)>(
        "gentk::gp_interpolate_backward");
    auto [grad_real, grad_fake] = op.call(grads[0].contiguous(), ctx->get_saved_variables()[0]);
    return {grad_real, grad_fake, at::Tensor()};
  }
};

// grad_norm_penalty's backward calls gentk::grad_norm_penalty_backward through the dispatcher,
// so under the double backward of a penalty that op's own autograd (below) records it.
class GradNormPenalty : public torch::autograd::Function<GradNormPenalty> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grads, double target, bool r1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = handle<at::Tensor(const at::Tensor&, double, bool)>("gentk::grad_norm_penalty");
    ctx->saved_data["target"] = target;
    ctx->saved_data["r1"] = r1;
    ctx->save_for_backward({grads});
    return op.call(grads, target, r1);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, double, bool)>(
        "gentk::grad_norm_penalty_backward");
    return {op.call(grads[0].contiguous(), ctx->get_saved_variables()[0], ctx->saved_data["target"].toDouble(),
                    ctx->saved_data["r1"].toBool()),
            at::Tensor(), at::Tensor()};
  }
};

// grad_norm_penalty_backward: out_r = c_r * g_r with c_r = 2 w (1 - t / n_r) / N (r1:
// c_r = 2 w / N), w the upstream scalar, n_r = ||g_r||. Its vector-Jacobian product with v, in
// ATen ops (so it is differentiable once more):
//   d/dg_r = c_r v_r + g_r (2 w t / (N n_r^3)) <g_r, v_r>     (r1: c_r v_r)
//   d/dw   = sum_r 2 (1 - t / n_r) <g_r, v_r> / N               (r1: sum_r 2 <g_r, v_r> / N)
// Sizes are SymInts, so torch.compile(dynamic=True) can trace it.
class GradNormPenaltyBackward : public torch::autograd::Function<GradNormPenaltyBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, const at::Tensor& grads, double target,
                            bool r1) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, double, bool)>(
        "gentk::grad_norm_penalty_backward");
    ctx->saved_data["target"] = target;
    ctx->saved_data["r1"] = r1;
    ctx->save_for_backward({w, grads});
    return op.call(w, grads, target, r1);
  }

  static variable_list backward(AutogradContext* ctx, variable_list upstream) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& w_in = saved[0];
    const at::Tensor& grads = saved[1];
    const double target = ctx->saved_data["target"].toDouble();
    const c10::SymInt rows = grads.sym_size(0);
    const auto two_over_rows = [&](const at::Tensor& t) { return t.mul(2.0).div(c10::Scalar(rows)); };
    const at::Tensor g = grads.reshape_symint({rows, -1});
    const at::Tensor v = upstream[0].reshape_symint({rows, -1});
    const at::Tensor w = w_in.reshape({});
    const at::Tensor gv = g.mul(v).sum(1);
    at::Tensor d_g, d_w;
    if (ctx->saved_data["r1"].toBool()) {
      d_g = two_over_rows(v.mul(w));
      d_w = two_over_rows(gv.sum());
    } else {
      const at::Tensor n = g.norm(2, {1});
      const at::Tensor nonzero = n.gt(0);
      const at::Tensor safe = at::where(nonzero, n, at::ones_like(n));
      const at::Tensor factor = at::where(nonzero, safe.reciprocal().mul(-target).add(1), at::zeros_like(n));
      const at::Tensor c = two_over_rows(factor.mul(w));
      const at::Tensor k = at::where(nonzero, two_over_rows(safe.pow(-3).mul(w).mul(target)), at::zeros_like(n));
      d_g = c.unsqueeze(1).mul(v).add(k.mul(gv).unsqueeze(1).mul(g));
      d_w = two_over_rows(factor.mul(gv).sum());
    }
    return {d_w.reshape_symint(w_in.sym_sizes()), d_g.reshape_symint(grads.sym_sizes()), at::Tensor(), at::Tensor()};
  }
};

at::Tensor discriminator_loss_autograd(const at::Tensor& real, const at::Tensor& fake, std::string mode,
                                       double real_label, double fake_label, std::string reduction) {
  return DiscriminatorLoss::apply(real, fake, mode, real_label, fake_label, reduction,
                                  c10::GradMode::is_enabled());
}

at::Tensor generator_loss_autograd(const at::Tensor& fake, std::string mode, std::string reduction) {
  return GeneratorLoss::apply(fake, mode, reduction, c10::GradMode::is_enabled());
}

at::Tensor bernoulli_recon_autograd(const at::Tensor& logits, const at::Tensor& target, std::string reduction) {
  return BernoulliRecon::apply(logits, target, reduction, c10::GradMode::is_enabled());
}

at::Tensor l1_loss_autograd(const at::Tensor& input, const at::Tensor& target, double weight,
                            std::string reduction) {
  return L1Loss::apply(input, target, weight, reduction);
}

at::Tensor gp_interpolate_autograd(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& seed) {
  return GpInterpolate::apply(real, fake, seed);
}

at::Tensor grad_norm_penalty_autograd(const at::Tensor& grads, double target, bool r1) {
  return GradNormPenalty::apply(grads, target, r1);
}

at::Tensor grad_norm_penalty_backward_autograd(const at::Tensor& w, const at::Tensor& grads, double target,
                                               bool r1) {
  return GradNormPenaltyBackward::apply(w, grads, target, r1);
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, Autograd, m) {
  m.impl("discriminator_loss", &discriminator_loss_autograd);
  m.impl("generator_loss", &generator_loss_autograd);
  m.impl("bernoulli_recon", &bernoulli_recon_autograd);
  m.impl("l1_loss", &l1_loss_autograd);
  m.impl("gp_interpolate", &gp_interpolate_autograd);
  m.impl("grad_norm_penalty", &grad_norm_penalty_autograd);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward_autograd);
}

}  // namespace gentk
