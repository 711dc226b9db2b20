"""Every answer a load test or benchmark gets is checked: a fast wrong answer is a failure, not a success.

``check_predictions`` verifies the top-k of one image — count, class indices within the
model's classes, scores that are probabilities in descending order, no class twice, and the
label belonging to its index. ``LabelBook`` holds the expected labels: those of the model
repository's ``labels.txt`` when the caller can read it, else the first label seen for each
index (any later disagreement fails). ``check_triton_answer`` applies it to a tritonclient
result, ``check_gateway_answer`` to the gateway's JSON answer (model, version, cache flag).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from client._codec import parse_classifications
from client._errors import InferenceError, WrongAnswer
from client._types import Prediction
from visionserve.catalog import PROBABILITIES

__all__ = ["LabelBook", "check_gateway_answer", "check_predictions", "check_triton_answer"]

#: Softmax outputs may exceed 1 by float rounding; a score above this is not a probability.
_SCORE_SLACK = 1e-3


class LabelBook:
    """The label expected for each (model, class index).

    Args:
        known: labels per model, in index order (from the repository), for the models whose
            labels file is available; other models are learned from the answers.
    """

    def __init__(self, known: Mapping[str, Sequence[str]] | None = None) -> None:
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
    predictions: Sequence[Prediction | tuple[str, int, float]],
    *,
    model: str,
    top_k: int,
    num_classes: int | None = None,
    labels: LabelBook | None = None,
) -> None:
    """Validate the top-k of one image.

    Args:
        predictions: best first, as the server returned them: ``Prediction`` or
            ``(label, index, score)``.
        model: the model asked (for messages and labels).
        top_k: how many predictions were asked for.
        num_classes: the model's class count (from the catalog); indices are only checked for
            being integers when None.
        labels: expected labels; labels are only checked for being non-empty when None.

    Raises:
        WrongAnswer: what is wrong with the answer.
    """
    if len(predictions) != top_k:
        raise WrongAnswer(f"{model}: {len(predictions)} predictions for top_k={top_k}")
    previous = math.inf
    indices = set()
    for prediction in predictions:
        label, index, score = (
            (prediction.label, prediction.index, prediction.score) if isinstance(prediction, Prediction) else prediction
        )
        if not isinstance(index, int) or (num_classes is not None and not 0 <= index < num_classes):
            span = f"0..{num_classes - 1}" if num_classes is not None else "the integers"
            raise WrongAnswer(f"{model}: class index {index!r} outside {span}")
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


def check_triton_answer(
    result: Any, *, model: str, top_k: int, num_classes: int | None = None, labels: LabelBook | None = None
) -> tuple[Prediction, ...]:
    """Validate a tritonclient result (either protocol) of one image, in the server's order.

    Returns:
        The predictions, as the server ordered them.

    Raises:
        WrongAnswer: no classification output, more or fewer than one image, unparsable
            entries, or an invalid top-k (see ``check_predictions``).
    """
    try:
        classifications = parse_classifications(result.as_numpy(PROBABILITIES), model, "", sort=False)
    except InferenceError as exc:
        raise WrongAnswer(f"{model}: {exc}") from None
    if len(classifications) != 1:
        raise WrongAnswer(f"{model}: {len(classifications)} results for 1 image")
    predictions = classifications[0].predictions
    check_predictions(predictions, model=model, top_k=top_k, num_classes=num_classes, labels=labels)
    return predictions


def check_gateway_answer(
    body: Any,
    *,
    model: str,
    top_k: int,
    cached: bool | None = None,
    versioned: bool = True,
    num_classes: int | None = None,
    labels: LabelBook | None = None,
) -> tuple[Prediction, ...]:
    """Validate one JSON answer of the gateway's ``/v1/classify`` (a ``ClassifyResponse``).

    The naive baseline's ``/predict`` answers the same shape without a version and a cache flag.

    Args:
        body: the decoded JSON.
        model: the model asked for: the one that must have answered.
        top_k: predictions asked for.
        cached: the ``cached`` flag the answer must have (False: a never-seen image must not
            come from the cache); not checked when None.
        versioned: whether the answer must carry a positive integer ``version``.
        num_classes: the model's class count, as for ``check_predictions``.
        labels: expected labels, as for ``check_predictions``.

    Returns:
        The predictions, as the server ordered them.

    Raises:
        WrongAnswer: another model answered, no valid version, the wrong cache flag (a fresh
            image answered from the cache), or an invalid top-k.
    """
    if not isinstance(body, Mapping):
        raise WrongAnswer(f"{model}: the answer is not a JSON object: {body!r:.200}")
    if body.get("model") != model:
        raise WrongAnswer(f"asked {model}, answered by {body.get('model')!r}")
    version = body.get("version")
    if versioned and (not isinstance(version, int) or version < 1):
        raise WrongAnswer(f"{model}: version {version!r} is not a positive integer")
    if cached is not None and bool(body.get("cached")) != cached:
        why = " (a never-seen image answered from the cache)" if body.get("cached") else ""
        raise WrongAnswer(f"{model}: cached={body.get('cached')} where {cached} was expected{why}")
    try:
        predictions = tuple(Prediction(p["label"], p["index"], p["score"]) for p in body.get("predictions") or [])
    except (KeyError, TypeError):
        raise WrongAnswer(f"{model}: malformed predictions {body.get('predictions')!r:.200}") from None
    check_predictions(predictions, model=model, top_k=top_k, num_classes=num_classes, labels=labels)
    return predictions
