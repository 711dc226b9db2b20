"""The one convention of the code that runs inside Triton, read from the files with ``ast``.

Every file Triton loads is a model file of ``triton_python/`` or a companion that
``visionserve.triton_sources`` copies beside one. Each imports its companions as plain
top-level modules and never edits ``sys.path``: the python stub appends the directory it loads
``model.py`` from (python_backend ``ModelContext::StubSetup``). So what a model file imports,
directly or through a companion, must be exactly what the copier puts beside it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import triton_tree
from visionserve import triton_sources
from visionserve.catalog import BACKENDS
from visionserve.triton_sources import MODEL_FILE, PYTHON_MODELS, TRITON_TREE, backend_names, sources

KINDS = [*PYTHON_MODELS, *backend_names()]
#: Every file some Triton model directory receives (model files and companions).
LOADED = sorted({path for kind in KINDS for path in sources(kind).values()})
#: The import names of the companions the copier knows.
COMPANIONS = {Path(name).stem for kind in KINDS for name in sources(kind) if name != MODEL_FILE}
#: Top-level packages of this project: none of them exists inside Triton.
PROJECT_PACKAGES = {
    "bench", "client", "drills", "export", "gateway", "loadtest", "serving", "tests", "triton_python", "visionserve",
}  # fmt: skip


def _is_import_error_handler(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names)


def _imports(path: Path) -> set[str]:
    """Top-level modules ``path`` imports, leaving out ``except ImportError`` fallbacks.

    Such a fallback runs only where the import above it failed: ``gpu_pipeline.py`` imports its
    sibling ``imaging`` inside Triton and ``visionserve.imaging`` in-process (``bench gpu``).
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import: the tree is no package"
            found.add((node.module or "").split(".")[0])
        for field, value in ast.iter_fields(node):
            if isinstance(node, ast.ExceptHandler) and field == "body" and _is_import_error_handler(node):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def _imported_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {node.module or ""} if isinstance(node, ast.ImportFrom) else {alias.name for alias in node.names}


def _companions_needed(model: Path) -> set[str]:
    """The companions ``model`` imports, and those they import in turn."""
    needed: set[str] = set()
    todo = [model]
    while todo:
        for name in _imports(todo.pop()) & COMPANIONS - needed:
            needed.add(name)
            todo.extend(path for kind in KINDS for file, path in sources(kind).items() if Path(file).stem == name)
    return needed


def test_the_copier_and_the_tests_look_in_one_tree() -> None:
    assert TRITON_TREE == triton_tree.TRITON_TREE
    assert (TRITON_TREE / "models").is_dir() and (TRITON_TREE / "backends").is_dir()


def test_every_file_of_the_tree_is_copied_somewhere_and_none_pretends_to_be_a_package() -> None:
    in_tree = set(TRITON_TREE.rglob("*.py"))
    assert not [p for p in in_tree if p.name == "__init__.py"]
    assert in_tree == {p for p in LOADED if TRITON_TREE in p.parents}  # no stray file, none missing


def test_backends_are_the_catalogs() -> None:
    assert set(backend_names()) == set(BACKENDS.values())
    folders = {p.name for p in (TRITON_TREE / "backends").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(backend_names())


@pytest.mark.parametrize("path", LOADED, ids=lambda p: p.relative_to(TRITON_TREE.parent).as_posix())
def test_no_file_triton_loads_edits_sys_path_or_imports_the_project(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    edits = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys")
        or (isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names))
        or (isinstance(node, ast.ImportFrom | ast.Import) and "site" in _imported_names(node))
    ]
    assert not edits, f"{path} reaches for sys.path (lines {edits}): the copier places companions, not the file"
    assert not _imports(path) & PROJECT_PACKAGES, f"{path} imports {sorted(_imports(path) & PROJECT_PACKAGES)}"


@pytest.mark.parametrize("kind", KINDS)
def test_each_model_file_imports_exactly_the_companions_copied_beside_it(kind: str) -> None:
    files = sources(kind)
    copied = {Path(name).stem for name in files if name != MODEL_FILE}
    assert _companions_needed(files[MODEL_FILE]) == copied


@pytest.mark.parametrize("kind", KINDS)
def test_staging_copies_the_model_file_and_its_companions_byte_for_byte(kind: str, tmp_path: Path) -> None:
    staged = triton_sources.stage(kind, tmp_path / kind / "1")
    assert sorted(p.name for p in staged.iterdir()) == sorted(sources(kind))
    for name, source in sources(kind).items():
        assert (staged / name).read_bytes() == source.read_bytes()


def test_an_unknown_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"no Triton model file 'onnx'.*'preprocess'.*'onnxruntime'"):
        sources("onnx")


def test_no_other_module_shadows_a_companion_in_the_stubs_interpreter() -> None:
    """The stub appends the model directory to ``sys.path``: a same-named module before it would win.

    ``python -I`` sees what the stub sees (this interpreter's site-packages, no ``PYTHONPATH``,
    no working directory).
    """
    probe = "import importlib.util as u, json, sys; print(json.dumps({n: bool(u.find_spec(n)) for n in sys.argv[1:]}))"
    found = subprocess.run(
        [sys.executable, "-I", "-c", probe, *sorted(COMPANIONS)], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(found.stdout) == dict.fromkeys(sorted(COMPANIONS), False)
