"""The optional Redis connection shared by the cache and the rate limiter, with a breaker.

Redis is an accelerator, never a dependency of correctness: when a command fails or takes
longer than ``redis_timeout_s``, callers fall back (uncached answer, per-process bucket), the
failure is logged once per outage and counted, and Redis is left alone for ``redis_retry_s``
so that an outage does not add a timeout to every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

__all__ = ["RedisLink", "connect"]

log = logging.getLogger("visionserve.gateway.redis")
T = TypeVar("T")


def connect(url: str, timeout_s: float) -> Redis:
    """An asyncio Redis client with short connect/command timeouts and no retries."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        retry=None,
        health_check_interval=0,
        max_connections=64,
    )


class RedisLink:
    """A Redis client plus a circuit breaker.

    Args:
        client: the asyncio client.
        retry_s: how long to skip Redis after a failure.
        on_error: called with the operation name on every failure (metrics).
    """

    def __init__(self, client: Redis, retry_s: float = 1.0, on_error: Callable[[str], None] | None = None):
        self.client = client
        self._retry_s = retry_s
        self._down_until = 0.0
        self._down = False
        self._on_error = on_error

    @property
    def available(self) -> bool:
        """False while the breaker is open (Redis failed less than ``retry_s`` ago)."""
        return time.monotonic() >= self._down_until

    async def call(self, op: str, make: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run ``make()`` unless the breaker is open; returns (succeeded, result).

        Never raises for Redis errors: a failure opens the breaker and returns (False, None).
        """
        if not self.available:
            return False, None
        try:
            result = await make()
        except Exception as exc:  # ConnectionError, TimeoutError, ResponseError, OSError…
            self._down_until = time.monotonic() + self._retry_s
            if not self._down:
                log.warning("Redis unavailable (%s: %s); serving without it", op, exc)
            self._down = True
            if self._on_error is not None:
                self._on_error(op)
            return False, None
        if self._down:
            log.warning("Redis is back (%s succeeded)", op)
            self._down = False
        return True, result

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not fail shutdown
            pass
