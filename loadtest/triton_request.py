"""One classification request to a Triton ensemble, for either tritonclient flavour.

The ensemble takes ``image`` (BYTES, ``[batch, 1]``) and answers ``probabilities`` through the
classification extension: ``class_count=k`` gives ``"score:index:label"`` strings. Tensor
names come from the catalog; parsing is the client library's (``client.parse_prediction``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from client import parse_prediction
from loadtest.checks import WrongAnswer
from visionserve.catalog import IMAGE_INPUT, PROBABILITIES

__all__ = ["classification_request", "predictions_of"]


def classification_request(module: ModuleType, image: bytes, top_k: int) -> tuple[list[Any], list[Any]]:
    """(inputs, outputs) for ``module.infer`` (``tritonclient.grpc`` or ``tritonclient.http``).

    Over HTTP the image and the answer travel as binary data, not JSON.
    """
    batch = np.empty((1, 1), dtype=object)
    batch[0, 0] = image
    infer_input = module.InferInput(IMAGE_INPUT, [1, 1], "BYTES")
    if module.__name__.endswith("http"):
        infer_input.set_data_from_numpy(batch, binary_data=True)
        output = module.InferRequestedOutput(PROBABILITIES, binary_data=True, class_count=top_k)
    else:
        infer_input.set_data_from_numpy(batch)
        output = module.InferRequestedOutput(PROBABILITIES, class_count=top_k)
    return [infer_input], [output]


def predictions_of(result: Any, model: str) -> list[tuple[str, int, float]]:
    """``(label, index, score)`` of the one image of ``result``, in the server's order.

    Raises:
        WrongAnswer: no classification output, more than one image, or unparsable entries.
    """
    rows = result.as_numpy(PROBABILITIES)
    if rows is None:
        raise WrongAnswer(f"{model}: the response has no {PROBABILITIES!r} output")
    if rows.dtype != np.object_:
        raise WrongAnswer(f"{model}: got {rows.dtype} scores instead of 'score:index:label' strings")
    rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, -1)
    if rows.shape[0] != 1:
        raise WrongAnswer(f"{model}: {rows.shape[0]} results for 1 image")
    try:
        parsed = [parse_prediction(entry) for entry in rows[0]]
    except Exception as exc:  # the client's InferenceError: an output that is not a classification
        raise WrongAnswer(str(exc)) from None
    return [(p.label, p.index, p.score) for p in parsed]
