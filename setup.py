"""Build gentk: setup.py hands the compiled part to CMakeLists.txt, which holds the one
list of kernel sources. Install with `pip install --no-build-isolation .` (or `-e .`)
so the extension builds against the torch already installed."""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        output_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        build_dir = os.path.join(ROOT, "build", "cmake")
        os.makedirs(build_dir, exist_ok=True)
        config = [
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DGENTK_OUTPUT_DIR={output_dir}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('GENTK_BUILD_TYPE', 'Release')}",
        ]
        if os.environ.get("GENTK_NO_CUDA"):
            config.append("-DGENTK_BUILD_CUDA=OFF")
        if shutil.which("ninja") and not os.path.exists(os.path.join(build_dir, "Makefile")):
            config += ["-G", "Ninja"]
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, *config])
        subprocess.check_call(["cmake", "--build", build_dir, "-j", jobs])


setup(
    ext_modules=[CMakeExtension("gentk._C")],
    cmdclass={"build_ext": CMakeBuild},
)
