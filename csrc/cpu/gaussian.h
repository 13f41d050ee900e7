#pragma once
// CPU kernels of the Gaussian family (reparameterize, gaussian_kl, reparameterize_kl).
// One forward and one backward kernel cover all three ops; null pointers switch parts off.
#include <cstdint>

#include <c10/core/ScalarType.h>

#include "dispatch.h"

namespace gentk::cpu {

struct GaussianForward {
  c10::ScalarType dtype;
  int64_t n;
  const void* mu;
  const void* logvar;
  const void* eps;      // null: draw noise in-kernel from (seed, stream)
  uint64_t seed, stream;
  void* z;              // null: no sample wanted
  void* kl;             // per-element KL output; null: none
  double* kl_sum;       // sum of KL over all elements; null: none
};

struct GaussianBackward {
  c10::ScalarType dtype;
  int64_t n;
  const void* mu;
  const void* logvar;
  const void* eps;      // as in GaussianForward
  uint64_t seed, stream;
  const void* grad_z;   // null: z not differentiated
  const void* grad_kl;  // per-element dKL weights; null: use grad_kl_scalar
  double grad_kl_scalar;  // weight of every KL element when grad_kl is null (0 = no KL)
  void* grad_mu;        // null: not wanted (the caller uses grad_z as is)
  void* grad_logvar;
};

struct GaussianKernels {
  void (*forward)(const GaussianForward&);
  void (*backward)(const GaussianBackward&);
};

GENTK_DECLARE_ISA_TABLE(GaussianKernels, gaussian_kernels)

}  // namespace gentk::cpu
