"""``TritonClient``: the blocking client, over ``tritonclient.grpc`` or ``tritonclient.http``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
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

__all__ = ["TritonClient"]


class TritonClient(ClientBase):
    """Classify images and manage models on one Triton server, blocking.

    Thread-safe. Over gRPC all threads share one channel (gRPC multiplexes). tritonclient's
    HTTP client is bound to the thread that made it (gevent), so over HTTP each thread gets
    its own connection, made on its first call.

    Example:
        >>> with TritonClient("127.0.0.1:8001") as client:  # doctest: +SKIP
        ...     result = client.classify(Path("cat.jpg").read_bytes(), "resnet18", top_k=5)
        ...     print(result.version, result.predictions[0].label)

    Args:
        url: ``host:port`` (``DEFAULT_GRPC_URL`` / ``DEFAULT_HTTP_URL`` when None).
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: the limit of every call, in seconds; a call that takes longer raises
            ``ServerUnavailable``. Loading a large model can need more than the default.
        repository_key: the key of a restricted model-repository API (``make up``), sent with
            ``models``, ``load`` and ``unload`` only; without it such a server refuses them
            (``RepositoryRestricted``).

    Raises:
        InvalidRequest: unknown protocol, non-positive timeout, or a malformed URL.
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
        self._lock = threading.Lock()
        self._local = threading.local()
        self._made: list[Any] = []
        self._closed = False
        self._shared = self._new_client() if protocol == "grpc" else None

    # -- lifecycle ------------------------------------------------------------------------
    def _new_client(self) -> Any:
        with self._translate():
            client = self._adapter.sync_client(self._url)
        with self._lock:
            self._made.append(client)
        return client

    def _client(self) -> Any:
        if self._closed:
            raise InvalidRequest(f"{self!r} is closed")
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
        return client

    def close(self) -> None:
        """Close every connection; idempotent. Later calls raise InvalidRequest."""
        self._closed = True
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            try:
                client.close()
            except Exception:  # noqa: S110 - closing is best effort; the sockets die with us
                pass

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- classification -------------------------------------------------------------------
    def classify(
        self, image: bytes, model: str, *, top_k: int = DEFAULT_TOP_K, version: str | int = ""
    ) -> Classification:
        """The top-k classes of one encoded image (JPEG, PNG… bytes as read from the file).

        Args:
            image: the encoded image.
            model: the ensemble to ask, e.g. ``load_catalog().names[0]``.
            top_k: how many classes, best first.
            version: the model version; ``""`` lets the server choose (the served one).

        Returns:
            The classification, with the version that actually answered.

        Raises:
            ServerUnavailable: Triton is not reachable or too slow.
            ModelNotFound: the model or version is not served.
            InferenceError: Triton rejected the request (e.g. the bytes are not an image).
            InvalidRequest: ``top_k < 1`` or ``image`` is not bytes.
        """
        return self.classify_batch([image], model, top_k=top_k, version=version)[0]

    def classify_batch(
        self, images: Sequence[bytes], model: str, *, top_k: int = DEFAULT_TOP_K, version: str | int = ""
    ) -> list[Classification]:
        """The top-k classes of several images, in ONE batched request (same order as ``images``).

        The batch must not exceed the model's ``max_batch_size`` (Triton refuses it with an
        InferenceError that says so). One bad image fails the whole request; send images
        one by one (concurrently: ``AsyncTritonClient``) to get per-image errors.

        Raises:
            Same as ``classify``.
        """
        if not images:
            return []
        version = version_text(version)
        inputs, outputs = self._classify_request(images, top_k)
        result = self._infer_retrying(
            model,
            version,
            lambda: self._client().infer(
                model, inputs, model_version=version, outputs=outputs, **self._adapter.call_kwargs
            ),
        )
        return self._classify_response(result, model, expected=len(images))

    def classify_video(
        self,
        video: bytes,
        model: str,
        *,
        top_k: int = DEFAULT_TOP_K,
        sampling: Sampling | None = None,
        limits: VideoLimits = DEFAULT_VIDEO_LIMITS,
        version: str | int = "",
    ) -> VideoClassification:
        """Classify a short video (MP4, MOV, WebM, AVI) as the frames ``sampling`` takes from it.

        Frames are decoded here (PyAV, within ``limits``) and sent as JPEGs through the image
        ensemble, as many per request as the model's ``max_batch_size``; see ``client._video``.

        Args:
            video: the file's bytes.
            model: the ensemble to ask.
            top_k: classes per frame and in the aggregate.
            sampling: one frame every ``every_seconds`` (default 1 s) or key frames only.
            limits: what the video may cost to decode.
            version: the model version; ``""`` lets the server choose.

        Raises:
            VideoError: not a video this reads, over ``limits``, or corrupt (``visionserve.errors``).
            Same as ``classify`` otherwise.
        """
        info, frames = sample_video(video, sniff_container(video), sampling or Sampling(), limits)
        batch, classes = frame_plan(self.model_config(model))
        return self.classify_frames(
            frames, model, top_k=top_k, batch_size=batch, num_classes=classes, duration_s=info.duration_s,
            version=version,
        )  # fmt: skip

    def classify_frames(
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
        """Classify already sampled frames: ``batch_size`` per request, every class of each.

        Raises:
            InvalidRequest: ``top_k`` < 1. Same as ``classify`` otherwise.
        """
        if top_k < 1:
            raise InvalidRequest(f"top_k must be >= 1, got {top_k}")
        pinned = version_text(version)
        answers: list[Classification] = []
        for part in chunked(frames, batch_size):
            answers += self.classify_batch([f.jpeg for f in part], model, top_k=num_classes, version=pinned)
            pinned = pinned or answers[0].version  # the rest: the version the first chunk got
        return summarize(model, [(f.t_s, f.keyframe) for f in frames], answers, top_k=top_k, duration_s=duration_s)

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        *,
        version: str | int = "",
    ) -> dict[str, np.ndarray]:
        """Raw tensors in, raw tensors out: for backbones and preprocessing models.

        Args:
            model: any Triton model.
            inputs: input name -> array (batch axis included for batched models); object
                arrays of bytes are sent as BYTES.
            outputs: the output names to return.
            version: the model version; ``""`` for the server's choice.

        Returns:
            Output name -> array.

        Raises:
            ServerUnavailable, ModelNotFound, InferenceError, InvalidRequest.
        """
        version = version_text(version)
        request_inputs, request_outputs = self._infer_request(inputs, outputs)
        result = self._infer_retrying(
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

    def _infer_retrying(self, model: str, version: str, send: Callable[[], Any]) -> Any:
        """Send an inference; retry while a reload has swapped the model out (ModelReloading)."""
        for attempt in range(RELOAD_RETRIES + 1):
            try:
                with self._translate(model=model, version=version):
                    return send()
            except ModelReloading:
                if attempt == RELOAD_RETRIES:
                    raise
                time.sleep(RELOAD_RETRY_DELAY_S * 2**attempt)
        raise AssertionError("unreachable")

    # -- health ---------------------------------------------------------------------------
    def is_live(self) -> bool:
        """Whether the server answers; False (not an error) when it cannot be reached."""
        try:
            with self._translate():
                return bool(self._client().is_server_live(**self._adapter.call_kwargs))
        except ServerUnavailable:
            return False

    def is_ready(self, model: str | None = None, version: str | int = "") -> bool:
        """Whether the server (``model`` None) or a model version is ready to infer.

        False, not an error, for an unknown model or an unreachable server: this is what
        readiness probes ask.
        """
        version = version_text(version)
        try:
            with self._translate(model=model or "", version=version):
                if not model:
                    return bool(self._client().is_server_ready(**self._adapter.call_kwargs))
                return bool(self._client().is_model_ready(model, version, **self._adapter.call_kwargs))
        except ServerUnavailable:
            return False

    # -- repository and configuration -----------------------------------------------------
    def models(self) -> list[ModelStatus]:
        """Every (model, version) of the repository index, loaded or not, sorted by name and version."""
        with self._translate():
            raw = self._client().get_model_repository_index(**self._repository_call_kwargs)
        return model_statuses(self._adapter.index_rows(raw))

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration as Triton serves it (the same dict over both protocols).

        Raises:
            ModelNotFound: the model is not loaded.
        """
        with self._translate(model=model):
            raw = self._client().get_model_config(model, **self._adapter.call_kwargs)
        return self._adapter.config_dict(raw)

    def weights(self, model: str) -> str:
        """The ``weights`` parameter of the model's config: ``"demo"`` flags untrained demo weights.

        Returns:
            ``"demo"``, ``"imagenet"``, ``"checkpoint"``… or ``""`` when the config has none.
        """
        return weights_of(self.model_config(model))

    def statistics(self, model: str = "", version: str | int = "") -> dict[str, Any]:
        """Triton's statistics extension: ``{"model_stats": [...]}`` for one model or all.

        Counts are ints over both protocols (``inference_count`` counts images,
        ``execution_count`` batches run, ``inference_stats.success.count`` requests).
        """
        version = version_text(version)
        with self._translate(model=model, version=version):
            raw = self._client().get_inference_statistics(model, version, **self._adapter.call_kwargs)
        return self._adapter.stats_dict(raw)

    def load(self, model: str, config: str | None = None) -> None:
        """Load (or reload) a model through the repository API (explicit model control).

        Args:
            model: the model directory name in the repository.
            config: a JSON model configuration that overrides config.pbtxt, if given.

        Raises:
            ModelNotFound: the repository has no such model.
            ModelLoadError: Triton could not load it (its message says why).
        """
        with self._translate(model=model, action="load"):
            self._client().load_model(model, config=config, **self._repository_call_kwargs)

    def unload(self, model: str) -> None:
        """Unload a model through the repository API (explicit model control).

        Raises:
            ModelLoadError: Triton refused.
        """
        with self._translate(model=model, action="unload"):
            self._client().unload_model(model, **self._repository_call_kwargs)
