"""Assemble the ``--backend-directory`` for the bundled tritonserver.

Layout::

    <dest>/python/        libtriton_python.so, triton_python_backend_utils.py, the stub
    <dest>/onnxruntime/   model.py + backend_common.py   (serves platform "onnxruntime_onnx")
    <dest>/pytorch/       model.py + backend_common.py   (serves platform "pytorch_libtorch")
    <dest>/tensorflow/    model.py + backend_common.py   (serves platform "tensorflow_savedmodel")

One folder per value of ``visionserve.catalog.BACKENDS``; what goes into it, from
``triton_python/backends/``, is ``visionserve.triton_sources``' call.

Triton maps a standard platform name to the backend of that name and, finding a ``model.py``
instead of a shared library there, runs it as a *Python-based backend*. The repository
therefore loads unchanged on the stock NGC image (native backends) and here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from serving.install import TritonInstall, find_install
from visionserve import triton_sources

__all__ = ["assemble_backend_directory"]

_PYTHON_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


def assemble_backend_directory(dest: Path | None = None, install: TritonInstall | None = None) -> Path:
    """Write a complete backend directory and return its path.

    Files are copied, not linked, so a running server never sees a half-updated backend when
    the sources change, and the directory can be deleted with the server that used it.

    Args:
        dest: directory to fill (created; existing backend folders are replaced). A fresh
            temporary directory when None — the caller removes it.
        install: the located wheel (found when None).

    Returns:
        The backend directory.

    Raises:
        ServerError: the wheel is incomplete.
    """
    install = install or find_install()
    dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="visionserve-backends-"))
    dest.mkdir(parents=True, exist_ok=True)

    python_dir = dest / "python"
    _fresh(python_dir)
    for name in _PYTHON_FILES:
        shutil.copy2(install.python_backend_dir / name, python_dir / name)
    shutil.copy2(install.stub, python_dir / install.stub.name)

    for name in triton_sources.backend_names():
        target = dest / name
        _fresh(target)
        triton_sources.stage(name, target)
    return dest


def _fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
