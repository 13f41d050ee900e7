#pragma once
// Block-wide sum shared by the CUDA kernels of every op family.
#include <cuda_runtime.h>

namespace gentk {

// Sum of `v` over a block of at most kMaxThreads threads, valid in thread 0. Every thread
// of the block must call it.
template <int kMaxThreads, class A>
__device__ __forceinline__ A block_sum(A v) {
  static_assert(kMaxThreads % 32 == 0 && kMaxThreads <= 1024, "whole warps, at most 1024 threads");
  __shared__ A warp_sums[kMaxThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? warp_sums[lane] : A(0);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

}  // namespace gentk
