"""Serve one model's fp32 and INT8 backbones side by side, in one server, for ``bench serving``.

A scratch copy of the repository (hard links: no artifact is copied, the real repository is
never written) gets, per model whose served version has an ``onnx`` and an ``onnx_int8``
backbone, one extra ensemble ``<name>_via_<format>`` for the format the catalog does not serve:
the same preprocessing model and version, the other backbone. Both ensembles are loaded at once,
so the benchmark can alternate between them cell by cell on the same server.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from export.repository import LABELS_FILE, ensemble_config, read_version, served_version
from visionserve.catalog import INT8_FORMAT, ModelSpec
from visionserve.errors import RepositoryError
from visionserve.files import link_or_copy

__all__ = ["COMPARED_FORMATS", "Variant", "compared_formats", "variant_repository"]

#: The fp32 and INT8 backbone formats compared.
COMPARED_FORMATS = ("onnx", INT8_FORMAT)


class Variant:
    """One (model, backbone format) the benchmark serves: its ensemble and backbone names."""

    def __init__(self, spec: ModelSpec, fmt: str) -> None:
        self.spec = spec
        self.fmt = fmt
        self.ensemble = spec.ensemble if fmt == spec.serve_format else f"{spec.name}_via_{fmt}"
        self.backbone = spec.backbone_model(fmt)  # type: ignore[arg-type]

    @property
    def served_spec(self) -> ModelSpec:
        """The catalog entry as if it served this format."""
        return self.spec.model_copy(update={"serve_format": self.fmt})


def compared_formats(repository: Path, spec: ModelSpec) -> list[str]:
    """The formats to serve for ``spec``: fp32 ONNX and INT8 when its served version has both."""
    version = served_version(repository, spec)
    if version is None:
        raise RepositoryError(f"{spec.name} is not in the repository {repository}: run `make export`")
    formats = read_version(repository, spec, version).formats
    if all(f in formats for f in COMPARED_FORMATS):
        return list(COMPARED_FORMATS)
    return [spec.serve_format]


def _link_tree(source: Path, target: Path) -> None:
    for root, _dirs, files in os.walk(source):
        rel = Path(root).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(root) / name, target / rel / name
            if name == "config.pbtxt":
                shutil.copyfile(src, dst)  # may be rewritten: never a link into the real repository
                continue
            link_or_copy(src, dst)


def variant_repository(repository: Path, target: Path, variants: list[Variant]) -> list[str]:
    """Build the scratch repository at ``target``; returns every Triton model to load.

    The served ensembles keep their names; a variant of another format gets its own ensemble
    pinned to the same version as the served one.
    """
    if target.exists():
        shutil.rmtree(target)
    _link_tree(repository, target)
    models: list[str] = []
    for variant in variants:
        spec = variant.spec
        version = served_version(target, spec)
        info = read_version(target, spec, version)  # type: ignore[arg-type]
        if variant.fmt not in info.formats:
            raise RepositoryError(f"{spec.name} v{version} has no {variant.fmt} backbone")
        if variant.ensemble != spec.ensemble:
            cfg = ensemble_config(variant.served_spec, info)
            cfg.name = variant.ensemble
            directory = target / variant.ensemble
            (directory / str(version)).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target / spec.ensemble / LABELS_FILE, directory / LABELS_FILE)
            from google.protobuf import text_format

            (directory / "config.pbtxt").write_text(text_format.MessageToString(cfg))
        models += [variant.ensemble, spec.preprocess_model, variant.backbone]
    return list(dict.fromkeys(models))
