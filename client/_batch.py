"""Classify many image files concurrently, one request per file, errors kept per file.

One request per file (not one batch) is deliberate: a bad file then fails alone, and
Triton's dynamic batcher still groups the concurrent requests into batches server-side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from client._async import AsyncTritonClient
from client._config import DEFAULT_TOP_K
from client._errors import ClientError, InvalidRequest
from client._files import read_image
from client._types import Classification

__all__ = ["DEFAULT_CONCURRENCY", "FileResult", "classify_files"]

#: Requests in flight at once: enough to keep a 2-4 core server's batcher busy.
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file: a classification or an error message, never both.

    Args:
        path: the file.
        classification: the result, None when it failed.
        error: why it failed (the ClientError's full message), None when it succeeded.
        error_type: the ClientError subclass name (``ImageFileError``, ``InferenceError``…).
        error_detail: the specific part of ``error`` (Triton's message, the file problem).
    """

    path: Path
    classification: Classification | None = None
    error: str | None = None
    error_type: str | None = None
    error_detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def classify_files(
    client: AsyncTritonClient,
    paths: Sequence[Path],
    model: str,
    *,
    top_k: int = DEFAULT_TOP_K,
    version: str = "",
    concurrency: int = DEFAULT_CONCURRENCY,
    on_done: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Read and classify every file, at most ``concurrency`` at a time.

    Args:
        client: an open asyncio client.
        paths: image files (``find_images`` output).
        model: the model to ask.
        top_k: classes per image.
        version: the model version, ``""`` for the served one.
        concurrency: requests in flight at once (>= 1).
        on_done: called after each file (e.g. to advance a progress bar).

    Returns:
        One FileResult per path, in the order of ``paths``. Per-file ClientErrors are
        recorded, not raised; anything else (a bug) propagates.

    Raises:
        InvalidRequest: ``concurrency < 1``.
    """
    if concurrency < 1:
        raise InvalidRequest(f"concurrency must be >= 1, got {concurrency}")
    slots = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> FileResult:
        async with slots:
            try:
                data = await asyncio.to_thread(read_image, path)
                result = FileResult(path, await client.classify(data, model, top_k=top_k, version=version))
            except ClientError as exc:
                result = FileResult(path, error=str(exc), error_type=type(exc).__name__, error_detail=exc.detail)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(path) for path in paths)))
