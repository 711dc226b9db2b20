"""What every catalog-wide benchmark starts from: the models, the repository, top-k and the image set.

``bench serving`` and ``bench all`` read the same options (``--models``, ``--repository``,
``--top-k``, ``--images``) the same way, so that their figures are of the same models on the
same images.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionserve.catalog import Catalog, ModelSpec, load_catalog
from visionserve.samples import DEFAULT_IMAGE_SEED, SampleImage, image_set
from visionserve.settings import repository_path

__all__ = ["BenchInputs", "bench_inputs", "image_settings"]


@dataclass(frozen=True)
class BenchInputs:
    """The selected models and what they are measured on.

    Args:
        catalog: the whole catalog (committees, defaults).
        specs: the models ``--models`` selects (all when empty).
        repository: the model repository measured.
        top_k: classes per image asked for.
        images: the seeded image set every path sees.
    """

    catalog: Catalog
    specs: list[ModelSpec]
    repository: Path
    top_k: int
    images: tuple[SampleImage, ...]


def bench_inputs(args: argparse.Namespace) -> BenchInputs:
    """The inputs ``args`` name: ``--models``, ``--repository``, ``--top-k`` (0: the catalog's), ``--images``."""
    catalog = load_catalog()
    return BenchInputs(
        catalog=catalog,
        specs=catalog.select(args.models),
        repository=Path(args.repository) if args.repository else repository_path(),
        top_k=args.top_k or catalog.top_k,
        images=image_set(args.images, seed=DEFAULT_IMAGE_SEED),
    )


def image_settings(images: Sequence[SampleImage]) -> dict[str, Any]:
    """How a report states its image set: how many, and which formats."""
    return {"images": len(images), "image_formats": sorted({i.format for i in images})}
