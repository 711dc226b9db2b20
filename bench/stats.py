"""Throughput, percentiles and ratios: the arithmetic every benchmark reports.

Latencies are per request (client side, wall clock); throughput counts images completed in
the measurement window divided by its length, so warm-up and the drain after the window are
excluded from both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Measurement", "percentile", "percentile_ms", "ratio", "summarize"]


@dataclass(frozen=True)
class Measurement:
    """One benchmark cell: a path (e.g. Triton direct) for one model at one concurrency.

    Args:
        label: what was measured, e.g. ``"triton_grpc"``.
        model: the catalog model.
        concurrency: requests in flight (client side); for in-process runs, the batch size.
        requests: requests completed inside the measurement window.
        images: images those requests carried.
        errors: failed requests inside the window (excluded from the latencies).
        window_s: length of the measurement window.
        throughput: images per second.
        p50_ms / p99_ms / mean_ms: request latency.
        cpu_ms: CPU milliseconds per request by role (``bench.cpu``) over the window; empty
            when the run was not metered.
    """

    label: str
    model: str
    concurrency: int
    requests: int
    images: int
    errors: int
    window_s: float
    throughput: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, in their unit, linear interpolation; NaN when empty.

    The one percentile every benchmark and drill reports, so that their p50/p99 agree on method.
    """
    if not len(values):
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of latencies in seconds, in milliseconds; NaN when empty."""
    return percentile(latencies_s, q) * 1000.0


def summarize(
    latencies_s: Sequence[float],
    window_s: float,
    *,
    label: str,
    model: str,
    concurrency: int,
    errors: int = 0,
    images_per_request: int = 1,
    cpu_s: dict[str, float] | None = None,
) -> Measurement:
    """A Measurement from the latencies of the requests completed inside a window.

    ``cpu_s`` is the CPU seconds by role spent during the window; it is reported per request.

    Raises:
        ValueError: a non-positive window or batch size.
    """
    if window_s <= 0:
        raise ValueError(f"the measurement window must be > 0 s, got {window_s}")
    if images_per_request < 1:
        raise ValueError(f"images per request must be >= 1, got {images_per_request}")
    count = len(latencies_s)
    images = count * images_per_request
    return Measurement(
        label=label,
        model=model,
        concurrency=concurrency,
        requests=count,
        images=images,
        errors=errors,
        window_s=window_s,
        throughput=images / window_s,
        p50_ms=percentile_ms(latencies_s, 50),
        p99_ms=percentile_ms(latencies_s, 99),
        mean_ms=float(np.mean(latencies_s) * 1000.0) if count else math.nan,
        cpu_ms={role: seconds * 1000.0 / count for role, seconds in (cpu_s or {}).items()} if count else {},
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing, NaN, or the denominator is 0."""
    if numerator is None or denominator is None:
        return None
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return None
    return numerator / denominator
