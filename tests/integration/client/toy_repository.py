"""Build a tiny, self-contained Triton model repository for the client's integration tests.

The toy models take what a catalog ensemble takes (``image``: TYPE_STRING dims [1], batched)
and return what it returns (``probabilities``: FP32, with ``label_filename``), so the client
is exercised exactly as against the real ensembles, without exported weights. Configs are
built with Triton's own protobuf schema, tensor names come from ``visionserve.catalog``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from visionserve.catalog import IMAGE_INPUT, PROBABILITIES

__all__ = ["TOY_LABELS", "ToyRepository", "build_toy_repository"]

_SOURCES = Path(__file__).resolve().parent / "toy_model"

#: Labels of the toy classifier: some hold ':' (Triton's separator) and non-ASCII text.
TOY_LABELS: tuple[str, ...] = (
    "tabby cat",
    "aspect ratio 16:9",
    "a:b:c",
    "naïve café",
    "grand piano",
    "zebra",
)


@dataclass(frozen=True)
class ToyRepository:
    """Where the toy repository is and what it holds.

    Args:
        path: the repository directory.
        labelled: versioned model with a labels file and demo weights (versions 1 and 2).
        plain: model without a labels file, trained weights, version 1 only.
        spare: model that is in the repository but not loaded at start (repository API tests).
        loaded: the models to load at server start.
        labels: labels of ``labelled``, in index order.
        versions: versions of ``labelled``.
    """

    path: Path
    labelled: str = "toy"
    plain: str = "toy_plain"
    spare: str = "toy_spare"
    labels: tuple[str, ...] = TOY_LABELS
    versions: tuple[int, ...] = (1, 2)

    @property
    def loaded(self) -> list[str]:
        return [self.labelled, self.plain]

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def _config(name: str, *, num_classes: int, labels: bool, weights: str) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, backend="python", max_batch_size=8)
    config.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    output = config.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[num_classes])
    if labels:
        output.label_filename = "labels.txt"
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    config.version_policy.all.SetInParent()
    config.parameters["weights"].string_value = weights
    return config


def _write_model(
    root: Path, config: mc.ModelConfig, versions: tuple[int, ...], labels: tuple[str, ...]
) -> None:
    model_dir = root / config.name
    model_dir.mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    if config.output[0].label_filename:
        (model_dir / config.output[0].label_filename).write_text("\n".join(labels) + "\n", encoding="utf-8")
    for version in versions:
        version_dir = model_dir / str(version)
        version_dir.mkdir()
        for source in ("model.py", "toy_scores.py"):
            shutil.copy2(_SOURCES / source, version_dir / source)


def build_toy_repository(root: Path) -> ToyRepository:
    """Write the toy repository under ``root`` (created) and describe it."""
    repo = ToyRepository(path=Path(root))
    repo.path.mkdir(parents=True, exist_ok=True)
    n = repo.num_classes
    _write_model(
        repo.path,
        _config(repo.labelled, num_classes=n, labels=True, weights="demo"),
        repo.versions,
        repo.labels,
    )
    _write_model(repo.path, _config(repo.plain, num_classes=n, labels=False, weights="checkpoint"), (1,), ())
    _write_model(
        repo.path, _config(repo.spare, num_classes=n, labels=True, weights="demo"), (1,), repo.labels
    )
    return repo
