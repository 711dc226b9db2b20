"""``AsyncTritonClient``: the asyncio client, over ``tritonclient.grpc.aio`` or ``tritonclient.http.aio``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from client._base import ClientBase, version_text
from client._codec import model_statuses, weights_of
from client._config import DEFAULT_TIMEOUT_S, DEFAULT_TOP_K, RELOAD_RETRIES, RELOAD_RETRY_DELAY_S, Protocol
from client._errors import InvalidRequest, ModelReloading, ServerUnavailable
from client._types import Classification, ModelStatus
from client._video import VideoClassification, chunked, frame_plan, summarize
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

    def __init__(
        self,
        url: str | None = None,
        *,
        protocol: Protocol = "grpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        repository_key: str | None = None,
    ) -> None:
        super().__init__(url, protocol=protocol, timeout_s=timeout_s, repository_key=repository_key)
        self._connection: Any = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
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
        version = version_text(version)
        inputs, outputs = self._classify_request(images, top_k)
        result = await self._infer_retrying(
            model,
            version,
            lambda: self._client().infer(
                model, inputs, model_version=version, outputs=outputs, **self._adapter.call_kwargs
            ),
        )
        return self._classify_response(result, model, expected=len(images))

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
        if top_k < 1:
            raise InvalidRequest(f"top_k must be >= 1, got {top_k}")
        parts = chunked(frames, batch_size)
        pinned = version_text(version)
        answers: list[Classification] = []
        if parts:
            answers = await self.classify_batch([f.jpeg for f in parts[0]], model, top_k=num_classes, version=pinned)
            pinned = pinned or answers[0].version  # the rest: the version the first chunk got
            rest = await asyncio.gather(
                *(self.classify_batch([f.jpeg for f in p], model, top_k=num_classes, version=pinned) for p in parts[1:])
            )
            answers += [a for chunk in rest for a in chunk]
        return summarize(model, [(f.t_s, f.keyframe) for f in frames], answers, top_k=top_k, duration_s=duration_s)

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        *,
        version: str | int = "",
    ) -> dict[str, np.ndarray]:
        """Raw tensors in, raw tensors out; see ``TritonClient.infer``."""
        version = version_text(version)
        request_inputs, request_outputs = self._infer_request(inputs, outputs)
        result = await self._infer_retrying(
            model,
            version,
            lambda: self._client().infer(
                model,
                request_inputs,
                model_version=version,
                outputs=request_outputs,
                **self._adapter.call_kwargs,
            ),
        )
        return self._infer_response(result, model, outputs)

    async def _infer_retrying(self, model: str, version: str, send: Callable[[], Awaitable[Any]]) -> Any:
        """Send an inference; retry while a reload has swapped the model out (ModelReloading)."""
        for attempt in range(RELOAD_RETRIES + 1):
            try:
                with self._translate(model=model, version=version):
                    return await send()
            except ModelReloading:
                if attempt == RELOAD_RETRIES:
                    raise
                await asyncio.sleep(RELOAD_RETRY_DELAY_S * 2**attempt)
        raise AssertionError("unreachable")

    # -- health ---------------------------------------------------------------------------
    async def is_live(self) -> bool:
        """Whether the server answers; False (not an error) when it cannot be reached."""
        try:
            with self._translate():
                return bool(await self._client().is_server_live(**self._adapter.call_kwargs))
        except ServerUnavailable:
            return False

    async def is_ready(self, model: str | None = None, version: str | int = "") -> bool:
        """Whether the server (``model`` None) or a model version is ready; see ``TritonClient.is_ready``."""
        version = version_text(version)
        try:
            with self._translate(model=model or "", version=version):
                if not model:
                    return bool(await self._client().is_server_ready(**self._adapter.call_kwargs))
                return bool(await self._client().is_model_ready(model, version, **self._adapter.call_kwargs))
        except ServerUnavailable:
            return False

    # -- repository and configuration -----------------------------------------------------
    async def models(self) -> list[ModelStatus]:
        """Every (model, version) of the repository index; see ``TritonClient.models``."""
        with self._translate():
            raw = await self._client().get_model_repository_index(**self._repository_call_kwargs)
        return model_statuses(self._adapter.index_rows(raw))

    async def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration; see ``TritonClient.model_config``."""
        with self._translate(model=model):
            raw = await self._client().get_model_config(model, **self._adapter.call_kwargs)
        return self._adapter.config_dict(raw)

    async def weights(self, model: str) -> str:
        """The ``weights`` parameter of the model's config; see ``TritonClient.weights``."""
        return weights_of(await self.model_config(model))

    async def statistics(self, model: str = "", version: str | int = "") -> dict[str, Any]:
        """Triton's statistics extension; see ``TritonClient.statistics``."""
        version = version_text(version)
        with self._translate(model=model, version=version):
            raw = await self._client().get_inference_statistics(model, version, **self._adapter.call_kwargs)
        return self._adapter.stats_dict(raw)

    async def load(self, model: str, config: str | None = None) -> None:
        """Load (or reload) a model; see ``TritonClient.load``."""
        with self._translate(model=model, action="load"):
            await self._client().load_model(model, config=config, **self._repository_call_kwargs)

    async def unload(self, model: str) -> None:
        """Unload a model; see ``TritonClient.unload``."""
        with self._translate(model=model, action="unload"):
            await self._client().unload_model(model, **self._repository_call_kwargs)
