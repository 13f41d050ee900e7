#pragma once
// CPU kernels of the Gumbel family (gumbel_softmax, categorical_kl_uniform). Every kernel
// works on a contiguous (rows x cols) input and reduces over cols; the ops move any other
// dim last first.
#include <cstdint>

#include <c10/core/ScalarType.h>

#include "dispatch.h"

namespace gentk::cpu {

// Where the Gumbel noise of a sample comes from.
enum class GumbelNoise { kNone, kGiven, kPhilox };

struct GumbelSoftmaxForward {
  c10::ScalarType dtype;
  int64_t rows, cols;
  const void* logits;
  GumbelNoise noise;
  const void* gumbels;     // kGiven
  uint64_t seed, stream;   // kPhilox
  double inv_tau;          // 1 / tau, at most the dtype's largest finite value
  bool hard;               // one-hot of the argmax of logits + noise instead of the softmax
  void* out;
};

struct GumbelSoftmaxBackward {
  c10::ScalarType dtype;
  int64_t rows, cols;
  const void* grad;
  const void* soft;        // the soft sample; null: recompute it from logits and the noise
  const void* logits;
  GumbelNoise noise;
  const void* gumbels;
  uint64_t seed, stream;
  double inv_tau;
  void* grad_logits;
};

struct CategoricalKlForward {
  c10::ScalarType dtype;
  int64_t rows, cols;
  const void* logits;
  void* kl;                // one KL per row; null: none
  double* kl_sum;          // sum over rows; null: none
};

struct CategoricalKlBackward {
  c10::ScalarType dtype;
  int64_t rows, cols;
  const void* logits;
  const void* grad;        // one weight per row; null: grad_scalar for every row
  double grad_scalar;
  void* grad_logits;
};

struct GumbelKernels {
  void (*softmax_forward)(const GumbelSoftmaxForward&);
  void (*softmax_backward)(const GumbelSoftmaxBackward&);
  void (*kl_forward)(const CategoricalKlForward&);
  void (*kl_backward)(const CategoricalKlBackward&);
};

GENTK_DECLARE_ISA_TABLE(GumbelKernels, gumbel_kernels)

}  // namespace gentk::cpu
