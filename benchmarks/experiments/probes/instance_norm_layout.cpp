// Why channels_last instance norm is slower than contiguous on a CPU whose L2 holds a plane
// but not a sample: the same arithmetic (statistics pass, then normalize + ReLU pass) over
// the same bytes, in three schedules. Build and run (AVX-512 machine):
//
//   g++ -O3 -mavx512f -fopenmp benchmarks/experiments/probes/instance_norm_layout.cpp -o /tmp/layout
//   OMP_NUM_THREADS=2 /tmp/layout [N C H W]          (default 8 256 64 64; N >= threads)
//
//  - contiguous, one plane at a time: the second pass reads the plane from L2;
//  - channels_last, one sample at a time, whole rows: the second pass reads the sample again
//    from L3 or DRAM (this is gentk's channels_last schedule);
//  - channels_last, one block of channels at a time, copied to an L2 buffer in the first
//    pass: one read from memory, but each row gives the block only part of its cache lines.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

static float* aligned(int64_t n) { return static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64)); }

// Each variant runs once per round, in turns (this VM's speed drifts between seconds).
struct Variant {
  std::string name;
  std::function<void()> run;
  std::vector<double> ms;
};

static void time_in_turns(std::vector<Variant>& variants, int rounds = 25) {
  for (int r = 0; r < rounds + 3; ++r)
    for (auto& v : variants) {
      const auto t0 = std::chrono::steady_clock::now();
      v.run();
      const auto t1 = std::chrono::steady_clock::now();
      if (r >= 3) v.ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  for (auto& v : variants) {
    std::sort(v.ms.begin(), v.ms.end());
    std::printf("%-52s %8.2f ms (median of %d rounds)\n", v.name.c_str(), v.ms[v.ms.size() / 2], rounds);
  }
}

// sum, sum of squares of `count` values -> mean, 1 / sqrt(var + eps), in place
static inline void to_mean_rstd(__m512& sum, __m512& sq, int64_t count) {
  const __m512 inv = _mm512_set1_ps(1.f / float(count));
  const __m512 mean = _mm512_mul_ps(sum, inv);
  const __m512 var = _mm512_fnmadd_ps(mean, mean, _mm512_mul_ps(sq, inv));
  sum = mean;
  sq = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_sqrt_ps(_mm512_add_ps(var, _mm512_set1_ps(1e-5f))));
}

static inline __m512 norm_relu(__m512 v, __m512 mean, __m512 rstd) {
  return _mm512_max_ps(_mm512_mul_ps(_mm512_sub_ps(v, mean), rstd), _mm512_setzero_ps());
}

int main(int argc, char** argv) {
  const int64_t N = argc > 4 ? std::atol(argv[1]) : 8, C = argc > 4 ? std::atol(argv[2]) : 256;
  const int64_t HW = argc > 4 ? std::atol(argv[3]) * std::atol(argv[4]) : 64 * 64;
  if (C % 16 != 0 || HW % 16 != 0) {
    std::fprintf(stderr, "C and H*W must be multiples of 16\n");
    return 1;
  }
  if (N < omp_get_max_threads()) {
    std::fprintf(stderr, "N must be at least the thread count: the channels_last variant runs one sample "
                         "per thread\n");
    return 1;
  }
  const int64_t n = N * C * HW;
  float* x = aligned(n);
  float* y = aligned(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = float(i % 13) * 0.1f;
    y[i] = 0.f;
  }
  std::printf("%ldx%ldx%ld floats, %.0f MiB per tensor\n", long(N), long(C), long(HW), n * 4.0 / (1 << 20));

  std::vector<Variant> variants;
  variants.push_back({"contiguous, plane by plane", [&] {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < N * C; ++p) {
      const float* xp = x + p * HW;
      __m512 s = _mm512_setzero_ps(), q = s;
      for (int64_t i = 0; i < HW; i += 16) {
        const __m512 v = _mm512_load_ps(xp + i);
        s = _mm512_add_ps(s, v);
        q = _mm512_fmadd_ps(v, v, q);
      }
      __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(s)), rstd = _mm512_set1_ps(_mm512_reduce_add_ps(q));
      to_mean_rstd(mean, rstd, HW);
      for (int64_t i = 0; i < HW; i += 16)
        _mm512_store_ps(y + p * HW + i, norm_relu(_mm512_load_ps(xp + i), mean, rstd));
    }
  }, {}});

  variants.push_back({"channels_last, sample by sample, whole rows", [&] {
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < N; ++s) {
      const float* xs = x + s * HW * C;
      std::vector<float> sum(C, 0.f), sq(C, 0.f);
      for (int64_t r = 0; r < HW; ++r)
        for (int64_t c = 0; c < C; c += 16) {
          const __m512 v = _mm512_load_ps(xs + r * C + c);
          _mm512_storeu_ps(&sum[c], _mm512_add_ps(_mm512_loadu_ps(&sum[c]), v));
          _mm512_storeu_ps(&sq[c], _mm512_fmadd_ps(v, v, _mm512_loadu_ps(&sq[c])));
        }
      for (int64_t c = 0; c < C; c += 16) {
        __m512 m = _mm512_loadu_ps(&sum[c]), q = _mm512_loadu_ps(&sq[c]);
        to_mean_rstd(m, q, HW);
        _mm512_storeu_ps(&sum[c], m);
        _mm512_storeu_ps(&sq[c], q);
      }
      for (int64_t r = HW - 1; r >= 0; --r)  // last rows read are still in cache
        for (int64_t c = 0; c < C; c += 16)
          _mm512_store_ps(y + s * HW * C + r * C + c,
                          norm_relu(_mm512_load_ps(xs + r * C + c), _mm512_loadu_ps(&sum[c]), _mm512_loadu_ps(&sq[c])));
    }
  }, {}});

  for (int64_t block : {16, 32, 64}) {
    if (C % block != 0) continue;
    variants.push_back({"channels_last, blocks of " + std::to_string(block) + " channels via L2", [&, block] {
#pragma omp parallel
      {
        float* buffer = aligned(HW * block);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < N * (C / block); ++t) {
          const int64_t s = t / (C / block), c0 = (t % (C / block)) * block;
          const float* xs = x + s * HW * C + c0;
          __m512 sum[4], sq[4];
          for (int k = 0; k < 4; ++k) sum[k] = sq[k] = _mm512_setzero_ps();
          for (int64_t r = 0; r < HW; ++r)
            for (int64_t c = 0; c < block; c += 16) {
              const __m512 v = _mm512_load_ps(xs + r * C + c);
              _mm512_store_ps(buffer + r * block + c, v);
              sum[c / 16] = _mm512_add_ps(sum[c / 16], v);
              sq[c / 16] = _mm512_fmadd_ps(v, v, sq[c / 16]);
            }
          for (int k = 0; k < block / 16; ++k) to_mean_rstd(sum[k], sq[k], HW);
          for (int64_t r = 0; r < HW; ++r)
            for (int64_t c = 0; c < block; c += 16)
              _mm512_store_ps(y + s * HW * C + r * C + c0 + c,
                              norm_relu(_mm512_load_ps(buffer + r * block + c), sum[c / 16], sq[c / 16]));
        }
        std::free(buffer);
      }
    }, {}});
  }
  time_in_turns(variants);
  std::free(x);
  std::free(y);
  return 0;
}
