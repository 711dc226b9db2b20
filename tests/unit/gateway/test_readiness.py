"""/readyz answers are reused for a TTL and shared by concurrent probes."""

from __future__ import annotations

import asyncio

import pytest

from gateway.readiness import CachedProbe


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_probes_within_the_ttl_cost_no_check() -> None:
    """Finding: every /readyz probe made three Triton calls, unthrottled."""
    calls = []

    async def check() -> bool:
        calls.append(1)
        await asyncio.sleep(0.01)
        return len(calls) < 3

    clock = Clock()
    probe = CachedProbe(check, ttl_s=1.0, clock=clock)
    answers = await asyncio.gather(*(probe() for _ in range(50)))  # concurrent: one check in flight
    assert all(answers) and len(calls) == 1
    assert all([await probe() for _ in range(100)]) and len(calls) == 1
    clock.now += 1.01
    assert await probe() is True and len(calls) == 2
    clock.now += 1.01
    assert await probe() is False and len(calls) == 3


@pytest.mark.anyio
async def test_a_failing_check_is_not_ready() -> None:
    async def check() -> bool:
        raise ConnectionError("Triton gone")

    assert await CachedProbe(check, ttl_s=0)() is False
