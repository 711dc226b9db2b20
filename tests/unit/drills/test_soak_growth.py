"""The soak's memory-growth figure: medians of the first and last tenth after warm-up."""

from __future__ import annotations

import pytest

from drills.soak import growth


def test_a_steady_leak_shows_almost_in_full() -> None:
    samples = [(float(t), 100 + t) for t in range(0, 101)]  # +1 byte a second from 100
    assert growth(samples, 0.0, 100.0) == pytest.approx((195 / 105) - 1, rel=1e-6)


def test_one_transient_spike_is_not_growth() -> None:
    samples = [(float(t), 1000) for t in range(0, 101)]
    samples[98] = (98.0, 5000)  # one sample of a large, freed allocation
    assert growth(samples, 0.0, 100.0) == 0.0


def test_no_samples_in_a_window_is_unmeasured_not_zero() -> None:
    assert growth([(50.0, 1000)], 0.0, 100.0) is None
