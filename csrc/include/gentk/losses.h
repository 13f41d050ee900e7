#pragma once
// Scalar math of the loss family (adversarial losses, Bernoulli reconstruction, L1), shared
// by the CPU kernels (T = scalar or at::vec::Vectorized) and the CUDA kernels. M is a math
// policy that supplies exp, log1p, abs, max0 (relu), select (x >= 0 ? a : b) and step
// (a > 0 ? 1 : 0), so the same formulas serve every backend.
#include "gentk/macros.h"

namespace gentk {

// Elementwise terms. Each loss mode is a sum of these over the real and the fake logits;
// `param` is the label (kBce, kSquare), the sign s (kLinear, kHinge) or unused (kAbs).
enum LossKind : int {
  kBce = 0,     // softplus(x) - y * x          BCE-with-logits against label y
  kSquare = 1,  // (x - y)^2                    least squares (LSGAN)
  kLinear = 2,  // s * x                        Wasserstein critic
  kHinge = 3,   // relu(1 + s * x)              hinge
  kAbs = 4,     // |x - y|                      L1 against a target tensor
};

// softplus(x) - y*x = (1 - y)*x + max(-x, 0) + log1p(exp(-|x|)); d/dx = sigmoid(x) - y.
// That form, torch's (1 - y)*x - log_sigmoid(x), gives torch's answers at infinite x too
// (+inf: inf, or NaN for y = 1; -inf: NaN), which max(x, 0) - y*x would not.
// One exp serves both: sigmoid(x) = 1/(1+e) for x >= 0 and e/(1+e) otherwise, e = exp(-|x|).
// M::log1p(e, u, r) gets u = 1 + e and r = 1 / u too, which it may use instead of a log1p.
// M::recip(u) is 1 / u for u in [1, 2] (a policy may refine a reciprocal estimate).
template <class M, class T>
GENTK_HOST_DEVICE void bce_term(T x, T y, T& loss, T& grad) {
  const T e = M::exp(T(0) - M::abs(x));
  const T u = T(1) + e;
  const T r = M::recip(u);
  loss = (T(1) - y) * x + M::max0(T(0) - x) + M::log1p(e, u, r);
  grad = M::select(x, r, e * r) - y;
}

// The kind is a template argument so vector loops carry no per-element branch.
template <int K, class M, class T>
GENTK_HOST_DEVICE void loss_term(T x, T y, T& loss, T& grad) {
  if constexpr (K == kBce) {
    bce_term<M>(x, y, loss, grad);
  } else if constexpr (K == kSquare) {
    const T d = x - y;
    loss = d * d;
    grad = T(2) * d;
  } else if constexpr (K == kLinear) {
    loss = y * x;
    grad = y;
  } else if constexpr (K == kHinge) {
    // torch's relu passes the gradient unless its output is <= 0: a NaN margin passes it
    const T m = T(1) + y * x;
    loss = M::max0(m);
    grad = y * M::select(T(0) - m, T(0), T(1));
  } else {  // kAbs: d/dx = sign(x - y), 0 where equal (as torch.sign)
    const T d = x - y;
    loss = M::abs(d);
    grad = M::step(d) - M::step(T(0) - d);
  }
}

}  // namespace gentk

#include "gentk/philox.h"

namespace gentk {

// Interpolation weight of sample `row` for the gradient penalty: one Philox call per
// sample, counter = row, in the (seed, stream) convention of the Gaussian noise; the
// first output as a uniform in [0, 1) with 24 bits, identical on every backend.
GENTK_HOST_DEVICE float gp_alpha(uint64_t row, uint64_t seed, uint64_t stream) {
  return uniform_closed_open(philox_at(row, seed, stream).x[0]);
}

}  // namespace gentk
