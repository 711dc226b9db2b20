"""The test tree's own rules (issue 14, point 5): markers, a test directory per package, cheap collection.

``-m "not integration"`` must start no tritonserver, Redis or PostgreSQL, so every module under
``tests/integration/`` carries the marker at module level (a ``pytestmark`` in a conftest is
ignored by pytest). ``tests/conftest.py`` must not make every test pay for torch: torchvision
is loaded only when a test first imports TensorFlow (``tests.fixtures.import_order``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from visionserve.settings import PROJECT_ROOT

TESTS = PROJECT_ROOT / "tests"
#: Packages whose unit tests live apart from ``tests/unit/<package>``, and where.
TESTED_ELSEWHERE = {"helm": TESTS / "helm"}


def _marks(path: Path) -> set[str]:
    """Marker names a module's ``pytestmark`` applies (``pytest.mark.X`` alone or in a list)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                    found.add(sub.attr)
    return found


INTEGRATION_MODULES = sorted((TESTS / "integration").rglob("test_*.py"))


def test_the_marker_reader_sees_both_spellings(tmp_path: Path) -> None:
    one, many, none = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    one.write_text("import pytest\npytestmark = pytest.mark.integration\n")
    many.write_text("import pytest\npytestmark = [pytest.mark.gpu, pytest.mark.integration]\n")
    none.write_text("import pytest\n\n@pytest.mark.integration\ndef test_x():\n    pass\n")
    assert _marks(one) == {"integration"} and _marks(many) == {"gpu", "integration"} and _marks(none) == set()


def test_there_are_integration_modules_to_check() -> None:
    assert len(INTEGRATION_MODULES) > 30


@pytest.mark.parametrize("path", INTEGRATION_MODULES, ids=lambda p: p.relative_to(TESTS).as_posix())
def test_every_integration_module_carries_the_marker(path: Path) -> None:
    assert "integration" in _marks(path), f"{path.relative_to(PROJECT_ROOT)}: add pytestmark = pytest.mark.integration"


def test_every_package_has_a_unit_test_directory() -> None:
    packages = sorted(p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    missing = [
        name for name in packages if not any(TESTED_ELSEWHERE.get(name, TESTS / "unit" / name).glob("test_*.py"))
    ]
    assert "visionserve" in packages and not missing, f"packages without unit tests of their own: {missing}"


def _python(code: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_the_shared_conftest_does_not_load_torch() -> None:
    assert _python("import sys, tests.conftest; print(sorted({'torch', 'torchvision'} & set(sys.modules)))") == "[]"


def test_torchvision_is_loaded_just_before_tensorflow() -> None:
    order = _python(
        "import sys, tests.conftest, keras; names = list(sys.modules); "
        "print(names.index('torchvision') < names.index('tensorflow'))"
    )
    assert order == "True"
