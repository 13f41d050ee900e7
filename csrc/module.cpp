// The Python module gentk._C. It holds no Python functions: importing it runs the
// TORCH_LIBRARY registrations of every op file linked into it.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "gentk compiled kernels", -1, nullptr};
  return PyModule_Create(&module_def);
}
