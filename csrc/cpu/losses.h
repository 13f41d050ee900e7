#pragma once
// CPU kernels of the loss family. One elementwise kernel (loss_term) serves the
// adversarial losses, the Bernoulli reconstruction and L1: it reads x (and a target
// tensor or one label), and produces any of the per-element loss, its sum and the
// gradient with respect to x in one pass. Row kernels serve the gradient penalty.
#include <cstdint>

#include <c10/core/ScalarType.h>

#include "dispatch.h"

namespace gentk::cpu {

struct LossTerm {
  c10::ScalarType dtype;
  int64_t n;
  int kind;                // gentk::LossKind
  const void* x;
  const void* target;      // per-element target; null: `param` for every element
  double param;            // label or sign when target is null
  void* loss;              // per-element loss times loss_scale; null: none
  double loss_scale;
  bool accumulate;         // add into `loss` instead of overwriting it
  double* loss_sum;        // unscaled sum of the loss; null: none
  const void* grad_out;    // per-element upstream gradient; null: grad_scale alone
  double grad_scale;
  void* grad;              // dloss/dx * grad_out * grad_scale; null: none
  int64_t* bad_targets;    // count of targets outside [0, 1]; null: not checked
};

struct RowsOp {
  c10::ScalarType dtype;
  int64_t rows, cols;
  const void* a;           // row_sumsq, scale_rows: x; interpolate: real; backward: grad
  const void* b;           // interpolate: fake
  const double* coef;      // scale_rows: one factor per row
  uint64_t seed, stream;   // interpolate: per-row alpha from Philox
  void* out;               // row_sumsq: double per row; others: rows x cols
  void* out2;              // interpolate_backward: grad_fake (out: grad_real); either may be null
};

struct LossKernels {
  // terms[0..count): same kind and dtype, run in one parallel region.
  void (*loss_terms)(const LossTerm* terms, int count);
  void (*row_sumsq)(const RowsOp&);
  void (*scale_rows)(const RowsOp&);
  void (*interpolate)(const RowsOp&);
  void (*interpolate_backward)(const RowsOp&);
};

GENTK_DECLARE_ISA_TABLE(LossKernels, loss_kernels)

}  // namespace gentk::cpu
