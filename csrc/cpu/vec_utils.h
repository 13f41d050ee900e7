#pragma once
// at::vec helpers shared by the CPU kernel files. They live in the per-ISA namespace
// (CPU_CAPABILITY), as the vector width does.
#include <cstdint>

#include <ATen/cpu/vec/vec.h>

namespace gentk::cpu {
namespace CPU_CAPABILITY {

// The `count` elements at p (a whole vector when count >= its size); other lanes are 0.
template <class T>
inline at::vec::Vectorized<T> load(const T* p, int64_t count) {
  using V = at::vec::Vectorized<T>;
  return count >= V::size() ? V::loadu(p) : V::loadu(p, count);
}

// Stores the first `count` lanes (all of them when count >= the vector size).
template <class T>
inline void store(const at::vec::Vectorized<T>& v, T* p, int64_t count) {
  if (count >= at::vec::Vectorized<T>::size()) v.store(p); else v.store(p, count);
}

// Sum of the lanes, added in double.
template <class T>
inline double horizontal_sum(const at::vec::Vectorized<T>& v) {
  alignas(64) T lanes[at::vec::Vectorized<T>::size()];
  v.store(lanes);
  double s = 0;
  for (int i = 0; i < at::vec::Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

}  // namespace CPU_CAPABILITY
}  // namespace gentk::cpu
