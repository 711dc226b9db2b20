"""The verdict's statistics and the figures built from history rows (no services)."""

from __future__ import annotations

import math

import pytest

from gateway.release_figures import figures_from_rows, verdict_of
from gateway.verdict import agreement_check, error_check, latency_check, newcombe_interval, wilson_interval
from visionserve.catalog import ReleasePolicy
from visionserve.release import ReleaseLabels

POLICY = ReleasePolicy()
Z95 = 1.6448536269514722


def test_wilson_matches_the_closed_form_and_is_sound_at_the_edges() -> None:
    low, high = wilson_interval(45, 50, Z95)
    p, n = 0.9, 50
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(50, 50, Z95)[0] == pytest.approx(50 / (50 + Z95**2))  # all agree: n / (n + z²)
    assert wilson_interval(0, 50, Z95)[1] > 0  # no successes still leaves room above 0 (Wald would say 0)


def test_newcombe_difference_contains_the_point_estimate_and_handles_zero_errors() -> None:
    low, high = newcombe_interval(5, 100, 1, 100, Z95)
    assert low < 0.04 < high
    low, high = newcombe_interval(0, 539, 0, 539, Z95)
    assert low < 0 < high <= 0.005


def test_agreement_minimum_samples_and_decisions() -> None:
    assert agreement_check(51, 51, POLICY).state == "wait"
    assert agreement_check(52, 52, POLICY).state == "pass"  # the stated minimum sample of a promote
    assert agreement_check(0, 0, POLICY).needed == 52
    fail = agreement_check(1, 10, POLICY)
    assert fail.state == "fail" and fail.bound[1] < 0.95  # type: ignore[index]
    wait = agreement_check(29, 30, POLICY)  # 0.967 seen: more pairs would decide it
    assert wait.state == "wait" and wait.needed > 0
    assert agreement_check(29 + wait.needed, 30 + wait.needed, POLICY).state == "pass"


def test_error_rate_minimum_samples_and_rollback() -> None:
    assert error_check(0, 538, 0, 538, POLICY).state == "wait"
    assert error_check(0, 539, 0, 539, POLICY).state == "pass"
    assert error_check(0, 0, 0, 0, POLICY).needed == 539
    assert error_check(20, 200, 0, 200, POLICY).state == "fail"  # 10 % errors against none


def test_latency_needs_samples_per_version_then_compares_p99() -> None:
    fast, slow = [10.0] * 200, [10.0] * 190 + [100.0] * 10
    assert latency_check(fast[:199], fast, POLICY).state == "wait"
    assert latency_check(fast[:199], fast, POLICY).needed == 1
    assert latency_check(fast, fast, POLICY).state == "pass"
    check = latency_check(slow, fast, POLICY)
    assert check.state == "fail" and check.value == pytest.approx(10.0)


def _row(rid: str, digest: str, version: int, route: str | None, label: str, score: float, ms: float | None = 5.0):
    return (rid, digest, version, route, "ok", [{"label": label, "index": 0, "score": score}], ms)


def test_figures_pair_shadow_rows_with_their_stable_row_and_count_flips() -> None:
    labels = ReleaseLabels(stable=1, canary=2, weight=0.0, shadow=1.0, release_id="r", started="")
    rows = [
        _row("a", "x", 1, "stable", "cat", 0.9), _row("a", "x", 2, "shadow", "cat", 0.8),
        _row("b", "y", 1, "stable", "dog", 0.7), _row("b", "y", 2, "shadow", "fox", 0.6),
        _row("c", "z", 1, "stable", "dog", 0.5), _row("c", "z", 2, "shadow", "fox", 0.5),
        ("d", "w", 2, "shadow", "error", [], None),
        ("e", "v", 1, "stable", "rejected", [], None),
    ]  # fmt: skip
    figures = figures_from_rows("m", labels, rows)
    assert len(figures.pairs) == 3 and figures.agree == 1
    assert figures.flips() == [("dog", "fox", 2)]
    mean, p95 = figures.confidence_change()
    assert mean == pytest.approx((-0.1 - 0.1 + 0.0) / 3) and p95 == pytest.approx(0.1)
    assert (figures.canary.answers, figures.canary.errors) == (3, 1)
    assert (figures.stable.answers, figures.stable.errors) == (3, 0)  # a rejected upload counts for neither
    assert verdict_of(figures, POLICY).decision == "rollback"


def test_figures_in_a_split_pair_images_both_versions_answered() -> None:
    labels = ReleaseLabels(stable=1, canary=2, weight=0.5, shadow=0.0, release_id="r", started="")
    rows = [_row("a", "x", 1, "stable", "cat", 0.9), _row("b", "x", 2, "weight", "cat", 0.9),
            _row("c", "y", 2, "weight", "dog", 0.9)]  # fmt: skip
    figures = figures_from_rows("m", labels, rows)
    assert [(p.stable_label, p.canary_label) for p in figures.pairs] == [("cat", "cat")]
