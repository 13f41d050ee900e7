#pragma once
// Scalar math of the Gaussian op family, shared by the CPU (scalars and at::vec
// vectors) and CUDA kernels. Every formula takes std = exp(logvar / 2), so one exp per
// element serves the sample, the KL and both gradients (exp(logvar) = std * std).
#include "gentk/macros.h"

namespace gentk {

// z = mu + eps * std
template <class T>
GENTK_HOST_DEVICE T reparam_z(T mu, T eps, T std) {
  return mu + eps * std;
}

// dz/dlogvar = eps * std / 2
template <class T>
GENTK_HOST_DEVICE T reparam_dlogvar(T grad, T eps, T std) {
  return T(0.5) * grad * eps * std;
}

// KL(N(mu, exp(logvar)) || N(0, 1)) = (mu^2 + exp(logvar) - 1 - logvar) / 2
template <class T>
GENTK_HOST_DEVICE T kl_term(T mu, T logvar, T std) {
  return T(0.5) * (mu * mu + (std * std - T(1)) - logvar);
}

// dKL/dlogvar = (exp(logvar) - 1) / 2 ; dKL/dmu = mu
template <class T>
GENTK_HOST_DEVICE T kl_dlogvar(T std) {
  return T(0.5) * (std * std - T(1));
}

}  // namespace gentk
