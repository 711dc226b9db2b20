"""The abuse drills' comparison: pooled p99 ratio, per-round ratios, bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest

from drills.abuse import Comparison


def _latencies(seed: int, scale: float, n: int = 300) -> list[float]:
    return list(np.random.default_rng(seed).gamma(4.0, scale, n))


def test_equal_sides_give_a_ratio_near_one_with_an_interval_around_it() -> None:
    c = Comparison([_latencies(1, 0.01), _latencies(2, 0.01)], [_latencies(3, 0.01), _latencies(4, 0.01)])
    low, high = c.interval()
    assert low < 1.0 < high and high - low < 0.6
    assert 0.8 < c.ratio < 1.25 and len(c.per_round()) == 2


def test_a_slower_abuse_side_shows_in_ratio_interval_and_rounds() -> None:
    c = Comparison([_latencies(1, 0.01)], [_latencies(2, 0.02)])
    assert c.ratio == pytest.approx(2.0, rel=0.25)
    assert c.interval()[0] > 1.2
    assert "per round" in c.text() and "n=300" in c.text()
