"""Many requests at once: the sync client from threads, the async client from coroutines."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from client import AsyncTritonClient, TritonClient
from serving.launcher import TritonServer
from tests.integration.client.conftest import url_of
from tests.integration.client.toy_model.toy_scores import toy_scores
from tests.integration.client.toy_repository import ToyRepository

pytestmark = pytest.mark.integration
PAYLOADS = [f"concurrent {i}".encode() for i in range(24)]


def _best(repo: ToyRepository, data: bytes) -> int:
    return int(toy_scores(data, max(repo.versions), repo.num_classes).argmax())


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sync_client_shared_by_threads(
    protocol: str, toy_triton: TritonServer, toy_repo: ToyRepository
) -> None:
    """Over gRPC threads share one channel; over HTTP (gevent-bound) each gets its own connection."""
    with TritonClient(url_of(toy_triton, protocol), protocol=protocol) as client:  # type: ignore[arg-type]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda d: client.classify(d, toy_repo.labelled, top_k=1), PAYLOADS))
    assert [r.predictions[0].index for r in results] == [_best(toy_repo, d) for d in PAYLOADS]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_client_gathers_on_one_connection(
    protocol: str, toy_triton: TritonServer, toy_repo: ToyRepository
) -> None:
    async def run() -> list:
        async with AsyncTritonClient(url_of(toy_triton, protocol), protocol=protocol) as client:  # type: ignore[arg-type]
            results = await asyncio.gather(
                *(client.classify(d, toy_repo.labelled, top_k=1) for d in PAYLOADS)
            )
            connection = client._connection
            await client.is_live()
            assert client._connection is connection  # reused, never re-made
            return results

    results = asyncio.run(run())
    assert [r.predictions[0].index for r in results] == [_best(toy_repo, d) for d in PAYLOADS]
