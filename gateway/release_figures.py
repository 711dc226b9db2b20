"""A release's live figures, computed from the history rows written since it started.

Why the history database (not Redis): every gateway worker and replica already writes one row
per answer there, shadow answers included (route ``shadow``), so the figures need no second
write on the request path; the database is always present (Redis is optional), shared by all
workers, survives restarts, and a row can be read back to see why a figure is what it is.
docs/decisions.md ("Release verdicts") has the rest.

* Populations: the stable version's rows (routes ``stable``/``pin``) and the canary's (routes
  ``weight``/``pin``/``shadow``). Error rate = 5xx outcomes / (answers + 5xx); a rejected
  upload (4xx) is the caller's fault and counts for neither.
* Pairs: a shadow row with the stable row of the same request and image; in a weighted split
  without shadow, the first answer of each version for the same image (same bytes).
* Latency: ``upstream_ms`` (Triton's round trip) of the rows that went to Triton.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.db import ClassificationRecord
from gateway.verdict import Verdict, agreement_check, error_check, judge, latency_check
from visionserve.catalog import ReleasePolicy
from visionserve.release import ReleaseLabels

__all__ = ["Pair", "ReleaseFigures", "VersionFigures", "figures_from_rows", "read_figures", "verdict_of"]


@dataclass
class VersionFigures:
    """One version's population."""

    version: int
    answers: int = 0
    errors: int = 0
    upstream_ms: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        total = self.answers + self.errors
        return self.errors / total if total else None

    def quantile_ms(self, q: float) -> float | None:
        if not self.upstream_ms:
            return None
        ordered = sorted(self.upstream_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Pair:
    """The top-1 of each version for one image."""

    stable_label: str
    stable_score: float
    canary_label: str
    canary_score: float


@dataclass
class ReleaseFigures:
    """Everything ``release status`` prints, and what the verdict is computed from."""

    model: str
    labels: ReleaseLabels
    stable: VersionFigures
    canary: VersionFigures
    pairs: list[Pair] = field(default_factory=list)

    @property
    def agree(self) -> int:
        return sum(p.stable_label == p.canary_label for p in self.pairs)

    @property
    def agreement(self) -> float | None:
        return self.agree / len(self.pairs) if self.pairs else None

    def confidence_change(self) -> tuple[float | None, float | None]:
        """(mean of canary − stable top-1 confidence, p95 of its absolute value) over the pairs."""
        if not self.pairs:
            return None, None
        deltas = [p.canary_score - p.stable_score for p in self.pairs]
        absolute = sorted(abs(d) for d in deltas)
        return sum(deltas) / len(deltas), absolute[min(len(absolute) - 1, math.ceil(0.95 * len(absolute)) - 1)]

    def flips(self, top: int = 5) -> list[tuple[str, str, int]]:
        """The most frequent (stable label → canary label) changes of top-1."""
        counts = Counter((p.stable_label, p.canary_label) for p in self.pairs if p.stable_label != p.canary_label)
        return [(a, b, n) for (a, b), n in counts.most_common(top)]


def _top1(predictions: list[dict]) -> tuple[str, float] | None:
    if not predictions:
        return None
    best = predictions[0]
    return str(best["label"]), float(best["score"])


def figures_from_rows(model: str, labels: ReleaseLabels, rows: list[tuple]) -> ReleaseFigures:
    """Figures from ``(request_id, image_sha256, version, route, status, predictions, upstream_ms)`` rows."""
    assert labels.canary is not None
    stable, canary = VersionFigures(labels.stable), VersionFigures(labels.canary)
    answered: dict[int, dict[str, tuple[str, float]]] = {labels.stable: {}, labels.canary: {}}
    by_request: dict[tuple[str, str], tuple[str, float]] = {}
    shadows: list[tuple[tuple[str, str], tuple[str, float]]] = []
    for request_id, digest, version, route, status, predictions, upstream_ms in rows:
        figures = stable if version == labels.stable else canary if version == labels.canary else None
        if figures is None or status == "rejected":
            continue
        if status == "error":
            figures.errors += 1
            continue
        figures.answers += 1
        if upstream_ms is not None:
            figures.upstream_ms.append(float(upstream_ms))
        top = _top1(predictions or [])
        if top is None:
            continue
        answered[version].setdefault(digest, top)
        if route == "shadow":
            shadows.append(((request_id, digest), top))
        elif version == labels.stable:
            by_request[(request_id, digest)] = top
    pairs: list[Pair] = []
    if shadows:
        for key, canary_top in shadows:
            stable_top = by_request.get(key)
            if stable_top is not None:
                pairs.append(Pair(*stable_top, *canary_top))
    else:
        for digest, canary_top in answered[labels.canary].items():
            stable_top = answered[labels.stable].get(digest)
            if stable_top is not None:
                pairs.append(Pair(*stable_top, *canary_top))
    return ReleaseFigures(model, labels, stable, canary, pairs)


def read_figures(engine: Engine, model: str, labels: ReleaseLabels) -> ReleaseFigures:
    """The figures of the release ``labels`` describes, from the history since it started."""
    assert labels.canary is not None
    started = datetime.fromisoformat(labels.started).replace(tzinfo=None) if labels.started else datetime.min
    rec = ClassificationRecord
    query = (
        select(rec.request_id, rec.image_sha256, rec.version, rec.route, rec.status, rec.predictions, rec.upstream_ms)
        .where(rec.model == model, rec.created_at >= started, rec.version.in_([labels.stable, labels.canary]))
        .order_by(rec.created_at)
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    return figures_from_rows(model, labels, rows)


def verdict_of(figures: ReleaseFigures, policy: ReleasePolicy) -> Verdict:
    """Judge the figures (``gateway.verdict``)."""
    s, c = figures.stable, figures.canary
    return judge(
        [
            agreement_check(figures.agree, len(figures.pairs), policy),
            error_check(c.errors, c.answers + c.errors, s.errors, s.answers + s.errors, policy),
            latency_check(c.upstream_ms, s.upstream_ms, policy),
        ]
    )
