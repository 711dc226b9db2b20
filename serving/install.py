"""Locate the tritonserver that the nvidia-pytriton wheel ships, and the environment it needs.

The wheel carries a real ``tritonserver`` binary, its shared libraries, the python backend
(with one stub per Python version) and the local response cache. Nothing here is installed
system-wide, so every path is derived from where ``pytriton`` was imported from.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from visionserve.errors import ServerError

__all__ = ["TritonInstall", "check_stub_numpy", "find_install", "server_environment"]

#: Environment defaults for the server and its stubs: no stray OpenMP/BLAS pools. Each backend
#: sizes its own framework pool explicitly (see triton_python/backends/backend_common.py).
THREAD_ENV_DEFAULTS: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


@dataclass(frozen=True)
class TritonInstall:
    """Paths inside the nvidia-pytriton wheel.

    Args:
        binary: the ``tritonserver`` executable.
        lib_dir: ``nvidia_pytriton.libs``, which must be on ``LD_LIBRARY_PATH``.
        python_backend_dir: ``libtriton_python.so`` and ``triton_python_backend_utils.py``.
        stub: ``triton_python_backend_stub`` built for the running interpreter's version.
        cache_dir: the response-cache directory (holds ``local/``).
    """

    binary: Path
    lib_dir: Path
    python_backend_dir: Path
    stub: Path
    cache_dir: Path


def find_install(python_version: str | None = None) -> TritonInstall:
    """Find the bundled tritonserver; ServerError says what is missing and how to get it.

    Args:
        python_version: ``"3.11"``-style version of the stub to use; the running
            interpreter's when None (the stub must match the packages it will import).

    Raises:
        ServerError: the wheel is not installed, or lacks the binary, a stub for this
            Python version, or the local cache.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed: run `make venv` (it ships tritonserver)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    root = pkg / "tritonserver"
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=root / "bin" / "tritonserver",
        lib_dir=pkg.parent / "nvidia_pytriton.libs",
        python_backend_dir=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        cache_dir=root / "caches",
    )
    required = {
        "tritonserver binary": install.binary,
        "shared libraries": install.lib_dir,
        "python backend": install.python_backend_dir / "libtriton_python.so",
        f"python backend stub for Python {version}": install.stub,
        "local response cache": install.cache_dir / "local",
    }
    missing = [f"{what} ({path})" for what, path in required.items() if not path.exists()]
    if missing:
        raise ServerError(
            "the nvidia-pytriton wheel is incomplete, missing: "
            + "; ".join(missing)
            + " — reinstall it with `make venv`"
        )
    return install


def server_environment(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver so that its python stubs run *this* interpreter's packages.

    The stub embeds libpython and ignores ``PYTHONPATH`` (verified: it is absent from the
    stub's ``sys.path``). It finds its prefix through the ``python3`` on ``PATH``: with this
    virtualenv's ``bin/`` first, it reads ``pyvenv.cfg`` and gets the venv's site-packages,
    ``.pth`` files included. ``LD_LIBRARY_PATH`` lists this interpreter's ``LIBDIR`` first,
    so the stub loads the matching libpython, then the wheel's own libraries.

    Args:
        install: the located wheel.
        base: the environment to extend (``os.environ`` when None).

    Returns:
        A new environment mapping.
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(install.lib_dir)]
    libdirs += [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libdirs if p)
    for key, value in THREAD_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def check_stub_numpy(env: dict[str, str]) -> str:
    """The numpy version the python stubs will import; refuse numpy 2 before serving garbage.

    The stub (libpython embedded, ``PYTHONPATH`` ignored) imports the numpy of the interpreter's
    own site-packages, which ``python -I`` sees too. The bundled python backend reads tensors
    with numpy-1 layouts: under numpy 2 every BYTES input crashes the stub ("unpack_from
    requires a buffer …") and UINT8 outputs come back empty (measured on the H200 machine).

    Returns:
        The version string.

    Raises:
        ServerError: numpy is missing there, or its major version is 2 or more.
    """
    probe = subprocess.run(
        [sys.executable, "-I", "-c", "import numpy; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    version = probe.stdout.strip()
    if probe.returncode != 0 or not version:
        raise ServerError(f"the python stubs cannot import numpy from {sys.prefix}: {probe.stderr.strip()[-300:]}")
    if int(version.split(".")[0]) >= 2:
        raise ServerError(
            f"the python stubs would import numpy {version} from {sys.prefix}; the bundled python backend "
            "corrupts tensors under numpy 2 (BYTES inputs crash the stub, UINT8 outputs come back empty). "
            "Install numpy<2 into that environment: pip install 'numpy<2'"
        )
    return version
