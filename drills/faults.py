"""Fault drills: Triton SIGKILLed, Redis stopped, PostgreSQL restarted, each under steady load."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from drills.history_check import history_rows
from drills.load import LoadLoop, Sample, unique_jpeg
from drills.report import DrillResult
from drills.stack import DrillStack
from gateway.settings import GatewaySettings

__all__ = ["postgres_restart", "redis_restart", "triton_kill"]

#: Seconds the history writer may take to write queued rows (flush interval 0.5 s, with margin).
HISTORY_SETTLE_S = 3.0


def _user(stack: DrillStack, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    return name, stack.key(name)


@dataclass
class _FaultRun:
    """What a fault under load left: every answer, the fault's time marks, the user's history rows."""

    user: str
    admin: str
    samples: list[Sample]
    marks: dict[str, float]
    rows: list[dict[str, str]]


def _under_load(
    stack: DrillStack, prefix: str, lead_s: float, fault: Callable[[Callable[[], float]], dict[str, float]]
) -> _FaultRun:
    """2 closed-loop senders for a new user; ``fault(now)`` after ``lead_s``; then its history, settled.

    ``fault`` gets the clock of the load's samples and returns its named time marks.
    """
    user, key = _user(stack, prefix)
    admin = stack.key(f"admin-{uuid.uuid4().hex[:6]}", "admin")
    load = LoadLoop(stack.gateway_url, key, stack.model, concurrency=2).start()
    try:
        time.sleep(lead_s)
        marks = fault(lambda: time.monotonic() - load.t0)
    finally:
        samples = load.stop()
    time.sleep(HISTORY_SETTLE_S)
    with stack.client(admin) as http:
        rows = history_rows(http, user)
    return _FaultRun(user, admin, samples, marks, rows)


def triton_kill(stack: DrillStack, *, outage_s: float = 3.0, after_s: float = 10.0) -> DrillResult:
    """SIGKILL Triton under load, restart it; 503 + Retry-After meanwhile, back within 10 s, no row lost."""

    def kill(now: Callable[[], float]) -> dict[str, float]:
        killed_at = now()
        stack.kill_triton()
        time.sleep(outage_s)
        restart_at = now()
        stack.start_triton()
        ready_at = now()
        time.sleep(after_s)
        return {"killed": killed_at, "restart": restart_at, "ready": ready_at}

    run = _under_load(stack, "triton-kill", 2.0, kill)
    samples, rows = run.samples, run.rows
    killed_at, restart_at, ready_at = run.marks["killed"], run.marks["restart"], run.marks["ready"]
    outage = [s for s in samples if killed_at + 0.5 < s.t_s < restart_at]
    outage_503 = [s for s in outage if s.status == 503 and s.retry_after]
    wrong = sorted({s.status for s in outage if s.status not in (200, 503)})
    ok_after = [s for s in samples if s.t_s >= ready_at and s.status == 200]
    recovered_s = (ok_after[0].t_s + ok_after[0].latency_s - ready_at) if ok_after else float("inf")
    tail = [s for s in samples if s.t_s >= ready_at + 10.0]
    recorded = [s for s in samples if s.status == 200 or s.status >= 500]
    ids = {r["request_id"] for r in rows}
    lost = [s for s in recorded if s.request_id not in ids]
    no_answer = [s for s in samples if s.status == 0]
    figure = (
        f"{len(samples)} requests; outage {restart_at - killed_at:.1f} s: {len(outage_503)}/{len(outage)} "
        f"answered 503 + Retry-After (other: {wrong or 'none'}); first 200 {recovered_s:.2f} s after Triton "
        f"ready (restart took {ready_at - restart_at:.1f} s); history rows {len(rows)} for {len(recorded)} "
        f"answered + failed requests, {len(lost)} lost; {len(no_answer)} without an answer"
    )
    return DrillResult.judge(
        "Triton SIGKILL",
        f"SIGKILL tritonserver under 2 closed-loop senders, {outage_s:g} s down, restarted",
        figure,
        {
            "503 + Retry-After during the outage": bool(outage) and len(outage_503) == len(outage),
            "recovered within 10 s of ready": recovered_s <= 10.0,
            "all 200 after recovery": all(s.status == 200 for s in tail),
            "0 history rows lost": not lost,
            "every request answered": not no_answer,
        },
    )


#: How long after Redis answers again the gateway may take to cache again (retry 1 s + a probe).
CACHE_RESUME_DEADLINE_S = 10.0
#: Fresh images that must each be cached on their second request once caching resumed.
CACHE_RESUMED_CHECKS = 4


def _cached_twice(stack: DrillStack, key: str) -> tuple[int, bool | None]:
    """A never-seen image sent twice on a new connection: (worst status, ``cached`` of the second)."""
    probe = unique_jpeg()
    with stack.client(key) as http:
        codes, cached = [], None
        for _ in range(2):
            r = http.post("/v1/classify", files={"image": ("p.jpg", probe)}, data={"model": stack.model})
            codes.append(r.status_code)
            cached = r.json().get("cached") if r.status_code == 200 else None
        return max(codes), cached


def _until_cached(stack: DrillStack, key: str, deadline_s: float) -> float | None:
    """Seconds until a repeat is answered from the cache again (None: not within ``deadline_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if _cached_twice(stack, key) == (200, True):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def _redis_retry_s(stack: DrillStack) -> float:
    """The stack's ``GATEWAY_REDIS_RETRY_S``: how long a worker's breaker stays open after a failure."""
    default = GatewaySettings.model_fields["redis_retry_s"].default
    return float(stack.env.get("GATEWAY_REDIS_RETRY_S", default))


def redis_restart(stack: DrillStack, *, outage_s: float = 3.0) -> DrillResult:
    """Stop Redis under load and start it again: requests keep succeeding uncached; caching resumes.

    "Resumes" is waited for, within ``CACHE_RESUME_DEADLINE_S`` of Redis answering again
    (under the load), and then must hold: ``CACHE_RESUMED_CHECKS`` more fresh images, each
    on a new connection (so both workers are asked), are cached on their second request.
    Those checks start once ``redis_retry_s`` has passed since Redis answered: the first
    cached repeat says only that one worker is back, and a worker whose last probe failed
    just before the restart waits that long by design before it tries again.
    """
    _user_name, key = _user(stack, "redis")
    before = _until_cached(stack, key, CACHE_RESUME_DEADLINE_S)
    load = LoadLoop(stack.gateway_url, key, stack.model, concurrency=2).start()
    try:
        time.sleep(1.5)
        down_at = time.monotonic() - load.t0
        stack.redis.stop()
        time.sleep(outage_s)
        up_at = time.monotonic() - load.t0
        # The same image twice while Redis is down: both answered by Triton (no cache to hit).
        during = _cached_twice(stack, key)
        stack.redis.start()
        answered_at = time.monotonic()
        resumed_s = _until_cached(stack, key, CACHE_RESUME_DEADLINE_S)
    finally:
        samples = load.stop()
    time.sleep(max(0.0, answered_at + _redis_retry_s(stack) - time.monotonic()))
    after = [_cached_twice(stack, key) for _ in range(CACHE_RESUMED_CHECKS)]
    outage = [s for s in samples if down_at < s.t_s < up_at]
    ok = [s for s in outage if s.status == 200]
    resumed = "not" if resumed_s is None else f"{resumed_s:.1f} s"
    figure = (
        f"{len(samples)} requests; Redis down {up_at - down_at:.1f} s: {len(ok)}/{len(outage)} answered 200, "
        f"{sum(1 for s in outage if s.cached)} cached; repeat while down cached={during[1]}; caching before: "
        f"{'yes' if before is not None else 'no'}; caching resumed {resumed} after Redis answered "
        f"(limit {CACHE_RESUME_DEADLINE_S:g} s, under load), then {sum(a == (200, True) for a in after)}"
        f"/{len(after)} fresh images cached on repeat ({_redis_retry_s(stack):g} s after it answered)"
    )
    return DrillResult.judge(
        "Redis restart",
        f"stop redis-server under 2 closed-loop senders for {outage_s:g} s, start it again",
        figure,
        {
            "caching before": before is not None,
            "every request during the outage 200": bool(outage) and len(ok) == len(outage),
            "uncached during the outage": during == (200, False),
            "caching resumes": resumed_s is not None and all(a == (200, True) for a in after),
        },
    )


def postgres_restart(stack: DrillStack, *, outage_s: float = 3.0, after_s: float = 5.0) -> DrillResult:
    """Restart PostgreSQL under load: no 200 without its history row; the gateway reconnects by itself."""

    def restart(now: Callable[[], float]) -> dict[str, float]:
        down_at = now()
        stack.postgres.stop()
        time.sleep(outage_s)
        stack.postgres.start()
        up_at = now()
        time.sleep(after_s)
        return {"down": down_at, "up": up_at}

    run = _under_load(stack, "pg", 1.5, restart)
    samples, rows = run.samples, run.rows
    down_at, up_at = run.marks["down"], run.marks["up"]
    with stack.client(run.admin) as http:
        history_ok = http.get("/v1/history", params={"user": run.user, "limit": 1}).status_code == 200
    ids = {r["request_id"] for r in rows}
    answered = [s for s in samples if s.status == 200]
    missing = [s for s in answered if s.request_id not in ids]
    outage = [s for s in samples if down_at < s.t_s < up_at]
    statuses = sorted({s.status for s in outage})
    after = [s for s in samples if s.t_s > up_at + 2.0]
    figure = (
        f"{len(samples)} requests; PostgreSQL down {up_at - down_at:.1f} s (statuses meanwhile {statuses}); "
        f"{len(answered)} answered 200, {len(missing)} of them without a history row; "
        f"after restart {sum(1 for s in after if s.status == 200)}/{len(after)} answered 200"
    )
    return DrillResult.judge(
        "PostgreSQL restart",
        f"stop PostgreSQL (fast shutdown) under 2 closed-loop senders for {outage_s:g} s, start it again",
        figure,
        {
            "no 200 without its history row": not missing,
            "no 500 during the outage": 500 not in statuses,
            "reconnected: all 200 after restart": bool(after) and all(s.status == 200 for s in after),
            "history readable after restart": history_ok,
        },
    )
