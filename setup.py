"""Build the native kernels (``csrc/`` -> ``edgeinf._kernels``).

The extension is mandatory: if it cannot compile, the install fails. There is no silent
pure-Python fallback, because a slow path that nobody notices is worse than a loud error.
"""
import os
import platform
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

# One compiler process per core (NPY_NUM_BUILD_JOBS=N to limit): a Pi or Jetson compiles
# the sdist itself, and 4 cores take about a quarter of the time of one.
ParallelCompile("NPY_NUM_BUILD_JOBS").install()

VERSION = "0.1.0"

machine = platform.machine().lower()
# -ffp-contract=off: no implicit FMA, so SIMD and generic paths round the same way.
extra_compile = ["-O3", "-fvisibility=hidden", "-ffp-contract=off"]
# NOTE: never -march=native: a wheel built here must run on any CPU of the family.
# ISA-specific files get their own flags (see csrc/arch/) and are chosen at run time.
sources = sorted(glob("csrc/*.cpp"))
isa_macros = []
if machine in ("x86_64", "amd64", "i686", "x86"):
    sources += sorted(glob("csrc/arch/x86/*.cpp"))
    isa_macros = [("EDGEINF_HAVE_AVX512", "1"), ("EDGEINF_HAVE_AVX2", "1"), ("EDGEINF_HAVE_SSE41", "1")]
elif machine in ("aarch64", "arm64"):
    # NOTE: the NEON kernels use AArch64-only intrinsics (vminnm, vcvtn); 32-bit ARM
    # builds get the generic paths.
    sources += sorted(glob("csrc/arch/arm/*.cpp"))
    isa_macros = [("EDGEINF_HAVE_NEON", "1")]

build_flags = " ".join(extra_compile)
ext = Pybind11Extension(
    "edgeinf._kernels",
    sources,
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=extra_compile,
    define_macros=[
        ("EDGEINF_VERSION_INFO", f'"{VERSION}"'),
        ("EDGEINF_BUILD_FLAGS", f'"{build_flags}"'),
        *isa_macros,
    ],
)


class BuildExt(build_ext):
    """Compile per-ISA sources with their own -m flags, the rest with the baseline."""

    def build_extensions(self):
        orig = self.compiler._compile

        def _compile(obj, src, ext_, cc_args, extra_postargs, pp_opts):
            post = list(extra_postargs)
            base = os.path.basename(src)
            if "arch/x86" in src.replace(os.sep, "/"):
                if base.startswith("avx512"):
                    # NOTE: GCC 12 warns inside its own avx512fintrin.h (_mm512_undefined_*)
                    post += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma", "-mf16c",
                             "-Wno-maybe-uninitialized"]
                elif base.startswith("avx2"):
                    post += ["-mavx2", "-mfma", "-mf16c"]
                elif base.startswith("sse"):
                    post += ["-msse4.1"]
            return orig(obj, src, ext_, cc_args, post, pp_opts)

        self.compiler._compile = _compile
        super().build_extensions()


setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt}, zip_safe=False)
