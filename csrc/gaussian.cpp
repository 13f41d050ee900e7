// Schemas of the Gaussian op family and their CPU implementations.
// The CUDA implementations of the same schemas live in csrc/cuda/gaussian.cu.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include "cpu/gaussian.h"
#include "cpu/widen.h"
#include "gaussian_checks.h"

namespace gentk {
namespace {

using cpu::narrowed;
using cpu::widened;

const cpu::GaussianKernels& kernels() {
  using namespace cpu;
  static const GaussianKernels& table = GENTK_PICK_ISA_TABLE(gaussian_kernels);
  return table;
}

void fill_noise(const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed,
                const at::Tensor& ref, const void** eps_ptr, uint64_t* s, uint64_t* stream,
                at::Tensor* eps_keepalive) {
  if (eps.has_value()) {
    *eps_keepalive = widened(*eps);
    *eps_ptr = eps_keepalive->data_ptr();
    return;
  }
  const at::Tensor seed_cpu = seed->contiguous();
  *eps_ptr = nullptr;
  *s = static_cast<uint64_t>(seed_cpu.data_ptr<int64_t>()[0]);
  *stream = static_cast<uint64_t>(seed_cpu.data_ptr<int64_t>()[1]);
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& mu_in, const at::Tensor& logvar_in,
                                               const std::optional<at::Tensor>& eps,
                                               const std::optional<at::Tensor>& seed, bool want_z,
                                               bool want_kl, bool reduce, double scale) {
  const at::Tensor mu = widened(mu_in);
  const at::Tensor logvar = widened(logvar_in);
  cpu::GaussianForward a{};
  a.dtype = mu.scalar_type();
  a.n = mu.numel();
  a.mu = mu.data_ptr();
  a.logvar = logvar.data_ptr();
  at::Tensor eps_c, z, kl;
  double kl_sum = 0;
  if (want_z) {
    fill_noise(eps, seed, mu, &a.eps, &a.seed, &a.stream, &eps_c);
    z = at::empty_like(mu);
    a.z = z.data_ptr();
  }
  if (want_kl) {
    if (reduce) {
      a.kl_sum = &kl_sum;
    } else {
      kl = at::empty_like(mu);
      a.kl = kl.data_ptr();
    }
  }
  kernels().forward(a);
  if (want_kl && reduce) kl = at::scalar_tensor(kl_sum * scale, mu.options());
  return {narrowed(z, mu_in.scalar_type()), narrowed(kl, mu_in.scalar_type())};
}

// grad_kl is either per element (reduction "none") or one value for the whole sum.
std::tuple<at::Tensor, at::Tensor> backward_cpu(const std::optional<at::Tensor>& grad_z_in,
                                                const std::optional<at::Tensor>& grad_kl_in,
                                                const at::Tensor& mu_in, const at::Tensor& logvar_in,
                                                const std::optional<at::Tensor>& eps,
                                                const std::optional<at::Tensor>& seed, double scale,
                                                bool want_grad_mu) {
  const at::Tensor mu = mu_in.defined() ? widened(mu_in) : mu_in;
  const at::Tensor logvar = widened(logvar_in);
  cpu::GaussianBackward a{};
  a.dtype = logvar.scalar_type();
  a.n = logvar.numel();
  a.mu = mu.defined() ? mu.data_ptr() : nullptr;
  a.logvar = logvar.data_ptr();
  at::Tensor grad_z, grad_kl, eps_c;
  if (grad_z_in.has_value()) {
    grad_z = widened(*grad_z_in);
    a.grad_z = grad_z.data_ptr();
    fill_noise(eps, seed, logvar, &a.eps, &a.seed, &a.stream, &eps_c);
  }
  if (grad_kl_in.has_value()) {
    if (grad_kl_in->sizes() == logvar.sizes() && logvar.dim() > 0) {
      grad_kl = widened(*grad_kl_in);
      a.grad_kl = grad_kl.data_ptr();
    } else {
      a.grad_kl_scalar = grad_kl_in->item<double>() * scale;
    }
  }
  at::Tensor grad_mu = want_grad_mu ? at::empty_like(logvar) : at::Tensor();
  at::Tensor grad_logvar = at::empty_like(logvar);
  a.grad_mu = want_grad_mu ? grad_mu.data_ptr() : nullptr;
  a.grad_logvar = grad_logvar.data_ptr();
  kernels().backward(a);
  return {narrowed(grad_mu, logvar_in.scalar_type()), narrowed(grad_logvar, logvar_in.scalar_type())};
}

at::Tensor reparameterize_cpu(const at::Tensor& mu, const at::Tensor& logvar,
                              const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed) {
  check_gaussian_inputs("reparameterize", "mu", mu, logvar, eps, seed, at::kCPU, true);
  return std::get<0>(forward_cpu(mu, logvar, eps, seed, true, false, false, 1.0));
}

at::Tensor reparameterize_backward_cpu(const at::Tensor& grad, const at::Tensor& logvar,
                                       const std::optional<at::Tensor>& eps,
                                       const std::optional<at::Tensor>& seed) {
  check_gaussian_inputs("reparameterize_backward", "grad", grad, logvar, eps, seed, at::kCPU, true);
  return std::get<1>(backward_cpu(grad, std::nullopt, at::Tensor(), logvar, eps, seed, 1.0, false));
}

at::Tensor gaussian_kl_cpu(const at::Tensor& mu, const at::Tensor& logvar, bool reduce, double scale) {
  check_gaussian_inputs("gaussian_kl", "mu", mu, logvar, std::nullopt, std::nullopt, at::kCPU, false);
  return std::get<1>(forward_cpu(mu, logvar, std::nullopt, std::nullopt, false, true, reduce, scale));
}

std::tuple<at::Tensor, at::Tensor> gaussian_kl_backward_cpu(const at::Tensor& grad, const at::Tensor& mu,
                                                            const at::Tensor& logvar, double scale) {
  check_gaussian_inputs("gaussian_kl_backward", "mu", mu, logvar, std::nullopt, std::nullopt, at::kCPU, false);
  check_kl_grad("gaussian_kl_backward", "grad", grad, mu);
  return backward_cpu(std::nullopt, grad, mu, logvar, std::nullopt, std::nullopt, scale, true);
}

std::tuple<at::Tensor, at::Tensor> reparameterize_kl_cpu(const at::Tensor& mu, const at::Tensor& logvar,
                                                         const std::optional<at::Tensor>& eps,
                                                         const std::optional<at::Tensor>& seed, bool reduce,
                                                         double scale) {
  check_gaussian_inputs("reparameterize_kl", "mu", mu, logvar, eps, seed, at::kCPU, true);
  return forward_cpu(mu, logvar, eps, seed, true, true, reduce, scale);
}

std::tuple<at::Tensor, at::Tensor> reparameterize_kl_backward_cpu(
    const std::optional<at::Tensor>& grad_z, const at::Tensor& grad_kl, const at::Tensor& mu,
    const at::Tensor& logvar, const std::optional<at::Tensor>& eps, const std::optional<at::Tensor>& seed,
    double scale) {
  check_gaussian_inputs("reparameterize_kl_backward", "mu", mu, logvar, eps, seed, at::kCPU, true);
  if (grad_z.has_value()) check_like("reparameterize_kl_backward", "grad_z", *grad_z, "mu", mu, true);
  check_kl_grad("reparameterize_kl_backward", "grad_kl", grad_kl, mu);
  return backward_cpu(grad_z, grad_kl, mu, logvar, eps, seed, scale, true);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gentk, m) {
  m.def("reparameterize(Tensor mu, Tensor logvar, Tensor? eps, Tensor? seed) -> Tensor");
  m.def("reparameterize_backward(Tensor grad, Tensor logvar, Tensor? eps, Tensor? seed) -> Tensor");
  m.def("gaussian_kl(Tensor mu, Tensor logvar, bool reduce, float scale) -> Tensor");
  m.def("gaussian_kl_backward(Tensor grad, Tensor mu, Tensor logvar, float scale) -> (Tensor, Tensor)");
  m.def("reparameterize_kl(Tensor mu, Tensor logvar, Tensor? eps, Tensor? seed, bool reduce, float scale)"
        " -> (Tensor, Tensor)");
  m.def("reparameterize_kl_backward(Tensor? grad_z, Tensor grad_kl, Tensor mu, Tensor logvar, Tensor? eps,"
        " Tensor? seed, float scale) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gentk, CPU, m) {
  m.impl("reparameterize", &reparameterize_cpu);
  m.impl("reparameterize_backward", &reparameterize_backward_cpu);
  m.impl("gaussian_kl", &gaussian_kl_cpu);
  m.impl("gaussian_kl_backward", &gaussian_kl_backward_cpu);
  m.impl("reparameterize_kl", &reparameterize_kl_cpu);
  m.impl("reparameterize_kl_backward", &reparameterize_kl_backward_cpu);
}

}  // namespace gentk
