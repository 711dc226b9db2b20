"""The framework-neutral part of an exporter: build, predict, export, check parity."""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.runners import load_runner
from export.weights import WeightsChoice
from visionserve.catalog import ARTIFACTS, Format, ModelSpec
from visionserve.errors import ParityError, WeightsError

__all__ = ["PARITY_TOLERANCE", "Backbone", "Exported", "artifact_size", "resolve_builder"]

#: Largest accepted |exported − source| over probabilities on real images.
PARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Exported:
    """One exported, parity-checked artifact."""

    fmt: str  # a catalog Format, or "gpu" for the GPU profile's model
    path: Path
    max_abs_diff: float
    size_bytes: int
    seconds: float


def resolve_builder(dotted: str) -> Any:
    """``keras.applications.ResNet50`` -> the callable; a clear error when it does not exist."""
    module_name, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        from visionserve.errors import CatalogError

        raise CatalogError(f"builder {dotted!r} does not exist (check models.yaml)") from None


def artifact_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Backbone(ABC):
    """A source model of one framework, from which every catalog format is exported."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.num_classes = spec.num_classes
        self.weights = "demo"

    @abstractmethod
    def build(self, choice: WeightsChoice, num_classes: int | None, calibration: np.ndarray) -> None:
        """Create the source model; settles ``self.weights`` and ``self.num_classes``."""

    def imagenet_model(self, build: Callable[[], Any], hint: str) -> Any:
        """``build()``, the model with ImageNet weights; it settles 1000 classes and ``imagenet`` weights.

        Raises:
            WeightsError: the weights cannot be had (no network, no cache); ``hint`` says what to do.
        """
        try:
            model = build()
        except Exception as exc:
            raise WeightsError(f"{self.spec.name}: ImageNet weights cannot be had ({exc}); {hint}") from None
        self.num_classes, self.weights = 1000, "imagenet"
        return model

    def checkpoint_classes(self, checkpoint: Path | None, found: int | None, num_classes: int | None) -> int:
        """The class count of a checkpoint's head: the labels' count, else the head's, else the catalog's.

        Raises:
            WeightsError: the head has ``found`` classes but the labels list ``num_classes``.
        """
        if found is not None and num_classes is not None and found != num_classes:
            raise WeightsError(f"checkpoint {checkpoint} has a {found}-class head but the labels list {num_classes}")
        return num_classes or found or self.spec.num_classes

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Source-model probabilities for a preprocessed batch."""

    @abstractmethod
    def _export(self, fmt: Format, artifact: Path) -> None:
        """Write the artifact of ``fmt`` at ``artifact``."""

    def export(self, fmt: Format, version_dir: Path, check_batch: np.ndarray) -> Exported:
        """Export ``fmt`` into ``version_dir`` and check it against the source on ``check_batch``.

        Raises:
            ParityError: the artifact's probabilities differ by more than PARITY_TOLERANCE or
                its top-1 classes differ; the caller then publishes nothing.
        """
        start = time.perf_counter()
        version_dir.mkdir(parents=True, exist_ok=True)
        artifact = version_dir / ARTIFACTS[fmt]
        self._export(fmt, artifact)
        diff = self.check_parity(fmt, load_runner(fmt, artifact)(check_batch), check_batch)
        return Exported(fmt, artifact, diff, artifact_size(artifact), time.perf_counter() - start)

    def check_parity(self, what: str, got: np.ndarray, check_batch: np.ndarray) -> float:
        """Max |Δp| of ``got`` against the source on ``check_batch``.

        Raises:
            ParityError: more than PARITY_TOLERANCE apart, or the top-1 classes differ.
        """
        expected = self.predict(check_batch)
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        if diff > PARITY_TOLERANCE or not np.array_equal(got.argmax(1), expected.argmax(1)):
            raise ParityError(
                f"{self.spec.name} {what}: exported model disagrees with its source "
                f"(max |Δp| = {diff:.3g} > {PARITY_TOLERANCE:g} or top-1 differs); nothing published"
            )
        return diff
