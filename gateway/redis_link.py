"""The optional Redis connection shared by the cache and the rate limiter, with a breaker.

Redis is an accelerator, never a dependency of correctness: when a command fails or takes
longer than ``redis_timeout_s``, callers fall back (uncached answer, per-process bucket), the
failure is logged once per outage and counted, and Redis is left alone for ``redis_retry_s``
so that an outage does not add a timeout to every request.

Why a probe and a fresh pool before resuming: after a Redis restart the pool still holds the
connections of the old server. Observed in the Redis restart drill: they failed one at a
time on first use ("Connection closed by server"), seconds after the restart, and each
failure closed Redis for another ``redis_retry_s`` — caching resumed only after every stale
connection had been used once. So once ``redis_retry_s`` has passed, one caller drops every
idle connection and sends ``PING`` on a new one; Redis is used again only when that answers,
and a failure of a command that began before the breaker last opened (a straggler on an old
connection) is counted but does not open it again.

Why one retry on ``ConnectionError`` (and none on a timeout): a worker that saw no command
during an outage still holds the old server's connections when Redis is back, and its first
command on one fails — in the drill, half the fresh images right after a restart went
uncached while that worker's breaker sat open for ``redis_retry_s``. A dead connection is
answered at once, so redis-py's own retry (disconnect, reconnect, resend once) costs a
refused connect at most; a timeout already cost ``redis_timeout_s`` and is never repeated.
The commands are GET, SET and the rate limiter's script, so a resend is harmless (at worst
one token is charged twice when a reply was lost after the server ran it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["RedisLink", "connect"]

log = logging.getLogger("visionserve.gateway.redis")
T = TypeVar("T")


def connect(url: str, timeout_s: float) -> Redis:
    """An asyncio Redis client with short timeouts; a dead connection is retried once, a timeout never."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
        max_connections=64,
    )


class RedisLink:
    """A Redis client plus a circuit breaker that probes before it closes again.

    Args:
        client: the asyncio client.
        retry_s: how long to skip Redis after a failure (then one probe decides).
        on_error: called with the operation name on every failure (metrics); ``"probe"``
            for a failed probe.
    """

    def __init__(self, client: Redis, retry_s: float = 1.0, on_error: Callable[[str], None] | None = None):
        self.client = client
        self._retry_s = retry_s
        self._down_until = 0.0
        self._down = False
        self._probing = False
        #: Bumped whenever the breaker opens or closes: a command remembers the one it began in.
        self._epoch = 0
        self._on_error = on_error

    @property
    def available(self) -> bool:
        """False while Redis is skipped: the breaker is open and no probe has succeeded yet."""
        return not self._down

    async def call(self, op: str, make: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run ``make()`` unless the breaker is open; returns (succeeded, result).

        Never raises for Redis errors: a failure opens the breaker and returns (False, None).
        """
        if self._down and not await self._probe():
            return False, None
        epoch = self._epoch
        try:
            result = await make()
        except Exception as exc:  # ConnectionError, TimeoutError, ResponseError, OSError…
            self._failed(op, exc, opens=epoch == self._epoch)
            return False, None
        return True, result

    def _failed(self, op: str, exc: Exception, *, opens: bool) -> None:
        if self._on_error is not None:
            self._on_error(op)
        if not opens:  # began before the breaker last opened or closed: says nothing new
            return
        self._down_until = time.monotonic() + self._retry_s
        self._epoch += 1
        if not self._down:
            log.warning("Redis unavailable (%s: %s); serving without it", op, exc)
        self._down = True

    async def _probe(self) -> bool:
        """Once ``retry_s`` has passed: drop the idle connections, PING on a new one; True when up."""
        if self._probing or time.monotonic() < self._down_until:
            return False
        self._probing = True
        try:
            await self.client.connection_pool.disconnect(inuse_connections=False)
            await self.client.ping()
        except Exception as exc:  # still down (refused, timeout…): wait another retry_s
            self._failed("probe", exc, opens=True)
            return False
        finally:
            self._probing = False
        self._epoch += 1
        self._down = False
        log.warning("Redis is back (probe answered)")
        return True

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection must not fail shutdown
            pass
