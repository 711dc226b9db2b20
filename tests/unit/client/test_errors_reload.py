"""Triton's reload race ("not at ready state") is a retried ModelReloading, not 'server down'."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from client import ModelReloading, ServerUnavailable
from client._errors import to_client_error
from client._sync import TritonClient


def _race() -> InferenceServerException:
    return InferenceServerException(
        "Request for unknown model: 'resnet18' version 1 is not at ready state", status="StatusCode.UNAVAILABLE"
    )


def test_not_ready_state_maps_to_model_reloading() -> None:
    err = to_client_error(_race(), url="127.0.0.1:1", protocol="grpc", model="resnet18")
    assert isinstance(err, ModelReloading) and not isinstance(err, ServerUnavailable)
    assert err.error_code == 503


def test_sync_client_retries_a_reload_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    client = TritonClient("127.0.0.1:1")
    calls = []

    def send() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _race()
        return "answer"

    monkeypatch.setattr("client._sync.RELOAD_RETRY_DELAY_S", 0.0)
    assert client._infer_retrying("resnet18", "", send) == "answer" and len(calls) == 3


def test_sync_client_gives_up_after_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    client = TritonClient("127.0.0.1:1")
    monkeypatch.setattr("client._sync.RELOAD_RETRY_DELAY_S", 0.0)

    def send() -> None:
        raise _race()

    with pytest.raises(ModelReloading):
        client._infer_retrying("resnet18", "", send)
