"""The closed-loop driver: warm-up excluded, errors counted, concurrency respected."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.driver import run_closed_loop, run_serial


def test_closed_loop_keeps_concurrency_in_flight_and_excludes_warmup() -> None:
    in_flight = peak = 0
    started: list[float] = []

    async def send(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        started.append(time.perf_counter())
        await asyncio.sleep(0.02)
        in_flight -= 1

    m = asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=3, duration_s=0.4, warmup_s=0.2))
    assert peak == 3
    # ~3 requests per 20 ms over the 0.4 s window (not the 0.6 s of the whole run)
    assert 30 <= m.requests <= 62
    assert len(started) > m.requests  # warm-up requests ran but were not counted
    assert m.throughput == pytest.approx(m.requests / 0.4)
    assert 15 <= m.p50_ms <= 60
    assert m.errors == 0


def test_closed_loop_counts_errors_and_keeps_going() -> None:
    async def send(i: int) -> None:
        await asyncio.sleep(0.005)
        if i % 2:
            raise RuntimeError("boom")

    m = asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=2, duration_s=0.2, warmup_s=0.0))
    assert m.errors > 0 and m.requests > 0
    assert abs(m.errors - m.requests) <= 3  # every other request failed


def test_closed_loop_refuses_zero_concurrency() -> None:
    async def send(i: int) -> None:
        return None

    with pytest.raises(ValueError):
        asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=0, duration_s=0.1, warmup_s=0))


def test_serial_reports_the_batch_size_as_concurrency() -> None:
    calls: list[int] = []

    def call(i: int) -> None:
        calls.append(i)
        time.sleep(0.01)

    m = run_serial(call, label="in_process", model="m", duration_s=0.2, warmup_s=0.05, images_per_request=4)
    assert m.concurrency == 4
    assert m.images == 4 * m.requests
    assert calls == list(range(len(calls)))  # one call at a time, indices in order
    assert 8 <= m.requests <= 21
