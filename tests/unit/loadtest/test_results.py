"""Reading Locust's CSV report and judging a run against thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.results import Thresholds, evaluate, format_summary, read_failures, read_stats

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
          "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
          "99.99%,100%")  # fmt: skip


def _stats(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "locust_stats.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _row(name: str, requests: int, failures: int, p95: str, kind: str = "grpc") -> str:
    times = f"40,45.0,10.0,300.0,240.0,20.5,0.0,40,50,60,70,80,{p95},200,250,300,300,300"
    return f"{kind},{name},{requests},{failures},{times}"


def test_rows_are_read_with_the_aggregate_last(tmp_path: Path) -> None:
    rows = read_stats(_stats(tmp_path, _row("Aggregated", 30, 3, "120", kind=""), _row("resnet18 fresh", 30, 3, "120")))
    assert [r.name for r in rows] == ["resnet18 fresh", "Aggregated"]
    total = rows[-1]
    assert (total.requests, total.failures, total.p95_ms, total.p99_ms) == (30, 3, 120.0, 250.0)
    assert total.error_rate == pytest.approx(0.1)


def test_a_clean_run_passes(tmp_path: Path) -> None:
    rows = read_stats(_stats(tmp_path, _row("Aggregated", 30, 0, "120", kind="")))
    assert evaluate(rows, Thresholds(max_error_rate=0.0, max_p95_ms=150)) == []


def test_errors_and_latency_over_the_limits_fail(tmp_path: Path) -> None:
    rows = read_stats(_stats(tmp_path, _row("Aggregated", 30, 3, "120", kind="")))
    problems = evaluate(rows, Thresholds(max_error_rate=0.05, max_p95_ms=100))
    assert len(problems) == 2
    assert "error rate 10.00%" in problems[0] and "p95 120 ms" in problems[1]
    assert evaluate(rows, Thresholds(max_error_rate=0.1)) == []  # at the limit is within it


def test_no_requests_fails_even_without_limits(tmp_path: Path) -> None:
    na = ",Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A"
    rows = read_stats(_stats(tmp_path, na))
    assert evaluate(rows, Thresholds(max_error_rate=1.0)) == [
        "no requests were made (is the target up, and the host right?)"
    ]
    assert "-" in format_summary(rows)  # N/A percentiles render as '-'


def test_failures_are_read_most_frequent_first(tmp_path: Path) -> None:
    path = tmp_path / "locust_failures.csv"
    path.write_text("Method,Name,Error,Occurrences\nPOST,a,HTTP 500,2\ngrpc,b,wrong answer: x,9\n")
    failures = read_failures(path)
    assert [f.occurrences for f in failures] == [9, 2]
    assert read_failures(tmp_path / "missing.csv") == []
    summary = format_summary([], failures)
    assert "9 × b: wrong answer: x" in summary
