// Schemas of the Gumbel op family and their CPU implementations. The CUDA implementations
// of the same schemas live in csrc/cuda/gumbel.cu.
//
// All four ops reduce over the LAST dimension of contiguous inputs (gentk.functional moves
// any other `dim` last):
//  - gumbel_softmax(logits, gumbels, seed, tau, hard): softmax((logits + g) / tau), g the
//    given gumbels, else Gumbel noise from Philox (seed, stream) (gentk/gumbel.h), else none
//    (both absent: the plain softmax(logits / tau), for evaluation). hard: the one-hot of
//    the argmax of logits + g (first maximum on ties).
//  - gumbel_softmax_backward(grad, soft, logits, gumbels, seed, tau): the softmax gradient
//    (also the straight-through gradient of hard samples) at the soft sample, which is
//    either given (`soft`) or recomputed from logits and the noise.
//  - categorical_kl_uniform(logits, reduce, scale): KL(softmax(logits) || uniform(K)) =
//    sum q log q + log K per row (shape logits.shape[:-1]), or scale * the sum over rows.
//  - categorical_kl_uniform_backward(grad, logits, scale): grad per row, or one value for
//    the reduced KL (then times scale).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/gumbel.h"
#include "cpu/widen.h"
#include "gumbel_checks.h"

namespace gentk {
namespace {

using cpu::narrowed;
using cpu::widened;

const cpu::GumbelKernels& kernels() {
  using namespace cpu;
  static const GumbelKernels& table = GENTK_PICK_ISA_TABLE(gumbel_kernels);
  return table;
}

int64_t categories(const at::Tensor& logits) { return logits.size(-1); }
int64_t rows_of(const at::Tensor& logits) {
  const int64_t k = categories(logits);
  return k == 0 ? 0 : logits.numel() / k;
}

// Fills the noise fields of a kernel argument struct; keeps a contiguous gumbels alive.
template <class Args>
void set_noise(Args& a, const std::optional<at::Tensor>& gumbels, const std::optional<at::Tensor>& seed,
               at::Tensor* keepalive) {
  a.noise = cpu::GumbelNoise::kNone;
  a.gumbels = nullptr;
  a.seed = a.stream = 0;
  if (gumbels.has_value()) {
    *keepalive = widened(*gumbels);
    a.noise = cpu::GumbelNoise::kGiven;
    a.gumbels = keepalive->data_ptr();
  } else if (seed.has_value()) {
    const at::Tensor s = seed->contiguous();
    a.noise = cpu::GumbelNoise::kPhilox;
    a.seed = static_cast<uint64_t>(s.data_ptr<int64_t>()[0]);
    a.stream = static_cast<uint64_t>(s.data_ptr<int64_t>()[1]);
  }
}

at::Tensor gumbel_softmax_cpu(const at::Tensor& logits_in, const std::optional<at::Tensor>& gumbels,
                              const std::optional<at::Tensor>& seed, double tau, bool hard) {
  check_logits("gumbel_softmax", logits_in, at::kCPU);
  check_gumbel_noise("gumbel_softmax", "logits", logits_in, gumbels, seed);
  check_tau("gumbel_softmax", tau);
  const at::Tensor logits = widened(logits_in);
  at::Tensor out = at::empty_like(logits);
  if (logits.numel() == 0) return narrowed(out, logits_in.scalar_type());
  cpu::GumbelSoftmaxForward a{};
  a.dtype = logits.scalar_type();
  a.rows = rows_of(logits);
  a.cols = categories(logits);
  a.logits = logits.data_ptr();
  at::Tensor keepalive;
  set_noise(a, gumbels, seed, &keepalive);
  a.inv_tau = 1.0 / tau;
  a.hard = hard;
  a.out = out.data_ptr();
  kernels().softmax_forward(a);
  return narrowed(out, logits_in.scalar_type());
}

at::Tensor gumbel_softmax_backward_cpu(const at::Tensor& grad_in, const std::optional<at::Tensor>& soft_in,
                                       const std::optional<at::Tensor>& logits_in,
                                       const std::optional<at::Tensor>& gumbels,
                                       const std::optional<at::Tensor>& seed, double tau) {
  const char* op = "gumbel_softmax_backward";
  check_gumbel_softmax_backward(op, grad_in, soft_in, logits_in, gumbels, seed, tau, at::kCPU);
  const at::Tensor grad = widened(grad_in);
  const at::Tensor soft = soft_in.has_value() ? widened(*soft_in) : at::Tensor();
  const at::Tensor logits = soft_in.has_value() ? at::Tensor() : widened(*logits_in);
  at::Tensor grad_logits = at::empty_like(grad);
  if (grad.numel() == 0) return narrowed(grad_logits, grad_in.scalar_type());
  cpu::GumbelSoftmaxBackward a{};
  a.dtype = grad.scalar_type();
  a.rows = rows_of(grad);
  a.cols = categories(grad);
  a.grad = grad.data_ptr();
  a.soft = soft.defined() ? soft.data_ptr() : nullptr;
  a.logits = logits.defined() ? logits.data_ptr() : nullptr;
  at::Tensor keepalive;
  set_noise(a, gumbels, seed, &keepalive);
  a.inv_tau = 1.0 / tau;
  a.grad_logits = grad_logits.data_ptr();
  kernels().softmax_backward(a);
  return narrowed(grad_logits, grad_in.scalar_type());
}

at::Tensor categorical_kl_uniform_cpu(const at::Tensor& logits_in, bool reduce, double scale) {
  check_logits("categorical_kl_uniform", logits_in, at::kCPU);
  const at::Tensor logits = widened(logits_in);
  const auto row_shape = logits.sizes().slice(0, logits.dim() - 1);
  at::Tensor kl = reduce ? at::Tensor() : at::empty(row_shape, logits.options());
  double sum = 0;
  if (rows_of(logits) > 0) {
    cpu::CategoricalKlForward a{};
    a.dtype = logits.scalar_type();
    a.rows = rows_of(logits);
    a.cols = categories(logits);
    a.logits = logits.data_ptr();
    a.kl = reduce ? nullptr : kl.data_ptr();
    a.kl_sum = reduce ? &sum : nullptr;
    kernels().kl_forward(a);
  }
  if (reduce) return at::scalar_tensor(sum * scale, logits_in.options());
  return narrowed(kl, logits_in.scalar_type());
}

at::Tensor categorical_kl_uniform_backward_cpu(const at::Tensor& grad_in, const at::Tensor& logits_in,
                                               double scale) {
  const char* op = "categorical_kl_uniform_backward";
  check_logits(op, logits_in, at::kCPU);
  check_categorical_kl_grad(op, grad_in, logits_in);
  const at::Tensor logits = widened(logits_in);
  const auto row_shape = logits.sizes().slice(0, logits.dim() - 1);
  at::Tensor grad_logits = at::empty_like(logits);
  if (rows_of(logits) == 0) return narrowed(grad_logits, logits_in.scalar_type());
  cpu::CategoricalKlBackward a{};
  a.dtype = logits.scalar_type();
  a.rows = rows_of(logits);
  a.cols = categories(logits);
  a.logits = logits.data_ptr();
  at::Tensor grad;
  // one weight per row (reduce=False), or one value for the reduced KL
  if (grad_in.sizes() == row_shape && logits.dim() > 1) {
    grad = widened(grad_in);
    a.grad = grad.data_ptr();
  } else {
    a.grad = nullptr;
    a.grad_scalar = grad_in.item<double>() * scale;
  }
  a.grad_logits = grad_logits.data_ptr();
  kernels().kl_backward(a);
  return narrowed(grad_logits, logits_in.scalar_type());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gentk, m) {
  m.def("gumbel_softmax(Tensor logits, Tensor? gumbels, Tensor? seed, float tau, bool hard) -> Tensor");
  m.def("gumbel_softmax_backward(Tensor grad, Tensor? soft, Tensor? logits, Tensor? gumbels, Tensor? seed,"
        " float tau) -> Tensor");
  m.def("categorical_kl_uniform(Tensor logits, bool reduce, float scale) -> Tensor");
  m.def("categorical_kl_uniform_backward(Tensor grad, Tensor logits, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(gentk, CPU, m) {
  m.impl("gumbel_softmax", &gumbel_softmax_cpu);
  m.impl("gumbel_softmax_backward", &gumbel_softmax_backward_cpu);
  m.impl("categorical_kl_uniform", &categorical_kl_uniform_cpu);
  m.impl("categorical_kl_uniform_backward", &categorical_kl_uniform_backward_cpu);
}

}  // namespace gentk
