"""Triton's reload race ("not at ready state") is a retried ModelReloading, not 'server down'."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from client import ModelReloading, ServerUnavailable
from client._base import Call
from client._config import RELOAD_RETRIES
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

    monkeypatch.setattr("client._base.RELOAD_RETRY_DELAY_S", 0.0)
    assert client._run(Call(send, model="resnet18", retries=RELOAD_RETRIES)) == "answer" and len(calls) == 3


def test_sync_client_gives_up_after_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    client = TritonClient("127.0.0.1:1")
    monkeypatch.setattr("client._base.RELOAD_RETRY_DELAY_S", 0.0)
    calls = []

    def send() -> None:
        calls.append(1)
        raise _race()

    with pytest.raises(ModelReloading):
        client._run(Call(send, model="resnet18", retries=RELOAD_RETRIES))
    assert len(calls) == RELOAD_RETRIES + 1


def test_only_inference_is_retried_after_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload race on a config or repository call is reported at once: only inference is idempotent here."""
    client = TritonClient("127.0.0.1:1")
    monkeypatch.setattr("client._base.RELOAD_RETRY_DELAY_S", 0.0)
    assert client._infer_call("resnet18", {"x": np.zeros((1, 1))}, ["y"], "").retries == RELOAD_RETRIES
    calls = []

    def send() -> None:
        calls.append(1)
        raise _race()

    with pytest.raises(ModelReloading):
        client._run(Call(send, model="resnet18"))
    assert len(calls) == 1
    assert client._config_call("resnet18").retries == 0 and client._load_call("resnet18", None).retries == 0
