"""The in-process ceiling: the catalog pipeline and a runner, back to back, per batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.ceiling import _top_k, artifact_path, measure_ceiling
from visionserve.catalog import load_catalog
from visionserve.errors import RepositoryError
from visionserve.samples import sample_images


def test_top_k_is_best_first() -> None:
    p = np.array([[0.1, 0.5, 0.05, 0.3, 0.05], [0.7, 0.1, 0.15, 0.03, 0.02]], dtype=np.float32)
    assert _top_k(p, 3).tolist() == [[1, 3, 0], [0, 2, 1]]


def test_ceiling_runs_the_real_pipeline_on_every_batch_size() -> None:
    spec = load_catalog().get("resnet18")
    images = list(sample_images(6, seed=3))
    seen: list[tuple[int, ...]] = []

    def runner(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return np.full((batch.shape[0], 1000), 1e-3, dtype=np.float32)

    results = measure_ceiling(spec, Path("/nonexistent"), images, duration_s=0.3, warmup_s=0.05,
                              batch_sizes=(1, 3), runner=runner)  # fmt: skip
    assert [m.concurrency for m in results] == [1, 3]
    assert all(m.requests > 0 and m.errors == 0 for m in results)
    assert {s for s in seen} == {(1, *spec.input_shape), (3, *spec.input_shape)}


def test_artifact_path_of_an_unexported_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="make export"):
        artifact_path(tmp_path, load_catalog().get("resnet18"))
