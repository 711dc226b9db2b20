"""What differs between tritonclient's gRPC and HTTP flavours, in one place per protocol.

Both flavours share method names and most arguments; they differ in how a timeout is given
(per call for gRPC, per client for HTTP), in what they return (protobuf messages vs. JSON
dicts, ``{"models": [...]}`` vs. a list) and in the HTTP-only ``binary_data`` flag. The sync
and asyncio clients call tritonclient through an adapter and never branch on the protocol.
tritonclient modules are imported only when a client of that protocol is made: the gateway
(gRPC aio) never pays for gevent, a CLI run over gRPC never for aiohttp.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.utils import np_to_triton_dtype

from client._codec import check_top_k, image_batch
from client._config import Protocol
from client._errors import InvalidRequest
from client._proto import message_to_dict
from visionserve.catalog import IMAGE_INPUT, PROBABILITIES

__all__ = ["Adapter", "adapter_for"]


@dataclass(frozen=True)
class Adapter:
    """Protocol-specific glue around a tritonclient module.

    Args:
        protocol: ``"grpc"`` or ``"http"``.
        timeout_s: the per-call timeout.
    """

    protocol: Protocol
    timeout_s: float

    # -- clients --------------------------------------------------------------------------
    def sync_client(self, url: str) -> Any:
        """A tritonclient sync client for ``url`` (connects lazily, on first call)."""
        if self.protocol == "grpc":
            return self._module("tritonclient.grpc").InferenceServerClient(url)
        return self._module("tritonclient.http").InferenceServerClient(
            url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
        )

    def async_client(self, url: str) -> Any:
        """A tritonclient asyncio client for ``url``; create it inside the running event loop."""
        if self.protocol == "grpc":
            return self._module("tritonclient.grpc.aio").InferenceServerClient(url)
        return self._module("tritonclient.http.aio").InferenceServerClient(url, conn_timeout=self.timeout_s)

    @property
    def call_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments of every call: gRPC takes its deadline per call."""
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    # -- requests -------------------------------------------------------------------------
    def infer_input(self, name: str, array: np.ndarray) -> Any:
        """An ``InferInput`` holding ``array`` (object arrays are sent as BYTES)."""
        module = self._module(f"tritonclient.{self.protocol}")
        array = np.asarray(array)
        datatype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
        if datatype is None:
            raise InvalidRequest(f"input {name!r}: numpy dtype {array.dtype} has no Triton datatype")
        infer_input = module.InferInput(name, list(array.shape), datatype)
        if self.protocol == "http":
            infer_input.set_data_from_numpy(array, binary_data=True)
        else:
            infer_input.set_data_from_numpy(array)
        return infer_input

    def requested_output(self, name: str, class_count: int = 0) -> Any:
        """An ``InferRequestedOutput``; ``class_count > 0`` asks for top-k classification strings."""
        module = self._module(f"tritonclient.{self.protocol}")
        if self.protocol == "http":
            return module.InferRequestedOutput(name, binary_data=True, class_count=class_count)
        return module.InferRequestedOutput(name, class_count=class_count)

    def classification_request(self, images: Sequence[bytes], top_k: int) -> tuple[list[Any], list[Any]]:
        """One batched request: ``image`` [batch, 1] BYTES, ``probabilities`` with class_count.

        Raises:
            InvalidRequest: ``top_k`` < 1 or an image that is not bytes.
        """
        top_k = check_top_k(top_k)
        inputs = [self.infer_input(IMAGE_INPUT, image_batch(images))]
        # Always send class_count: Triton's default (0) returns raw scores, not labels.
        outputs = [self.requested_output(PROBABILITIES, class_count=top_k)]
        return inputs, outputs

    def infer_inputs(self, inputs: Mapping[str, np.ndarray]) -> list[Any]:
        return [self.infer_input(name, array) for name, array in inputs.items()]

    def requested_outputs(self, names: Sequence[str]) -> list[Any]:
        return [self.requested_output(name) for name in names]

    # -- responses ------------------------------------------------------------------------
    def response_version(self, result: Any) -> str:
        """The model version that answered, from the response itself."""
        response = result.get_response()
        if self.protocol == "grpc":
            return str(response.model_version)
        return str(response.get("model_version", ""))

    def index_rows(self, raw: Any) -> list[dict[str, Any]]:
        """Repository-index rows from ``get_model_repository_index()``'s answer."""
        if self.protocol == "grpc":
            return list(message_to_dict(raw).get("models", []))
        return list(raw)

    def config_dict(self, raw: Any) -> dict[str, Any]:
        """The model configuration from ``get_model_config()``'s answer."""
        return message_to_dict(raw.config) if self.protocol == "grpc" else dict(raw)

    def stats_dict(self, raw: Any) -> dict[str, Any]:
        """``{"model_stats": [...]}`` from ``get_inference_statistics()``'s answer."""
        return message_to_dict(raw) if self.protocol == "grpc" else dict(raw)

    @staticmethod
    def _module(name: str) -> Any:
        return importlib.import_module(name)


def adapter_for(protocol: str, timeout_s: float) -> Adapter:
    """The adapter of ``protocol``.

    Raises:
        InvalidRequest: unknown protocol or a non-positive timeout.
    """
    if protocol not in ("grpc", "http"):
        raise InvalidRequest(f"protocol must be 'grpc' or 'http', got {protocol!r}")
    if not timeout_s or timeout_s <= 0:
        raise InvalidRequest(f"timeout_s must be > 0, got {timeout_s!r}")
    return Adapter(protocol=protocol, timeout_s=float(timeout_s))  # type: ignore[arg-type]
