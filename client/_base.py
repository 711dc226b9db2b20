"""What the sync and asyncio clients share: address, protocol, error translation, codecs.

Everything here is free of I/O, so ``TritonClient`` and ``AsyncTritonClient`` differ only
in *how* they call tritonclient (directly or awaited), never in what they send or return.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from client._adapters import Adapter, adapter_for
from client._codec import parse_classifications
from client._config import DEFAULT_TIMEOUT_S, Protocol, default_url, normalize_url
from client._errors import ClientError, InferenceError, InvalidRequest, to_client_error
from client._types import Classification
from visionserve.catalog import PROBABILITIES

__all__ = ["ClientBase"]


class ClientBase:
    """Address, protocol and timeout of a client, and the request/response logic both share.

    Args:
        url: ``host:port`` of Triton (a leading ``http://`` / ``grpc://`` is dropped); the local
            default of ``protocol`` when None.
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: the limit of every call, in seconds.
        repository_key: the key of a restricted model-repository API (``visionserve serve
            --repository-api restricted``, ``make up``), sent with index, load and unload only.

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

    # -- classification -------------------------------------------------------------------
    def _classify_request(self, images: Sequence[bytes], top_k: int) -> tuple[list[Any], list[Any]]:
        """One batched request: ``image`` [batch, 1] BYTES, ``probabilities`` with class_count."""
        return self._adapter.classification_request(images, top_k)

    def _classify_response(self, result: Any, model: str, expected: int) -> list[Classification]:
        version = self._adapter.response_version(result)
        classifications = parse_classifications(result.as_numpy(PROBABILITIES), model, version)
        if len(classifications) != expected:
            raise InferenceError(f"model {model!r} answered {len(classifications)} results for {expected} images")
        return classifications

    # -- raw tensors ----------------------------------------------------------------------
    def _infer_request(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> tuple[list[Any], list[Any]]:
        if not inputs:
            raise InvalidRequest("infer() needs at least one input tensor")
        if isinstance(outputs, str):
            raise InvalidRequest(f"outputs must be a sequence of names, got the string {outputs!r}")
        return self._adapter.infer_inputs(inputs), self._adapter.requested_outputs(list(outputs))

    @staticmethod
    def _infer_response(result: Any, model: str, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        tensors: dict[str, np.ndarray] = {}
        for name in outputs:
            array = result.as_numpy(name)
            if array is None:
                raise InferenceError(f"the response of model {model!r} has no output {name!r}")
            tensors[name] = array
        return tensors


def version_text(version: str | int) -> str:
    """A version as Triton wants it: a string, ``""`` for the server's choice."""
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise InvalidRequest(f"version must be a str or int, got {version!r}")
    text = str(version).strip()
    if text and not text.isdigit():
        raise InvalidRequest(f"version must be a positive integer (or '' for the latest), got {version!r}")
    return text
