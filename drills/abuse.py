"""Abuse drills: one key far over its rate limit, one key sending costly-but-valid uploads.

Both run on a gateway restarted with the default quota (10 requests/s, burst 20), so what is
measured is what a real key can do. "Other keys" are two well-behaved keys at 3 requests/s
each; their p99 is measured alone first, then beside the abuser (same run, same machine).
"""

from __future__ import annotations

import time

from drills.hostile import rle8_bmp
from drills.load import LoadLoop, Sample, p99
from drills.report import DrillResult
from drills.stack import DrillStack

__all__ = ["event_loop", "rate_limit"]

RATE_PER_S, BURST = 10.0, 20
QUOTA_ENV = {"GATEWAY_RATE_PER_S": str(RATE_PER_S), "GATEWAY_RATE_BURST": str(BURST)}
P99_TOLERANCE = 1.20


def _others(stack: DrillStack, keys: list[str], seconds: float) -> list[Sample]:
    loops = [LoadLoop(stack.gateway_url, k, stack.model, concurrency=1, rate_per_s=3.0).start() for k in keys]
    time.sleep(seconds)
    return [s for loop in loops for s in loop.stop()]


def _ok_latencies(samples: list[Sample]) -> list[float]:
    return [s.latency_s for s in samples if s.status == 200]


def rate_limit(stack: DrillStack, *, seconds: float = 8.0) -> DrillResult:
    """One key at 10x its limit: its excess is 429; the other keys' p99 stays within 20 %."""
    stack.start_gateway(env=QUOTA_ENV)
    try:
        keys = [stack.key() for _ in range(2)]
        abuser_key = stack.key()
        # Baseline: the abuser's key at exactly its limit (that much work it may ask for); then 10x.
        polite = LoadLoop(stack.gateway_url, abuser_key, stack.model, concurrency=1, rate_per_s=RATE_PER_S * 0.9)
        polite.start()
        baseline = _others(stack, keys, seconds)
        polite.stop()
        time.sleep(BURST / RATE_PER_S)  # let its bucket fill again
        abuser = LoadLoop(stack.gateway_url, abuser_key, stack.model, concurrency=4, rate_per_s=RATE_PER_S * 10 / 4)
        abuser.start()
        beside = _others(stack, keys, seconds)
        flood = abuser.stop()
    finally:
        stack.start_gateway(env={})
    elapsed = max((s.t_s for s in flood), default=0.0)
    allowed = BURST + RATE_PER_S * (elapsed + 1.0)
    ok = sum(1 for s in flood if s.status == 200)
    other = sorted({s.status for s in flood if s.status not in (200, 429)})
    base_p99, beside_p99 = p99(_ok_latencies(baseline)), p99(_ok_latencies(beside))
    others_refused = sum(1 for s in baseline + beside if s.status != 200)
    figure = (
        f"abuser sent {len(flood)} in {elapsed:.1f} s ({len(flood) / max(elapsed, 1e-9):.0f}/s vs limit "
        f"{RATE_PER_S:g}/s burst {BURST}): {ok} answered 200 (at most {allowed:.0f} allowed), "
        f"{sum(1 for s in flood if s.status == 429)} 429, other {other or 'none'}; others' p99 "
        f"{base_p99 * 1000:.0f} ms beside the key at its limit -> {beside_p99 * 1000:.0f} ms at 10x "
        f"({beside_p99 / base_p99:.2f}x), "
        f"{others_refused} of theirs refused"
    )
    return DrillResult.judge(
        "rate-limit abuse",
        f"one key at 10x its limit ({RATE_PER_S * 10:g}/s) beside two keys at 3/s",
        figure,
        {
            "abuser's excess is 429": ok <= allowed and not other,
            "others never refused": others_refused == 0,
            "others' p99 within 20 %": beside_p99 <= base_p99 * P99_TOLERANCE,
        },
    )


def event_loop(stack: DrillStack, *, seconds: float = 8.0) -> DrillResult:
    """One key sending costly-but-valid uploads at its full rate: /livez p99 < 50 ms, others within 20 %."""
    costly = rle8_bmp(2000, 2000)  # 4 MP in ~9 KB: every check passes, decoding costs ~0.4 s of CPU
    stack.start_gateway(env=QUOTA_ENV)
    try:
        keys = [stack.key() for _ in range(2)]
        abuser_key = stack.key()
        probe = LoadLoop(stack.gateway_url, None, stack.model, concurrency=1, rate_per_s=20, path="/livez").start()
        baseline = _others(stack, keys, seconds)
        livez_alone = probe.stop()
        probe = LoadLoop(stack.gateway_url, None, stack.model, concurrency=1, rate_per_s=20, path="/livez").start()
        abuser = LoadLoop(
            stack.gateway_url, abuser_key, stack.model, concurrency=4, rate_per_s=RATE_PER_S / 4, image=lambda: costly
        ).start()
        beside = _others(stack, keys, seconds)
        flood = abuser.stop()
        livez = probe.stop()
    finally:
        stack.start_gateway(env={})
    live_alone, live_p99 = p99([s.latency_s for s in livez_alone]), p99([s.latency_s for s in livez])
    base_p99, beside_p99 = p99(_ok_latencies(baseline)), p99(_ok_latencies(beside))
    statuses: dict[int, int] = {}
    for s in flood:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    figure = (
        f"abuser: {len(flood)} RLE8 BMPs 2000x2000 (9 KB) at {RATE_PER_S:g}/s, statuses {statuses}; "
        f"/livez p99 {live_alone * 1000:.1f} ms alone -> {live_p99 * 1000:.1f} ms beside; others' p99 "
        f"{base_p99 * 1000:.0f} -> {beside_p99 * 1000:.0f} ms ({beside_p99 / base_p99:.2f}x)"
    )
    return DrillResult.judge(
        "event-loop abuse",
        "one key sending costly-but-valid uploads (RLE8 BMP, 4 MP in 9 KB) at its full rate beside two keys at 3/s",
        figure,
        {
            "/livez p99 < 50 ms": live_p99 < 0.050 and all(s.status == 200 for s in livez),
            "others' p99 within 20 %": beside_p99 <= base_p99 * P99_TOLERANCE,
            "abuser never 5xx": not any(code >= 500 or code == 0 for code in statuses),
        },
    )
