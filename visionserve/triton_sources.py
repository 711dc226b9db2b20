"""Which source files Triton loads for each visionserve model file, and copying them into place.

Everything that runs inside Triton's python stubs lives in ``triton_python/`` at the project
root (beside this package in a checkout and in an installed wheel alike)::

    triton_python/models/     python-backend models: preprocess_model.py, gpu_model.py,
                              mean_model.py, and python_model_common.py that all three import
    triton_python/backends/   Python-based backends: <backend>/model.py, one per
                              visionserve.catalog.BACKENDS value, and backend_common.py

plus two modules of the core that in-process code imports too and that are therefore kept
here, in one copy: ``visionserve/imaging.py`` (the preprocessing; the gateway's upload checks
and the exporter's reference pipeline use it) and ``visionserve/gpu_pipeline.py`` (``bench
gpu``'s in-process ceiling runs it).

One import convention: a file Triton loads imports its companions as plain top-level modules
(``from imaging import Pipeline``), never through a package and never by editing ``sys.path``.
The python backend's stub appends the directory of the model file it loads to ``sys.path``
before importing it — ``<model>/<version>/`` for a model, ``<backend-directory>/<backend>/``
for a Python-based backend (python_backend ``src/pb_stub.cc``, ``ModelContext::StubSetup``, the
same in r24.10 = tritonserver 2.51 and today). So the copier, not the file, makes a companion
importable, and :func:`sources` is the one place that says which companions go beside which
model file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from visionserve.catalog import BACKENDS

__all__ = ["MODEL_FILE", "PYTHON_MODELS", "TRITON_TREE", "backend_names", "sources", "stage"]

#: The tree of code that runs inside Triton.
TRITON_TREE: Path = Path(__file__).resolve().parent.parent / "triton_python"
#: The name Triton looks for, in a model's version directory and in a backend's directory.
MODEL_FILE = "model.py"

_CORE = Path(__file__).resolve().parent
_MODELS = TRITON_TREE / "models"
_BACKENDS = TRITON_TREE / "backends"
#: Every companion a model file may import, by the name it is imported under.
_COMPANIONS: dict[str, Path] = {
    "python_model_common.py": _MODELS / "python_model_common.py",
    "backend_common.py": _BACKENDS / "backend_common.py",
    "imaging.py": _CORE / "imaging.py",
    "gpu_pipeline.py": _CORE / "gpu_pipeline.py",
}
#: Each python-backend model's source and the companions it imports (gpu_pipeline imports imaging).
_PYTHON_MODEL_FILES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "preprocess": (_MODELS / "preprocess_model.py", ("python_model_common.py", "imaging.py")),
    "gpu": (_MODELS / "gpu_model.py", ("python_model_common.py", "imaging.py", "gpu_pipeline.py")),
    "mean": (_MODELS / "mean_model.py", ("python_model_common.py",)),
}
#: The python-backend models the exporter stages, by what they do.
PYTHON_MODELS: tuple[str, ...] = tuple(_PYTHON_MODEL_FILES)


def backend_names() -> tuple[str, ...]:
    """The Python-based backends, named as Triton maps the catalog's platforms to them."""
    return tuple(sorted(set(BACKENDS.values())))


def sources(kind: str) -> dict[str, Path]:
    """What goes into the directory of one Triton model file: file name there -> its source.

    Args:
        kind: a python-backend model (``PYTHON_MODELS``) or a Python-based backend
            (``backend_names()``).

    Returns:
        ``model.py`` first, then the companions it imports, each under the name it imports.

    Raises:
        ValueError: ``kind`` is neither.
    """
    if kind in _PYTHON_MODEL_FILES:
        model, companions = _PYTHON_MODEL_FILES[kind]
    elif kind in backend_names():
        model, companions = _BACKENDS / kind / MODEL_FILE, ("backend_common.py",)
    else:
        raise ValueError(f"no Triton model file {kind!r}: choose from {[*PYTHON_MODELS, *backend_names()]}")
    return {MODEL_FILE: model, **{name: _COMPANIONS[name] for name in companions}}


def stage(kind: str, directory: Path) -> Path:
    """Copy ``kind``'s model file and its companions into ``directory`` (created); return it.

    Copies, not links: a running server never sees a file change under it when the sources do.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in sources(kind).items():
        shutil.copyfile(source, directory / name)
    return directory
