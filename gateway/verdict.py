"""The verdict on a canary: ``promote``, ``hold`` (and how many more answers) or ``rollback``.

Three checks, each one-sided at the policy's ``confidence`` (``ReleasePolicy``):

* **Agreement** (paired answers: shadow pairs, or images both versions answered): the top-1
  agreement's *Wilson score* interval. Promote-side: its lower bound ≥ ``min_agreement``;
  rollback-side: its upper bound < ``min_agreement``. With every pair agreeing, the lower bound
  reaches 0.95 at 52 pairs (z = 1.645): that is the minimum sample of a promote.
* **Error rate** (each version's answers, 5xx outcomes over all answered-or-failed): the
  difference canary − stable, by *Newcombe's hybrid score interval* (method 10, built from the
  two Wilson intervals; sound with zero errors, where Wald's is not). Promote-side: upper
  bound ≤ ``max_error_increase``; rollback-side: lower bound > it. With no errors on either
  side, 0.5 points needs 539 canary answers.
* **Latency**: canary p99 / stable p99 of Triton round trips (cache misses). Judged once each
  version has ``min_latency_samples`` round trips (200 by default: the p99 is then the 2nd-
  largest value, not the maximum); it is a point-estimate rule, not a test, because an
  order-statistic bound on a p99 needs thousands of samples to be tight.

Any check on the rollback side → ``rollback``; all on the promote side → ``promote``; else
``hold``, with the answers still needed: for each undecided check, the smallest sample at
which the same observed rate would decide it (found by doubling then bisection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

from visionserve.catalog import ReleasePolicy

__all__ = [
    "Check",
    "Decision",
    "Verdict",
    "agreement_check",
    "error_check",
    "judge",
    "latency_check",
    "newcombe_interval",
    "wilson_interval",
]

Decision = Literal["promote", "hold", "rollback"]
State = Literal["pass", "fail", "wait"]
#: The most answers a ``hold`` ever asks for (beyond it the rates are too close to decide).
MAX_NEEDED = 10_000_000


@dataclass(frozen=True)
class Check:
    """One criterion: its figure, the bound compared, and what it says.

    Args:
        name: ``agreement``, ``error_rate`` or ``p99_ratio``.
        state: ``pass`` (promote-side), ``fail`` (rollback-side) or ``wait``.
        value: the observed figure (None before any sample).
        bound: the bound compared with the threshold (None where none applies).
        threshold: the policy's limit.
        needed: more samples (pairs, or canary answers) before it can decide; 0 once decided.
        test: the test used, for the report.
    """

    name: str
    state: State
    value: float | None
    bound: tuple[float, float] | None
    threshold: float
    needed: int
    test: str


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    checks: list[Check] = field(default_factory=list)

    @property
    def needed(self) -> int:
        """More samples a ``hold`` needs (the largest of the undecided checks)."""
        return max((c.needed for c in self.checks if c.state == "wait"), default=0)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(confidence)


def wilson_interval(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (each side one-sided at ``z``); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(k1: float, n1: float, k2: float, n2: float, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 − p2 (method 10), from the two Wilson intervals."""
    p1, p2 = (k1 / n1 if n1 else 0.0), (k2 / n2 if n2 else 0.0)
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _smallest(decides: Callable[[float], bool], start: float) -> int:
    """The smallest scale ``s >= start`` at which ``decides(s)`` holds, or MAX_NEEDED."""
    lo, hi = start, max(start, 1.0)
    while not decides(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_NEEDED:
            return MAX_NEEDED
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return math.ceil(hi)


def agreement_check(agree: int, pairs: int, policy: ReleasePolicy) -> Check:
    """Top-1 agreement of paired answers against ``policy.min_agreement`` (Wilson)."""
    z, threshold = _z(policy.confidence), policy.min_agreement
    low, high = wilson_interval(agree, pairs, z)
    test = f"one-sided Wilson score bound at {policy.confidence:.0%}"
    value = agree / pairs if pairs else None
    if pairs and low >= threshold:
        return Check("agreement", "pass", value, (low, high), threshold, 0, test)
    if pairs and high < threshold:
        return Check("agreement", "fail", value, (low, high), threshold, 0, test)
    rate = value if value is not None else 1.0  # before any pair: what a perfect canary needs
    if rate > threshold:
        total = _smallest(lambda n: wilson_interval(rate * n, n, z)[0] >= threshold, max(pairs, 1))
    elif rate < threshold:
        total = _smallest(lambda n: wilson_interval(rate * n, n, z)[1] < threshold, max(pairs, 1))
    else:
        total = MAX_NEEDED
    return Check("agreement", "wait", value, (low, high), threshold, max(1, total - pairs), test)


def error_check(canary_errors: int, canary_n: int, stable_errors: int, stable_n: int, policy: ReleasePolicy) -> Check:
    """Canary error rate minus stable's against ``policy.max_error_increase`` (Newcombe)."""
    z, margin = _z(policy.confidence), policy.max_error_increase
    low, high = newcombe_interval(canary_errors, canary_n, stable_errors, stable_n, z)
    test = f"Newcombe score interval of the difference, one-sided at {policy.confidence:.0%}"
    value = (canary_errors / canary_n - (stable_errors / stable_n if stable_n else 0.0)) if canary_n else None
    if canary_n and stable_n and high <= margin:
        return Check("error_rate", "pass", value, (low, high), margin, 0, test)
    if canary_n and stable_n and low > margin:
        return Check("error_rate", "fail", value, (low, high), margin, 0, test)
    pc = canary_errors / canary_n if canary_n else 0.0
    ps = stable_errors / stable_n if stable_n else 0.0
    # scale both samples by s (the canary's count becomes s); the stable one keeps its ratio
    ratio = stable_n / canary_n if canary_n and stable_n else 1.0

    def decided(s: float) -> bool:
        lo, hi = newcombe_interval(pc * s, s, ps * s * ratio, s * ratio, z)
        return hi <= margin or lo > margin

    total = _smallest(decided, max(canary_n, 1)) if pc - ps != margin else MAX_NEEDED
    return Check("error_rate", "wait", value, (low, high), margin, max(1, total - canary_n), test)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def latency_check(canary_ms: list[float], stable_ms: list[float], policy: ReleasePolicy) -> Check:
    """Canary p99 over stable p99, once each has ``policy.min_latency_samples`` round trips."""
    need = policy.min_latency_samples
    test = f"p99 ratio of Triton round trips, judged from {need} per version (a rule, not a test)"
    if len(canary_ms) < need or len(stable_ms) < need:
        more = max(need - len(canary_ms), need - len(stable_ms), 0)
        value = _p99(canary_ms) / _p99(stable_ms) if canary_ms and stable_ms and _p99(stable_ms) > 0 else None
        return Check("p99_ratio", "wait", value, None, policy.max_p99_ratio, more, test)
    ratio = _p99(canary_ms) / max(_p99(stable_ms), 1e-9)
    state: State = "pass" if ratio <= policy.max_p99_ratio else "fail"
    return Check("p99_ratio", state, ratio, None, policy.max_p99_ratio, 0, test)


def judge(checks: list[Check]) -> Verdict:
    """Rollback if any check fails, promote if all pass, else hold."""
    if any(c.state == "fail" for c in checks):
        return Verdict("rollback", checks)
    if all(c.state == "pass" for c in checks):
        return Verdict("promote", checks)
    return Verdict("hold", checks)
