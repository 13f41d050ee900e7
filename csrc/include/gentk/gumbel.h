#pragma once
// Scalar math of the Gumbel family (gumbel_softmax, categorical_kl_uniform), shared by the
// CPU (scalars and at::vec vectors) and CUDA kernels, and the one definition of which
// random number feeds which element.
//
// Noise layout: element i of the flattened (rows x K, row-major) input takes ONE uniform,
// output noise_slot(i) of Philox counter noise_counter(i) (gentk/philox.h): the layout of
// the Gaussian noise, with one uniform per element where Box-Muller pairs two. In a group
// of 64 elements the 16 counters' four outputs, x[j][k], land on element g*64 + j*16 + k,
// so a group's outputs read in (j, k) order are its elements in order. The Triton kernels
// (gentk/ops/gumbel/triton_kernels.py) spell the same mapping.
#include <cstdint>

#include "gentk/macros.h"
#include "gentk/philox.h"

namespace gentk {

// Gumbel(0, 1) from u in (0, 1): g = -log(-log(u)). M supplies log for T (scalar or vector).
template <class M, class T>
GENTK_HOST_DEVICE T gumbel_from_uniform(T u) {
  return T(0) - M::log(T(0) - M::log(u));
}

// The uniform of element `index` out of its counter's four Philox outputs.
GENTK_HOST_DEVICE float gumbel_uniform(const Philox4& r, uint64_t index) {
  const int slot = noise_slot(index);  // selects, not an indexed load: stays in registers on GPUs
  const uint32_t x = slot == 0 ? r.x[0] : slot == 1 ? r.x[1] : slot == 2 ? r.x[2] : r.x[3];
  return uniform_open_open(x);
}

// Softmax backward: dL/dx_j = y_j * (g_j - sum_i g_i y_i), times d(x)/d(logits) = 1 / tau.
template <class T>
GENTK_HOST_DEVICE T softmax_grad(T y, T grad, T dot, T inv_tau) {
  return y * (grad - dot) * inv_tau;
}

}  // namespace gentk
