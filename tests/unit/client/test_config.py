"""Named defaults, URL hygiene and argument checks done before anything is sent."""

from __future__ import annotations

import pytest

from client import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    DEFAULT_TIMEOUT_S,
    AsyncTritonClient,
    InvalidRequest,
    TritonClient,
    default_url,
)
from client._base import version_text
from client._config import normalize_url
from visionserve.settings import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT


def test_defaults_follow_the_settings() -> None:
    assert DEFAULT_GRPC_URL == f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    assert DEFAULT_HTTP_URL == f"127.0.0.1:{DEFAULT_HTTP_PORT}"
    assert default_url("grpc") == DEFAULT_GRPC_URL and default_url("http") == DEFAULT_HTTP_URL
    assert DEFAULT_TIMEOUT_S > 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://host:8000/", "host:8000"),
        ("grpc://host:8001", "host:8001"),
        (" HTTP://host:8000 ", "host:8000"),
        ("host:8000/base", "host:8000/base"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("cls", [TritonClient, AsyncTritonClient])
@pytest.mark.parametrize("url", ["https://host:8000", "unix:///tmp/triton.sock"])
def test_other_schemes_are_refused_not_dropped(cls: type, url: str) -> None:
    with pytest.raises(InvalidRequest, match="unsupported URL scheme"):
        cls(url, protocol="http")


@pytest.mark.parametrize("cls", [TritonClient, AsyncTritonClient])
def test_client_defaults(cls: type) -> None:
    assert cls(protocol="http").url == DEFAULT_HTTP_URL
    grpc = cls()
    assert (grpc.url, grpc.protocol, grpc.timeout_s) == (DEFAULT_GRPC_URL, "grpc", DEFAULT_TIMEOUT_S)
    assert "protocol='grpc'" in repr(grpc)


@pytest.mark.parametrize("cls", [TritonClient, AsyncTritonClient])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"protocol": "grpcs"}, "protocol"), ({"timeout_s": 0}, "timeout_s"), ({"timeout_s": -1}, "timeout_s")],
)
def test_bad_arguments(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        cls("h:1", **kwargs)


@pytest.mark.parametrize(("version", "text"), [("", ""), (3, "3"), ("12", "12"), (" 2 ", "2")])
def test_version_text(version: str | int, text: str) -> None:
    assert version_text(version) == text


@pytest.mark.parametrize("version", ["latest", "-1", "1.0", 1.0, True, None])
def test_bad_version(version: object) -> None:
    with pytest.raises(InvalidRequest, match="version"):
        version_text(version)  # type: ignore[arg-type]


def test_closed_client_refuses_calls() -> None:
    client = TritonClient("127.0.0.1:1")
    client.close()
    client.close()  # idempotent
    with pytest.raises(InvalidRequest, match="closed"):
        client.classify(b"x", "m")
