import os

import torch

# Triton runs on CPU tensors only through its interpreter, which must be chosen before
# triton is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import gentk  # noqa: E402


def _triton_ok():
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


CPU_BACKENDS = ["torch", "cpp"] + (["triton"] if _triton_ok() else [])


@pytest.fixture(autouse=True)
def _restore_backend():
    previous = gentk.get_backend()
    yield
    gentk.set_backend(previous)


def pytest_report_header(config):
    return (f"gentk extension loaded: {gentk.extension_available()}, cpu capability "
            f"{torch.backends.cpu.get_cpu_capability()}, backends under test: {', '.join(CPU_BACKENDS)}")
