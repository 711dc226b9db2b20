"""Which model each load-test request asks for: a weighted mix over the catalog's models."""

from __future__ import annotations

import random
from dataclasses import dataclass

from visionserve.catalog import Catalog

__all__ = ["ModelMix", "parse_mix"]


@dataclass(frozen=True)
class ModelMix:
    """Catalog model names and their relative weights.

    Args:
        names: the models, in catalog order.
        weights: one positive weight per model.
    """

    names: tuple[str, ...]
    weights: tuple[float, ...]

    def shares(self) -> dict[str, float]:
        """Each model's expected share of the requests (sums to 1)."""
        total = sum(self.weights)
        return {n: w / total for n, w in zip(self.names, self.weights, strict=True)}

    def choose(self, rng: random.Random) -> str:
        """One model, drawn by weight."""
        return rng.choices(self.names, weights=self.weights, k=1)[0]

    def describe(self) -> str:
        return ", ".join(f"{n} {s:.0%}" for n, s in self.shares().items())


def parse_mix(spec: str, catalog: Catalog) -> ModelMix:
    """A mix from ``"resnet18=3,mobilenet_v2=1"`` (weights optional, default 1).

    An empty spec (or ``all``) means every catalog model, equally. Names are checked against
    the catalog, so a typo fails before the first request rather than as 404s under load.

    Raises:
        CatalogError: a name that is not in the catalog.
        ValueError: a weight that is not a positive number, or a model named twice.
    """
    spec = spec.strip()
    if not spec or spec == "all":
        return ModelMix(tuple(catalog.names), tuple(1.0 for _ in catalog.names))
    names: list[str] = []
    weights: list[float] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        catalog.get(name)  # CatalogError naming the known models
        try:
            weight = float(raw) if raw.strip() else 1.0
        except ValueError:
            raise ValueError(f"model mix {spec!r}: weight {raw!r} of {name} is not a number") from None
        if not weight > 0:
            raise ValueError(f"model mix {spec!r}: weight of {name} must be > 0, got {weight:g}")
        if name in names:
            raise ValueError(f"model mix {spec!r}: {name} is named twice")
        names.append(name)
        weights.append(weight)
    if not names:
        raise ValueError(f"model mix {spec!r} names no model")
    return ModelMix(tuple(names), tuple(weights))
