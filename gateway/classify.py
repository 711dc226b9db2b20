"""The classification flow behind both classify routes, independent of HTTP.

For each image: sniff the bytes, look the answer up under the model's *served* version; on a
miss run the full upload checks, ask Triton (a batch's misses in ONE batched request), cache
the answer under the version Triton reports, and queue one history row — for an answer, a
rejected upload and a failed Triton call alike.

Where the checks run follows what they cost, read from the header (``uploads.assess``: pixels,
scans, compression), not from the upload's size in bytes: a check estimated at a couple of
milliseconds runs on the event loop (the hop to another process would cost more); anything
dearer runs in ``gateway.decode_pool``, whose processes are killed when they overrun. Never a
thread: a thread cannot be stopped, and Pillow's RLE decoder holds the GIL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from client import (
    Classification,
    ClientError,
    InferenceError,
    ModelNotFound,
    ModelReloading,
    Prediction,
    ServerUnavailable,
    VideoClassification,
)
from gateway.admission import Charge
from gateway.auth import Identity
from gateway.cache import CachedAnswer, ResultCache, cache_key
from gateway.db import utcnow
from gateway.decode_pool import DecodePool
from gateway.errors import BadRequest, NotFound, UpstreamError, UpstreamUnavailable
from gateway.history import HistoryRow, HistoryWriter
from gateway.metrics import GatewayMetrics
from gateway.release_assign import KeyAssigner
from gateway.release_routing import Pin, Route, choose_route, running_release
from gateway.routing import AutoRouter
from gateway.uploads import INLINE_MAX_STEPS, CheckTooCostly, UploadPolicy, assess, check_image, sniff
from gateway.versions import VersionTracker
from visionserve.catalog import Catalog
from visionserve.errors import VisionServeError
from visionserve.release import ReleaseLabels
from visionserve.video import Frame

__all__ = [
    "INLINE_HASH_BYTES",
    "Answer",
    "Classifier",
    "ClassifyRequest",
    "ItemOutcome",
    "TritonClassifier",
    "image_digest",
]

log = logging.getLogger("visionserve.gateway.classify")

#: Uploads up to this size are hashed on the event loop (SHA-256 runs at ~1.5 GB/s here: about
#: 1.5 ms at the limit, less than a hop to a thread); larger ones in a thread. hashlib releases
#: the GIL while it hashes, and the work is bounded by the body caps (``max_request_bytes``).
INLINE_HASH_BYTES = 2 * 2**20


async def image_digest(data: bytes) -> str:
    """The SHA-256 (hex) of an upload, computed where it cannot stall the event loop."""
    if len(data) <= INLINE_HASH_BYTES:
        return hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


class ShadowSink(Protocol):
    """Where stable answers go to be shadowed (``gateway.shadow.ShadowQueue`` is one)."""

    def offer(
        self, req: ClassifyRequest, model: str, release: ReleaseLabels, answered: list[tuple[bytes, str, Answer]]
    ) -> None: ...


class TritonClassifier(Protocol):
    """What the image, video and shadow flows ask of Triton (``client.AsyncTritonClient`` is one)."""

    async def classify_batch(
        self, images: Sequence[bytes], model: str, *, top_k: int = ..., version: str | int = ...
    ) -> list[Classification]: ...

    async def classify_frames(
        self, frames: Sequence[Frame], model: str, *, top_k: int, batch_size: int, num_classes: int, duration_s: float
    ) -> VideoClassification: ...


@dataclass(frozen=True)
class ClassifyRequest:
    """One classification request as the flow needs it (not an HTTP request: that is Starlette's).

    Args:
        caller: who asks.
        request_id: the request's id (one for all images of a batch).
        model: a catalog name or ``auto``.
        top_k: classes wanted.
        min_score: drop predictions below this.
        budget_ms: latency budget for ``auto``.
        started_s: ``time.perf_counter()`` when the request arrived.
        pin: the client's ``label=`` / ``version=`` choice during a release.
        charge: takes that many more rate-limit tokens from the caller (429 when too few are
            left); called for an image that misses the cache and costs more than one token to
            decode (``Classifier.decode_ms_per_token``), before it is checked or sent to Triton.
        tta: the test-time augmentation view set asked for (``hflip``), None for none.
    """

    caller: Identity
    request_id: str
    model: str
    top_k: int
    min_score: float
    budget_ms: float | None
    started_s: float
    pin: Pin | None = None
    charge: Charge | None = None
    tta: str | None = None


@dataclass(frozen=True)
class Answer:
    """Predictions for one image (already filtered by ``min_score``), best first.

    ``predictions`` are the client's ``Prediction`` values as Triton's answer carried them: the
    cache, the history row and the response (``schemas.Prediction``, ``from_attributes``) all
    hold these same objects.
    """

    model: str
    version: int
    weights: str | None
    predictions: tuple[Prediction, ...]
    cached: bool
    #: why this version answered during a release (``stable``, ``weight``, ``pin``), else None
    route: str | None = None
    #: the Triton round trip (ms) that produced it; None for a cache hit
    upstream_ms: float | None = None
    #: the test-time augmentation applied, None for none
    tta: str | None = None


@dataclass
class ItemOutcome:
    """One image of a batch: an answer or an error (a VisionServeError with a status)."""

    index: int
    filename: str | None
    answer: Answer | None = None
    error: VisionServeError | None = None
    sha256: str = ""
    data: bytes = field(default=b"", repr=False)


def _triton_error(exc: Exception, model: str, retry_after_s: int) -> tuple[VisionServeError, str]:
    """Map a client failure to what the caller gets, and a metrics label."""
    # Callers get no internal detail (addresses, Triton's messages): that goes to the log.
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(exc, ServerUnavailable):
        return UpstreamUnavailable("the inference server is unavailable; retry later", headers=retry), "unavailable"
    if isinstance(exc, ModelNotFound):
        return UpstreamUnavailable(
            f"model {model!r} is not loaded right now; retry later", code="model_unavailable", headers=retry
        ), "not_found"
    if isinstance(exc, InferenceError) and exc.error_code == 400:
        return BadRequest(f"model {model!r} could not process the image", code="rejected_by_model"), "inference"
    return UpstreamError(f"the inference server failed to classify the image with {model!r}"), "inference"


class Classifier:
    """Runs classifications against the cache, Triton and the history.

    Args:
        catalog: the model catalog.
        triton: the worker's ``client.AsyncTritonClient``.
        cache: the result cache.
        tracker: served versions and readiness.
        router: the ``auto`` policy.
        history: the history writer.
        metrics: the process's metrics.
        policy: the upload limits.
        max_top_k: the largest top_k allowed.
        retry_after_s: ``Retry-After`` of a 503.
        decode_pool: the processes that run costly checks (default: a pool of two, started
            on first use; the caller closes a pool it passes in, ``close`` closes the default).
        default_budget_ms: the budget of ``auto`` when a request gives none (None: no budget).
        shadow: where stable answers are offered for shadowing to a canary (``gateway.shadow``).
        decode_ms_per_token: an image costs one token per this many ms of estimated decode
            (``DecodeCost.tokens``), the first paid at admission; None charges one per image.
        max_tokens: the most one image may cost (the key bucket's burst).
        assigner: which keys get the canary (``gateway.release_assign``; None: by hash).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        triton: TritonClassifier,
        cache: ResultCache,
        tracker: VersionTracker,
        router: AutoRouter,
        history: HistoryWriter,
        metrics: GatewayMetrics,
        policy: UploadPolicy,
        max_top_k: int,
        retry_after_s: int,
        decode_pool: DecodePool | None = None,
        default_budget_ms: float | None = None,
        shadow: ShadowSink | None = None,
        decode_ms_per_token: float | None = None,
        max_tokens: int = 1,
        assigner: KeyAssigner | None = None,
    ) -> None:
        self.catalog = catalog
        self.triton = triton
        self.cache = cache
        self.tracker = tracker
        self.router = router
        self.history = history
        self.metrics = metrics
        self.policy = policy
        self.max_top_k = max_top_k
        self.default_budget_ms = default_budget_ms
        self.retry_after_s = retry_after_s
        self.shadow = shadow
        self.decode_ms_per_token = decode_ms_per_token
        self.max_tokens = max_tokens
        self.assigner = assigner
        #: Triton calls of the request path in flight in this worker
        self.inflight = 0
        self._policy_tag = policy.fingerprint
        self._own_pool = decode_pool is None
        self.decode_pool = decode_pool or DecodePool(policy, retry_after_s=retry_after_s)

    async def close(self) -> None:
        """Stop the decode processes, if this classifier made them."""
        if self._own_pool:
            await self.decode_pool.close()

    # -- model and options --------------------------------------------------------------
    def resolve_model(self, name: str, budget_ms: float | None) -> str:
        """A catalog model name for ``name`` (``auto`` applies the routing policy).

        Raises:
            NotFound: not a catalog model (404).
            UpstreamUnavailable: ``auto`` and no eligible model is ready (503).
        """
        if name == "auto":
            budget = budget_ms if budget_ms is not None else self.default_budget_ms
            choice = self.router.choose(self.tracker.ready_models(), budget)
            if choice is None:
                raise UpstreamUnavailable(
                    "no model is ready for `auto`",
                    code="model_unavailable",
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            return choice.model
        if name not in self.catalog.served:
            raise NotFound(
                f"unknown model; choose one of: auto, {', '.join(self.catalog.served_names)}",  # never echo the input
                code="unknown_model",
            )
        return name

    async def route(self, model: str, req: ClassifyRequest) -> Route:
        """Which pipeline answers ``req`` for ``model`` (``gateway.release_routing``).

        A TTA request goes to the model's ``<name>_<view>`` ensemble, pinned to the served
        (stable) version: a canary has no TTA pipeline, so TTA stays out of release splits.

        Raises:
            BadRequest: the model offers no such TTA (400 ``tta_unavailable``).
        """
        spec = self.catalog.served[model]
        if req.tta is not None:
            if req.tta not in spec.tta:
                offered = ", ".join(spec.tta) or "none"
                raise BadRequest(f"{model} offers no tta={req.tta} (it offers: {offered})", code="tta_unavailable")
            return Route(spec.tta_ensemble(req.tta), self.tracker.served_version(model), None)  # type: ignore[union-attr]
        state = self.tracker.state(spec.ensemble)
        release = running_release(state)
        pinned = req.pin is not None and (req.pin.label is not None or req.pin.version is not None)
        in_canary = None
        if release is not None and not pinned and self.assigner is not None:
            in_canary = await self.assigner.in_canary(release, req.caller.key_id)
        served = self.tracker.served_version(model)
        return choose_route(spec, state, served, req.caller.key_id, req.pin, in_canary)  # type: ignore[arg-type]

    def check_top_k(self, model: str, top_k: int) -> None:
        limit = min(self.max_top_k, self.catalog.served[model].num_classes)
        if top_k > limit:
            raise BadRequest(f"top_k must be at most {limit} for {model}", code="invalid_top_k")

    # -- one image ----------------------------------------------------------------------
    async def classify_one(self, req: ClassifyRequest, data: bytes) -> Answer:
        """Classify one image (cache, checks, Triton) and queue its history row.

        Raises:
            GatewayError / ImageError: what the caller gets (4xx/5xx), after the row is queued.
        """
        model = self.resolve_model(req.model, req.budget_ms)
        self.check_top_k(model, req.top_k)
        route = await self.route(model, req)
        digest = await image_digest(data)
        try:
            fmt = sniff(data, self.policy)
            answer = await self._lookup(model, route, digest, req.top_k, req.tta)
            if answer is None:
                await self._check(data, fmt, req.charge)
                answer = (await self._infer(model, route, [data], [digest], req.top_k, req.tta))[0]
        except VisionServeError as exc:
            self._record(req, model, digest, None, exc, route.reason, route.version if route.reason else None)
            raise
        self._offer_shadow(req, model, route, [(data, digest, answer)])
        answer = self._filtered(answer, req.min_score)
        self._record(req, model, digest, answer, None, answer.route)
        return answer

    # -- a batch ------------------------------------------------------------------------
    async def classify_batch(
        self, req: ClassifyRequest, items: Sequence[tuple[bytes, str | None]]
    ) -> tuple[str, list[ItemOutcome]]:
        """Classify several images with ONE Triton request for the misses; per-image errors.

        Returns:
            The model used and one outcome per image, in order.

        Raises:
            NotFound / BadRequest / UpstreamUnavailable: for the whole request (unknown
            model, bad top_k, nothing ready, or Triton failed every image that needed it).
        """
        model = self.resolve_model(req.model, req.budget_ms)
        self.check_top_k(model, req.top_k)
        route = await self.route(model, req)
        outcomes = [ItemOutcome(i, name, data=data) for i, (data, name) in enumerate(items)]
        formats: dict[int, str] = {}
        for item in outcomes:
            item.sha256 = await image_digest(item.data)
            try:
                formats[item.index] = sniff(item.data, self.policy)
                item.answer = await self._lookup(model, route, item.sha256, req.top_k, req.tta)
            except VisionServeError as exc:
                item.error = exc
        misses = [o for o in outcomes if o.answer is None and o.error is None]
        if misses:
            errors = await asyncio.gather(*(self._check_quietly(o.data, formats[o.index], req.charge) for o in misses))
            for item, error in zip(misses, errors, strict=True):
                item.error = error
            await self._infer_misses(model, route, [o for o in misses if o.error is None], req.top_k, req.tta)
        answered = [(o.data, o.sha256, o.answer) for o in outcomes if o.answer is not None]
        self._offer_shadow(req, model, route, answered)
        for item in outcomes:
            answer = self._filtered(item.answer, req.min_score) if item.answer else None
            item.answer = answer
            asked = route.version if route.reason else None
            self._record(req, model, item.sha256, answer, item.error, answer.route if answer else route.reason, asked)
        failed_upstream = [o for o in outcomes if isinstance(o.error, UpstreamUnavailable)]
        if failed_upstream and all(o.answer is None for o in outcomes):
            raise failed_upstream[0].error  # type: ignore[misc]
        return model, outcomes

    async def _infer_misses(
        self, model: str, route: Route, misses: list[ItemOutcome], top_k: int, tta: str | None = None
    ) -> None:
        if not misses:
            return
        unique: dict[str, bytes] = {}
        for item in misses:  # the same image twice in a batch is sent once
            unique.setdefault(item.sha256, item.data)
        try:
            answers = await self._infer(model, route, list(unique.values()), list(unique), top_k, tta)
        except VisionServeError as exc:
            for item in misses:
                item.error = exc
            return
        by_digest = dict(zip(unique, answers, strict=True))
        for item in misses:
            item.answer = by_digest[item.sha256]

    # -- steps --------------------------------------------------------------------------
    async def _lookup(self, model: str, route: Route, digest: str, top_k: int, tta: str | None = None) -> Answer | None:
        version = route.version  # a canary's answers are keyed on its version, stable's on stable's
        if version is None:
            self.metrics.child(self.metrics.cache, model, "miss").inc()
            return None
        hit = await self.cache.get(cache_key(digest, model, version, top_k, self._policy_tag, tta=tta))
        if hit is None:
            self.metrics.child(self.metrics.cache, model, "miss").inc()
            return None
        self.metrics.child(self.metrics.cache, model, "hit").inc()
        weights = self.tracker.weights(model, hit.version)
        return Answer(model, hit.version, weights, hit.predictions, True, route.reason, tta=tta)

    async def _check(self, data: bytes, fmt: str, charge: Charge | None = None) -> None:
        """Every upload check, on the loop when ``assess`` says it is cheap, else in a decode process.

        First the tokens its decode costs beyond the one admission took (``charge``): a key's
        costly images are refused (429) before any of their pixels is decoded, here or in Triton.
        """
        cost = assess(data, fmt, self.policy)
        if charge is not None and self.decode_ms_per_token is not None:
            extra = cost.tokens(self.decode_ms_per_token, self.max_tokens) - 1
            if extra > 0:
                await charge(extra)
        if cost.inline:
            try:
                check_image(data, fmt, self.policy, max_steps=INLINE_MAX_STEPS)
                return
            except CheckTooCostly:  # a walk of many small blocks: not for the loop after all
                pass
        await self.decode_pool.check(data, fmt)

    async def _check_quietly(self, data: bytes, fmt: str, charge: Charge | None = None) -> VisionServeError | None:
        try:
            await self._check(data, fmt, charge)
        except VisionServeError as exc:
            return exc
        return None

    async def _infer(
        self, model: str, route: Route, images: list[bytes], digests: list[str], top_k: int, tta: str | None = None
    ) -> list[Answer]:
        started = time.perf_counter()
        self.inflight += 1  # the shadow queue waits for this to fall to 0 (gateway.shadow)
        try:
            results = await self.triton.classify_batch(images, route.ensemble, top_k=top_k)
        except (ModelNotFound, ModelReloading) as exc:
            if not route.canary:
                raise self._failed(model, exc) from exc
            log.info("canary %s unavailable (%s): stable answers", route.ensemble, exc)
            return await self._infer(model, self.stable_instead(model, route), images, digests, top_k, tta)
        except (ClientError, OSError) as exc:
            raise self._failed(model, exc) from exc
        finally:
            self.inflight -= 1
        elapsed_s = time.perf_counter() - started
        self.metrics.child(self.metrics.triton_seconds, model).observe(elapsed_s)
        if route.release is not None and route.version is not None:
            self.metrics.child(self.metrics.release_triton_seconds, model, str(route.version)).observe(elapsed_s)
        if len(images) == 1 and not route.canary and tta is None:  # a batch's (or TTA's) round trip is not the model's
            self.router.observe(model, elapsed_s * 1000.0)
        answers = []
        for digest, result in zip(digests, results, strict=True):
            version = int(result.version)
            if not route.canary:  # a canary's version is not the served one
                self.tracker.note_answer(model, version)
            preds = tuple(result.predictions)
            await self.cache.set(
                cache_key(digest, model, version, top_k, self._policy_tag, tta=tta),
                CachedAnswer(model, version, preds),
            )
            weights = self.tracker.weights(model, version)
            answers.append(Answer(model, version, weights, preds, False, route.reason, elapsed_s * 1000.0, tta))
        return answers

    def stable_instead(self, model: str, route: Route) -> Route:
        """The stable pipeline in place of a canary that went away between two polls.

        During a promote or an abort a request routed to the canary is answered by stable
        instead of failing.
        """
        return Route(model, self.tracker.served_version(model), "stable" if route.release else None)

    def _failed(self, model: str, exc: Exception) -> VisionServeError:
        error, kind = _triton_error(exc, model, self.retry_after_s)
        self.metrics.child(self.metrics.triton_errors, model, kind).inc()
        log.warning("Triton call for %s failed: %s", model, exc)
        return error

    def _offer_shadow(
        self, req: ClassifyRequest, model: str, route: Route, answered: list[tuple[bytes, str, Answer]]
    ) -> None:
        """Hand stable answers to the shadow queue when the release shadows (never waits)."""
        release = route.release
        if self.shadow is None or release is None or route.canary or route.reason != "stable" or not answered:
            return
        if release.shadow <= 0.0:
            return
        self.shadow.offer(req, model, release, answered)

    @staticmethod
    def _filtered(answer: Answer, min_score: float) -> Answer:
        if min_score <= 0:
            return answer
        kept = tuple(p for p in answer.predictions if p.score >= min_score)
        return replace(answer, predictions=kept)

    def _record(
        self,
        req: ClassifyRequest,
        model: str,
        digest: str,
        answer: Answer | None,
        error: VisionServeError | None,
        route: str | None = None,
        asked: int | None = None,
        *,
        frames: int | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Queue the history row; a failure during a release keeps the version it was routed to (``asked``)."""
        if error is None:
            status, http_status = "ok", 200
        else:
            http_status = int(getattr(error, "error_code", 500))
            status = "error" if http_status >= 500 else "rejected"
        if route is not None:
            version = str(answer.version) if answer else str(asked)
            self.metrics.child(self.metrics.release_answers, model, version, route, status).inc()
        self.history.add(
            HistoryRow(
                id=uuid.uuid4().hex,  # from the OS CSPRNG: unguessable, though access is checked per user anyway
                request_id=req.request_id,
                created_at=utcnow(),
                user=req.caller.user,
                key_id=req.caller.key_id,
                model=model,
                version=answer.version if answer else asked,
                image_sha256=digest,
                top_k=req.top_k,
                predictions=list(answer.predictions) if answer else [],
                latency_ms=(time.perf_counter() - req.started_s) * 1000.0,
                cached=bool(answer and answer.cached),
                status=status,
                http_status=http_status,
                error=f"{getattr(error, 'code', 'internal')}: {error}" if error else None,
                frames=frames,
                duration_s=duration_s,
                route=route,
                upstream_ms=answer.upstream_ms if answer else None,
                tta=req.tta,
            )
        )
