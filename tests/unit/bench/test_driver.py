"""The closed-loop driver: warm-up excluded, errors counted, concurrency respected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from bench.driver import run_closed_loop, run_interleaved, run_serial


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


def test_the_meter_is_read_at_the_window_edges_and_reported_per_request() -> None:
    readings: list[float] = []

    def meter() -> dict[str, float]:
        readings.append(time.perf_counter())
        return {"gateway": 3.0 * len(readings), "triton": 0.5 * len(readings)}  # 3 s and 0.5 s per reading

    async def send(i: int) -> None:
        await asyncio.sleep(0.01)

    started = time.perf_counter()
    m = asyncio.run(
        run_closed_loop(send, label="t", model="m", concurrency=2, duration_s=0.3, warmup_s=0.2, meter=meter)
    )
    assert len(readings) == 2
    assert readings[0] - started == pytest.approx(0.2, abs=0.05)  # the window opens after the warm-up
    assert readings[1] - readings[0] == pytest.approx(0.3, abs=0.05)
    assert m.cpu_ms == pytest.approx({"gateway": 3000.0 / m.requests, "triton": 500.0 / m.requests})


def test_interleaved_rounds_add_up_their_windows_cpu() -> None:
    calls = 0

    def meter() -> dict[str, float]:
        nonlocal calls
        calls += 1
        return {"gateway": float(calls)}  # every window: 1 s

    async def fast(i: int) -> None:
        await asyncio.sleep(0.005)

    async def slow(i: int) -> None:
        await asyncio.sleep(0.02)

    cells = asyncio.run(run_interleaved({"a": fast, "b": slow}, model="m", concurrency=1, duration_s=0.2,
                                        warmup_s=0.05, rounds=2, rewarm_s=0.02, meter=meter))  # fmt: skip
    assert calls == 8  # 2 paths x 2 rounds x 2 edges
    for m in cells.values():
        assert m.cpu_ms == pytest.approx({"gateway": 2000.0 / m.requests})  # two 1-second windows
    assert cells["a"].requests > cells["b"].requests


def test_unmetered_runs_report_no_cpu() -> None:
    async def send(i: int) -> None:
        await asyncio.sleep(0.005)

    m = asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=1, duration_s=0.05, warmup_s=0))
    assert m.cpu_ms == {}


def test_a_pause_spaces_the_requests_and_stays_out_of_the_latency() -> None:
    started: list[float] = []

    async def send(i: int) -> None:
        started.append(time.perf_counter())
        await asyncio.sleep(0.005)

    m = asyncio.run(
        run_closed_loop(send, label="t", model="m", concurrency=1, duration_s=0.5, warmup_s=0.0, pause_s=0.03)
    )
    gaps = [b - a for a, b in zip(started, started[1:], strict=False)]
    assert min(gaps) >= 0.035 - 0.002  # each request waited for the answer and the pause
    assert 8 <= m.requests <= 15  # ~0.5 s / 35 ms, where back to back would be ~100
    assert m.p50_ms < 25  # the 5 ms answer, not the 30 ms pause


def test_a_negative_pause_is_refused() -> None:
    async def send(i: int) -> None:
        return None

    with pytest.raises(ValueError, match="pause_s"):
        asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=1, duration_s=0.1, warmup_s=0, pause_s=-1))


def test_interleaved_paths_take_their_own_pause() -> None:
    sent = {"busy": 0, "spaced": 0}

    def sender(key: str) -> Callable[[int], Awaitable[None]]:
        async def send(i: int) -> None:
            sent[key] += 1
            await asyncio.sleep(0.002)

        return send

    out = asyncio.run(
        run_interleaved({k: sender(k) for k in sent}, model="m", concurrency=1, duration_s=0.4, warmup_s=0.0,
                        rounds=2, rewarm_s=0.0, pauses={"spaced": 0.02})  # fmt: skip
    )
    assert out["busy"].requests > 3 * out["spaced"].requests > 0  # ~2 ms apart vs ~22 ms apart
    assert out["spaced"].p50_ms < 15  # the pause is not latency
