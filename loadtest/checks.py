"""Every load-test response is checked: a fast wrong answer is a failure, not a success.

``check_predictions`` verifies the top-k of one image — count, class indices within the
model's classes, scores that are probabilities in descending order, no class twice, and the
label belonging to its index. Labels come from the model repository's ``labels.txt`` when
the load generator can read it (a local stack); against a remote deployment the first label
seen for each index is remembered and any later disagreement fails (``LabelBook``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.workload import Workload

__all__ = ["LabelBook", "WrongAnswer", "check_gateway_answer", "check_predictions", "read_repository_labels"]

#: Softmax outputs may exceed 1 by float rounding; a score above this is not a probability.
_SCORE_SLACK = 1e-3


class WrongAnswer(Exception):
    """The server answered, but not with a valid classification for the request."""


def read_repository_labels(repository: Path | None, model: str) -> list[str] | None:
    """The labels of ensemble ``model`` from ``<repository>/<model>/labels.txt``, None if unreadable."""
    if repository is None:
        return None
    try:
        text = (Path(repository) / model / "labels.txt").read_text(encoding="utf-8")
    except OSError:
        return None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    return labels or None


class LabelBook:
    """The label expected for each (model, class index).

    Args:
        known: labels per model, in index order (from the repository), for the models whose
            labels file is available; other models are learned from the answers.
    """

    def __init__(self, known: dict[str, Sequence[str]] | None = None) -> None:
        self._known = {m: list(labels) for m, labels in (known or {}).items()}
        self._seen: dict[str, dict[int, str]] = {}

    def check(self, model: str, index: int, label: str) -> None:
        """Raise WrongAnswer when ``label`` is not the label of ``index`` for ``model``."""
        known = self._known.get(model)
        if known is not None:
            if index >= len(known) or known[index] != label:
                want = known[index] if index < len(known) else "(no such class)"
                raise WrongAnswer(f"{model}: class {index} is labelled {label!r}, expected {want!r}")
            return
        seen = self._seen.setdefault(model, {})
        previous = seen.setdefault(index, label)
        if previous != label:
            raise WrongAnswer(f"{model}: class {index} was labelled {previous!r} before, now {label!r}")


def check_predictions(
    predictions: Sequence[tuple[str, int, float]],
    *,
    model: str,
    top_k: int,
    num_classes: int,
    labels: LabelBook | None = None,
) -> None:
    """Validate the top-k of one image.

    Args:
        predictions: ``(label, index, score)`` best first, as the server returned them.
        model: the model asked (for messages and labels).
        top_k: how many predictions were asked for.
        num_classes: the model's class count (from the catalog).
        labels: expected labels; labels are only checked for being non-empty when None.

    Raises:
        WrongAnswer: what is wrong with the answer.
    """
    if len(predictions) != top_k:
        raise WrongAnswer(f"{model}: {len(predictions)} predictions for top_k={top_k}")
    previous = math.inf
    indices = set()
    for label, index, score in predictions:
        if not isinstance(index, int) or not 0 <= index < num_classes:
            raise WrongAnswer(f"{model}: class index {index!r} outside 0..{num_classes - 1}")
        if index in indices:
            raise WrongAnswer(f"{model}: class {index} appears twice in the top-{top_k}")
        indices.add(index)
        if not isinstance(score, float | int) or not math.isfinite(score) or not 0 <= score <= 1 + _SCORE_SLACK:
            raise WrongAnswer(f"{model}: score {score!r} of class {index} is not a probability")
        if score > previous:
            raise WrongAnswer(f"{model}: predictions are not ordered best first ({score} after {previous})")
        previous = score
        if not label:
            raise WrongAnswer(f"{model}: class {index} has no label (was class_count sent?)")
        if labels is not None:
            labels.check(model, index, label)


def check_gateway_answer(body: dict[str, Any], *, model: str, fresh: bool, workload: Workload) -> None:
    """Validate one ``ClassifyResponse`` of the gateway.

    Raises:
        WrongAnswer: another model answered, no valid version, a fresh image answered from the
            cache, or an invalid top-k.
    """
    if body.get("model") != model:
        raise WrongAnswer(f"asked {model}, answered by {body.get('model')!r}")
    version = body.get("version")
    if not isinstance(version, int) or version < 1:
        raise WrongAnswer(f"{model}: version {version!r} is not a positive integer")
    if fresh and body.get("cached"):
        raise WrongAnswer(f"{model}: never-seen image answered from the cache")
    try:
        predictions = [(p["label"], p["index"], p["score"]) for p in body.get("predictions") or []]
    except (KeyError, TypeError):
        raise WrongAnswer(f"{model}: malformed predictions {body.get('predictions')!r:.200}") from None
    workload.check(model, predictions)
