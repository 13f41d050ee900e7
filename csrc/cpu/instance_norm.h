#pragma once
// CPU kernels of the instance-norm family. Layout: `channels_last` means x is (N, HW, C)
// in memory, otherwise (N, C, HW). Statistics (mean, biased var) are N * C values of the
// math type (float for float32, double for float64); weight, bias may be null.
#include <cstdint>

#include <c10/core/ScalarType.h>

#include "dispatch.h"

namespace gentk::cpu {

struct InstanceNormForward {
  c10::ScalarType dtype;
  int64_t N, C, HW;
  bool channels_last;
  const void* x;
  const void* weight;    // C values or null (1)
  const void* bias;      // C values or null (0)
  const void* residual;  // x's shape and layout, or null
  // compute_stats: Welford over each plane, written to mean / var (N * C).
  // otherwise:     mean / var hold C given (running) statistics, read only.
  bool compute_stats;
  void* mean;
  void* var;
  double eps;
  int activation;
  double negative_slope;
  void* y;
};

struct InstanceNormBackward {
  c10::ScalarType dtype;
  int64_t N, C, HW;
  bool channels_last;
  const void* grad_y;
  const void* x;
  const void* weight;
  const void* bias;
  const void* mean;  // N * C per-plane statistics the forward normalized with
  const void* var;
  double eps;
  bool input_stats;  // the statistics came from x (their gradient flows back)
  int activation;
  double negative_slope;
  void* grad_x;
  void* grad_weight;  // C values of sum(g * xhat), always written
  void* grad_bias;    // C values of sum(g), always written
};

struct InstanceNormKernels {
  void (*forward)(const InstanceNormForward&);
  void (*backward)(const InstanceNormBackward&);
};

GENTK_DECLARE_ISA_TABLE(InstanceNormKernels, instance_norm_kernels)

}  // namespace gentk::cpu
