#pragma once
// Per-ISA kernel tables. Each file under csrc/cpu/ is compiled once per CPU capability
// (DEFAULT, AVX2, AVX512) inside namespace gentk::cpu::<capability>; the table matching
// at::get_cpu_capability() (which honours ATEN_CPU_CAPABILITY) is picked at run time.
#include <string>

#include <ATen/Version.h>
#include <c10/util/Exception.h>

#if defined(GENTK_CPU_DEFAULT_ONLY)
#define GENTK_DECLARE_ISA_TABLE(Table, name) \
  namespace DEFAULT { extern const Table name; }
#define GENTK_PICK_ISA_TABLE(name) (DEFAULT::name)
#else
#define GENTK_DECLARE_ISA_TABLE(Table, name) \
  namespace DEFAULT { extern const Table name; } \
  namespace AVX2 { extern const Table name; }    \
  namespace AVX512 { extern const Table name; }
#define GENTK_PICK_ISA_TABLE(name)                               \
  ([]() -> const auto& {                                         \
    switch (::gentk::cpu::current_isa()) {                       \
      case ::gentk::cpu::Isa::kAvx512: return AVX512::name;      \
      case ::gentk::cpu::Isa::kAvx2: return AVX2::name;          \
      default: return DEFAULT::name;                             \
    }                                                            \
  }())
#endif

namespace gentk::cpu {

enum class Isa { kDefault, kAvx2, kAvx512 };

// ATEN_CPU_CAPABILITY=avx512 is honoured by ATen even on a CPU without AVX-512 (AMD EPYC
// before Zen 4), so the table is also limited to what the CPU can execute: a forced ISA
// the CPU lacks falls back to the best one it has instead of dying on SIGILL.
inline bool cpu_runs_avx2() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

inline bool cpu_runs_avx512() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return cpu_runs_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

inline Isa current_isa() {
  static const Isa isa = [] {
    const std::string cap = at::get_cpu_capability();
    if (cap == "AVX512" && cpu_runs_avx512()) return Isa::kAvx512;
    if ((cap == "AVX512" || cap == "AVX2") && cpu_runs_avx2()) return Isa::kAvx2;
    return Isa::kDefault;
  }();
  return isa;
}


}  // namespace gentk::cpu
