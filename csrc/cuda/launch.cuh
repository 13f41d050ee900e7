#pragma once
// Launch helpers shared by the CUDA kernels of every op family.
#include <algorithm>
#include <cstdint>

#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>

#include "cuda/block_sum.cuh"

namespace gentk {

// Blocks for a grid-stride kernel over `items` work items, `items_per_block` per block and
// loop step: enough to cover them, capped at `blocks_per_sm` resident blocks per SM of the
// current device (8 x 256 threads fill an SM's 2048 thread slots).
inline int grid_size(int64_t items, int64_t items_per_block, int blocks_per_sm = 8) {
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t wanted = (items + items_per_block - 1) / items_per_block;
  const int64_t cap = static_cast<int64_t>(sms > 0 ? sms : 1) * blocks_per_sm;
  return static_cast<int>(std::max<int64_t>(1, std::min(wanted, cap)));
}

// *out = scale * (sum of the per-block partials), added in a fixed order (deterministic).
// Launch with one block of kThreads threads.
template <int kThreads, class T, class A>
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const A* partial, int count, double scale, T* out) {
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += static_cast<double>(partial[i]);
  s = block_sum<kThreads>(s);
  if (threadIdx.x == 0) *out = static_cast<T>(s * scale);
}

}  // namespace gentk
