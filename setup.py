"""Build script: compiles the Cython/C hot paths in core/ into the `pybroker_core` package.

`core/` is a source root holding one uniquely named compiled package, `pybroker_core`, so that
Cython modules can `cimport` each other by absolute name (`from pybroker_core.buffer cimport Reader`).
The pure-Python twins live in `pybroker/codec/_pure/`; `pybroker/_impl.py` chooses between them.

Environment:
  PYBROKER_DEBUG_BUILD=1  -O0 -g, AddressSanitizer + UBSan, Cython bounds/wraparound checks on.
                          Run tests with LD_PRELOAD=$(gcc -print-file-name=libasan.so).
"""
import os
import sys

from setuptools import Extension, find_packages, setup

DEBUG = os.environ.get("PYBROKER_DEBUG_BUILD", "") not in ("", "0")

compile_args = ["-O3", "-fno-strict-aliasing"] if not DEBUG else [
    "-O0", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
link_args = [] if not DEBUG else ["-fsanitize=address,undefined"]
directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}


def ext(name, extra_sources=()):
    return Extension(
        f"pybroker_core.{name}",
        [f"core/pybroker_core/{name}.pyx", *extra_sources],
        include_dirs=["core/pybroker_core"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


def extensions():
    from Cython.Build import cythonize

    mods = [
        ext("buffer"),
        ext("crc32c", ["core/pybroker_core/crc32c_impl.c"]),
        ext("records", ["core/pybroker_core/crc32c_impl.c"]),  # links crc32c_update
        ext("index"),
        ext("protocol"),
        ext("uring", ["core/pybroker_core/uring_impl.c"]),
        ext("cleaner"),
        ext("validator"),
    ]
    mods = [m for m in mods if os.path.exists(m.sources[0])]
    return cythonize(mods, compiler_directives=directives, include_path=["core"],
                     nthreads=os.cpu_count() or 1, quiet=True)


setup(
    packages=find_packages(include=["pybroker", "pybroker.*"]) + ["pybroker_core"],
    package_dir={"pybroker_core": "core/pybroker_core"},
    package_data={"pybroker_core": ["*.pxd", "*.h"], "pybroker": ["protocol/defs/*.txt", "py.typed"]},
    ext_modules=extensions(),
    zip_safe=False,
)
