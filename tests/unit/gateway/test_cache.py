"""Cache keys carry the served version; the LRU expires; a dead Redis is a miss, never an error."""

from __future__ import annotations

import time

import pytest

from gateway.cache import CachedAnswer, LocalCache, RedisCache, cache_key
from gateway.redis_link import RedisLink, connect

ANSWER = CachedAnswer("resnet18", 3, (("tabby", 281, 0.75), ("tiger cat", 282, 0.125)))


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
    ]
    assert len({base, *variants}) == 6


@pytest.mark.anyio
async def test_local_cache_hits_expires_and_evicts() -> None:
    cache = LocalCache(max_entries=2, ttl_s=0.2)
    await cache.set("a", ANSWER)
    assert await cache.get("a") == ANSWER
    await cache.set("b", ANSWER)
    await cache.set("c", ANSWER)  # evicts the least recently used
    assert len(cache) == 2
    time.sleep(0.25)
    assert await cache.get("b") is None


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
