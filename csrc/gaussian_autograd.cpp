// Autograd of the compiled Gaussian ops, in C++. torch.library's Python-registered autograd
// costs tens of microseconds per forward+backward, more than the kernels themselves on a
// VAE's (64, 20) latent. The formulas are those of gentk/ops/gaussian/registration.py, which
// the Triton twins keep: nothing noise-sized is saved, backward regenerates the Philox noise
// from the saved (seed, stream) pair (or reads the given eps).
#include <optional>

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
using OptTensor = std::optional<at::Tensor>;

using autograd::check_first_order;
using autograd::handle;
using autograd::optional_of;

// d z / d eps = exp(logvar / 2); eps is the third tensor argument, so its edge is 2 when given.
at::Tensor grad_eps(AutogradContext* ctx, const at::Tensor& eps, const at::Tensor& grad_z, const at::Tensor& logvar) {
  if (!eps.defined() || !grad_z.defined() || !ctx->needs_input_grad(2)) return at::Tensor();
  return grad_z.mul(logvar.mul(0.5).exp());
}

class Reparameterize : public torch::autograd::Function<Reparameterize> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& mu, const at::Tensor& logvar,
                            const OptTensor& eps, const OptTensor& seed) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&)>(
            "gentk::reparameterize");
    ctx->save_for_backward({logvar, eps.value_or(at::Tensor()), seed.value_or(at::Tensor())});
    return op.call(mu, logvar, eps, seed);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("reparameterize");
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&)>(
            "gentk::reparameterize_backward");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logvar = saved[0], &eps = saved[1], &seed = saved[2];
    const at::Tensor& grad = grads[0];
    at::Tensor grad_logvar;
    if (ctx->needs_input_grad(1)) grad_logvar = op.call(grad.contiguous(), logvar, optional_of(eps), optional_of(seed));
    return {grad, grad_logvar, grad_eps(ctx, eps, grad, logvar), at::Tensor()};
  }
};

class GaussianKl : public torch::autograd::Function<GaussianKl> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& mu, const at::Tensor& logvar, bool reduce,
                            double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const at::Tensor&, bool, double)>("gentk::gaussian_kl");
    ctx->saved_data["scale"] = scale;
    ctx->save_for_backward({mu, logvar});
    return op.call(mu, logvar, reduce, scale);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("gaussian_kl");
    static const auto op =
        handle<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>(
            "gentk::gaussian_kl_backward");
    const auto saved = ctx->get_saved_variables();
    auto [grad_mu, grad_logvar] =
        op.call(grads[0].contiguous(), saved[0], saved[1], ctx->saved_data["scale"].toDouble());
    return {grad_mu, grad_logvar, at::Tensor(), at::Tensor()};
  }
};

class ReparameterizeKl : public torch::autograd::Function<ReparameterizeKl> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& mu, const at::Tensor& logvar,
                               const OptTensor& eps, const OptTensor& seed, bool reduce, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = handle<std::tuple<at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const OptTensor&, const OptTensor&, bool, double)>(
        "gentk::reparameterize_kl");
    ctx->saved_data["scale"] = scale;
    ctx->save_for_backward({mu, logvar, eps.value_or(at::Tensor()), seed.value_or(at::Tensor())});
    auto [z, kl] = op.call(mu, logvar, eps, seed, reduce, scale);
    return {z, kl};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("reparameterize_kl");
    static const auto op = handle<std::tuple<at::Tensor, at::Tensor>(
        const OptTensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
        const OptTensor&, double)>("gentk::reparameterize_kl_backward");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &mu = saved[0], &logvar = saved[1], &eps = saved[2], &seed = saved[3];
    const at::Tensor grad_z = grads[0].defined() ? grads[0].contiguous() : at::Tensor();
    const at::Tensor grad_kl = grads[1].defined() ? grads[1].contiguous() : logvar.new_zeros({});
    auto [grad_mu, grad_logvar] = op.call(optional_of(grad_z), grad_kl, mu, logvar, optional_of(eps),
                                          optional_of(seed), ctx->saved_data["scale"].toDouble());
    return {grad_mu, grad_logvar, grad_eps(ctx, eps, grad_z, logvar), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor reparameterize_autograd(const at::Tensor& mu, const at::Tensor& logvar, const OptTensor& eps,
                                   const OptTensor& seed) {
  return Reparameterize::apply(mu, logvar, eps, seed);
}

at::Tensor gaussian_kl_autograd(const at::Tensor& mu, const at::Tensor& logvar, bool reduce, double scale) {
  return GaussianKl::apply(mu, logvar, reduce, scale);
}

std::tuple<at::Tensor, at::Tensor> reparameterize_kl_autograd(const at::Tensor& mu, const at::Tensor& logvar,
                                                              const OptTensor& eps, const OptTensor& seed,
                                                              bool reduce, double scale) {
  const variable_list out = ReparameterizeKl::apply(mu, logvar, eps, seed, reduce, scale);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, Autograd, m) {
  m.impl("reparameterize", &reparameterize_autograd);
  m.impl("gaussian_kl", &gaussian_kl_autograd);
  m.impl("reparameterize_kl", &reparameterize_kl_autograd);
}

}  // namespace gentk
