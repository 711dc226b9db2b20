"""Mapping of tritonclient's and the network's failures onto the client's error tree."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from tritonclient.utils import InferenceServerException

from client import (
    ClientError,
    InferenceError,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    RepositoryRestricted,
    ServerUnavailable,
)
from client._errors import to_client_error
from visionserve.errors import ServerError, VisionServeError

URL = "10.1.2.3:8001"


def _map(exc: BaseException, **kwargs: object) -> ClientError | None:
    kwargs = {"url": URL, "protocol": "grpc", "timeout_s": 2.5, **kwargs}
    return to_client_error(exc, **kwargs)  # type: ignore[arg-type]


def _triton(message: str, status: str | None) -> InferenceServerException:
    return InferenceServerException(msg=message, status=status)


def test_tree() -> None:
    for cls in (ServerUnavailable, ModelNotFound, InferenceError, ModelLoadError, InvalidRequest):
        assert issubclass(cls, ClientError)
    assert issubclass(ClientError, VisionServeError)
    assert issubclass(ServerUnavailable, ServerError)  # `except ServerError` catches it too


@pytest.mark.parametrize("status", ["StatusCode.UNAVAILABLE", "503"])
def test_unavailable_status(status: str) -> None:
    error = _map(_triton("failed to connect to all addresses", status))
    assert isinstance(error, ServerUnavailable)
    assert URL in str(error) and "make serve" in str(error)
    assert error.error_code == 503


def test_deadline_names_the_timeout() -> None:
    error = _map(_triton("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"))
    assert isinstance(error, ServerUnavailable)
    assert "within 2.5 s" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        socket.gaierror(-2, "Name or service not known"),
        ConnectionResetError(104, "Connection reset by peer"),
        aiohttp.ServerDisconnectedError(),
    ],
)
def test_network_errors(exc: BaseException) -> None:
    error = _map(exc, protocol="http")
    assert isinstance(error, ServerUnavailable)
    assert URL in str(error) and "(http)" in str(error)


def test_timeout_error() -> None:
    error = _map(TimeoutError("timed out"))
    assert isinstance(error, ServerUnavailable)
    assert "did not answer within 2.5 s" in str(error)


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("Request for unknown model: 'resnet9' is not found", "StatusCode.NOT_FOUND"),
        ("Request for unknown model: 'resnet9' is not found", "404"),
        ("requested model 'resnet9' is not available", "StatusCode.INVALID_ARGUMENT"),
        ("failed to load 'resnet9', failed to poll from model repository", "StatusCode.INTERNAL"),
    ],
)
def test_unknown_model(message: str, status: str) -> None:
    error = _map(_triton(message, status), model="resnet9")
    assert isinstance(error, ModelNotFound)
    assert "'resnet9'" in str(error) and message in str(error)
    assert error.error_code == 404


def test_unknown_version_names_it() -> None:
    error = _map(_triton("Request for unknown model: 'm' version 7 is not found", "404"), model="m", version="7")
    assert isinstance(error, ModelNotFound)
    assert "model 'm' version 7" in str(error)


@pytest.mark.parametrize(
    ("status", "code"),
    [("StatusCode.INVALID_ARGUMENT", 400), ("400", 400), ("StatusCode.INTERNAL", 502), ("500", 502)],
)
def test_rejected_inference_carries_tritons_message(status: str, code: int) -> None:
    error = _map(_triton("invalid image: cannot identify image file", status), model="m")
    assert isinstance(error, InferenceError)
    assert error.status == status
    assert error.error_code == code
    assert error.detail == "invalid image: cannot identify image file"
    assert "invalid image: cannot identify image file" in str(error) and URL in str(error)


def test_load_failure() -> None:
    error = _map(_triton("failed to load 'm': bad config", "StatusCode.INTERNAL"), model="m", action="load")
    assert isinstance(error, ModelLoadError)
    assert "cannot load model 'm'" in str(error)


def test_client_side_tritonclient_error_is_invalid_request() -> None:
    error = _map(_triton("url should not include the scheme", None))
    assert isinstance(error, InvalidRequest)


def test_client_errors_pass_through_and_unknown_errors_do_not_map() -> None:
    original = ModelNotFound("x")
    assert _map(original) is original
    assert _map(ValueError("a bug")) is None
    assert _map(KeyError("a bug")) is None


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("This protocol is restricted, expecting header 'x'", "StatusCode.UNAVAILABLE"),
        ("This API is restricted", "403"),
    ],
)
def test_a_restricted_repository_is_not_a_server_down(message: str, status: str) -> None:
    """The rules run in order: Triton's restricted wording wins over the UNAVAILABLE status it comes with."""
    error = _map(_triton(message, status), action="load", model="resnet18")
    assert isinstance(error, RepositoryRestricted) and not isinstance(error, ServerUnavailable)
    assert "VISIONSERVE_TRITON_REPOSITORY_KEY" in str(error) and error.detail == message
