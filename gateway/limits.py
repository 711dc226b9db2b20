"""Per-key token buckets: in the process, or in Redis (shared by every worker and replica).

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes one token
(a batch takes one per image). The Redis bucket is one hash per key updated by a Lua script,
atomically and on Redis's clock, so any number of gateway processes share one budget per key.
If Redis is unreachable the limiter falls back to the process's own buckets (logged and
counted by ``RedisLink``): a key then gets its budget per process until Redis returns.

A refusal from Redis is remembered in the process (``RefusalMemo``): tokens only come back
at ``rate_per_s`` (other workers can only take more), so until the bucket could hold enough
again the answer is known, and a key flooding far past its limit is refused without a Redis
round trip per request. The memo extrapolates from the moment the script was *sent*, so it
never refuses a request that Redis would allow.

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

__all__ = ["LimitDecision", "LocalBuckets", "RateLimiter", "RefusalMemo", "decide"]

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


class RefusalMemo:
    """Buckets that Redis just refused, with the tokens they held then: refusals it can repeat.

    Args:
        clock: a monotonic clock.
        max_entries: buckets remembered (oldest forgotten first).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = _LOCAL_MAX_BUCKETS) -> None:
        self._clock = clock
        self._max = max_entries
        self._refused: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def remember(self, bucket: str, tokens: float, sent_at: float) -> None:
        """Redis refused ``bucket`` holding ``tokens`` at some moment after ``sent_at``."""
        self._refused.pop(bucket, None)
        self._refused[bucket] = (tokens, sent_at)
        if len(self._refused) > self._max:
            self._refused.popitem(last=False)

    def refusal(self, bucket: str, rate_per_s: float, burst: int, cost: int) -> LimitDecision | None:
        """The refusal Redis would give now, or None when it might allow (then ask it)."""
        memo = self._refused.get(bucket)
        if memo is None:
            return None
        tokens, sent_at = memo
        # at most this many now: refill since the script was sent, nothing taken by anyone
        tokens = min(float(burst), tokens + max(0.0, self._clock() - sent_at) * rate_per_s)
        if tokens >= cost:
            del self._refused[bucket]
            return None
        return decide(False, tokens, rate_per_s, burst, cost)

    def forget(self, bucket: str) -> None:
        self._refused.pop(bucket, None)


class RateLimiter:
    """Takes tokens from Redis buckets when a link is given (and up), else from local ones.

    Args:
        redis: the shared Redis link, or None for per-process limits.
        prefix: key prefix in Redis.
        clock: the monotonic clock of the refusal memo.
    """

    def __init__(
        self, redis: RedisLink | None = None, prefix: str = "vs:rl:", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._prefix = prefix
        self._local = LocalBuckets()
        self._script = redis.client.register_script(_LUA_TOKEN_BUCKET) if redis is not None else None
        self._refusals = RefusalMemo(clock)

    async def take(self, bucket: str, rate_per_s: float, burst: int, cost: int = 1) -> LimitDecision:
        """Take ``cost`` tokens from ``bucket`` (refused, not partially taken, if too few)."""
        if self._redis is not None and self._script is not None:
            if cost > 0 and (known := self._refusals.refusal(bucket, rate_per_s, burst, cost)) is not None:
                return known
            script = self._script
            sent_at = self._clock()
            ok, result = await self._redis.call(
                "ratelimit", lambda: script(keys=[self._prefix + bucket], args=[rate_per_s, burst, cost])
            )
            if ok and result is not None:
                allowed, tokens = bool(int(result[0])), float(result[1])
                if allowed and cost > 0:
                    self._refusals.forget(bucket)
                elif not allowed:
                    self._refusals.remember(bucket, tokens, sent_at)
                return decide(allowed, tokens, rate_per_s, burst, cost)
        return self._local.take(bucket, rate_per_s, burst, cost)

    async def peek(self, bucket: str, rate_per_s: float, burst: int) -> LimitDecision:
        """Whether ``bucket`` has a token left, taking none.

        Checked before work that a refusal would otherwise pay for (an unknown key's lookup).
        """
        return _peeked(await self.take(bucket, rate_per_s, burst, cost=0), rate_per_s, burst)
