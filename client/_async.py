"""``AsyncTritonClient``: the asyncio client, over ``tritonclient.grpc.aio`` or ``tritonclient.http.aio``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from client._base import Call, ClientBase, reload_delay_s, version_text
from client._codec import weights_of
from client._config import DEFAULT_TOP_K
from client._errors import InvalidRequest, ModelReloading, ServerUnavailable
from client._types import Classification, ModelStatus
from client._video import VideoClassification, frame_plan
from visionserve.video import DEFAULT_VIDEO_LIMITS, Frame, Sampling, VideoLimits, sample_video, sniff_container

__all__ = ["AsyncTritonClient"]


class AsyncTritonClient(ClientBase):
    """Classify images and manage models on one Triton server, with asyncio.

    One channel (gRPC) or connection pool (HTTP, aiohttp) is made on the first call, inside
    the running event loop, and reused by every later call, so concurrent coroutines share
    it: this is what the gateway keeps open for its lifetime. Use one instance per event
    loop.

    Example:
        >>> async with AsyncTritonClient(protocol="grpc") as client:  # doctest: +SKIP
        ...     results = await asyncio.gather(*(client.classify(b, "resnet18") for b in images))

    Args:
        url: ``host:port`` (``DEFAULT_GRPC_URL`` / ``DEFAULT_HTTP_URL`` when None).
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: the limit of every call, in seconds.
        repository_key: the key of a restricted model-repository API; see ``TritonClient``.

    Raises:
        InvalidRequest: unknown protocol or non-positive timeout.
    """

    # -- lifecycle ------------------------------------------------------------------------
    def _connect(self) -> None:
        self._connection: Any = None  # made on the first call, inside the running loop

    def _client(self) -> Any:
        # No await between the check and the assignment: coroutines cannot race here.
        if self._closed:
            raise InvalidRequest(f"{self!r} is closed")
        if self._connection is None:
            with self._translate():
                self._connection = self._adapter.async_client(self._url)
        return self._connection

    async def close(self) -> None:
        """Close the channel / connection pool; idempotent. Later calls raise InvalidRequest."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> AsyncTritonClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- classification -------------------------------------------------------------------
    async def classify(
        self, image: bytes, model: str, *, top_k: int = DEFAULT_TOP_K, version: str | int = ""
    ) -> Classification:
        """The top-k classes of one encoded image; see ``TritonClient.classify``."""
        return (await self.classify_batch([image], model, top_k=top_k, version=version))[0]

    async def classify_batch(
        self, images: Sequence[bytes], model: str, *, top_k: int = DEFAULT_TOP_K, version: str | int = ""
    ) -> list[Classification]:
        """The top-k classes of several images in ONE request; see ``TritonClient.classify_batch``."""
        if not images:
            return []
        return await self._run(self._classify_call(images, model, top_k, version))

    async def classify_video(
        self,
        video: bytes,
        model: str,
        *,
        top_k: int = DEFAULT_TOP_K,
        sampling: Sampling | None = None,
        limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
        version: str | int = "",
    ) -> VideoClassification:
        """Classify a short video; see ``TritonClient.classify_video`` (decoding runs in a thread)."""
        kind = sniff_container(video)
        info, frames = await asyncio.to_thread(sample_video, video, kind, sampling or Sampling(), limits)
        batch, classes = frame_plan(await self.model_config(model))
        return await self.classify_frames(
            frames, model, top_k=top_k, batch_size=batch, num_classes=classes, duration_s=info.duration_s,
            version=version,
        )  # fmt: skip

    async def classify_frames(
        self,
        frames: Sequence[Frame],
        model: str,
        *,
        top_k: int,
        batch_size: int,
        num_classes: int,
        duration_s: float,
        version: str | int = "",
    ) -> VideoClassification:
        """Classify sampled frames; see ``TritonClient.classify_frames``. Chunks after the first run concurrently."""
        chunks = self._frame_chunks(frames, batch_size, top_k)
        pinned = version_text(version)
        answers: list[Classification] = []
        if chunks:
            answers = await self.classify_batch(chunks[0], model, top_k=num_classes, version=pinned)
            pinned = pinned or answers[0].version  # the rest: the version the first chunk got
            rest = await asyncio.gather(
                *(self.classify_batch(chunk, model, top_k=num_classes, version=pinned) for chunk in chunks[1:])
            )
            answers += [a for part in rest for a in part]
        return self._video_result(model, frames, answers, top_k, duration_s)

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        *,
        version: str | int = "",
    ) -> dict[str, np.ndarray]:
        """Raw tensors in, raw tensors out; see ``TritonClient.infer``."""
        return await self._run(self._infer_call(model, inputs, outputs, version))

    async def _run(self, call: Call) -> Any:
        """Make ``call``, its failures as ClientError; retry while a reload has swapped the model out."""
        for attempt in range(call.retries + 1):
            try:
                with self._translate(model=call.model, version=call.version, action=call.action):
                    raw = await call.send()
            except ModelReloading:
                if attempt == call.retries:
                    raise
                await asyncio.sleep(reload_delay_s(attempt))
                continue
            return call.finish(raw)
        raise AssertionError("unreachable")

    # -- health ---------------------------------------------------------------------------
    async def is_live(self) -> bool:
        """Whether the server answers; False (not an error) when it cannot be reached."""
        try:
            return await self._run(self._live_call())
        except ServerUnavailable:
            return False

    async def is_ready(self, model: str | None = None, version: str | int = "") -> bool:
        """Whether the server (``model`` None) or a model version is ready; see ``TritonClient.is_ready``."""
        call = self._ready_call(model, version)
        try:
            return await self._run(call)
        except ServerUnavailable:
            return False

    # -- repository and configuration -----------------------------------------------------
    async def models(self) -> list[ModelStatus]:
        """Every (model, version) of the repository index; see ``TritonClient.models``."""
        return await self._run(self._models_call())

    async def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration; see ``TritonClient.model_config``."""
        return await self._run(self._config_call(model))

    async def weights(self, model: str) -> str:
        """The ``weights`` parameter of the model's config; see ``TritonClient.weights``."""
        return weights_of(await self.model_config(model))

    async def statistics(self, model: str = "", version: str | int = "") -> dict[str, Any]:
        """Triton's statistics extension; see ``TritonClient.statistics``."""
        return await self._run(self._statistics_call(model, version))

    async def load(self, model: str, config: str | None = None) -> None:
        """Load (or reload) a model; see ``TritonClient.load``."""
        await self._run(self._load_call(model, config))

    async def unload(self, model: str) -> None:
        """Unload a model; see ``TritonClient.unload``."""
        await self._run(self._unload_call(model))
