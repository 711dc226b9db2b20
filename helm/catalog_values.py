"""The chart values that models.yaml decides, written into values.yaml from the catalog.

Adding a model is an entry in models.yaml and no chart edit: ``python -m helm.schema`` (which
regenerates ``values.schema.json`` too) rewrites these values in place, keeping every comment,
and ``make helm-lint`` fails while they are stale. The chart cannot read models.yaml itself —
Helm sees only files inside the chart — so the values carry the catalog's decisions, generated.

- ``triton.models``: every catalog ensemble, in catalog order (loaded at start).
- ``triton.optionalModels``: ensembles loaded at start only when the repository holds them:
  each model's TTA ensembles and its release canary, and the committees.
- ``triton.gpu.instancesPerGpu``: ``profiles.gpu.instances`` (what sizes the GPU shm checks).
"""

from __future__ import annotations

import re
from pathlib import Path

from visionserve.catalog import Catalog

__all__ = ["catalog_values", "sync_values", "write_values"]


def catalog_values(catalog: Catalog) -> dict[str, object]:
    """Dotted value path -> what the catalog says it must be."""
    specs = catalog.models.values()
    optional = [name for spec in specs for name in (*map(spec.tta_ensemble, spec.tta), spec.canary_ensemble)]
    values: dict[str, object] = {
        "triton.models": [spec.ensemble for spec in catalog.models.values()],
        "triton.optionalModels": optional + [committee.ensemble for committee in catalog.committees.values()],
    }
    instances = {spec.gpu.instances for spec in catalog.models.values() if spec.gpu is not None}
    if instances:
        values["triton.gpu.instancesPerGpu"] = max(instances)
    return values


def sync_values(text: str, catalog: Catalog) -> str:
    """``values.yaml`` text with the catalog's values written in (comments and layout kept)."""
    lines = text.splitlines(keepends=True)
    for dotted, value in catalog_values(catalog).items():
        start, indent = _find(lines, dotted.split("."))
        key = dotted.rsplit(".", 1)[-1]
        if isinstance(value, list):
            end = start + 1
            while end < len(lines) and re.match(rf"^{' ' * indent}  - ", lines[end]):
                end += 1
            block = [f"{' ' * indent}{key}:\n", *(f"{' ' * indent}  - {item}\n" for item in value)]
            lines[start:end] = block
        else:
            lines[start] = f"{' ' * indent}{key}: {value}\n"
    return "".join(lines)


def _find(lines: list[str], path: list[str]) -> tuple[int, int]:
    """Index and indent of the line holding ``path`` (a nested mapping key), by indentation."""
    start, indent = 0, 0
    for depth, key in enumerate(path):
        pattern = re.compile(rf"^{' ' * indent}{re.escape(key)}:(\s|$)")
        for i in range(start, len(lines)):
            if pattern.match(lines[i]):
                start = i + (0 if depth == len(path) - 1 else 1)
                break
            if i > start and lines[i].strip() and not lines[i].lstrip().startswith("#"):
                if len(lines[i]) - len(lines[i].lstrip()) < indent:
                    raise KeyError(".".join(path))  # left the parent mapping
        else:
            raise KeyError(".".join(path))
        indent += 2 if depth < len(path) - 1 else 0
    return start, indent


def write_values(values_path: Path, catalog: Catalog) -> bool:
    """Rewrite the file if the catalog changed what it must hold; True when it did."""
    text = values_path.read_text()
    synced = sync_values(text, catalog)
    if synced != text:
        values_path.write_text(synced)
    return synced != text
