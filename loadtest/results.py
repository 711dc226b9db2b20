"""Read a Locust run's CSV report, print its summary, and judge it against thresholds.

Locust writes ``<prefix>_stats.csv`` (one row per request name plus ``Aggregated``, with
percentiles already computed) and ``<prefix>_failures.csv``. A run passes when requests were
made, the aggregated error rate is at most ``max_error_rate`` and, when given, the aggregated
95th percentile is at most ``max_p95_ms``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Failure", "StatsRow", "Thresholds", "evaluate", "format_summary", "read_failures", "read_stats"]

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class StatsRow:
    """One line of ``_stats.csv`` (times in ms; NaN where Locust wrote N/A)."""

    type: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "error_rate": self.error_rate}


@dataclass(frozen=True)
class Failure:
    """One line of ``_failures.csv``: a distinct error and how often it happened."""

    method: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits of a run.

    Args:
        max_error_rate: largest acceptable share of failed requests (0 = none may fail).
        max_p95_ms: largest acceptable aggregated 95th percentile; None = no limit.
    """

    max_error_rate: float = 0.0
    max_p95_ms: float | None = None


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_stats(path: Path) -> list[StatsRow]:
    """Rows of a Locust ``_stats.csv``, the ``Aggregated`` row last.

    Raises:
        FileNotFoundError: Locust wrote no report (it did not run).
    """
    rows = []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            rows.append(
                StatsRow(
                    type=rec.get("Type", ""),
                    name=rec.get("Name", ""),
                    requests=int(_number(rec.get("Request Count", "0")) or 0),
                    failures=int(_number(rec.get("Failure Count", "0")) or 0),
                    rps=_number(rec.get("Requests/s", "")),
                    p50_ms=_number(rec.get("50%", "")),
                    p95_ms=_number(rec.get("95%", "")),
                    p99_ms=_number(rec.get("99%", "")),
                    max_ms=_number(rec.get("Max Response Time", "")),
                )
            )
    return sorted(rows, key=lambda r: r.name == AGGREGATED)


def read_failures(path: Path) -> list[Failure]:
    """Rows of a Locust ``_failures.csv``, most frequent first; [] when there is none."""
    try:
        with open(path, newline="") as fh:
            rows = [
                Failure(r.get("Method", ""), r.get("Name", ""), r.get("Error", ""),
                        int(_number(r.get("Occurrences", "0")) or 0))
                for r in csv.DictReader(fh)
            ]  # fmt: skip
    except FileNotFoundError:
        return []
    return sorted(rows, key=lambda f: -f.occurrences)


def aggregated(rows: Sequence[StatsRow]) -> StatsRow | None:
    """The ``Aggregated`` row, if any."""
    return next((r for r in rows if r.name == AGGREGATED), None)


def evaluate(rows: Sequence[StatsRow], thresholds: Thresholds) -> list[str]:
    """Why the run fails its thresholds; [] when it passes.

    Args:
        rows: the run's stats rows.
        thresholds: the limits.

    Returns:
        One sentence per violated limit.
    """
    total = aggregated(rows)
    if total is None or total.requests == 0:
        return ["no requests were made (is the target up, and the host right?)"]
    problems = []
    if total.error_rate > thresholds.max_error_rate:
        problems.append(
            f"error rate {total.error_rate:.2%} ({total.failures} of {total.requests} requests) exceeds "
            f"--max-error-rate {thresholds.max_error_rate:.2%}"
        )
    if thresholds.max_p95_ms is not None and not total.p95_ms <= thresholds.max_p95_ms:
        problems.append(f"p95 {total.p95_ms:.0f} ms exceeds --max-p95-ms {thresholds.max_p95_ms:g}")
    return problems


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def format_summary(rows: Sequence[StatsRow], failures: Sequence[Failure] = (), max_failures: int = 5) -> str:
    """A plain-text table of the run (per request name, then the aggregate) and the top failures."""
    width = max([len(r.name) for r in rows] + [12])
    columns = ("requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms")
    head = f"{'name':<{width}}  {columns[0]:>8}  " + "  ".join(f"{c:>7}" for c in columns[1:])
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.name == AGGREGATED:
            lines.append("-" * len(head))
        rps = "-" if math.isnan(r.rps) else f"{r.rps:.1f}"
        lines.append(
            f"{r.name:<{width}}  {r.requests:>8}  {r.error_rate:>7.1%}  {rps:>7}  "
            f"{_ms(r.p50_ms):>7}  {_ms(r.p95_ms):>7}  {_ms(r.p99_ms):>7}"
        )
    if failures:
        lines += ["", "failures (most frequent first):"]
        for f in failures[:max_failures]:
            lines.append(f"  {f.occurrences:>6} × {f.name}: {f.error[:160]}")
    return "\n".join(lines)
