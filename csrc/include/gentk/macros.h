#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GENTK_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GENTK_HOST_DEVICE inline
#endif
