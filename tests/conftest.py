import gzip
import os

import numpy as np
import torch

# Triton runs on CPU tensors only through its interpreter, which must be chosen before
# triton is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import gentk  # noqa: E402

#: the checkout the tests run from
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# The instruction-set builds this CPU can run (forcing one it lacks would only test the
# fallback to the best one it has; see csrc/cpu/dispatch.h).
CPU_ISAS = ("default",) + (("avx2",) if torch.cpu._is_avx2_supported() else ()) + \
    (("avx512",) if torch.cpu._is_avx512_supported() else ())


def assert_every_isa_agrees(tmp_path, script, exact=lambda key: False, rtol=2e-5, atol=2e-5):
    """Run ``script`` (which torch.save()s a dict of tensors or tuples of tensors to argv[1])
    once per CPU instruction-set build, forced with ATEN_CPU_CAPABILITY, and check that every
    build gives the default build's results (bit for bit for the keys ``exact`` names).
    Returns the default build's results."""
    import subprocess
    import sys

    path = tmp_path / "isa.py"
    path.write_text(script)
    results = {}
    for isa in CPU_ISAS:
        out = tmp_path / f"{isa}.pt"
        subprocess.run([sys.executable, str(path), str(out)], check=True, timeout=300,
                       env=dict(os.environ, ATEN_CPU_CAPABILITY=isa))
        results[isa] = torch.load(out)
    base = results["default"]
    for isa, res in results.items():
        for key in base:
            pairs = zip(*(v if isinstance(v, (tuple, list)) else (v,) for v in (res[key], base[key])))
            for a, b in pairs:
                if exact(key):
                    assert torch.equal(a, b), f"{isa} {key}"
                else:
                    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"{isa} {key}")
    return base


def cuda_kernel_marks(op):
    """``pytestmark`` for tests of gentk's CUDA kernels: skipped, with the reason, unless a
    CUDA device is present and gentk._C was built with a CUDA kernel for ``op``."""
    reason = None
    if not torch.cuda.is_available():
        reason = "no CUDA device"
    elif not gentk.extension_available():
        reason = "gentk._C cannot be loaded"
    elif not torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"):
        reason = f"gentk._C was built without a CUDA kernel for {op}"
    return [pytest.mark.cuda, pytest.mark.skipif(reason is not None, reason=reason or "")]


@pytest.fixture
def one_thread():
    """Model tests run PyTorch on one thread: on a small shared machine OpenMP threads that
    wait for each other stall far more than they help on these tiny networks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_metrics(run_dir):
    """The JSON lines a training run logged to RUN/metrics.jsonl."""
    import json

    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_cli_fails_in_one_line(argv, message, capsys):
    """`gentk ARGV` exits with 2 and prints one line of stderr containing `message`."""
    from gentk import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def write_idx(path, array, gz=False):
    """An IDX file (MNIST's format) holding ``array``."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)
