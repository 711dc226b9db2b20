"""Release labels: which version of a model is ``stable`` and which, if any, is ``canary``.

One small JSON file beside the ensemble (``model_repository/<name>/release.json``), written
through a temporary file and a rename, is what every part reads: ``visionserve release``
writes it first (the intent) and then makes the configs and the live server follow it; the
launcher loads the canary ensemble at start when it names one; the gateway reads the same
fields from the canary ensemble's ``release`` config parameter (it need not see the
repository); the Helm chart keeps it on the repository's volume. A model without the file has
no release running: its served version is stable.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from visionserve.errors import RepositoryError

__all__ = ["LABELS_FILE", "RELEASE_PARAMETER", "ReleaseLabels", "read_labels", "write_labels"]

LABELS_FILE = "release.json"
#: The canary ensemble's config parameter that carries the labels to the gateway (JSON).
RELEASE_PARAMETER = "release"


@dataclass(frozen=True)
class ReleaseLabels:
    """The labels of one model, and how traffic reaches the canary while it lasts.

    Args:
        stable: the version requests get unless routed to the canary.
        canary: the version on trial, or None when no release runs.
        weight: share of API keys routed to the canary (sticky per key), 0..1.
        shadow: share of stable-routed requests also sent to the canary off the request path.
        release_id: changes with every release, so each one splits keys afresh.
        started: ISO 8601 UTC time the release started (the verdict counts rows from it).
    """

    stable: int
    canary: int | None = None
    weight: float = 0.0
    shadow: float = 0.0
    release_id: str = ""
    started: str = ""

    def __post_init__(self) -> None:
        if not (0.0 <= self.weight <= 1.0 and 0.0 <= self.shadow <= 1.0):
            raise RepositoryError(f"release weight and shadow are shares in [0, 1], not {self.weight}, {self.shadow}")
        if self.canary is not None and self.canary == self.stable:
            raise RepositoryError(f"the canary (v{self.canary}) must differ from stable")

    @property
    def active(self) -> bool:
        return self.canary is not None

    def ended(self, stable: int) -> ReleaseLabels:
        """The labels once the release is over, ``stable`` serving alone."""
        return replace(self, stable=stable, canary=None, weight=0.0, shadow=0.0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReleaseLabels:
        """Parse the file (or the config parameter); a RepositoryError says what is wrong."""
        try:
            raw: Any = json.loads(text)
            return cls(
                stable=int(raw["stable"]),
                canary=None if raw.get("canary") is None else int(raw["canary"]),
                weight=float(raw.get("weight", 0.0)),
                shadow=float(raw.get("shadow", 0.0)),
                release_id=str(raw.get("release_id", "")),
                started=str(raw.get("started", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"not valid release labels: {exc}") from None


def read_labels(repository: Path, ensemble: str) -> ReleaseLabels | None:
    """The labels in ``<repository>/<ensemble>/release.json``, or None when there are none."""
    path = Path(repository) / ensemble / LABELS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return ReleaseLabels.from_json(text)
    except RepositoryError as exc:
        raise RepositoryError(f"{path}: {exc}") from None


def write_labels(repository: Path, ensemble: str, labels: ReleaseLabels) -> None:
    """Replace the labels file atomically (a reader sees the old file or the new one)."""
    path = Path(repository) / ensemble / LABELS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(labels.to_json() + "\n")
    os.replace(tmp, path)
