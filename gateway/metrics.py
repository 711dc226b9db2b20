"""The gateway's Prometheus metrics, exposed on BentoML's ``/metrics`` with its own.

BentoML runs each worker with ``PROMETHEUS_MULTIPROC_DIR`` set and serves the multiprocess
registry at ``/metrics``; metrics created with ``prometheus_client`` in the worker land there.
They are created on first use (not at import) so that the worker's environment is in place,
and once per process (Prometheus refuses duplicate names).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "GatewayMetrics", "get_metrics"]

#: From well under a cache hit (~1 ms) to slow CPU inference (seconds).
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
_NS = "visionserve_gateway"


class GatewayMetrics:
    """Every metric the gateway reports.

    Attributes:
        request_seconds: end-to-end latency of classification requests, by endpoint, model,
            HTTP status and whether the answer came from the cache.
        triton_seconds: Triton round trips (cache misses), by model.
        cache: cache lookups by model and result (``hit`` / ``miss``).
        cache_errors: failed Redis operations (the request was served without the cache).
        triton_errors: failed Triton calls, by model and kind (``unavailable``, ``not_found``,
            ``inference``).
        rate_limited: requests refused with 429, by kind of bucket (``key``, ``anonymous``).
        uploads_rejected: uploads refused by the checks, by error code.
        history_rows: history rows by outcome (``written``, ``failed``, ``dropped``).
        served_version: the version each ensemble serves, as this worker last saw it.
        release_answers: answers during a release, by model, version, route (``stable``,
            ``weight``, ``pin``, ``shadow``) and status: each version's error rate.
        release_triton_seconds: Triton round trips during a release, by model and version.
        shadow_pairs: shadow comparisons by model and result (``agree``, ``disagree``,
            ``error``): the top-1 agreement is agree / (agree + disagree).
        shadow_confidence_delta: |canary top-1 confidence − stable's| per shadow pair.
        shadow_dropped: shadow requests dropped because the queue was full, by model.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        reg = registry if registry is not None else REGISTRY
        self.request_seconds = Histogram(
            f"{_NS}_request_seconds",
            "Classification request latency (s).",
            ["endpoint", "model", "status", "cached"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.triton_seconds = Histogram(
            f"{_NS}_triton_seconds",
            "Triton round-trip latency on cache misses (s).",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.cache = Counter(f"{_NS}_cache_lookups", "Cache lookups.", ["model", "result"], registry=reg)
        self.cache_errors = Counter(f"{_NS}_cache_errors", "Failed Redis operations.", ["op"], registry=reg)
        self.triton_errors = Counter(f"{_NS}_triton_errors", "Failed Triton calls.", ["model", "kind"], registry=reg)
        self.rate_limited = Counter(f"{_NS}_rate_limited", "Requests refused with 429.", ["bucket"], registry=reg)
        self.uploads_rejected = Counter(
            f"{_NS}_uploads_rejected", "Uploads refused by the checks.", ["code"], registry=reg
        )
        self.history_rows = Counter(f"{_NS}_history_rows", "History rows by outcome.", ["result"], registry=reg)
        self.release_answers = Counter(
            f"{_NS}_release_answers",
            "Answers during a release by version and route.",
            ["model", "version", "route", "status"],
            registry=reg,
        )
        self.release_triton_seconds = Histogram(
            f"{_NS}_release_triton_seconds",
            "Triton round trips during a release, per version (s).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.shadow_pairs = Counter(f"{_NS}_shadow_pairs", "Shadow comparisons.", ["model", "result"], registry=reg)
        self.shadow_confidence_delta = Histogram(
            f"{_NS}_shadow_confidence_delta",
            "|canary top-1 confidence - stable top-1 confidence| per shadow pair.",
            ["model"],
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=reg,
        )
        self.shadow_dropped = Counter(
            f"{_NS}_shadow_dropped", "Shadow requests dropped (queue full).", ["model"], registry=reg
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.served_version = Gauge(
            f"{_NS}_served_version",
            "Served version per ensemble.",
            ["model"],
            multiprocess_mode="livemax",
            registry=reg,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoised (label values here come from bounded sets)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


@lru_cache(maxsize=1)
def get_metrics() -> GatewayMetrics:
    """The process's metrics (created on first call)."""
    return GatewayMetrics()
