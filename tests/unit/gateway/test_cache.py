"""Cache keys carry the served version and scope; the LRU expires and is bounded by bytes; a dead Redis is a miss."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from client import Prediction
from gateway.cache import CACHE_SCOPE, CachedAnswer, LocalCache, RedisCache, cache_key, entry_bytes
from gateway.redis_link import RedisLink, connect

ANSWER = CachedAnswer("resnet18", 3, (Prediction("tabby", 281, 0.75), Prediction("tiger cat", 282, 0.125)))


def test_answer_round_trips_through_bytes() -> None:
    assert CachedAnswer.from_bytes(ANSWER.to_bytes()) == ANSWER


def test_key_separates_image_model_version_top_k_and_policy() -> None:
    base = cache_key("ab" * 32, "resnet18", 1, 5, "p1")
    variants = [
        cache_key("cd" * 32, "resnet18", 1, 5, "p1"),
        cache_key("ab" * 32, "resnet50", 1, 5, "p1"),
        cache_key("ab" * 32, "resnet18", 2, 5, "p1"),
        cache_key("ab" * 32, "resnet18", 1, 3, "p1"),
        cache_key("ab" * 32, "resnet18", 1, 5, "p2"),
        cache_key("ab" * 32, "resnet18", 1, 5, "p1", tta="hflip"),  # the TTA answer is another answer
    ]
    assert len({base, *variants}) == 7
    assert cache_key("ab" * 32, "resnet18", 1, 5, "p1", tta=None) == base


def test_key_is_scoped_per_api_key_unless_shared() -> None:
    """Finding: user B learned from ``cached: true`` that someone else uploaded the same bytes."""
    args = ("ab" * 32, "resnet18", 1, 5, "p1")
    shared = cache_key(*args)  # no scope set: the shared scope
    token = CACHE_SCOPE.set("key-a")
    try:
        alice = cache_key(*args)
    finally:
        CACHE_SCOPE.reset(token)
    bob = cache_key(*args, scope="key-b")
    assert len({shared, alice, bob}) == 3
    assert cache_key(*args, scope="key-a") == alice and cache_key(*args) == shared


def _answer(top_k: int, seed: int) -> CachedAnswer:
    predictions = tuple(Prediction(f"label number {seed}-{i}", i, 1.0 / (i + 1)) for i in range(top_k))
    return CachedAnswer("resnet18", 1, predictions)


@pytest.mark.anyio
async def test_local_cache_hits_expires_and_evicts() -> None:
    two = 2 * entry_bytes("a", ANSWER)
    cache = LocalCache(max_bytes=two, ttl_s=0.2)
    await cache.set("a", ANSWER)
    assert await cache.get("a") == ANSWER
    await cache.set("b", ANSWER)
    await cache.set("c", ANSWER)  # evicts the least recently used
    assert len(cache) == 2 and cache.bytes <= two
    time.sleep(0.25)
    assert await cache.get("b") is None


@pytest.mark.anyio
async def test_local_cache_is_bounded_by_bytes_not_entries() -> None:
    """Finding: the in-process cache was bounded by entry count, whatever each entry held."""
    budget = 256 * 1024
    cache = LocalCache(max_bytes=budget, ttl_s=60)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(2000):  # top-100 answers: ~25 KB each, far over the budget in total
            await cache.set(f"key-{n:06d}", _answer(100, n))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.bytes <= budget
    assert 0 < len(cache) < 2000
    assert held < 2 * budget, held  # the estimate tracks what the entries really hold
    assert await cache.get("key-001999") is not None and await cache.get("key-000000") is None


@pytest.mark.anyio
async def test_unreachable_redis_is_a_counted_miss_and_the_breaker_skips_it() -> None:
    errors: list[str] = []
    # nothing listens on port 1: connection refused at once
    link = RedisLink(connect("redis://127.0.0.1:1/0", timeout_s=0.2), retry_s=60, on_error=errors.append)
    cache = RedisCache(link, ttl_s=10)
    assert await cache.get("k") is None
    await cache.set("k", ANSWER)  # must not raise
    assert errors == ["cache_get"]  # the breaker is open: the set did not even try
    assert not link.available
    started = time.perf_counter()
    assert await cache.get("k") is None
    assert time.perf_counter() - started < 0.01
    await link.close()
