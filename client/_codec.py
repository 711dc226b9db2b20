"""Protocol-neutral request building and response parsing.

Triton's classification extension answers ``class_count=k`` with ``k`` strings per image,
``"<score>:<index>"`` or ``"<score>:<index>:<label>"``. Labels come from the model's labels
file and may themselves contain ``':'`` (only the first two separators count), and arrive as
``bytes`` (gRPC, binary HTTP) or ``str`` (JSON HTTP).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from client._errors import InferenceError, InvalidRequest
from client._types import Classification, ModelStatus, Prediction

__all__ = [
    "WEIGHTS_PARAMETER",
    "check_top_k",
    "image_batch",
    "model_statuses",
    "parse_classifications",
    "parse_prediction",
    "weights_of",
]

#: Config parameter that tells which weights a model version serves ("demo", "imagenet"…).
WEIGHTS_PARAMETER = "weights"
_READY = "READY"
_UNAVAILABLE = "UNAVAILABLE"


def check_top_k(top_k: int) -> int:
    """``top_k`` if it is a positive int.

    Triton treats ``class_count=0`` as "no classification" and would return raw
    probabilities, so 0 is refused here rather than misparsed later.

    Raises:
        InvalidRequest: ``top_k`` is not an integer >= 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidRequest(f"top_k must be an integer >= 1, got {top_k!r}")
    return int(top_k)


def image_batch(images: Sequence[bytes]) -> np.ndarray:
    """Encoded images as the ensemble input: an object array of bytes, shape ``[batch, 1]``.

    Raises:
        InvalidRequest: an item is not bytes-like (a path or a str is a common slip).
    """
    batch = np.empty((len(images), 1), dtype=object)
    for i, image in enumerate(images):
        if not isinstance(image, bytes | bytearray | memoryview):
            raise InvalidRequest(
                f"image {i} is {type(image).__name__}, not bytes: pass the encoded file content "
                "(Path.read_bytes()), not a path or a decoded array"
            )
        batch[i, 0] = bytes(image)
    return batch


def parse_prediction(entry: bytes | str) -> Prediction:
    """One ``"score:index[:label]"`` string of the classification extension.

    Raises:
        InferenceError: the string is not in that format (the output was not a classification).
    """
    text = entry.decode("utf-8", errors="replace") if isinstance(entry, bytes | bytearray) else str(entry)
    parts = text.split(":", 2)
    try:
        score, index = float(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise InferenceError(
            f"not a classification result: {text[:80]!r} (expected 'score:index:label'; was "
            "class_count sent and is the output marked with label_filename?)"
        ) from None
    return Prediction(label=parts[2] if len(parts) == 3 else "", index=index, score=score)


def parse_classifications(
    rows: np.ndarray | None, model: str, version: str, *, sort: bool = True
) -> list[Classification]:
    """The classification output (shape ``[batch, k]``) as one Classification per image.

    Predictions are ordered best first; a stable sort keeps Triton's order among equal
    scores, so the order is the server's whenever the server's order is already right.
    ``sort=False`` keeps the server's order as it is, for checks that judge that order.

    Raises:
        InferenceError: the output is missing or is not classification strings.
    """
    if rows is None:
        raise InferenceError(f"the response of model {model!r} has no classification output")
    if rows.dtype != np.object_:
        raise InferenceError(
            f"model {model!r} returned {rows.dtype} values instead of 'score:index:label' strings: "
            "the server ignored class_count (is the output a classification output?)"
        )
    if rows.ndim != 2:
        rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, -1)
    results = []
    for row in rows:
        predictions = [parse_prediction(entry) for entry in row]
        if sort:
            predictions.sort(key=lambda p: -p.score)
        results.append(Classification(model=model, version=version, predictions=tuple(predictions)))
    return results


def model_statuses(rows: Iterable[Mapping[str, Any]]) -> list[ModelStatus]:
    """Repository-index rows (as either protocol returns them) as ModelStatus, sorted.

    A model that was never loaded has no version and no state in the index; it is reported
    as ``UNAVAILABLE`` with reason ``"not loaded"`` so every row reads the same way.
    """
    statuses = []
    for row in rows:
        state = str(row.get("state") or _UNAVAILABLE)
        reason = str(row.get("reason") or ("" if row.get("state") else "not loaded"))
        statuses.append(
            ModelStatus(
                name=str(row.get("name", "")),
                version=str(row.get("version") or ""),
                state=state,
                ready=state == _READY,
                reason=reason,
            )
        )

    def order(status: ModelStatus) -> tuple[str, int, str]:
        return (status.name, int(status.version) if status.version.isdigit() else -1, status.version)

    return sorted(statuses, key=order)


def weights_of(config: Mapping[str, Any]) -> str:
    """The ``weights`` parameter of a model config (``"demo"``, ``"imagenet"``…), ``""`` if unset.

    Takes the config as HTTP returns it and as gRPC's ``as_json`` does (wrapped in ``config``);
    the one parser of the parameter (the gateway's version tracker uses it too).
    """
    body = config.get("config", config)
    parameter = (body.get("parameters") or {}).get(WEIGHTS_PARAMETER) or {}
    value = parameter.get("string_value", "") if isinstance(parameter, Mapping) else parameter
    return str(value or "")
