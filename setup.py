"""Builds the extension cormorant._core: libcore/src/*.c (the engine) and
bindings/python/*.c (the asyncio adapter and value conversion) in one
module, linked against libpq. Metadata lives in pyproject.toml."""

import glob
import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(cmd):
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.strip()


def libpq_flags():
    """(include_dirs, library_dirs) for libpq: pg_config first, as psycopg_c
    does, then pkg-config; empty lists when neither is there (the compiler's
    defaults may still find it)."""
    pg_config = os.environ.get("PG_CONFIG", "pg_config")
    inc, lib = _run([pg_config, "--includedir"]), _run([pg_config, "--libdir"])
    if inc and lib:
        return [inc], [lib]
    cflags, libs = _run(["pkg-config", "--cflags", "libpq"]), _run(["pkg-config", "--libs-only-L", "libpq"])
    incs = [f[2:] for f in shlex.split(cflags or "") if f.startswith("-I")]
    libdirs = [f[2:] for f in shlex.split(libs or "") if f.startswith("-L")]
    return incs, libdirs


def sources():
    # By glob, so engine files added by colleagues are compiled without
    # touching this file. Relative paths: setuptools wants them so.
    rel = lambda pattern: sorted(  # noqa: E731
        os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern))
    )
    return rel("libcore/src/*.c") + rel("bindings/python/*.c")


inc, libdirs = libpq_flags()

core = Extension(
    "cormorant._core",
    sources=sources(),
    include_dirs=["libcore/include", "libcore/src", "bindings/python"] + inc,
    library_dirs=libdirs,
    # An rpath only for a libpq outside the system directories.
    runtime_library_dirs=[d for d in libdirs if not d.startswith(("/usr/lib", "/lib"))]
    if os.name == "posix"
    else [],
    libraries=["pq"],
    extra_compile_args=["-std=c11", "-fvisibility=hidden", "-Wall", "-Wno-unused-parameter"],
    depends=sorted(
        glob.glob(os.path.join("libcore", "include", "*.h"))
        + glob.glob(os.path.join("libcore", "src", "*.h"))
        + glob.glob(os.path.join("bindings", "python", "*.h"))
    ),
)

setup(
    ext_modules=[core],
    # Not build/: that is CMake's build directory in this tree.
    options={"build": {"build_base": "build-python"}},
)
