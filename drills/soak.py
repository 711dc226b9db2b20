"""Soak drill: mixed load for a while; RSS of every process, errors and p99 drift."""

from __future__ import annotations

import contextlib
import time

import psutil

from drills.load import LoadLoop, p99, unique_jpeg
from drills.report import DrillResult
from drills.stack import DrillStack

__all__ = ["run"]

RSS_GROWTH_LIMIT = 0.10


def _rss(pids: list[int]) -> dict[int, tuple[str, int]]:
    found = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            found[pid] = (p.name(), p.memory_full_info().uss)  # private memory: what a leak grows
    return found


def run(stack: DrillStack, *, duration_s: float = 600.0) -> DrillResult:
    """Misses, cache hits and history reads for ``duration_s``; memory measured after a warm-up of a fifth.

    Memory is each process's USS (private pages), not RSS: PostgreSQL backends touching shared
    buffers grow in RSS without allocating anything.
    """
    key = stack.key()
    repeated = [unique_jpeg() for _ in range(20)]
    counter = iter(range(10**9))
    misses = LoadLoop(stack.gateway_url, key, stack.model, concurrency=2).start()
    hits = LoadLoop(
        stack.gateway_url, key, stack.model, concurrency=1, rate_per_s=20,
        image=lambda: repeated[next(counter) % len(repeated)],
    ).start()  # fmt: skip
    reads = LoadLoop(stack.gateway_url, key, stack.model, concurrency=1, rate_per_s=2, path="/v1/history").start()
    loops = (misses, hits, reads)
    try:
        warmup_s = duration_s / 5
        time.sleep(warmup_s)
        pids = stack.processes()
        start_rss = _rss(pids)
        time.sleep(duration_s - warmup_s)
        end_rss = _rss(pids)
    finally:
        samples = [s for loop in loops for s in loop.stop()]
    growth = {
        pid: (name, end_rss[pid][1] / rss - 1.0) for pid, (name, rss) in start_rss.items() if pid in end_rss and rss
    }
    worst_pid, (worst_name, worst) = max(growth.items(), key=lambda kv: kv[1][1])
    errors = [s for s in samples if s.status != 200]
    classify = [s for s in samples if s.status == 200 and s.cached is not None]
    window = duration_s / 5
    first = [s.latency_s for s in classify if warmup_s <= s.t_s < warmup_s + window]
    last = [s.latency_s for s in classify if s.t_s >= duration_s - window]
    gone = [pid for pid in start_rss if pid not in end_rss]
    figure = (
        f"{duration_s:g} s, {len(samples)} requests ({len(samples) / duration_s:.0f}/s: misses, cache hits, "
        f"history reads); {len(errors)} errors; memory (USS) growth after warm-up: worst {worst * 100:+.1f} % "
        f"({worst_name} {worst_pid}) over {len(growth)} processes; p99 {p99(first) * 1000:.0f} ms "
        f"(first fifth after warm-up) -> {p99(last) * 1000:.0f} ms (last fifth)"
    )
    return DrillResult.judge(
        "soak",
        f"{duration_s:g} s of mixed load (2 senders of new images, 20/s repeats, 2/s history reads)",
        figure,
        {
            "memory (USS) growth < 10 % for every process": worst < RSS_GROWTH_LIMIT,
            "0 errors": not errors,
            "no process gone": not gone,
        },
    )
