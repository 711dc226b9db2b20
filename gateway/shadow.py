"""Shadow traffic: after the stable answer is sent, the same images also go to the canary.

The request path only *offers* a job (``offer``: a ``put_nowait`` on a bounded
``asyncio.Queue``; when it is full the job is dropped and counted in
``visionserve_gateway_shadow_dropped``), so the caller never waits for the canary and never
sees its answer. One background task per worker runs the jobs one at a time, and starts one
only while no request-path Triton call of this worker is in flight (waiting at most
``max_wait_s``), so shadow work fills the gaps between requests rather than competing with
them. Each canary answer becomes a history row with route ``shadow`` (same request id and
image digest as the stable row it pairs with: what ``gateway.release_figures`` joins on) and
feeds the shadow metrics. Canary answers are not cached: they are for comparison only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from client import ClientError
from gateway.background import LoopTask
from gateway.classify import Answer, ClassifyRequest, TritonClassifier
from gateway.db import utcnow
from gateway.history import HistoryRow, HistoryWriter
from gateway.metrics import GatewayMetrics
from visionserve.catalog import Catalog
from visionserve.release import ReleaseLabels

__all__ = ["ShadowJob", "ShadowQueue"]

log = logging.getLogger("visionserve.gateway.shadow")


class _Busy(Protocol):
    inflight: int


@dataclass(frozen=True)
class ShadowJob:
    """The images of one request that stable answered, to ask the canary about."""

    req: ClassifyRequest
    model: str
    canary_ensemble: str
    canary: int
    images: tuple[bytes, ...]
    digests: tuple[str, ...]
    stable: tuple[Answer, ...]
    queued_s: float


class ShadowQueue:
    """Bounded queue + one background task that shadows stable answers to the canary.

    Args:
        catalog: the model catalog (the canary ensemble's name).
        triton: the worker's Triton client.
        history: where the shadow rows go.
        metrics: the process's metrics.
        busy: what counts the request path's Triton calls in flight (the classifier).
        max_jobs: jobs waiting at most; more are dropped and counted.
        max_wait_s: how long a job waits for the request path to be idle before it runs anyway.
        sample: a uniform [0, 1) source deciding which requests a fractional shadow takes.
    """

    def __init__(
        self,
        catalog: Catalog,
        triton: TritonClassifier,
        history: HistoryWriter,
        metrics: GatewayMetrics,
        busy: _Busy,
        *,
        max_jobs: int = 256,
        max_wait_s: float = 0.5,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self._catalog = catalog
        self._triton = triton
        self._history = history
        self._metrics = metrics
        self._busy = busy
        self._max_wait_s = max_wait_s
        self._sample = sample
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=max_jobs)
        self._task = LoopTask("shadow")
        self.done = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def offer(
        self, req: ClassifyRequest, model: str, release: ReleaseLabels, answered: list[tuple[bytes, str, Answer]]
    ) -> None:
        """Queue a shadow of these stable answers (a share ``release.shadow`` of requests); never blocks."""
        if release.canary is None or not answered or (release.shadow < 1.0 and self._sample() >= release.shadow):
            return
        job = ShadowJob(
            req,
            model,
            self._catalog.models[model].canary_ensemble,
            release.canary,
            tuple(data for data, _, _ in answered),
            tuple(digest for _, digest, _ in answered),
            tuple(answer for _, _, answer in answered),
            time.perf_counter(),
        )
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.child(self._metrics.shadow_dropped, model).inc()

    def start(self) -> None:
        self._task.start(self._run)

    async def close(self) -> None:
        """Stop the task; jobs still queued are dropped (and counted)."""
        await self._task.cancel()
        while not self._queue.empty():
            job = self._queue.get_nowait()
            self._metrics.child(self._metrics.shadow_dropped, job.model).inc()

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            await self._idle()
            try:
                await self.run(job)
            except Exception:  # noqa: BLE001 - a shadow must never stop the loop
                log.exception("shadow of %s failed", job.model)

    async def _idle(self) -> None:
        deadline = time.perf_counter() + self._max_wait_s
        while self._busy.inflight > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)

    async def run(self, job: ShadowJob) -> None:
        """Ask the canary about one job's images; record one ``shadow`` row per image."""
        top_k = job.req.top_k
        started = time.perf_counter()
        try:
            results = await self._triton.classify_batch(
                list(job.images), job.canary_ensemble, top_k=top_k, version=job.canary
            )
            error: str | None = None
        except (ClientError, OSError) as exc:
            results, error = [], f"shadow_failed: {type(exc).__name__}"
        upstream_ms = (time.perf_counter() - started) * 1000.0
        if error is None:
            self._metrics.child(self._metrics.release_triton_seconds, job.model, str(job.canary)).observe(
                upstream_ms / 1000.0
            )
        for i, (digest, stable) in enumerate(zip(job.digests, job.stable, strict=True)):
            result = results[i] if error is None else None
            predictions = list(result.predictions) if result is not None else []
            self._compare(job.model, stable, predictions)
            status = "ok" if result is not None else "error"
            self._metrics.child(self._metrics.release_answers, job.model, str(job.canary), "shadow", status).inc()
            self._history.add(
                HistoryRow(
                    id=uuid.uuid4().hex,
                    request_id=job.req.request_id,
                    created_at=utcnow(),
                    user=job.req.caller.user,
                    key_id=job.req.caller.key_id,
                    model=job.model,
                    version=int(result.version) if result is not None else job.canary,
                    image_sha256=digest,
                    top_k=top_k,
                    predictions=predictions,
                    latency_ms=(time.perf_counter() - job.queued_s) * 1000.0,
                    cached=False,
                    status=status,
                    http_status=200 if result is not None else 502,
                    error=error,
                    route="shadow",
                    upstream_ms=upstream_ms if result is not None else None,
                )
            )
        self.done += 1

    def _compare(self, model: str, stable: Answer, canary: list) -> None:  # noqa: ANN001
        if not canary or not stable.predictions:
            self._metrics.child(self._metrics.shadow_pairs, model, "error").inc()
            return
        agree = canary[0].label == stable.predictions[0].label
        self._metrics.child(self._metrics.shadow_pairs, model, "agree" if agree else "disagree").inc()
        delta = abs(canary[0].score - stable.predictions[0].score)
        self._metrics.child(self._metrics.shadow_confidence_delta, model).observe(delta)
