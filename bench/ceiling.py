"""The in-process ceiling: decode + preprocess + the served artifact, in one process, no server.

This is what the machine can do for a model with no serving at all: the exact preprocessing
the ensemble runs (``ModelSpec.pipeline()``, JPEG ``draft()`` included) and the same exported
artifact the ensemble serves (``export.runners.load_runner``, intra-op threads = every core),
called back to back on the same images. It is measured at several batch sizes and the best
throughput is the ceiling a served pipeline is compared with.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.driver import run_serial
from bench.stats import Measurement
from client import DEFAULT_TOP_K
from export.repository import served_version
from export.runners import Runner, load_runner
from visionserve.catalog import ARTIFACTS, ModelSpec
from visionserve.errors import RepositoryError
from visionserve.samples import SampleImage

__all__ = ["CEILING", "DEFAULT_BATCH_SIZES", "artifact_path", "measure_ceiling"]

CEILING = "in_process"
DEFAULT_BATCH_SIZES = (1, 8)


def artifact_path(repository: Path, spec: ModelSpec) -> Path:
    """The artifact the ensemble serves: ``<repo>/<backbone>/<served version>/<file>``.

    Raises:
        RepositoryError: the model was never exported, or its artifact is missing.
    """
    version = served_version(repository, spec)
    if version is None:
        raise RepositoryError(f"{spec.name} is not in the repository {repository}: run `make export`")
    path = repository / spec.backbone_model() / str(version) / ARTIFACTS[spec.serve_format]
    if not path.exists():
        raise RepositoryError(f"{path} is missing: run `make export MODEL={spec.name}`")
    return path


def _top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(probabilities, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def measure_ceiling(
    spec: ModelSpec,
    repository: Path,
    images: Sequence[SampleImage],
    *,
    duration_s: float,
    warmup_s: float,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    threads: int | None = None,
    top_k: int = DEFAULT_TOP_K,
    runner: Runner | None = None,
) -> list[Measurement]:
    """Measure decode + preprocess + inference + top-k in this process, per batch size.

    Args:
        spec: the catalog model.
        repository: the model repository holding its served artifact.
        images: the image set (cycled through).
        duration_s: measurement window, per batch size.
        warmup_s: discarded warm-up before each window.
        batch_sizes: images per call.
        threads: intra-op threads (default: every core this process may use).
        top_k: classes extracted per image, as the server does.
        runner: an already loaded runner (tests); loaded from the repository when None.

    Returns:
        One Measurement per batch size (``concurrency`` = the batch size).
    """
    threads = threads or len(os.sched_getaffinity(0))
    run = runner or load_runner(spec.serve_format, artifact_path(repository, spec), threads=threads)
    pipeline = spec.pipeline()
    data = [image.data for image in images]
    results = []
    for batch in batch_sizes:

        def call(i: int, batch: int = batch) -> None:
            start = (i * batch) % len(data)
            chunk = [data[(start + j) % len(data)] for j in range(batch)]
            _top_k(run(pipeline.batch(chunk)), top_k)

        results.append(
            run_serial(
                call, label=CEILING, model=spec.name, duration_s=duration_s, warmup_s=warmup_s, images_per_request=batch
            )  # fmt: skip
        )
    return results
