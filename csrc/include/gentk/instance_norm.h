#pragma once
// Scalar math of the instance-norm family, shared by the CPU kernels (where T may also be
// at::vec::Vectorized<float|double>: the Welford step uses arithmetic only) and the CUDA ones.
//
// Forward:  y = act((x - mean) * scale + b) + residual, scale = w * rstd.
// Backward: with xhat = (x - mean) * rstd and g = dy * act'(xhat * w + b),
//   grad_x = w * rstd * (g - sum(g) / HW - xhat * sum(g * xhat) / HW)   (statistics of the input)
//   grad_x = w * rstd * g                                               (given running statistics)
//   grad_w = sum over (n, plane) of g * xhat, grad_b = sum of g.
#include <cmath>

#include "macros.h"

namespace gentk {

enum InstanceNormActivation : int { kActNone = 0, kActRelu = 1, kActLeakyRelu = 2 };

// One Welford step of a running (mean, m2) whose count just became 1 / inv_count.
template <class T>
GENTK_HOST_DEVICE void welford_add(T& mean, T& m2, const T& x, const T& inv_count) {
  const T delta = x - mean;
  mean = mean + delta * inv_count;
  m2 = m2 + delta * (x - mean);
}

// Chan et al.'s merge of two partial (mean, m2, count) states into the first.
template <class T>
GENTK_HOST_DEVICE void welford_merge(T& mean, T& m2, T& count, T mean_b, T m2_b, T count_b) {
  if (count_b == T(0)) return;
  const T total = count + count_b;
  const T delta = mean_b - mean;
  mean = mean + delta * (count_b / total);
  m2 = m2 + m2_b + delta * delta * (count * count_b / total);
  count = total;
}

template <class T>
GENTK_HOST_DEVICE T inv_std(T var, T eps) {
  return T(1) / std::sqrt(var + eps);
}

template <class T>
GENTK_HOST_DEVICE T activate(T v, int activation, T negative_slope) {
  if (activation == kActRelu) return v > T(0) ? v : T(0);
  if (activation == kActLeakyRelu) return v > T(0) ? v : v * negative_slope;
  return v;
}

// dL/d(pre-activation) from dL/dy as torch's: relu passes it unless pre <= 0 (NaN passes),
// leaky_relu takes the full gradient where pre > 0.
template <class T>
GENTK_HOST_DEVICE T activation_grad(T grad, T pre, int activation, T negative_slope) {
  if (activation == kActRelu) return pre <= T(0) ? T(0) : grad;
  if (activation == kActLeakyRelu) return pre > T(0) ? grad : grad * negative_slope;
  return grad;
}

}  // namespace gentk
