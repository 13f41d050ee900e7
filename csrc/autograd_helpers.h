// What the C++ autograd of the compiled ops (csrc/*_autograd.cpp) shares.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>

namespace gentk::autograd {

// The typed handle of a registered op, to call it through the dispatcher (below Autograd).
template <class Sig>
c10::TypedOperatorHandle<Sig> handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

inline std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

// The fused backward kernels are not themselves differentiable. Under create_graph=True (the
// engine then runs backward with grad mode on) say so, rather than hand back a gradient whose
// own derivative would silently be missing; the message is gentk.ops._registration.first_order's,
// which the Triton twins use.
inline void check_first_order(const char* op, const char* what = "op", const char* redo = "it") {
  TORCH_CHECK(!c10::GradMode::is_enabled(), "gentk.", op, ": double backward (create_graph=True) through the "
              "compiled ", what, " is not supported; compute ", redo, " with gentk.use_backend('torch')");
}

}  // namespace gentk::autograd
