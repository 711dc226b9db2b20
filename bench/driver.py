"""Closed-loop load: ``concurrency`` workers, each sending its next request when the last returns.

A run has a warm-up (results discarded: connection set-up, first batches, allocator growth),
then a measurement window; only requests that *complete* inside the window count, and
throughput is their images over the window's length. After the window no new request starts
and in-flight ones drain uncounted. The same driver runs async clients (Triton, gateway,
naive server) and the in-process ceiling (a blocking call, concurrency 1).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from bench.cpu import Meter, Reading, spent
from bench.stats import Measurement, summarize

__all__ = ["Window", "run_closed_loop", "run_serial"]


@dataclass
class Window:
    """Timing of one run: warm-up, then the measured window (``time.perf_counter`` seconds)."""

    warmup_s: float
    duration_s: float
    start: float = field(default_factory=time.perf_counter)

    @property
    def opens(self) -> float:
        return self.start + self.warmup_s

    @property
    def closes(self) -> float:
        return self.opens + self.duration_s

    def inside(self, t: float) -> bool:
        return self.opens <= t <= self.closes


async def run_closed_loop(
    send: Callable[[int], Awaitable[object]],
    *,
    label: str,
    model: str,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    images_per_request: int = 1,
    record: list[float] | None = None,
    meter: Meter | None = None,
    cpu_record: Reading | None = None,
    pause_s: float = 0.0,
) -> Measurement:
    """Drive ``send(i)`` (i = 0, 1, 2 … across workers) from ``concurrency`` coroutines.

    Args:
        send: one request; raising counts as an error (its latency is not recorded).
        label: what path the Measurement is of.
        model: the model it is of.
        concurrency: coroutines sending at once.
        duration_s: measurement window.
        warmup_s: time before the window whose results are discarded.
        images_per_request: images each request carries.
        record: if given, the window's latencies (s) are appended to it (see ``run_interleaved``).
        meter: read at the window's opening and closing; the Measurement reports the CPU
            spent in between per request.
        cpu_record: if given (with ``meter``), the window's CPU seconds are added to it.
        pause_s: how long each coroutine waits after an answer before its next request (not
            part of the latency): requests spaced like those of a slower path.

    Returns:
        The Measurement of the window.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if pause_s < 0:
        raise ValueError(f"pause_s must be >= 0, got {pause_s}")
    counter = itertools.count()
    tally = _Tally()
    window = Window(warmup_s, duration_s)
    cpu: Reading = {}
    workers = (_worker(send, counter, window, tally, pause_s) for _ in range(concurrency))
    await asyncio.gather(*workers, *([_metering(meter, window, cpu)] if meter else []))
    if record is not None:
        record.extend(tally.latencies)
    if cpu_record is not None:
        for role, seconds in cpu.items():
            cpu_record[role] = cpu_record.get(role, 0.0) + seconds
    return summarize(
        tally.latencies, duration_s, label=label, model=model, concurrency=concurrency, errors=tally.errors,
        images_per_request=images_per_request, cpu_s=cpu if meter else None,
    )  # fmt: skip


@dataclass
class _Tally:
    """What the workers of one run share: the window's latencies (s) and its failed requests."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _worker(
    send: Callable[[int], Awaitable[object]], counter: Iterator[int], window: Window, tally: _Tally, pause_s: float
) -> None:
    """One closed-loop sender: the next request when the last returns, until the window closes."""
    while time.perf_counter() < window.closes:
        t0 = time.perf_counter()
        try:
            await send(next(counter))
        except Exception:  # noqa: BLE001 - counted; the benchmark reports errors, never hides them
            if window.inside(time.perf_counter()):
                tally.errors += 1
        else:
            t1 = time.perf_counter()
            if window.inside(t1):
                tally.latencies.append(t1 - t0)
        if pause_s:
            await asyncio.sleep(pause_s)


async def _metering(meter: Meter, window: Window, cpu: Reading) -> None:
    """Read ``meter`` as the window opens and as it closes; the CPU spent in between goes into ``cpu``."""
    await asyncio.sleep(max(0.0, window.opens - time.perf_counter()))
    before = meter()
    await asyncio.sleep(max(0.0, window.closes - time.perf_counter()))
    cpu.update(spent(before, meter()))


async def run_interleaved(
    senders: dict[str, Callable[[int], Awaitable[object]]],
    *,
    model: str,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    rounds: int = 3,
    rewarm_s: float = 1.0,
    meter: Meter | None = None,
    pauses: dict[str, float] | None = None,
) -> dict[str, Measurement]:
    """Measure several paths in alternating rounds, so drift on a shared machine hits them alike.

    Each path gets ``rounds`` windows of ``duration_s / rounds`` (the first after ``warmup_s``,
    later ones after ``rewarm_s``, as the queues refill), and one Measurement over all of them
    (with ``meter``, the CPU of all its windows per request). ``pauses`` gives a path a
    ``pause_s`` between its requests (see ``run_closed_loop``).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    latencies: dict[str, list[float]] = {key: [] for key in senders}
    errors = dict.fromkeys(senders, 0)
    cpu: dict[str, Reading] = {key: {} for key in senders}
    for r in range(rounds):
        for key, send in senders.items():
            m = await run_closed_loop(
                send, label=key, model=model, concurrency=concurrency, duration_s=duration_s / rounds,
                warmup_s=warmup_s if r == 0 else min(warmup_s, rewarm_s), record=latencies[key],
                meter=meter, cpu_record=cpu[key], pause_s=(pauses or {}).get(key, 0.0),
            )  # fmt: skip
            errors[key] += m.errors
    return {
        key: summarize(
            latencies[key],
            duration_s,
            label=key,
            model=model,
            concurrency=concurrency,
            errors=errors[key],
            cpu_s=cpu[key] if meter else None,
        )
        for key in senders
    }


def run_serial(
    call: Callable[[int], object],
    *,
    label: str,
    model: str,
    duration_s: float,
    warmup_s: float,
    images_per_request: int = 1,
) -> Measurement:
    """The blocking twin of ``run_closed_loop`` for in-process work: one call at a time.

    ``concurrency`` in the result is the batch size (images per call).
    """
    latencies: list[float] = []
    errors = 0
    window = Window(warmup_s, duration_s)
    for i in itertools.count():
        t0 = time.perf_counter()
        if t0 >= window.closes:
            break
        try:
            call(i)
        except Exception:  # noqa: BLE001 - counted, as above
            errors += int(window.inside(time.perf_counter()))
            continue
        t1 = time.perf_counter()
        if window.inside(t1):
            latencies.append(t1 - t0)
    return summarize(
        latencies, duration_s, label=label, model=model, concurrency=images_per_request, errors=errors,
        images_per_request=images_per_request,
    )  # fmt: skip
