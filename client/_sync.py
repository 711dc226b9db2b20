"""``TritonClient``: the blocking client, over ``tritonclient.grpc`` or ``tritonclient.http``."""

from __future__ import annotations

import threading
import time
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

    # -- lifecycle ------------------------------------------------------------------------
    def _connect(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._made: list[Any] = []
        self._shared = self._new_client() if self.protocol == "grpc" else None

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
        return self._run(self._classify_call(images, model, top_k, version))

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
        chunks = self._frame_chunks(frames, batch_size, top_k)
        pinned = version_text(version)
        answers: list[Classification] = []
        for chunk in chunks:
            answers += self.classify_batch(chunk, model, top_k=num_classes, version=pinned)
            pinned = pinned or answers[0].version  # the rest: the version the first chunk got
        return self._video_result(model, frames, answers, top_k, duration_s)

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
        return self._run(self._infer_call(model, inputs, outputs, version))

    def _run(self, call: Call) -> Any:
        """Make ``call``, its failures as ClientError; retry while a reload has swapped the model out."""
        for attempt in range(call.retries + 1):
            try:
                with self._translate(model=call.model, version=call.version, action=call.action):
                    raw = call.send()
            except ModelReloading:
                if attempt == call.retries:
                    raise
                time.sleep(reload_delay_s(attempt))
                continue
            return call.finish(raw)
        raise AssertionError("unreachable")

    # -- health ---------------------------------------------------------------------------
    def is_live(self) -> bool:
        """Whether the server answers; False (not an error) when it cannot be reached."""
        try:
            return self._run(self._live_call())
        except ServerUnavailable:
            return False

    def is_ready(self, model: str | None = None, version: str | int = "") -> bool:
        """Whether the server (``model`` None) or a model version is ready to infer.

        False, not an error, for an unknown model or an unreachable server: this is what
        readiness probes ask.
        """
        call = self._ready_call(model, version)
        try:
            return self._run(call)
        except ServerUnavailable:
            return False

    # -- repository and configuration -----------------------------------------------------
    def models(self) -> list[ModelStatus]:
        """Every (model, version) of the repository index, loaded or not, sorted by name and version."""
        return self._run(self._models_call())

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's configuration as Triton serves it (the same dict over both protocols).

        Raises:
            ModelNotFound: the model is not loaded.
        """
        return self._run(self._config_call(model))

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
        return self._run(self._statistics_call(model, version))

    def load(self, model: str, config: str | None = None) -> None:
        """Load (or reload) a model through the repository API (explicit model control).

        Args:
            model: the model directory name in the repository.
            config: a JSON model configuration that overrides config.pbtxt, if given.

        Raises:
            ModelNotFound: the repository has no such model.
            ModelLoadError: Triton could not load it (its message says why).
        """
        self._run(self._load_call(model, config))

    def unload(self, model: str) -> None:
        """Unload a model through the repository API (explicit model control).

        Raises:
            ModelLoadError: Triton refused.
        """
        self._run(self._unload_call(model))
