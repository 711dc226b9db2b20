"""Per-key token buckets: in the process, or in Redis (shared by every worker and replica).

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes one token
(a batch takes one per image). The Redis bucket is one hash per key updated by a Lua script,
atomically and on Redis's clock, so any number of gateway processes share one budget per key.
If Redis is unreachable the limiter falls back to the process's own buckets (logged and
counted by ``RedisLink``): a key then gets its budget per process until Redis returns.

Headers on every response (draft IETF RateLimit fields, X- spelling):
``X-RateLimit-Limit`` = burst, ``X-RateLimit-Remaining`` = whole tokens left,
``X-RateLimit-Reset`` = seconds until the bucket is full again; a 429 adds ``Retry-After`` =
seconds until the request would be allowed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.redis_link import RedisLink

__all__ = ["LimitDecision", "LocalBuckets", "RateLimiter", "decide"]

_LOCAL_MAX_BUCKETS = 100_000

#: KEYS[1] bucket; ARGV rate_per_s, burst, cost. Returns {allowed, tokens-as-string}.
_LUA_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class LimitDecision:
    """The outcome of taking tokens, and the headers that report it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def decide(allowed: bool, tokens: float, rate_per_s: float, burst: int, cost: int) -> LimitDecision:
    """Turn a bucket's state after the attempt into a decision."""
    tokens = max(0.0, min(float(burst), tokens))
    return LimitDecision(
        allowed=allowed,
        limit=burst,
        remaining=int(math.floor(tokens + 1e-9)),
        reset_s=int(math.ceil((burst - tokens) / rate_per_s - 1e-9)),
        retry_after_s=0 if allowed else max(1, int(math.ceil((cost - tokens) / rate_per_s - 1e-9))),
    )


class LocalBuckets:
    """Token buckets in this process (LRU-bounded), on a monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, bucket: str, rate_per_s: float, burst: int, cost: int = 1) -> LimitDecision:
        now = self._clock()
        with self._lock:
            tokens, ts = self._buckets.pop(bucket, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - ts) * rate_per_s)
            allowed = tokens >= cost
            if allowed:
                tokens -= cost
            self._buckets[bucket] = (tokens, now)
            if len(self._buckets) > _LOCAL_MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return decide(allowed, tokens, rate_per_s, burst, cost)

    def peek(self, bucket: str, rate_per_s: float, burst: int) -> LimitDecision:
        """Would one token be granted? (nothing is taken)."""
        return _peeked(self.take(bucket, rate_per_s, burst, cost=0), rate_per_s, burst)


def _peeked(zero_cost: LimitDecision, rate_per_s: float, burst: int) -> LimitDecision:
    # A cost-0 take reports whole tokens left; whether one more request fits follows from it.
    tokens = float(zero_cost.remaining)
    return decide(tokens >= 1, tokens, rate_per_s, burst, 1)


class RateLimiter:
    """Takes tokens from Redis buckets when a link is given (and up), else from local ones.

    Args:
        redis: the shared Redis link, or None for per-process limits.
        prefix: key prefix in Redis.
    """

    def __init__(self, redis: RedisLink | None = None, prefix: str = "vs:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._local = LocalBuckets()
        self._script = redis.client.register_script(_LUA_TOKEN_BUCKET) if redis is not None else None

    async def take(self, bucket: str, rate_per_s: float, burst: int, cost: int = 1) -> LimitDecision:
        """Take ``cost`` tokens from ``bucket`` (refused, not partially taken, if too few)."""
        if self._redis is not None and self._script is not None:
            script = self._script
            ok, result = await self._redis.call(
                "ratelimit", lambda: script(keys=[self._prefix + bucket], args=[rate_per_s, burst, cost])
            )
            if ok and result is not None:
                allowed, tokens = result
                return decide(bool(int(allowed)), float(tokens), rate_per_s, burst, cost)
        return self._local.take(bucket, rate_per_s, burst, cost)

    async def peek(self, bucket: str, rate_per_s: float, burst: int) -> LimitDecision:
        """Whether ``bucket`` has a token left, taking none.

        Checked before work that a refusal would otherwise pay for (an unknown key's lookup).
        """
        return _peeked(await self.take(bucket, rate_per_s, burst, cost=0), rate_per_s, burst)
