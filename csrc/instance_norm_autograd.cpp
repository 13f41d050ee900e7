// Autograd of the compiled gentk::instance_norm, in C++. torch.library's Python-registered
// autograd cost as much per call as a 1x256x32x32 ResNet block's norm itself; in C++ the fixed
// cost is eager's (`python -m benchmarks.ops.instance_norm --per-call`, figures in BENCHMARKS.md). Backward calls
// gentk::instance_norm_backward; under create_graph=True (a WGAN-GP critic with instance norm)
// it differentiates ATen's instance norm instead, so that second-order gradients are exact. The
// Triton twin keeps the Python registration (gentk/ops/instance_norm/registration.py), which
// does the same.
#include <optional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "gentk/instance_norm.h"
#include "autograd_helpers.h"
#include "instance_norm_checks.h"

namespace gentk {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ForwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double, int64_t, double,
    const std::optional<at::Tensor>&);
using BackwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
    const at::Tensor&, const at::Tensor&, double, bool, int64_t, double);

using autograd::optional_of;

// act(instance_norm(x) * weight + bias) through ATen's own (twice differentiable) instance
// norm, in float32 (or float64) as the kernels compute. With input statistics they come from
// x; otherwise from the running statistics the forward normalized with (every row of the
// saved (N, C) mean and var holds them).
at::Tensor normalization_in_aten(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& mean, const at::Tensor& var, bool input_stats, double eps,
                                 int64_t activation, double negative_slope) {
  const at::ScalarType math = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto in_math = [&](const at::Tensor& t) { return t.defined() ? t.to(math) : t; };
  const at::Tensor running_mean = input_stats ? at::Tensor() : mean.select(0, 0).to(math);
  const at::Tensor running_var = input_stats ? at::Tensor() : var.select(0, 0).to(math);
  at::Tensor y = at::instance_norm(x.to(math), in_math(weight), in_math(bias), running_mean, running_var, input_stats,
                                   /*momentum=*/0.0, eps, /*cudnn_enabled=*/false);
  if (activation == kActRelu) y = at::relu(y);
  if (activation == kActLeakyRelu) y = at::leaky_relu(y, negative_slope);
  return y.to(x.scalar_type());
}

class InstanceNorm : public torch::autograd::Function<InstanceNorm> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const std::optional<at::Tensor>& weight,
                               const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& running_mean,
                               const std::optional<at::Tensor>& running_var, double eps, int64_t activation,
                               double negative_slope, const std::optional<at::Tensor>& residual) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op =
        c10::Dispatcher::singleton().findSchemaOrThrow("gentk::instance_norm", "").typed<ForwardSig>();
    auto [y, mean, var] = op.call(x, weight, bias, running_mean, running_var, eps, activation, negative_slope,
                                  residual);
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["activation"] = activation;
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["input_stats"] = !running_mean.has_value();
    // needs_input_grad counts the tensor arguments given: x's edge is 0, the others follow if present
    int64_t edge = 1;
    const auto edge_of = [&](const std::optional<at::Tensor>& t) -> int64_t {
      return t.has_value() && t->defined() ? edge++ : -1;
    };
    ctx->saved_data["weight_edge"] = edge_of(weight);
    ctx->saved_data["bias_edge"] = edge_of(bias);
    edge_of(running_mean);
    edge_of(running_var);
    ctx->saved_data["residual_edge"] = edge_of(residual);
    ctx->mark_non_differentiable({mean, var});
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor()), mean, var});
    return {y, mean, var};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(9);
    const at::Tensor& grad_y = grads[0];
    if (!grad_y.defined()) return out;
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[3], &var = saved[4];
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t activation = ctx->saved_data["activation"].toInt();
    const double negative_slope = ctx->saved_data["negative_slope"].toDouble();
    const bool input_stats = ctx->saved_data["input_stats"].toBool();
    const auto needs = [&](const char* edge_key) {
      const int64_t e = ctx->saved_data[edge_key].toInt();
      return e >= 0 && ctx->needs_input_grad(e);
    };
    const bool need[3] = {ctx->needs_input_grad(0), needs("weight_edge"), needs("bias_edge")};
    if (needs("residual_edge")) out[8] = grad_y;
    if (c10::GradMode::is_enabled()) {  // create_graph=True: gradients that are themselves differentiable
      std::vector<at::Tensor> inputs;
      std::vector<int> slots;
      const at::Tensor* candidates[] = {&x, &weight, &bias};
      for (int i = 0; i < 3; ++i) {
        if (need[i]) {
          inputs.push_back(*candidates[i]);
          slots.push_back(i);
        }
      }
      if (inputs.empty()) return out;
      const at::Tensor y =
          normalization_in_aten(x, weight, bias, mean, var, input_stats, eps, activation, negative_slope);
      const variable_list g = torch::autograd::grad({y}, inputs, {grad_y}, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t k = 0; k < slots.size(); ++k) out[slots[k]] = g[k];
      return out;
    }
    static const auto op =
        c10::Dispatcher::singleton().findSchemaOrThrow("gentk::instance_norm_backward", "").typed<BackwardSig>();
    auto [grad_x, grad_w, grad_b] = op.call(grad_y, x, optional_of(weight), optional_of(bias), mean, var, eps,
                                            input_stats, activation, negative_slope);
    if (need[0]) out[0] = grad_x;
    if (need[1]) out[1] = grad_w;
    if (need[2]) out[2] = grad_b;
    return out;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_autograd(
    const at::Tensor& x, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& running_mean, const std::optional<at::Tensor>& running_var, double eps,
    int64_t activation, double negative_slope, const std::optional<at::Tensor>& residual) {
  check_running_stats_not_differentiable("instance_norm", running_mean, running_var);
  const variable_list out =
      InstanceNorm::apply(x, weight, bias, running_mean, running_var, eps, activation, negative_slope, residual);
  return {out[0], out[1], out[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(gentk, Autograd, m) {
  m.impl("instance_norm", &instance_norm_autograd);
}

}  // namespace gentk
