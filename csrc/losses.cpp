// Schemas of the loss family and their CPU implementations. The CUDA implementations of
// the same schemas live in csrc/cuda/losses.cu.
//
// Every loss op computes its elementwise terms and their sum in one pass. Its backward op
// recomputes the elementwise gradient from the logits in one pass; on CPU the autograd
// (csrc/losses_autograd.cpp) instead calls the *_with_grad op, which writes the gradient in
// the same forward pass, and scales it in backward (faster on CPU for BCE, about even for
// LSGAN; `python -m benchmarks.ops.losses --strategy`, figures in BENCHMARKS.md).
#include <cmath>
#include <string>

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/losses.h"
#include "cpu/widen.h"
#include "losses_checks.h"

namespace gentk {
namespace {

using cpu::narrowed;
using cpu::widened;

const cpu::LossKernels& kernels() {
  using namespace cpu;
  static const LossKernels& table = GENTK_PICK_ISA_TABLE(loss_kernels);
  return table;
}

cpu::LossTerm term(const at::Tensor& x, TermSpec spec) {
  cpu::LossTerm a{};
  a.dtype = x.scalar_type();
  a.n = x.numel();
  a.kind = spec.kind;
  a.x = x.data_ptr();
  a.param = spec.param;
  a.loss_scale = 1.0;
  a.grad_scale = 1.0;
  return a;
}

// Forward of one term, set up but not run: its sum into *sum (reduction sum / mean /
// batchsum) or its elements added into `out` (reduction none); optionally its gradient
// (times grad_scale) into a new *grad.
cpu::LossTerm forward_spec(const at::Tensor& x, TermSpec spec, const at::Tensor* target, int reduction,
                           at::Tensor* out, bool accumulate, double* sum, double loss_scale = 1.0,
                           int64_t* bad = nullptr, at::Tensor* grad = nullptr, double grad_scale = 1.0) {
  cpu::LossTerm a = term(x, spec);
  if (target != nullptr) a.target = target->data_ptr();
  a.bad_targets = bad;
  if (grad != nullptr) {
    *grad = at::empty_like(x);
    a.grad = grad->data_ptr();
    a.grad_scale = grad_scale;
  }
  *sum = 0;
  if (reduction == 0) {
    a.loss = out->data_ptr();
    a.loss_scale = loss_scale;
    a.accumulate = accumulate;
  } else {
    a.loss_sum = sum;
  }
  return a;
}

// Runs one term's forward (forward_spec); returns the unscaled sum.
double forward_term(const at::Tensor& x, TermSpec spec, const at::Tensor* target, int reduction,
                    at::Tensor* out, bool accumulate, double loss_scale = 1.0, int64_t* bad = nullptr,
                    at::Tensor* grad = nullptr, double grad_scale = 1.0) {
  double sum = 0;
  const cpu::LossTerm a =
      forward_spec(x, spec, target, reduction, out, accumulate, &sum, loss_scale, bad, grad, grad_scale);
  kernels().loss_terms(&a, 1);
  return sum;
}

// Reduced forward of the real and the fake term in one parallel region: the scaled sum of both.
double forward_pair(const at::Tensor& real, const at::Tensor& fake, const AdversarialSpec& spec, int reduction,
                    at::Tensor* grad_real = nullptr, at::Tensor* grad_fake = nullptr) {
  const double rs = reduction_scale(reduction, real), fs = reduction_scale(reduction, fake);
  double sums[2];
  const cpu::LossTerm terms[2] = {
      forward_spec(real, spec.real, nullptr, reduction, nullptr, false, &sums[0], 1.0, nullptr, grad_real, rs),
      forward_spec(fake, spec.fake, nullptr, reduction, nullptr, false, &sums[1], 1.0, nullptr, grad_fake, fs)};
  kernels().loss_terms(terms, 2);
  return sums[0] * rs + sums[1] * fs;
}

// Backward of one term, set up but not run: grad_x = dterm/dx * grad into a new *out (per
// element, reduction none) or dterm/dx * grad * scale (one value).
cpu::LossTerm backward_spec(const at::Tensor& grad, const at::Tensor& x, TermSpec spec, const at::Tensor* target,
                            int reduction, double scale, at::Tensor* grad_c, at::Tensor* out) {
  cpu::LossTerm a = term(x, spec);
  if (target != nullptr) a.target = target->data_ptr();
  if (reduction == 0) {
    *grad_c = widened(grad);
    a.grad_out = grad_c->data_ptr();
    a.grad_scale = scale;
  } else {
    a.grad_scale = grad.item<double>() * scale;
  }
  *out = at::empty_like(x);
  a.grad = out->data_ptr();
  return a;
}

at::Tensor backward_term(const at::Tensor& grad, const at::Tensor& x, TermSpec spec, const at::Tensor* target,
                         int reduction, double scale) {
  at::Tensor grad_c, out;
  const cpu::LossTerm a = backward_spec(grad, x, spec, target, reduction, scale, &grad_c, &out);
  kernels().loss_terms(&a, 1);
  return out;
}

// Loss ops against a target tensor: bernoulli_recon (BCE-with-logits) and l1_loss.
void check_target_pair(const char* op, const char* x_name, const at::Tensor& x, const at::Tensor& target) {
  check_logits(op, x_name, x, at::kCPU);
  check_like(op, "target", target, x_name, x, true);
}

// The argument checks of the three discriminator ops; returns the per-term spec and sets
// `red` to the reduction code.
AdversarialSpec checked_discriminator_args(const char* op, const at::Tensor& real, const at::Tensor& fake,
                                           const std::string& mode, double real_label, double fake_label,
                                           const std::string& reduction, int& red) {
  check_logits(op, "real_logits", real, at::kCPU);
  check_like(op, "fake_logits", fake, "real_logits", real, false);
  const AdversarialSpec spec = discriminator_spec(op, mode, real_label, fake_label);
  red = reduction_code(op, reduction, false);
  check_pairing(op, real, fake, red);
  return spec;
}

// The *_with_grad ops return the loss and d loss / d input (for an upstream gradient of 1)
// from the same pass; the C++ autograd (csrc/losses_autograd.cpp) uses them on CPU, where
// writing the gradient in forward and scaling it in backward beat recomputing it.
std::tuple<at::Tensor, at::Tensor, at::Tensor> discriminator_loss_with_grad_cpu(
    const at::Tensor& real_in, const at::Tensor& fake_in, std::string mode, double real_label, double fake_label,
    std::string reduction) {
  const char* op = "discriminator_loss_with_grad";
  int red = 0;
  const AdversarialSpec spec = checked_discriminator_args(op, real_in, fake_in, mode, real_label, fake_label,
                                                          reduction, red);
  const at::Tensor real = widened(real_in), fake = widened(fake_in);
  const at::ScalarType type = real_in.scalar_type();
  at::Tensor grad_real, grad_fake;
  if (red == 0) {
    at::Tensor out = at::empty_like(real);
    forward_term(real, spec.real, nullptr, red, &out, false, 1.0, nullptr, &grad_real);
    forward_term(fake, spec.fake, nullptr, red, &out, true, 1.0, nullptr, &grad_fake);
    return {narrowed(out, type), narrowed(grad_real, type), narrowed(grad_fake, type)};
  }
  const double loss = forward_pair(real, fake, spec, red, &grad_real, &grad_fake);
  return {at::scalar_tensor(loss, real_in.options()), narrowed(grad_real, type), narrowed(grad_fake, type)};
}

std::tuple<at::Tensor, at::Tensor> generator_loss_with_grad_cpu(const at::Tensor& fake_in, std::string mode,
                                                                std::string reduction) {
  const char* op = "generator_loss_with_grad";
  check_logits(op, "fake_logits", fake_in, at::kCPU);
  const TermSpec spec = generator_spec(op, mode);
  const int red = reduction_code(op, reduction, false);
  const at::Tensor fake = widened(fake_in);
  const at::ScalarType type = fake_in.scalar_type();
  const double fs = reduction_scale(red, fake);
  at::Tensor grad;
  if (red == 0) {
    at::Tensor out = at::empty_like(fake);
    forward_term(fake, spec, nullptr, red, &out, false, 1.0, nullptr, &grad);
    return {narrowed(out, type), narrowed(grad, type)};
  }
  const double s = forward_term(fake, spec, nullptr, red, nullptr, false, 1.0, nullptr, &grad, fs) * fs;
  return {at::scalar_tensor(s, fake_in.options()), narrowed(grad, type)};
}

std::tuple<at::Tensor, at::Tensor> bernoulli_recon_with_grad_cpu(const at::Tensor& logits, const at::Tensor& target_in,
                                                                 std::string reduction) {
  const char* op = "bernoulli_recon_with_grad";
  check_target_pair(op, "logits", logits, target_in);
  const int red = reduction_code(op, reduction, true);
  if (red == 3) check_batched(op, "logits", logits);
  const at::Tensor x = widened(logits), target = widened(target_in);
  const at::ScalarType type = logits.scalar_type();
  const double scale = reduction_scale(red, x);
  int64_t bad = 0;
  at::Tensor out = red == 0 ? at::empty_like(x) : at::Tensor();
  at::Tensor grad;
  const double s = forward_term(x, {kBce, 0.0}, &target, red, &out, false, 1.0, &bad, &grad, red == 0 ? 1.0 : scale);
  TORCH_CHECK_VALUE(bad == 0, "gentk::", op, ": target must lie in [0, 1] (binary cross-entropy); ", bad,
                    " element(s) lie outside");
  if (red == 0) return {narrowed(out, type), narrowed(grad, type)};
  return {at::scalar_tensor(s * scale, logits.options()), narrowed(grad, type)};
}

at::Tensor discriminator_loss_cpu(const at::Tensor& real_in, const at::Tensor& fake_in, std::string mode,
                                  double real_label, double fake_label, std::string reduction) {
  const char* op = "discriminator_loss";
  int red = 0;
  const AdversarialSpec spec = checked_discriminator_args(op, real_in, fake_in, mode, real_label, fake_label,
                                                          reduction, red);
  const at::Tensor real = widened(real_in), fake = widened(fake_in);
  if (red == 0) {
    at::Tensor out = at::empty_like(real);
    forward_term(real, spec.real, nullptr, red, &out, false);
    forward_term(fake, spec.fake, nullptr, red, &out, true);
    return narrowed(out, real_in.scalar_type());
  }
  return at::scalar_tensor(forward_pair(real, fake, spec, red), real_in.options());
}

std::tuple<at::Tensor, at::Tensor> discriminator_loss_backward_cpu(const at::Tensor& grad,
                                                                   const at::Tensor& real_in,
                                                                   const at::Tensor& fake_in, std::string mode,
                                                                   double real_label, double fake_label,
                                                                   std::string reduction) {
  const char* op = "discriminator_loss_backward";
  int red = 0;
  const AdversarialSpec spec = checked_discriminator_args(op, real_in, fake_in, mode, real_label, fake_label,
                                                          reduction, red);
  check_grad(op, "grad", grad, "real_logits", real_in, real_in.sizes(), red == 0);
  const at::Tensor real = widened(real_in), fake = widened(fake_in);
  at::Tensor grad_c[2], out[2];
  const cpu::LossTerm terms[2] = {
      backward_spec(grad, real, spec.real, nullptr, red, reduction_scale(red, real), &grad_c[0], &out[0]),
      backward_spec(grad, fake, spec.fake, nullptr, red, reduction_scale(red, fake), &grad_c[1], &out[1])};
  kernels().loss_terms(terms, 2);  // each writes its own gradient, so they may share a region
  return {narrowed(out[0], real_in.scalar_type()), narrowed(out[1], real_in.scalar_type())};
}

at::Tensor generator_loss_cpu(const at::Tensor& fake_in, std::string mode, std::string reduction) {
  const char* op = "generator_loss";
  check_logits(op, "fake_logits", fake_in, at::kCPU);
  const TermSpec spec = generator_spec(op, mode);
  const int red = reduction_code(op, reduction, false);
  const at::Tensor fake = widened(fake_in);
  if (red == 0) {
    at::Tensor out = at::empty_like(fake);
    forward_term(fake, spec, nullptr, red, &out, false);
    return narrowed(out, fake_in.scalar_type());
  }
  const double s = forward_term(fake, spec, nullptr, red, nullptr, false) * reduction_scale(red, fake);
  return at::scalar_tensor(s, fake_in.options());
}

at::Tensor generator_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& fake_in, std::string mode,
                                       std::string reduction) {
  const char* op = "generator_loss_backward";
  check_logits(op, "fake_logits", fake_in, at::kCPU);
  const TermSpec spec = generator_spec(op, mode);
  const int red = reduction_code(op, reduction, false);
  check_grad(op, "grad", grad, "fake_logits", fake_in, fake_in.sizes(), red == 0);
  const at::Tensor fake = widened(fake_in);
  return narrowed(backward_term(grad, fake, spec, nullptr, red, reduction_scale(red, fake)), fake_in.scalar_type());
}


at::Tensor target_loss_forward(const char* op, const at::Tensor& x_in, const at::Tensor& target_in, int kind,
                               double weight, int red, bool check_range) {
  const at::Tensor x = widened(x_in), target = widened(target_in);
  int64_t bad = 0;
  at::Tensor out = red == 0 ? at::empty_like(x) : at::Tensor();
  const double s = forward_term(x, {kind, 0.0}, &target, red, &out, false, weight, check_range ? &bad : nullptr);
  TORCH_CHECK_VALUE(bad == 0, "gentk::", op, ": target must lie in [0, 1] (binary cross-entropy); ", bad,
              " element(s) lie outside");
  if (red == 0) return narrowed(out, x_in.scalar_type());
  return at::scalar_tensor(s * weight * reduction_scale(red, x), x_in.options());
}

at::Tensor bernoulli_recon_cpu(const at::Tensor& logits, const at::Tensor& target, std::string reduction) {
  const char* op = "bernoulli_recon";
  check_target_pair(op, "logits", logits, target);
  const int red = reduction_code(op, reduction, true);
  if (red == 3) check_batched(op, "logits", logits);
  return target_loss_forward(op, logits, target, kBce, 1.0, red, true);
}

at::Tensor bernoulli_recon_backward_cpu(const at::Tensor& grad, const at::Tensor& logits,
                                        const at::Tensor& target_in, std::string reduction) {
  const char* op = "bernoulli_recon_backward";
  check_target_pair(op, "logits", logits, target_in);
  const int red = reduction_code(op, reduction, true);
  check_grad(op, "grad", grad, "logits", logits, logits.sizes(), red == 0);
  const at::Tensor x = widened(logits), target = widened(target_in);
  return narrowed(backward_term(grad, x, {kBce, 0.0}, &target, red, reduction_scale(red, x)), logits.scalar_type());
}

at::Tensor l1_loss_cpu(const at::Tensor& input, const at::Tensor& target, double weight, std::string reduction) {
  const char* op = "l1_loss";
  check_target_pair(op, "input", input, target);
  const int red = reduction_code(op, reduction, false);
  return target_loss_forward(op, input, target, kAbs, weight, red, false);
}

at::Tensor l1_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& input, const at::Tensor& target_in,
                                double weight, std::string reduction) {
  const char* op = "l1_loss_backward";
  check_target_pair(op, "input", input, target_in);
  const int red = reduction_code(op, reduction, false);
  check_grad(op, "grad", grad, "input", input, input.sizes(), red == 0);
  const at::Tensor x = widened(input), target = widened(target_in);
  return narrowed(backward_term(grad, x, {kAbs, 0.0}, &target, red, weight * reduction_scale(red, x)),
                  input.scalar_type());
}

// ---- gradient penalty -------------------------------------------------------------------

cpu::RowsOp rows_op(const at::Tensor& x) {
  cpu::RowsOp a{};
  a.dtype = x.scalar_type();
  a.rows = x.size(0);
  a.cols = a.rows > 0 ? x.numel() / a.rows : 0;
  return a;
}

void read_seed(const at::Tensor& seed, uint64_t* s, uint64_t* stream) {
  const at::Tensor c = seed.contiguous();
  *s = static_cast<uint64_t>(c.data_ptr<int64_t>()[0]);
  *stream = static_cast<uint64_t>(c.data_ptr<int64_t>()[1]);
}

at::Tensor gp_interpolate_cpu(const at::Tensor& real_in, const at::Tensor& fake_in, const at::Tensor& seed) {
  const char* op = "gp_interpolate";
  check_logits(op, "real", real_in, at::kCPU);
  check_like(op, "fake", fake_in, "real", real_in, true);
  check_batched(op, "real", real_in);
  check_seed(op, seed, "real", real_in);
  const at::Tensor real = widened(real_in), fake = widened(fake_in);
  at::Tensor out = at::empty_like(real);
  cpu::RowsOp a = rows_op(real);
  read_seed(seed, &a.seed, &a.stream);
  a.a = real.data_ptr();
  a.b = fake.data_ptr();
  a.out = out.data_ptr();
  kernels().interpolate(a);
  return narrowed(out, real_in.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> gp_interpolate_backward_cpu(const at::Tensor& grad_in, const at::Tensor& seed) {
  const char* op = "gp_interpolate_backward";
  check_logits(op, "grad", grad_in, at::kCPU);
  check_batched(op, "grad", grad_in);
  check_seed(op, seed, "grad", grad_in);
  const at::Tensor grad = widened(grad_in);
  at::Tensor grad_real = at::empty_like(grad), grad_fake = at::empty_like(grad);
  cpu::RowsOp a = rows_op(grad);
  read_seed(seed, &a.seed, &a.stream);
  a.a = grad.data_ptr();
  a.out = grad_real.data_ptr();
  a.out2 = grad_fake.data_ptr();
  kernels().interpolate_backward(a);
  return {narrowed(grad_real, grad_in.scalar_type()), narrowed(grad_fake, grad_in.scalar_type())};
}

std::vector<double> row_norms_sq(const at::Tensor& grads) {
  cpu::RowsOp a = rows_op(grads);
  std::vector<double> sumsq(static_cast<size_t>(a.rows));
  a.a = grads.data_ptr();
  a.out = sumsq.data();
  kernels().row_sumsq(a);
  return sumsq;
}

at::Tensor grad_norm_penalty_cpu(const at::Tensor& grads_in, double target, bool r1) {
  const char* op = "grad_norm_penalty";
  check_logits(op, "grads", grads_in, at::kCPU);
  check_batched(op, "grads", grads_in);
  const at::Tensor grads = widened(grads_in);
  const std::vector<double> sumsq = row_norms_sq(grads);
  double total = 0;
  for (const double s : sumsq) {
    const double d = r1 ? s : (std::sqrt(s) - target) * (std::sqrt(s) - target);
    total += d;
  }
  const double rows = static_cast<double>(sumsq.size());
  return at::scalar_tensor(rows > 0 ? total / rows : NAN, grads_in.options());
}

// d/dg of mean_r (||g_r|| - t)^2 = 2 (1 - t / ||g_r||) g_r / N (0 where g_r = 0); of
// mean_r ||g_r||^2 = 2 g_r / N.
at::Tensor grad_norm_penalty_backward_cpu(const at::Tensor& grad, const at::Tensor& grads_in, double target,
                                          bool r1) {
  const char* op = "grad_norm_penalty_backward";
  check_logits(op, "grads", grads_in, at::kCPU);
  check_batched(op, "grads", grads_in);
  check_grad(op, "grad", grad, "grads", grads_in, grads_in.sizes(), false);
  const at::Tensor grads = widened(grads_in);
  cpu::RowsOp a = rows_op(grads);
  const double w = a.rows > 0 ? 2.0 * grad.item<double>() / static_cast<double>(a.rows) : 0.0;
  std::vector<double> coef = r1 ? std::vector<double>(static_cast<size_t>(a.rows), w) : row_norms_sq(grads);
  if (!r1) {
    for (double& c : coef) {
      const double n = std::sqrt(c);
      c = n > 0 ? w * (1.0 - target / n) : 0.0;
    }
  }
  at::Tensor out = at::empty_like(grads);
  a.a = grads.data_ptr();
  a.coef = coef.data();
  a.out = out.data_ptr();
  kernels().scale_rows(a);
  return narrowed(out, grads_in.scalar_type());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gentk, m) {
  m.def("discriminator_loss(Tensor real_logits, Tensor fake_logits, str mode, float real_label, float fake_label,"
        " str reduction) -> Tensor");
  m.def("discriminator_loss_backward(Tensor grad, Tensor real_logits, Tensor fake_logits, str mode,"
        " float real_label, float fake_label, str reduction) -> (Tensor, Tensor)");
  m.def("generator_loss(Tensor fake_logits, str mode, str reduction) -> Tensor");
  m.def("generator_loss_backward(Tensor grad, Tensor fake_logits, str mode, str reduction) -> Tensor");
  m.def("bernoulli_recon(Tensor logits, Tensor target, str reduction) -> Tensor");
  m.def("bernoulli_recon_backward(Tensor grad, Tensor logits, Tensor target, str reduction) -> Tensor");
  m.def("l1_loss(Tensor input, Tensor target, float weight, str reduction) -> Tensor");
  m.def("l1_loss_backward(Tensor grad, Tensor input, Tensor target, float weight, str reduction) -> Tensor");
  m.def("discriminator_loss_with_grad(Tensor real_logits, Tensor fake_logits, str mode, float real_label,"
        " float fake_label, str reduction) -> (Tensor, Tensor, Tensor)");
  m.def("generator_loss_with_grad(Tensor fake_logits, str mode, str reduction) -> (Tensor, Tensor)");
  m.def("bernoulli_recon_with_grad(Tensor logits, Tensor target, str reduction) -> (Tensor, Tensor)");
  m.def("gp_interpolate(Tensor real, Tensor fake, Tensor seed) -> Tensor");
  m.def("gp_interpolate_backward(Tensor grad, Tensor seed) -> (Tensor, Tensor)");
  m.def("grad_norm_penalty(Tensor grads, float target, bool r1) -> Tensor");
  m.def("grad_norm_penalty_backward(Tensor grad, Tensor grads, float target, bool r1) -> Tensor");
}

TORCH_LIBRARY_IMPL(gentk, CPU, m) {
  m.impl("discriminator_loss", &discriminator_loss_cpu);
  m.impl("discriminator_loss_backward", &discriminator_loss_backward_cpu);
  m.impl("generator_loss", &generator_loss_cpu);
  m.impl("generator_loss_backward", &generator_loss_backward_cpu);
  m.impl("bernoulli_recon", &bernoulli_recon_cpu);
  m.impl("bernoulli_recon_backward", &bernoulli_recon_backward_cpu);
  m.impl("l1_loss", &l1_loss_cpu);
  m.impl("l1_loss_backward", &l1_loss_backward_cpu);
  m.impl("discriminator_loss_with_grad", &discriminator_loss_with_grad_cpu);
  m.impl("generator_loss_with_grad", &generator_loss_with_grad_cpu);
  m.impl("bernoulli_recon_with_grad", &bernoulli_recon_with_grad_cpu);
  m.impl("gp_interpolate", &gp_interpolate_cpu);
  m.impl("gp_interpolate_backward", &gp_interpolate_backward_cpu);
  m.impl("grad_norm_penalty", &grad_norm_penalty_cpu);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward_cpu);
}

}  // namespace gentk
