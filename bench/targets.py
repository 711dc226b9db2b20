"""The things a benchmark sends requests to, as ``send(i)`` coroutines for the driver.

Every sender checks its answer with the client's checks (the asked model answered, a valid
top-k, the cache flag a phase expects), so a benchmark never reports the speed of errors.
What request ``i`` carries comes from ``visionserve.samples.DistinctImages`` (bytes no cache
has seen, or the set's own bytes for repeats).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from client import AsyncTritonClient, check_gateway_answer, check_predictions, classify_form
from visionserve.samples import DistinctImages, mime_type

__all__ = ["BenchError", "http_classify_sender", "triton_sender"]

Sender = Callable[[int], Awaitable[object]]


class BenchError(Exception):
    """A benchmark request failed (an HTTP error instead of an answer)."""


def triton_sender(client: AsyncTritonClient, model: str, images: DistinctImages, top_k: int) -> Sender:
    """Classify image ``i`` with the ensemble ``model`` through the client library."""

    async def send(i: int) -> object:
        result = await client.classify(images(i), model, top_k=top_k)
        check_predictions(result.predictions, model=model, top_k=top_k)
        return result

    return send


def http_classify_sender(
    session: Any,
    url: str,
    model: str,
    images: DistinctImages,
    top_k: int,
    *,
    headers: dict[str, str] | None = None,
    expect_cached: bool | None = None,
    versioned: bool = True,
) -> Sender:
    """POST image ``i`` as multipart (``image``, ``model``, ``top_k``) to ``url`` with aiohttp.

    The gateway's ``/v1/classify`` and the naive baseline's ``/predict`` take the same form.

    Args:
        session: an ``aiohttp.ClientSession``.
        url: the endpoint.
        model: the model asked for.
        images: what request ``i`` sends.
        top_k: predictions asked.
        headers: e.g. the gateway's ``Authorization``.
        expect_cached: when set, the answer's ``cached`` flag must equal it (a miss phase
            that hits, or a hit phase that misses, measures the wrong thing).
        versioned: whether answers carry a model version (the naive baseline's do not).
    """

    async def send(i: int) -> object:
        image = images.image(i)
        body, content_type = classify_form(images(i), model=model, top_k=top_k, filename=image.name,
                                           content_type=mime_type(image.format))  # fmt: skip
        async with session.post(url, data=body, headers={**(headers or {}), "Content-Type": content_type}) as response:
            raw = await response.read()
            if response.status != 200:
                raise BenchError(f"{url}: HTTP {response.status}: {raw[:200]!r}")
        answer = json.loads(raw)
        check_gateway_answer(answer, model=model, top_k=top_k, cached=expect_cached, versioned=versioned)
        return answer

    return send
