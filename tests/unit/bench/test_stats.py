"""Throughput, percentiles and ratios of bench.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stats import percentile_ms, ratio, summarize


def test_summarize_counts_images_over_the_window_and_reports_ms() -> None:
    latencies = [0.010, 0.020, 0.030, 0.040, 0.100]
    m = summarize(latencies, 2.0, label="triton_grpc", model="resnet18", concurrency=4, errors=1)
    assert (m.requests, m.images, m.errors) == (5, 5, 1)
    assert m.throughput == pytest.approx(2.5)
    assert m.p50_ms == pytest.approx(30.0)
    assert m.p99_ms == pytest.approx(np.percentile(latencies, 99) * 1000)
    assert 90 < m.p99_ms <= 100
    assert m.mean_ms == pytest.approx(40.0)


def test_summarize_batches_count_every_image() -> None:
    m = summarize([0.5, 0.5], 1.0, label="in_process", model="m", concurrency=8, images_per_request=8)
    assert m.images == 16
    assert m.throughput == pytest.approx(16.0)


def test_summarize_of_nothing_is_zero_throughput_and_nan_latency() -> None:
    m = summarize([], 3.0, label="x", model="m", concurrency=1)
    assert m.throughput == 0.0
    assert math.isnan(m.p50_ms) and math.isnan(m.p99_ms) and math.isnan(m.mean_ms)


@pytest.mark.parametrize("window_s, per_request", [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_summarize_refuses_nonsense(window_s: float, per_request: int) -> None:
    with pytest.raises(ValueError):
        summarize([0.1], window_s, label="x", model="m", concurrency=1, images_per_request=per_request)


def test_percentile_interpolates_linearly() -> None:
    assert percentile_ms([0.0, 1.0], 50) == pytest.approx(500.0)
    assert math.isnan(percentile_ms([], 99))


@pytest.mark.parametrize(
    "a, b, expected",
    [(9.0, 10.0, 0.9), (30.0, 10.0, 3.0), (1.0, 0.0, None), (None, 1.0, None), (1.0, None, None),
     (math.nan, 1.0, None), (1.0, math.nan, None)],
)  # fmt: skip
def test_ratio(a: float | None, b: float | None, expected: float | None) -> None:
    got = ratio(a, b)
    assert got == (pytest.approx(expected) if expected is not None else None)
