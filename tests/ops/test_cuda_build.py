"""Compiles every CUDA source listed in CMakeLists.txt (GENTK_CUDA_SOURCES) to an object
file with nvcc, against the installed torch's headers. Needs nvcc, not a GPU, so CI
machines without a device still catch CUDA code that does not build.

GENTK_CUDA_ARCH picks the one architecture to build for (default 90); GENTK_NVCC points
at a specific nvcc.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time

import pytest
import torch
import torch.utils.cpp_extension

from conftest import ROOT

ARCH = os.environ.get("GENTK_CUDA_ARCH", "90")


def cuda_sources():
    """The files of the `set(GENTK_CUDA_SOURCES ...)` block of CMakeLists.txt."""
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        text = f.read()
    m = re.search(r"set\(\s*GENTK_CUDA_SOURCES\b(.*?)\)", text, re.S)
    assert m, "CMakeLists.txt has no set(GENTK_CUDA_SOURCES ...) block"
    body = "\n".join(line.split("#", 1)[0] for line in m.group(1).splitlines())
    return body.split()


def find_nvcc():
    for candidate in (os.environ.get("GENTK_NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def nvcc_command(nvcc, source, obj):
    torch_includes = torch.utils.cpp_extension.include_paths()
    cmd = [nvcc, "-c", "-std=c++17", "-O2", f"-gencode=arch=compute_{ARCH},code=sm_{ARCH}"]
    for inc in [*torch_includes, os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc"),
                sysconfig.get_paths()["include"]]:
        cmd.append(f"-I{inc}")
    cmd.append(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
    # CPU builds of torch ship c10/cuda's headers without the file CMake generates for them.
    if not any(os.path.isfile(os.path.join(inc, "c10", "cuda", "impl", "cuda_cmake_macros.h"))
               for inc in torch_includes):
        cmd.append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    cmd += [os.path.join(ROOT, source), "-o", obj]
    return cmd


def test_cuda_sources_listed():
    sources = cuda_sources()
    assert sources, "GENTK_CUDA_SOURCES is empty"
    for src in sources:
        assert src.endswith(".cu"), src
        assert os.path.isfile(os.path.join(ROOT, src)), f"{src} is listed in CMakeLists.txt but missing"


@pytest.mark.parametrize("source", cuda_sources())
def test_nvcc_compiles(source, tmp_path, record_property):
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, /usr/local/cuda/bin/nvcc, GENTK_NVCC)")
    if not any(os.path.isfile(os.path.join(inc, "c10", "cuda", "CUDAStream.h"))
               for inc in torch.utils.cpp_extension.include_paths()):
        pytest.skip("this torch install has no c10/cuda headers")
    obj = str(tmp_path / (os.path.basename(source) + ".o"))
    cmd = nvcc_command(nvcc, source, obj)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    # Visible in junit XML (record_property) and with -s / -rA, so CI shows the build ran.
    record_property("nvcc_seconds", round(seconds, 1))
    record_property("nvcc_command", " ".join(cmd))
    print(f"nvcc built {source} for sm_{ARCH} in {seconds:.1f}s")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        pytest.fail(f"nvcc failed on {source} (exit {proc.returncode}):\n{' '.join(cmd)}\n{proc.stderr}",
                    pytrace=False)
    assert os.path.getsize(obj) > 0
