"""Token buckets: burst, refill, headers, Retry-After (in-process; Redis in the integration tests)."""

from __future__ import annotations

import pytest

from gateway.limits import LocalBuckets, RateLimiter, decide


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_then_refill() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    decisions = [buckets.take("k", rate_per_s=2.0, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after_s == 1  # one token takes 0.5 s at 2/s: rounded up
    assert refused.headers()["Retry-After"] == "1"
    clock.now += 0.5
    assert buckets.take("k", 2.0, 3).allowed
    assert not buckets.take("k", 2.0, 3).allowed


def test_buckets_are_per_key_and_refill_caps_at_burst() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    for _ in range(3):
        buckets.take("a", 1.0, 3)
    assert buckets.take("b", 1.0, 3).remaining == 2
    clock.now += 3600
    assert buckets.take("a", 1.0, 3).remaining == 2  # full again (3), minus this one


def test_cost_larger_than_tokens_is_refused_without_taking_any() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert not buckets.take("k", 1.0, 5, cost=6).allowed
    assert buckets.take("k", 1.0, 5, cost=5).allowed


def test_headers_report_limit_remaining_and_reset() -> None:
    d = decide(True, tokens=2.5, rate_per_s=0.5, burst=10, cost=1)
    assert d.headers() == {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "15"}
    refused = decide(False, tokens=0.2, rate_per_s=0.5, burst=10, cost=1)
    assert refused.headers()["Retry-After"] == "2"  # (1 - 0.2) / 0.5 = 1.6 s -> 2


@pytest.mark.anyio
async def test_limiter_without_redis_uses_local_buckets() -> None:
    limiter = RateLimiter(None)
    results = [(await limiter.take("key:x", 1.0, 2)).allowed for _ in range(3)]
    assert results == [True, True, False]


@pytest.mark.anyio
async def test_peek_takes_nothing_and_says_whether_a_token_is_left() -> None:
    limiter = RateLimiter()
    assert (await limiter.peek("p", 0.001, 2)).allowed
    assert (await limiter.peek("p", 0.001, 2)).remaining == 2  # nothing was taken
    await limiter.take("p", 0.001, 2, cost=2)
    refused = await limiter.peek("p", 0.001, 2)
    assert not refused.allowed and refused.retry_after_s >= 1


class ScriptedRedis:
    """A RedisLink stand-in whose token-bucket script runs on local buckets and is counted."""

    def __init__(self, clock: Clock) -> None:
        self.buckets = LocalBuckets(clock)
        self.calls = 0
        self.client = self

    def register_script(self, _source: str):  # noqa: ANN201 - the redis-py shape
        async def script(keys: list[str], args: list[float]) -> list[object]:
            self.calls += 1
            rate, burst, cost = args
            before = self.buckets.take(keys[0], rate, int(burst), cost=0).remaining
            decision = self.buckets.take(keys[0], rate, int(burst), int(cost))
            return [int(decision.allowed), str(before - cost if decision.allowed else before)]

        return script

    async def call(self, _op: str, make):  # noqa: ANN001, ANN201
        return True, await make()


@pytest.mark.anyio
async def test_a_redis_refusal_is_repeated_locally_until_a_token_can_be_back() -> None:
    clock = Clock()
    redis = ScriptedRedis(clock)
    limiter = RateLimiter(redis, clock=clock)  # type: ignore[arg-type]
    assert [(await limiter.take("key:x", 1.0, 2)).allowed for _ in range(3)] == [True, True, False]
    assert redis.calls == 3
    for _ in range(50):  # a flood: refused without a Redis call, with the headers Redis would give
        refused = await limiter.take("key:x", 1.0, 2)
        assert not refused.allowed and refused.headers()["Retry-After"] == "1" and refused.remaining == 0
    assert redis.calls == 3
    clock.now += 0.5
    assert not (await limiter.take("key:x", 1.0, 2)).allowed and redis.calls == 3
    clock.now += 0.5  # one token could be back: Redis decides again
    assert (await limiter.take("key:x", 1.0, 2)).allowed and redis.calls == 4
    assert not (await limiter.take("key:x", 1.0, 2)).allowed and redis.calls == 5
    assert (await limiter.take("key:y", 1.0, 2)).allowed and redis.calls == 6  # other buckets are their own
