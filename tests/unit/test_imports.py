"""The import graph of every package, read with ``ast``: no cycle anywhere, and imports flow one way.

``visionserve`` is the core every component imports; ``serving``, ``export`` and ``client``
build on it; ``gateway``, ``loadtest`` and ``bench`` on those; ``helm`` (the chart's checks) on
the core and the gateway's settings; ``drills`` on everything. ``triton_python`` (what runs
inside Triton's python stubs) imports no project package at all: its files import only the
companions copied beside them (tests/unit/triton_python). The load tests and the benchmarks
share one workload layer (``visionserve.samples``, ``serving.processes`` / ``serving.stack``,
the client's requests and checks) and never import each other. Every import counts, also
those inside functions and under ``TYPE_CHECKING``: a cycle that only type checkers see is
still two modules that cannot be read apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from visionserve.settings import PROJECT_ROOT

#: Every package of the distribution, and the tests (walked for cycles only).
PACKAGES = (
    "bench", "client", "drills", "export", "gateway", "helm", "loadtest", "serving", "triton_python", "visionserve",
)  # fmt: skip
WALKED = (*PACKAGES, "tests")
#: The other packages each package may import; a package missing here may import any.
ALLOWED: dict[str, frozenset[str]] = {
    "visionserve": frozenset(),
    "triton_python": frozenset(),
    "loadtest": frozenset({"visionserve", "serving", "client"}),
    # bench also measures export's runners in-process (the ceiling, the GPU benchmark): export
    # sits on the same tier as serving and client.
    "bench": frozenset({"visionserve", "serving", "client", "export"}),
    # the chart's checks read the catalog, the CLI's commands and the gateway's settings they render
    "helm": frozenset({"visionserve", "gateway"}),
}
#: Pairs that never import each other, in either direction.
APART = (("loadtest", "bench"),)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> Iterator[Path]:
    for package in WALKED:
        yield from sorted((PROJECT_ROOT / package).rglob("*.py"))


MODULES = {_module_name(path): path for path in _sources()}


def _resolve(name: str) -> str | None:
    """The project module ``name`` is, or the longest project module it lies in; None if outside."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b`` imports module ``a.b`` when there is one, else a name of ``a``.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found |= {t for t in map(_resolve, targets) if t is not None and t != module}
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_walk_sees_every_package_and_resolves_their_imports() -> None:
    assert {_top(m) for m in MODULES} == set(WALKED)
    assert "visionserve.samples" in GRAPH["loadtest.workload"]
    assert "serving.processes" in GRAPH["serving.launcher"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _top(module) == package
        for target in targets
        if _top(target) != package and _top(target) not in ALLOWED[package]
    )
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'itself'}: " + "; ".join(wrong)


@pytest.mark.parametrize("pair", APART, ids="/".join)
def test_load_tests_and_benchmarks_never_import_each_other(pair: tuple[str, str]) -> None:
    a, b = pair
    crossing = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if {_top(module), _top(target)} == {a, b}
    )
    assert not crossing, "; ".join(crossing)
