"""The values the client returns: frozen dataclasses, the same over gRPC and HTTP."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Classification", "ModelStatus", "Prediction"]


@dataclass(frozen=True)
class Prediction:
    """One of the top-k classes of one image.

    Args:
        label: the class name from the model's labels file; ``""`` when the model has none.
        index: the class index (row of the labels file).
        score: the model's output for the class (a probability: backbones end in softmax).
    """

    label: str
    index: int
    score: float


@dataclass(frozen=True)
class Classification:
    """The top-k classes of one image, and which model version produced them.

    Args:
        model: the Triton model that answered (the ensemble).
        version: the version that answered, as reported in the response (not as requested),
            so a result can always be traced to the weights that made it.
        predictions: best first (descending score).
    """

    model: str
    version: str
    predictions: tuple[Prediction, ...]

    @property
    def top(self) -> Prediction | None:
        """The best prediction, None when there is none (``top_k`` larger than nothing)."""
        return self.predictions[0] if self.predictions else None


@dataclass(frozen=True)
class ModelStatus:
    """One (model, version) row of Triton's repository index.

    Args:
        name: the Triton model name.
        version: the version, ``""`` for a model that was never loaded (no version known).
        state: Triton's state: ``READY``, ``LOADING``, ``UNLOADING`` or ``UNAVAILABLE``
            (also used for a model in the repository that was never loaded).
        ready: ``state == "READY"``.
        reason: why a version is not ready (Triton's text), ``""`` otherwise.
    """

    name: str
    version: str
    state: str
    ready: bool
    reason: str = ""
