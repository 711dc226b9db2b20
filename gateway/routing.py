"""``model=auto``: pick a catalog model by a declared policy.

Policy ("most accurate within the latency budget, else the fastest"):

1. Candidates are the catalog models that are ready in Triton and declare both
   ``top1_accuracy`` and ``gflops`` in models.yaml.
2. Each candidate's *expected latency* is what this gateway measured for it: the median of
   its last ``window`` per-image Triton round trips on cache misses, once ``min_samples`` are
   in. A median, not a mean: one caller's few costly images (huge or slow-to-decode uploads)
   must not move ``auto`` for everyone — an exponentially weighted mean jumped by a fifth of
   every outlier; the median moves only when most recent images got slower. Before
   ``min_samples`` it is ``served_gflops × ms_per_gflop`` (``gflops``, times the INT8
   format's ``quantization.relative_cost`` when the model serves ``onnx_int8``), where
   ``ms_per_gflop`` is calibrated from the models already measured (their median ms/GFLOP),
   else the configured prior.
3. With a budget (header ``X-Latency-Budget-Ms``, else ``GATEWAY_AUTO_BUDGET_MS``): the most
   accurate candidate whose expected latency fits the budget; if none fits, the fastest.
   Without a budget: the most accurate candidate. Ties go to the faster model.

A committee (models.yaml ``committees:``) costs the sum of its members' ``served_gflops``
and is a candidate only if it declares a ``top1_accuracy`` (none does by default: a committee
of demo or unmeasured members has no accuracy to weigh that cost against).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from visionserve.catalog import Catalog

__all__ = ["AutoRouter", "Choice", "LatencyEstimate"]


@dataclass(frozen=True)
class LatencyEstimate:
    """A model's expected latency and where the number comes from."""

    model: str
    expected_ms: float
    measured: bool


@dataclass(frozen=True)
class Choice:
    """The chosen model and a one-line reason (logged and documented)."""

    model: str
    reason: str
    expected_ms: float


class AutoRouter:
    """Chooses models for ``auto`` and learns their latency.

    Args:
        catalog: the model catalog (accuracy and GFLOPs per model).
        ms_per_gflop: prior cost before anything is measured.
        window: recent samples per model the median is taken over (older ones age out).
        min_samples: samples before a measurement replaces the estimate.
    """

    def __init__(self, catalog: Catalog, *, ms_per_gflop: float = 10.0, window: int = 31, min_samples: int = 3):
        self._catalog = catalog
        self._prior = ms_per_gflop
        self._window = window
        self._min_samples = min_samples
        self._samples: dict[str, deque[float]] = {}
        self._median: dict[str, float] = {}

    @property
    def eligible(self) -> list[str]:
        """Catalog models the policy can pick (they declare accuracy and GFLOPs)."""
        return [
            spec.name
            for spec in self._catalog.served.values()
            if spec.top1_accuracy is not None and spec.gflops is not None
        ]

    def observe(self, model: str, latency_ms: float) -> None:
        """Record one measured per-image Triton round trip of ``model``."""
        if not latency_ms >= 0 or model not in self._catalog.served:  # NaN too
            return
        samples = self._samples.setdefault(model, deque(maxlen=self._window))
        samples.append(latency_ms)
        self._median[model] = statistics.median(samples)  # ≤ 31 values: microseconds

    def _measured(self, model: str) -> float | None:
        if len(self._samples.get(model, ())) >= self._min_samples:
            return self._median[model]
        return None

    def ms_per_gflop(self) -> float:
        """Calibrated cost per GFLOP: the median over measured models, else the prior."""
        ratios = []
        for name in self.eligible:
            measured = self._measured(name)
            gflops = self._catalog.served[name].served_gflops
            if measured is not None and gflops:
                ratios.append(measured / gflops)
        return statistics.median(ratios) if ratios else self._prior

    def estimate(self, model: str) -> LatencyEstimate:
        """Expected latency of ``model``: measured, else derived from its GFLOPs."""
        measured = self._measured(model)
        if measured is not None:
            return LatencyEstimate(model, measured, True)
        gflops = self._catalog.served[model].served_gflops or 0.0
        return LatencyEstimate(model, gflops * self.ms_per_gflop(), False)

    def choose(self, ready: Iterable[str], budget_ms: float | None) -> Choice | None:
        """Apply the policy to the ready models; None when no candidate is ready."""
        ready_set = set(ready)
        candidates = [self.estimate(m) for m in self.eligible if m in ready_set]
        if not candidates:
            return None
        accuracy = {m: self._catalog.served[m].top1_accuracy or 0.0 for m in self.eligible}

        def most_accurate(pool: list[LatencyEstimate]) -> LatencyEstimate:
            return max(pool, key=lambda e: (accuracy[e.model], -e.expected_ms))

        if budget_ms is None:
            best = most_accurate(candidates)
            return Choice(best.model, "most accurate ready model (no latency budget)", best.expected_ms)
        fitting = [e for e in candidates if e.expected_ms <= budget_ms]
        if fitting:
            best = most_accurate(fitting)
            return Choice(
                best.model,
                f"most accurate model expected within {budget_ms:g} ms (~{best.expected_ms:.1f} ms)",
                best.expected_ms,
            )
        fastest = min(candidates, key=lambda e: (e.expected_ms, -accuracy[e.model]))
        return Choice(
            fastest.model,
            f"no model expected within {budget_ms:g} ms; fastest (~{fastest.expected_ms:.1f} ms)",
            fastest.expected_ms,
        )
