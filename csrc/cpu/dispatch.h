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

inline Isa current_isa() {
  static const Isa isa = [] {
    const std::string cap = at::get_cpu_capability();
    if (cap == "AVX512") return Isa::kAvx512;
    if (cap == "AVX2") return Isa::kAvx2;
    return Isa::kDefault;
  }();
  return isa;
}


}  // namespace gentk::cpu
