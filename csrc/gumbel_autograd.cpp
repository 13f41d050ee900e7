// Autograd of the compiled Gumbel ops, in C++. torch.library's Python-registered autograd
// costs tens of microseconds per forward+backward, more than the kernels themselves on
// Joint-VAE's (64, 10) code. The formulas are those of gentk/ops/gumbel/registration.py, which
// the Triton twins keep: a soft sample saves its own output, a hard sample saves logits and
// the noise source (gumbels, or the (seed, stream) pair) and backward regenerates the soft
// sample.
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

class GumbelSoftmax : public torch::autograd::Function<GumbelSoftmax> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const OptTensor& gumbels,
                            const OptTensor& seed, double tau, bool hard) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, const OptTensor&, const OptTensor&, double, bool)>(
            "gentk::gumbel_softmax");
    at::Tensor y = op.call(logits, gumbels, seed, tau, hard);
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["gumbels_given"] = gumbels.has_value() && gumbels->defined();
    if (hard) {
      ctx->save_for_backward({at::Tensor(), logits, gumbels.value_or(at::Tensor()), seed.value_or(at::Tensor())});
    } else {
      ctx->save_for_backward({y, at::Tensor(), at::Tensor(), at::Tensor()});
    }
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("gumbel_softmax");
    static const auto op = handle<at::Tensor(const at::Tensor&, const OptTensor&, const OptTensor&, const OptTensor&,
                                             const OptTensor&, double)>("gentk::gumbel_softmax_backward");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &soft = saved[0], &logits = saved[1], &gumbels = saved[2], &seed = saved[3];
    const at::Tensor grad_logits = op.call(grads[0].contiguous(), optional_of(soft), optional_of(logits),
                                           optional_of(gumbels), optional_of(seed), ctx->saved_data["tau"].toDouble());
    // logits + gumbels: both get the same gradient (gumbels, when given, is edge 1)
    const bool given = ctx->saved_data["gumbels_given"].toBool();
    const at::Tensor grad_gumbels = given && ctx->needs_input_grad(1) ? grad_logits : at::Tensor();
    return {grad_logits, grad_gumbels, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class CategoricalKlUniform : public torch::autograd::Function<CategoricalKlUniform> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, bool reduce, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        handle<at::Tensor(const at::Tensor&, bool, double)>("gentk::categorical_kl_uniform");
    ctx->saved_data["scale"] = reduce ? scale : 1.0;
    ctx->save_for_backward({logits});
    return op.call(logits, reduce, scale);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_first_order("categorical_kl_uniform");
    static const auto op = handle<at::Tensor(const at::Tensor&, const at::Tensor&, double)>(
        "gentk::categorical_kl_uniform_backward");
    const auto saved = ctx->get_saved_variables();
    return {op.call(grads[0].contiguous(), saved[0], ctx->saved_data["scale"].toDouble()), at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor gumbel_softmax_autograd(const at::Tensor& logits, const OptTensor& gumbels, const OptTensor& seed,
                                   double tau, bool hard) {
  return GumbelSoftmax::apply(logits, gumbels, seed, tau, hard);
}

at::Tensor categorical_kl_uniform_autograd(const at::Tensor& logits, bool reduce, double scale) {
  return CategoricalKlUniform::apply(logits, reduce, scale);
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, Autograd, m) {
  m.impl("gumbel_softmax", &gumbel_softmax_autograd);
  m.impl("categorical_kl_uniform", &categorical_kl_uniform_autograd);
}

}  // namespace gentk
