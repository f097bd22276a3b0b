"""Builds the Cython kernels (fastnn._kernels) from csrc/; all metadata is in pyproject.toml.

The extension is optional: without a usable C compiler (none at all, or one without the GCC
vector extensions the kernels use, e.g. MSVC) the install still succeeds, the reason is written
next to the package (fastnn/_kernels_build_error.txt, shown by ``fastnn info``) and fastnn runs
on its Numba and NumPy backends.

Portable by default: no -march=native. FASTNN_NATIVE=1 opts into -march=native for a local
build; FASTNN_OPENMP=0 builds without OpenMP (a failed OpenMP build is retried without it).
FASTNN_REQUIRE_KERNELS=1 makes a failed build an error (CI uses it where a compiler exists).
"""

import glob
import os
import re
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

# The compiler failures that mean "no usable C compiler": anything else is a real bug.
BUILD_ERRORS = (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError)

MARKER = "_kernels_build_error.txt"   # read by fastnn/backends/cython_backend.py
debug = os.environ.get("FASTNN_DEBUG_BUILD") == "1"


def _flags(openmp):
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast"]
    link = []
    if debug:
        # Bounds checking for the C kernels as well: AddressSanitizer + UBSan. Run the tests
        # with LD_PRELOAD of libasan/libubsan (see .ci/run).
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
        link += ["-fsanitize=address,undefined"]
    if os.environ.get("FASTNN_NATIVE") == "1":
        flags.append("-march=native")
    if openmp:
        flags.append("-fopenmp")
        link.append("-fopenmp")
    return flags, link


def _short(exc):
    """One line for an error whose text may hold a whole compiler command line."""
    text = str(exc)
    cmd = re.search(r"Command '\['([^']+)'.*exit status (\d+)", text)
    if cmd:
        return f"compiler '{cmd.group(1)}' failed (exit status {cmd.group(2)})"
    return text if len(text) <= 200 else text[:200] + "..."


class BuildExt(build_ext):
    """build_ext that records why the kernels could not be built instead of failing."""

    def build_extension(self, ext):
        marker = Path(self.get_ext_fullpath(ext.name)).parent / MARKER
        marker.unlink(missing_ok=True)
        try:
            self._build(ext)
        except BUILD_ERRORS as exc:
            if os.environ.get("FASTNN_REQUIRE_KERNELS") == "1":
                raise
            reason = f"the C kernels could not be compiled at install time: {_short(exc)}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(reason + "\n")
            self.warn(f"fastnn: {reason}; installing without the cython backend "
                      "(numba and numpy remain)")

    def _build(self, ext):
        if self.compiler.compiler_type != "unix":
            raise CompileError(f"the kernels need GCC or Clang (C vector extensions); this "
                               f"build uses {self.compiler.compiler_type!r}")
        want_omp = os.environ.get("FASTNN_OPENMP", "1") != "0" and sys.platform != "darwin"
        base_args, base_link = list(ext.extra_compile_args), list(ext.extra_link_args)
        for openmp in ([True, False] if want_omp else [False]):
            flags, link = _flags(openmp)
            ext.extra_compile_args = base_args + flags
            ext.extra_link_args = base_link + link
            ext.define_macros = [m for m in ext.define_macros if m[0] != "FNN_BUILD_FLAGS"]
            ext.define_macros.append(("FNN_BUILD_FLAGS", '"' + " ".join(flags) + '"'))
            try:
                return super().build_extension(ext)
            except BUILD_ERRORS:
                if not openmp:
                    raise
                self.warn("fastnn: the build with OpenMP failed; retrying without it")
                self.force = True   # recompile: objects built with -fopenmp need libgomp


extensions = [
    Extension(
        "fastnn._kernels",
        ["csrc/_kernels.pyx", "csrc/fnn_dispatch.c", "csrc/fnn_isa_base.c",
         "csrc/fnn_isa_avx2.c", "csrc/fnn_isa_avx512.c"],
        # The .pyx is listed too so that the sdist carries it (cythonize swaps it for the .c).
        # Every header and .pxi: a rebuild follows any change, and the sdist carries them all.
        depends=["csrc/_kernels.pyx", *sorted(glob.glob("csrc/*.h")),
                 *sorted(glob.glob("csrc/*.pxi"))],
        include_dirs=[np.get_include(), "csrc"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": debug,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
