"""Which weights an export uses: imagenet, seeded demo weights, or a user checkpoint."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from visionserve.errors import WeightsError

__all__ = ["DEMO_SEED", "WeightsChoice", "parse_weights", "warn_demo"]

#: Seed of the demo weights: the same export twice gives the same model.
DEMO_SEED = 1234

WeightsKind = Literal["auto", "imagenet", "demo", "checkpoint"]


@dataclass(frozen=True)
class WeightsChoice:
    """What the user asked for; ``auto`` is settled by the exporter (imagenet if obtainable)."""

    kind: WeightsKind
    checkpoint: Path | None = None

    def describe(self) -> str:
        return f"checkpoint {self.checkpoint}" if self.checkpoint else self.kind


def parse_weights(value: str | None, default_checkpoint: str | None = None) -> WeightsChoice:
    """Parse WEIGHTS=auto|imagenet|demo|/path; a path must exist (checked before any work)."""
    value = (value or "auto").strip()
    if value == "auto" and default_checkpoint:
        value = default_checkpoint
    if value in {"auto", "imagenet", "demo"}:
        return WeightsChoice(value)  # type: ignore[arg-type]
    path = Path(value).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"checkpoint not found: {path} (WEIGHTS takes auto, imagenet, demo or a checkpoint file path)"
        )
    return WeightsChoice("checkpoint", path.resolve())


def warn_demo(model: str, reason: str) -> None:
    """Say loudly that a model gets demo weights, so nobody mistakes it for a trained one."""
    bar = "!" * 78
    print(
        f"\n{bar}\n!! {model}: using seeded DEMO weights — predictions are NOT meaningful.\n"
        f"!! reason: {reason}\n!! For real weights: make export MODEL={model} WEIGHTS=imagenet "
        f"(needs internet or a warm cache)\n!! or WEIGHTS=/path/to/checkpoint LABELS=/path/to/labels.txt\n{bar}\n",
        file=sys.stderr,
        flush=True,
    )
