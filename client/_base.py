"""What the sync and asyncio clients share: address, protocol, error translation, every call.

Everything here is free of I/O. Each tritonclient call is built once, as a ``Call`` (what to
send, how to read the answer, what to name in an error, whether a reload may be retried);
``TritonClient`` runs it directly and ``AsyncTritonClient`` awaits it, so the two differ only
in *how* they call tritonclient, never in what they send or return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from client._adapters import Adapter, adapter_for
from client._codec import model_statuses, parse_classifications
from client._config import DEFAULT_TIMEOUT_S, RELOAD_RETRIES, RELOAD_RETRY_DELAY_S, Protocol, default_url, normalize_url
from client._errors import ClientError, InferenceError, InvalidRequest, to_client_error
from client._types import Classification
from client._video import VideoClassification, chunked, summarize
from visionserve.catalog import PROBABILITIES
from visionserve.video import Frame

__all__ = ["Call", "ClientBase", "reload_delay_s", "version_text"]


def _unchanged(raw: Any) -> Any:
    return raw


def _nothing(_raw: Any) -> None:
    return None


@dataclass(frozen=True)
class Call:
    """One tritonclient call, as both clients make it.

    Args:
        send: makes the call: its answer (sync client) or an awaitable of it (asyncio client).
        finish: the value to return from tritonclient's answer.
        model: the model named in an error.
        version: the version named in an error.
        action: ``"load"`` / ``"unload"``: repository-API failures become ``ModelLoadError``.
        retries: how often a ``ModelReloading`` is retried (inference only: it is idempotent).
    """

    send: Callable[[], Any]
    finish: Callable[[Any], Any] = _unchanged
    model: str = ""
    version: str = ""
    action: str = ""
    retries: int = 0


def reload_delay_s(attempt: int) -> float:
    """The pause before retry ``attempt + 1`` of a call a reload refused (doubling from ``RELOAD_RETRY_DELAY_S``)."""
    return RELOAD_RETRY_DELAY_S * 2**attempt


class ClientBase:
    """Address, protocol and timeout of a client, and every call both make (see ``TritonClient``).

    A subclass gives ``_client()`` (its tritonclient client, made on first use) and runs the
    ``Call``s: ``_connect()`` is where it sets up what ``_client()`` needs.

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
        self._adapter: Adapter = adapter_for(protocol, timeout_s)
        self._repository_kwargs: dict[str, Any] = {}
        if repository_key:
            # The same header TritonControl (publishing) sends; serving owns Triton's command line.
            from serving.launcher import repository_key_headers

            self._repository_kwargs = {"headers": repository_key_headers(repository_key, protocol)}
        try:
            self._url = normalize_url(url) if url else default_url(protocol)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if not self._url:
            raise InvalidRequest("url is empty: give host:port, e.g. 127.0.0.1:8001")
        self._closed = False
        self._connect()

    def _connect(self) -> None:
        """Set up the connection state ``_client()`` uses (nothing connects before the first call)."""

    def _client(self) -> Any:
        """The tritonclient client of this thread or loop (raises InvalidRequest once closed)."""
        raise NotImplementedError

    @property
    def _repository_call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of an index/load/unload call: the deadline and, when given, the key."""
        return {**self._adapter.call_kwargs, **self._repository_kwargs}

    @property
    def url(self) -> str:
        """``host:port`` this client talks to."""
        return self._url

    @property
    def protocol(self) -> Protocol:
        return self._adapter.protocol

    @property
    def timeout_s(self) -> float:
        return self._adapter.timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r}, protocol={self.protocol!r}, timeout_s={self.timeout_s:g})"

    # -- errors ---------------------------------------------------------------------------
    @contextmanager
    def _translate(self, *, model: str = "", version: str = "", action: str = "") -> Iterator[None]:
        """Re-raise tritonclient and network failures as ClientError (original chained)."""
        try:
            yield
        except ClientError:
            raise
        except Exception as exc:
            mapped = to_client_error(
                exc,
                url=self._url,
                protocol=self.protocol,
                timeout_s=self.timeout_s,
                model=model,
                version=version,
                action=action,
            )
            if mapped is None:
                raise
            raise mapped from exc

    # -- calls: built here, run by the subclass --------------------------------------------
    def _classify_request(self, images: Sequence[bytes], top_k: int) -> tuple[list[Any], list[Any]]:
        """One batched request: ``image`` [batch, 1] BYTES, ``probabilities`` with class_count."""
        return self._adapter.classification_request(images, top_k)

    def _infer_send(self, model: str, version: str, inputs: list[Any], outputs: list[Any]) -> Callable[[], Any]:
        """The ``infer`` of built inputs and requested outputs, to be made (and retried) later."""
        return lambda: self._client().infer(
            model, inputs, model_version=version, outputs=outputs, **self._adapter.call_kwargs
        )

    def _classify_call(self, images: Sequence[bytes], model: str, top_k: int, version: str | int) -> Call:
        """``classify_batch`` of a non-empty ``images``."""
        version = version_text(version)
        send = self._infer_send(model, version, *self._classify_request(images, top_k))
        expected = len(images)

        def finish(result: Any) -> list[Classification]:
            answered = self._adapter.response_version(result)
            classifications = parse_classifications(result.as_numpy(PROBABILITIES), model, answered)
            if len(classifications) != expected:
                raise InferenceError(f"model {model!r} answered {len(classifications)} results for {expected} images")
            return classifications

        return Call(send, finish, model, version, retries=RELOAD_RETRIES)

    def _infer_call(
        self, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], version: str | int
    ) -> Call:
        """``infer``: raw tensors in, the named outputs out."""
        version = version_text(version)
        if not inputs:
            raise InvalidRequest("infer() needs at least one input tensor")
        if isinstance(outputs, str):
            raise InvalidRequest(f"outputs must be a sequence of names, got the string {outputs!r}")
        names = list(outputs)
        send = self._infer_send(
            model, version, self._adapter.infer_inputs(inputs), self._adapter.requested_outputs(names)
        )

        def finish(result: Any) -> dict[str, np.ndarray]:
            tensors: dict[str, np.ndarray] = {}
            for name in names:
                array = result.as_numpy(name)
                if array is None:
                    raise InferenceError(f"the response of model {model!r} has no output {name!r}")
                tensors[name] = array
            return tensors

        return Call(send, finish, model, version, retries=RELOAD_RETRIES)

    def _live_call(self) -> Call:
        return Call(lambda: self._client().is_server_live(**self._adapter.call_kwargs), bool)

    def _ready_call(self, model: str | None, version: str | int) -> Call:
        version = version_text(version)
        kwargs = self._adapter.call_kwargs
        if not model:
            return Call(lambda: self._client().is_server_ready(**kwargs), bool, version=version)
        return Call(lambda: self._client().is_model_ready(model, version, **kwargs), bool, model, version)

    def _models_call(self) -> Call:
        return Call(
            lambda: self._client().get_model_repository_index(**self._repository_call_kwargs),
            lambda raw: model_statuses(self._adapter.index_rows(raw)),
        )

    def _config_call(self, model: str) -> Call:
        return Call(
            lambda: self._client().get_model_config(model, **self._adapter.call_kwargs),
            self._adapter.config_dict,
            model,
        )

    def _statistics_call(self, model: str, version: str | int) -> Call:
        version = version_text(version)
        return Call(
            lambda: self._client().get_inference_statistics(model, version, **self._adapter.call_kwargs),
            self._adapter.stats_dict,
            model,
            version,
        )

    def _load_call(self, model: str, config: str | None) -> Call:
        return Call(
            lambda: self._client().load_model(model, config=config, **self._repository_call_kwargs),
            _nothing,
            model,
            action="load",
        )

    def _unload_call(self, model: str) -> Call:
        return Call(
            lambda: self._client().unload_model(model, **self._repository_call_kwargs), _nothing, model, action="unload"
        )

    # -- videos: what both do around their chunked requests ---------------------------------
    @staticmethod
    def _frame_chunks(frames: Sequence[Frame], batch_size: int, top_k: int) -> list[list[bytes]]:
        """The frames' JPEGs, ``batch_size`` per request.

        Raises:
            InvalidRequest: ``top_k`` < 1.
        """
        if top_k < 1:
            raise InvalidRequest(f"top_k must be >= 1, got {top_k}")
        return [[f.jpeg for f in part] for part in chunked(frames, batch_size)]

    @staticmethod
    def _video_result(
        model: str, frames: Sequence[Frame], answers: list[Classification], top_k: int, duration_s: float
    ) -> VideoClassification:
        return summarize(model, [(f.t_s, f.keyframe) for f in frames], answers, top_k=top_k, duration_s=duration_s)


def version_text(version: str | int) -> str:
    """A version as Triton wants it: a string, ``""`` for the server's choice."""
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise InvalidRequest(f"version must be a str or int, got {version!r}")
    text = str(version).strip()
    if text and not text.isdigit():
        raise InvalidRequest(f"version must be a positive integer (or '' for the latest), got {version!r}")
    return text
