"""Builds the Cython kernels (fastnn._kernels) from csrc/; all metadata is in pyproject.toml.

Portable by default: no -march=native. FASTNN_NATIVE=1 opts into -march=native for a
local build; FASTNN_OPENMP=0 builds without OpenMP.
"""

import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            flags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast"]
            if debug:
                # Bounds checking for the C kernels as well: AddressSanitizer + UBSan. Run the
                # tests with LD_PRELOAD of libasan/libubsan (see .ci/run).
                flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
            if os.environ.get("FASTNN_NATIVE") == "1":
                flags.append("-march=native")
            link = ["-fsanitize=address,undefined"] if debug else []
            if os.environ.get("FASTNN_OPENMP", "1") != "0" and sys.platform != "darwin":
                flags.append("-fopenmp")
                link.append("-fopenmp")
            for ext in self.extensions:
                ext.define_macros.append(("FNN_BUILD_FLAGS", '"' + " ".join(flags) + '"'))
                ext.extra_compile_args += flags
                ext.extra_link_args += link
        super().build_extensions()


debug = os.environ.get("FASTNN_DEBUG_BUILD") == "1"
extensions = [
    Extension(
        "fastnn._kernels",
        ["csrc/_kernels.pyx", "csrc/fnn_dispatch.c", "csrc/fnn_isa_base.c",
         "csrc/fnn_isa_avx2.c", "csrc/fnn_isa_avx512.c"],
        depends=["csrc/fnn.h", "csrc/fnn_impl.h", "csrc/fnn_isa_common.h"],
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
