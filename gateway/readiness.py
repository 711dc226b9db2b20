"""``/readyz`` answers reused for a short time, so probes cannot be turned into Triton load.

A readiness check asks Triton about every catalog ensemble (three calls). ``/readyz`` is
unauthenticated and, behind a permissive ingress, public: unthrottled, every probe would cost
those calls. ``CachedProbe`` keeps the last answer for ``ttl_s`` (``GATEWAY_READY_CACHE_TTL_S``,
default 1 s) and lets concurrent probes share one check in flight, so any number of probes
costs at most one check per TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["CachedProbe"]


class CachedProbe:
    """An async boolean check, cached for ``ttl_s`` and shared by concurrent callers.

    Args:
        check: the real check (False on any failure; it must not raise).
        ttl_s: how long an answer is reused; 0 asks every time (still one check in flight).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, check: Callable[[], Awaitable[bool]], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._answer: tuple[float, bool] | None = None
        self._inflight: asyncio.Future[bool] | None = None

    async def __call__(self) -> bool:
        if self._answer is not None and self._answer[0] > self._clock():
            return self._answer[1]
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
        # shield: a probe that gives up (client gone) does not cancel the check others wait on
        return await asyncio.shield(self._inflight)

    async def _run(self) -> bool:
        try:
            answer = bool(await self._check())
        except Exception:
            answer = False
        finally:
            self._inflight = None
        self._answer = (self._clock() + self._ttl_s, answer)
        return answer
