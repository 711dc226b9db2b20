"""The things a benchmark sends requests to, as ``send(i)`` coroutines for the driver.

Every sender checks its answer (the asked model answered, ``top_k`` predictions), so a
benchmark never reports the speed of errors. ``DistinctImages`` gives request ``i`` bytes no
cache has seen (``loadtest.unique``: same pixels, unique bytes) — cache misses everywhere.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from client import AsyncTritonClient
from loadtest.images import LoadImage
from loadtest.unique import make_unique

__all__ = ["BenchError", "DistinctImages", "http_classify_sender", "triton_sender"]

Sender = Callable[[int], Awaitable[object]]
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp", "GIF": "image/gif"}


class BenchError(Exception):
    """A benchmark request got a wrong or failed answer."""


class DistinctImages:
    """Request ``i`` → image ``i mod n`` of the set, with bytes no earlier call has produced.

    The uniqueness token is a per-instance sequence number, not ``i``: the driver restarts
    ``i`` at 0 on every run, and a sender reused across runs (concurrency levels, interleaved
    rounds) would otherwise replay the bytes of the run before — answered from Triton's
    response cache or the gateway's, in the next run's window.

    Args:
        images: the image set.
        distinct: False to send the set's bytes as they are (repeats: cache hits once seen).
    """

    def __init__(self, images: Sequence[LoadImage], *, distinct: bool = True) -> None:
        if not images:
            raise ValueError("the image set is empty")
        self.images = tuple(images)
        self.distinct = distinct
        self._run = uuid.uuid4().hex[:10]
        self._sequence = itertools.count()

    def image(self, i: int) -> LoadImage:
        return self.images[i % len(self.images)]

    def __call__(self, i: int) -> bytes:
        image = self.image(i)
        if not self.distinct:
            return image.data
        return make_unique(image.data, image.format, f"b-{self._run}-{next(self._sequence)}")


def triton_sender(client: AsyncTritonClient, model: str, images: DistinctImages, top_k: int) -> Sender:
    """Classify image ``i`` with the ensemble ``model`` through the client library."""

    async def send(i: int) -> object:
        result = await client.classify(images(i), model, top_k=top_k)
        if len(result.predictions) != top_k:
            raise BenchError(f"{model}: {len(result.predictions)} predictions for top_k={top_k}")
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
    """

    async def send(i: int) -> object:
        image = images.image(i)
        form = aiohttp.FormData()
        form.add_field("model", model)
        form.add_field("top_k", str(top_k))
        form.add_field("image", images(i), filename=image.name, content_type=_MIME.get(image.format))
        async with session.post(url, data=form, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise BenchError(f"{url}: HTTP {response.status}: {body[:200]!r}")
        answer = json.loads(body)
        if answer.get("model") != model or len(answer.get("predictions", [])) != top_k:
            raise BenchError(f"{url}: wrong answer for {model}: {str(answer)[:200]}")
        if expect_cached is not None and bool(answer.get("cached")) != expect_cached:
            raise BenchError(f"{url}: cached={answer.get('cached')} where {expect_cached} was expected")
        return answer

    return send
