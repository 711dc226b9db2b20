"""Fixtures of the client's integration tests: a real tritonserver on a toy repository.

The server starts once per session (about 2 s: two python-backend models), on free ports,
and is stopped with its whole process group at the end.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client import AsyncTritonClient, TritonClient
from serving.launcher import TritonServer, free_ports
from tests.fixtures.triton import serving
from tests.integration.client.toy_repository import ToyRepository, build_toy_repository


@pytest.fixture(scope="session")
def toy_repo(tmp_path_factory: pytest.TempPathFactory) -> ToyRepository:
    return build_toy_repository(tmp_path_factory.mktemp("toy_repository"))


@pytest.fixture(scope="session")
def toy_triton(toy_repo: ToyRepository, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A tritonserver serving the toy models (the spare one stays unloaded), without a response cache."""
    # the toy answers must come from the model, every time
    with serving(toy_repo.path, tmp_path_factory.mktemp("toy_triton"), toy_repo.loaded, cache_size_bytes=0) as server:
        yield server


def url_of(server: TritonServer, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


class Blocking:
    """An AsyncTritonClient driven from sync code: same method names, coroutines run to completion.

    Lets one behavioural test run against all four variants (sync/async x gRPC/HTTP).
    """

    def __init__(self, client: AsyncTritonClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: self.loop.run_until_complete(attr(*args, **kwargs))
        return attr

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


VARIANTS = [("sync", "grpc"), ("sync", "http"), ("async", "grpc"), ("async", "http")]


def make_client(kind: str, protocol: str, url: str, **kwargs: Any) -> Any:
    if kind == "sync":
        return TritonClient(url, protocol=protocol, **kwargs)  # type: ignore[arg-type]
    return Blocking(AsyncTritonClient(url, protocol=protocol, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(params=VARIANTS, ids=[f"{k}-{p}" for k, p in VARIANTS])
def any_client(request: pytest.FixtureRequest, toy_triton: TritonServer) -> Iterator[Any]:
    """Each test using it runs four times: sync and async, gRPC and HTTP."""
    kind, protocol = request.param
    client = make_client(kind, protocol, url_of(toy_triton, protocol))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def dead_url() -> str:
    """An address nothing listens on."""
    (port,) = free_ports(1)
    return f"127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def images(tmp_path: Path) -> dict[str, bytes]:
    """Payloads the toy classifier accepts (any non-empty bytes not starting with its reject prefix)."""
    return {f"img{i}": f"image payload {i}".encode() * (i + 1) for i in range(4)}
