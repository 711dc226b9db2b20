"""The gateway: a BentoML 1.4 service in front of Triton (``bentoml serve gateway.service:Gateway``).

The API surface is this file. ``/v1/*`` is a FastAPI app mounted on the service with
``@bentoml.asgi_app``; each route is a thin typed function (Pydantic models from
``gateway.schemas``, so BentoML's OpenAPI document at ``/docs.json`` and its UI at ``/`` show
real schemas) that hands the request to a method of the service instance. Why not
``@bentoml.api``: it serves POST only, answers errors as ``{"error": str}`` (every 401/403
as "Authorization error") and cannot declare GET routes with query parameters or per-route
status codes — the contract needs all of those. Why not FastAPI class views (routes as
methods): BentoML injects ``self`` through a synchronous dependency that FastAPI runs in a
thread, about 0.1 ms per request on the cache-hit path. BentoML still owns the process model
(workers), the lifecycle (``@bentoml.on_startup``/``on_shutdown``), ``/readyz``
(``__is_ready__`` asks Triton), ``/livez`` and ``/metrics``.

Everything else lives in sibling modules: ``admission`` (key + rate limit, the one step in
front of every route, run by the middleware), ``auth`` (keys), ``limits`` (token buckets),
``uploads`` (checks), ``cache``, ``history``, ``routing`` (``auto``), ``versions`` (served
versions), ``classify`` (the flow), ``forms`` (request bodies), ``middleware`` (headers,
body cap, request id, admission before routing), ``metrics``, ``background`` (the one task each
of the tracker, the history writer and the shadow queue runs). ``docs/decisions.md`` says why
``/v1`` is a mounted FastAPI app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
import bentoml
import orjson
import sqlalchemy.exc
from bentoml import get_current_service
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from client import AsyncTritonClient
from gateway import forms, history
from gateway.admission import Admission, Quota
from gateway.auth import Identity, KeyStore
from gateway.cache import LocalCache, RedisCache, ResultCache
from gateway.classify import Classifier, ClassifyRequest, ItemOutcome
from gateway.classify_video import VideoClassifier
from gateway.console import ConsoleMiddleware
from gateway.db import make_engine, migrate
from gateway.decode_pool import DecodePool
from gateway.errors import (
    INTERNAL_MESSAGE,
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    UpstreamUnavailable,
    error_body,
    error_headers,
)
from gateway.limits import RateLimiter
from gateway.metrics import get_metrics
from gateway.middleware import API_PREFIX, GatewayMiddleware
from gateway.openapi import document
from gateway.readiness import CachedProbe
from gateway.redis_link import RedisLink, connect
from gateway.release_assign import KeyAssigner
from gateway.release_routing import Pin
from gateway.routing import AutoRouter
from gateway.schemas import (
    MODEL_NAME_MAX_CHARS,
    BatchForm,
    BatchItem,
    BatchResponse,
    ClassifyForm,
    ClassifyJSON,
    ClassifyOptions,
    ClassifyResponse,
    ErrorDetail,
    HistoryPage,
    HistoryRecord,
    ModelInfo,
    ModelsResponse,
    error_responses,
    request_body,
)
from gateway.settings import get_settings, load_pepper
from gateway.shadow import ShadowQueue
from gateway.uploads import UploadPolicy
from gateway.versions import ModelState, VersionTracker
from gateway.video_schemas import VideoForm, VideoResponse
from visionserve.catalog import CommitteeSpec, load_catalog
from visionserve.errors import VisionServeError

__all__ = ["Gateway", "api"]

log = logging.getLogger("visionserve.gateway")
SETTINGS = get_settings()
AUTO_POLICY = (
    "most accurate ready model whose expected latency fits X-Latency-Budget-Ms (else the fastest); "
    "without a budget, the most accurate ready model"
)
EXPORT_MAX_ROWS = 100_000

api = FastAPI(
    title="visionserve gateway",
    version="1",
    docs_url=None,  # BentoML serves the one OpenAPI document (/docs.json) and its UI (/)
    redoc_url=None,
    openapi_url=None,
)
bearer = HTTPBearer(auto_error=False, description="an API key from `visionserve keys create`")


# -- errors: every one becomes {"error": {"code", "message"}} ---------------------------------
@api.exception_handler(VisionServeError)
async def _known_error(_request: Request, exc: VisionServeError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.error_code, headers=error_headers(exc))


@api.exception_handler(RequestValidationError)
async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """A parameter or header that fails its declared schema: 422, as the document says."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return JSONResponse(error_body(BadRequest("; ".join(parts) or "invalid request")), status_code=422)


@api.exception_handler(StarletteHTTPException)
async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    body = {"error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


#: Failures of the key and history database that mean "come back shortly" (503), not a bug.
DATABASE_DOWN = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)


def _database_down(path: str, exc: Exception) -> UpstreamUnavailable:
    log.warning("database unavailable on %s: %s", path, type(exc).__name__)
    return UpstreamUnavailable(
        "the key and history database is unavailable; try again shortly",
        code="database_unavailable",
        headers={"Retry-After": str(SETTINGS.retry_after_s)},
    )


@api.exception_handler(sqlalchemy.exc.OperationalError)
@api.exception_handler(sqlalchemy.exc.InterfaceError)
@api.exception_handler(sqlalchemy.exc.TimeoutError)
async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Keys and history live in the database: while it is down, callers are told to come back."""
    err = _database_down(request.url.path, exc)
    return JSONResponse(error_body(err), status_code=err.error_code, headers=error_headers(err))


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return JSONResponse(error_body(exc), status_code=500)


def _labels(state: ModelState) -> dict[str, int]:
    """``stable`` (the served version) and, while a release runs, ``canary``."""
    labels = {"stable": state.served} if state.served is not None else {}
    if state.release is not None and state.release.canary is not None:
        labels["canary"] = state.release.canary
    return labels


def _json(model: BaseModel, status_code: int = 200) -> Response:
    """Serialise with pydantic-core directly (the response model is still what the docs show)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


@dataclass
class Served:
    """What a classify route reports to the request metrics, filled in as the request goes."""

    started_s: float
    model: str = "unknown"
    status: int = 500
    cached: bool = False

    @property
    def latency_ms(self) -> float:
        """Milliseconds since the request arrived, as the answer reports them."""
        return round((time.perf_counter() - self.started_s) * 1000.0, 3)


#: Unix seconds accepted for ``since`` / ``until`` (2000-01-01 to 2100-01-01): a bare number
#: outside them (``0.5``, ``1e12``) is a mistake, not a time, and is refused rather than guessed at.
EPOCH_RANGE_S = (946_684_800.0, 4_102_444_800.0)


def parse_timestamp(value: object) -> object:
    """``since`` / ``until``: ISO 8601 (naive means UTC), or Unix seconds in ``EPOCH_RANGE_S``.

    Returns naive UTC (what the database stores); a value it cannot place is a ValueError
    (FastAPI answers 422), never an overflow later (a ``since`` near the datetime limits with
    an offset used to overflow in the UTC conversion: a 500).
    """
    if value is None or isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = None
        if seconds is not None:
            low, high = EPOCH_RANGE_S
            if not low <= seconds < high:  # NaN fails too
                raise ValueError("a number must be Unix seconds between 2000 and 2100; or send ISO 8601")
            return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO 8601 date-time (e.g. 2026-01-31T12:00:00Z)") from None
    if parsed is None or parsed.tzinfo is None:
        return parsed
    try:
        return parsed.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise ValueError("date-time out of range") from None


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Identity:
    """The caller behind ``Authorization: Bearer <key>``, after taking a rate-limit token.

    ``GatewayMiddleware`` admitted the request already (``gateway.admission``) unless its
    method is one it leaves to the app (HEAD, OPTIONS); ``credentials`` is declared so the
    OpenAPI document shows the bearer scheme.

    Raises:
        Unauthorized: no key, unknown or revoked key (401).
        RateLimited: the key's (or, without a valid key, the address's) bucket is empty (429).
    """
    del credentials
    identity = request.scope.setdefault("state", {}).get("identity")
    if identity is None:
        svc: Gateway = get_current_service()
        identity = await svc.admission.admit(request.scope)
    return identity


async def admit_request(scope: dict[str, Any]) -> None:
    """``GatewayMiddleware``'s admission hook: the service's ``Admission``, before routing.

    Failures become the errors this app's handlers would have answered (503 for a database
    outage, a 500 that says nothing of internals), so a request gets the same answer whichever
    layer admitted it.
    """
    svc: Gateway = get_current_service()
    try:
        await svc.admission.admit(scope)
    except VisionServeError:
        raise
    except DATABASE_DOWN as exc:
        raise _database_down(scope["path"], exc) from exc
    except Exception as exc:
        log.exception("unexpected error on %s", scope["path"])
        raise GatewayError(INTERNAL_MESSAGE) from exc


Caller = Annotated[Identity, Depends(authenticate)]
Budget = Annotated[
    float | None,
    Header(alias="X-Latency-Budget-Ms", gt=0, description="latency budget for `model=auto`, in ms"),
]


@bentoml.asgi_app(api, path=API_PREFIX)
@bentoml.service(
    name="visionserve-gateway",
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.triton_timeout_s + 30},
    tracing={"excluded_urls": [] if SETTINGS.trace_requests else [API_PREFIX, "/livez", "/readyz", "/metrics"]},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class Gateway:
    """visionserve gateway in front of Triton.

    API keys, rate limits, upload checks, a version-aware cache and an audit history.
    Authenticate with `Authorization: Bearer <key>`.
    """

    def __init__(self) -> None:
        """Build every part; none of them connects yet (``open`` does)."""
        settings = self.settings = SETTINGS
        self.catalog = load_catalog()
        self.engine = make_engine(settings.sqlalchemy_url)
        self.keys = KeyStore(self.engine, load_pepper(settings), cache_ttl_s=settings.auth_cache_ttl_s)
        self.metrics = get_metrics()
        self.policy = UploadPolicy.from_settings(settings)
        self.bodies = forms.BodyBudget(
            settings.max_inflight_body_bytes,
            largest=max(settings.max_request_bytes, settings.max_batch_request_bytes),
            retry_after_s=settings.retry_after_s,
        )
        self.decode_pool = DecodePool(
            self.policy, workers=settings.decode_workers, timeout_s=settings.decode_timeout_s,
            memory_bytes=settings.decode_memory_bytes, retry_after_s=settings.retry_after_s,
        )  # fmt: skip
        self.router = AutoRouter(self.catalog, ms_per_gflop=settings.ms_per_gflop)
        self.readiness = CachedProbe(self._ask_triton_ready, settings.ready_cache_ttl_s)
        # Clients connect lazily: the gRPC channel and the Redis pool open on first use.
        self.triton = AsyncTritonClient(settings.triton_url, protocol="grpc", timeout_s=settings.triton_timeout_s)
        self.redis = self._redis_link()
        self.admission = Admission(
            self.keys,
            RateLimiter(self.redis),
            self.metrics,
            key_quota=Quota(settings.rate_per_s, settings.rate_burst),
            anonymous_quota=Quota(settings.anonymous_rate_per_s, settings.anonymous_burst),
            trusted_proxies=settings.trusted_networks,
            cache_per_key=settings.cache_scope == "key",
        )
        self.tracker = VersionTracker(
            self.triton,
            self.catalog,
            interval_s=settings.version_poll_interval_s,
            on_change=lambda model, _old, new: self.metrics.served_version.labels(model).set(new or 0),
        )
        self.history = history.HistoryWriter(
            self.engine,
            flush_interval_s=settings.history_flush_interval_s,
            batch_rows=settings.history_batch_rows,
            queue_max=settings.history_queue_max,
            on_result=lambda kind, n: self.metrics.history_rows.labels(kind).inc(n),
        )
        self.classifier = Classifier(
            catalog=self.catalog, triton=self.triton, cache=self._result_cache(), tracker=self.tracker,
            router=self.router, history=self.history, metrics=self.metrics, policy=self.policy,
            max_top_k=settings.max_top_k, retry_after_s=settings.retry_after_s, decode_pool=self.decode_pool,
            default_budget_ms=settings.auto_budget_ms, decode_ms_per_token=settings.decode_ms_per_token,
            max_tokens=settings.rate_burst, assigner=KeyAssigner(self.redis),
        )  # fmt: skip
        self.videos = VideoClassifier(
            self.classifier, limits=settings.video_limits, decode_timeout_s=settings.video_decode_timeout_s
        )
        # The shadow queue waits for the classifier's Triton calls; the classifier offers it answers.
        self.shadow = ShadowQueue(
            self.catalog, self.triton, self.history, self.metrics, self.classifier,
            max_jobs=settings.shadow_queue_max,
        )  # fmt: skip
        self.classifier.shadow = self.shadow

    def _result_cache(self) -> ResultCache:
        """Redis when the link is configured (shared by the workers), else an in-process LRU."""
        if self.redis is not None:
            return RedisCache(self.redis, self.settings.cache_ttl_s)
        return LocalCache(self.settings.cache_max_bytes, self.settings.cache_ttl_s)

    def _redis_link(self) -> RedisLink | None:
        """The shared Redis (cache and rate limits) when ``REDIS_URL`` is set; None keeps both in the process."""
        if not self.settings.redis_url:
            return None
        return RedisLink(
            connect(self.settings.redis_url, self.settings.redis_timeout_s),
            retry_s=self.settings.redis_retry_s,
            on_error=lambda op: self.metrics.cache_errors.labels(op).inc(),
        )

    # -- lifecycle ------------------------------------------------------------------------
    @bentoml.on_startup
    async def open(self) -> None:
        """Migrate the database, start the decode processes and the background tasks."""
        revision = await anyio.to_thread.run_sync(migrate, self.engine)
        log.info("database %s at revision %s", self.engine.url.render_as_string(hide_password=True), revision)
        await self.decode_pool.start()
        await self.tracker.refresh()  # know the served versions before the first request
        self.tracker.start()
        self.history.start()
        self.shadow.start()
        log.info(
            "gateway up: Triton %s (%s), cache %s",
            self.settings.triton_url,
            "reachable" if self.tracker.reachable else "UNREACHABLE",
            self.classifier.cache.name,
        )

    @bentoml.on_shutdown
    async def close(self) -> None:
        """Stop polling, write the last history rows, close Triton and Redis (after any ``open``, even a failed one)."""
        await self.tracker.close()
        await self.shadow.close()
        await self.decode_pool.close()
        await self.history.close()
        await self.triton.close()
        if self.redis is not None:
            await self.redis.close()
        self.engine.dispose()

    async def __is_ready__(self) -> bool:
        """Ready when Triton serves at least one catalog ensemble.

        Asked at most once per ``GATEWAY_READY_CACHE_TTL_S``: repeated probes cost no Triton calls.
        """
        return await self.readiness()

    async def _ask_triton_ready(self) -> bool:
        names = [spec.ensemble for spec in self.catalog.served.values()]
        try:
            answers = await asyncio.wait_for(asyncio.gather(*(self.triton.is_ready(name) for name in names)), timeout=5)
        except Exception:
            return False
        return any(answers)

    @asynccontextmanager
    async def _upload(self, request: Request, endpoint: str, *, count_rejected: bool = True) -> AsyncIterator[Served]:
        """What every upload route runs in: the body budget, then its ``request_seconds`` timing.

        Bodies in flight share a byte budget (503 ``server_busy`` past it, not timed). A refusal
        (a VisionServeError) is timed with its status; with ``count_rejected`` a refused upload
        (400/413/415) is also counted by its code.
        """
        async with self.bodies.reserve(request):
            served = Served(request.scope["state"].get("started_s", time.perf_counter()))
            try:
                yield served
            except VisionServeError as exc:
                served.status = self._rejected(exc) if count_rejected else exc.error_code
                raise
            finally:
                # Label values must come from bounded sets: a caller's unknown model name is "unknown".
                model = served.model
                label = model if model == "auto" or model in self.catalog.served else "unknown"
                child = self.metrics.child(
                    self.metrics.request_seconds, endpoint, label, str(served.status), str(served.cached).lower()
                )
                child.observe(time.perf_counter() - served.started_s)

    def _rejected(self, exc: VisionServeError) -> int:
        """Count a refused upload (400/413/415) by its code; the error's status."""
        if exc.error_code in (400, 413, 415):
            self.metrics.child(self.metrics.uploads_rejected, exc.code).inc()
        return exc.error_code

    def _classify_request(
        self, request: Request, caller: Identity, options: ClassifyOptions, budget_ms: float | None, started_s: float
    ) -> ClassifyRequest:
        """The flow's request for an image route: its options, and a charge for costly decodes.

        The charge takes an image's tokens beyond the first from the caller's bucket
        (``Classifier._check``).
        """
        return ClassifyRequest(
            caller, request.scope["state"]["request_id"], options.model, options.top_k, options.min_score, budget_ms,
            started_s, Pin(options.label, options.version),
            charge=lambda extra: self.admission.charge(request.scope, caller, extra, unit="decode tokens"),
            tta=None if options.tta == "none" else options.tta,
        )  # fmt: skip

    # -- what the routes do ------------------------------------------------------------------
    async def classify(self, request: Request, caller: Identity, budget_ms: float | None) -> Response:
        async with self._upload(request, "classify") as served:
            options, upload = await forms.read_single(request, max(self.settings.max_bytes.values()))
            served.model = options.model
            req = self._classify_request(request, caller, options, budget_ms, served.started_s)
            answer = await self.classifier.classify_one(req, upload.data)
            served.model, served.status, served.cached = answer.model, 200, answer.cached
            return _json(
                ClassifyResponse(
                    request_id=req.request_id,
                    model=answer.model,
                    version=answer.version,
                    weights=answer.weights,
                    predictions=answer.predictions,  # type: ignore[arg-type]  # read by attribute
                    cached=answer.cached,
                    route=answer.route,
                    tta=answer.tta,
                    latency_ms=served.latency_ms,
                )
            )

    async def classify_batch(self, request: Request, caller: Identity, budget_ms: float | None) -> Response:
        # a refusal of the whole batch is not an upload's: its images' refusals are counted one by one
        async with self._upload(request, "classify_batch", count_rejected=False) as served:
            # one token per image, taken once the part headers are read and before any image is checked
            options, uploads = await forms.read_batch(
                request,
                self.settings.batch_max_images,
                charge=lambda n: self.admission.charge(request.scope, caller, n - 1),
            )
            served.model = options.model
            req = self._classify_request(request, caller, options, budget_ms, served.started_s)
            model, outcomes = await self.classifier.classify_batch(req, [(u.data, u.filename) for u in uploads])
            served.model = model
            results = [self._batch_item(o) for o in outcomes]
            served.status = 200
            return _json(
                BatchResponse(
                    request_id=req.request_id,
                    model=model,
                    weights=self.tracker.weights(model, self.tracker.served_version(model)),
                    results=results,
                    latency_ms=served.latency_ms,
                )
            )

    def _batch_item(self, outcome: ItemOutcome) -> BatchItem:
        """One image's entry of a batch answer (a refused upload is counted, as for one image)."""
        if outcome.error is not None:
            self._rejected(outcome.error)
            error = ErrorDetail(code=outcome.error.code, message=str(outcome.error))
            return BatchItem(index=outcome.index, filename=outcome.filename, status="error", error=error)
        answer = outcome.answer
        assert answer is not None
        return BatchItem(
            index=outcome.index,
            filename=outcome.filename,
            status="ok",
            version=answer.version,
            cached=answer.cached,
            route=answer.route,
            predictions=answer.predictions,  # type: ignore[arg-type]
        )

    async def classify_video(self, request: Request, caller: Identity, budget_ms: float | None) -> Response:
        async with self._upload(request, "classify_video") as served:
            options, upload = await forms.read_video(request, self.settings.video_max_bytes)
            served.model = options.model
            req = ClassifyRequest(
                caller, request.scope["state"]["request_id"], options.model, options.top_k, 0.0, budget_ms,
                served.started_s,
            )  # fmt: skip
            sampling = options.sampling
            answer = await self.videos.classify(
                req, upload.data, sampling,
                charge=lambda frames: self.admission.charge(request.scope, caller, frames - 1, unit="sampled frames"),
            )  # fmt: skip
            result = answer.result
            served.model, served.status, served.cached = result.model, 200, answer.cached
            return _json(
                VideoResponse(
                    request_id=req.request_id,
                    model=result.model,
                    version=answer.version,
                    weights=answer.weights,
                    duration_s=result.duration_s,
                    sampling=sampling,  # type: ignore[arg-type]  # read by attribute
                    frames=result.frames,  # type: ignore[arg-type]  # read by attribute
                    aggregate=result.aggregate,  # type: ignore[arg-type]
                    segments=result.segments,  # type: ignore[arg-type]
                    cached=answer.cached,
                    route=answer.route,
                    latency_ms=served.latency_ms,
                )
            )

    def models(self) -> ModelsResponse:
        infos = []
        for spec in self.catalog.served.values():
            members = dict(zip(spec.members, spec.weights, strict=True)) if isinstance(spec, CommitteeSpec) else None
            state = self.tracker.state(spec.ensemble)
            estimate = self.router.estimate(spec.name) if spec.gflops is not None else None
            infos.append(
                ModelInfo(
                    name=spec.name,
                    ready=state.ready,
                    served_version=state.served,
                    versions=list(state.versions),
                    weights=state.weights,
                    demo_weights=state.weights == "demo",
                    framework=spec.framework,
                    input_size=spec.input_size,
                    num_classes=spec.num_classes,
                    top1_accuracy=spec.top1_accuracy,
                    gflops=spec.gflops,
                    tta=list(spec.tta),
                    members=members,
                    labels=_labels(state),
                    canary_weight=state.release.weight if state.release is not None else None,
                    expected_latency_ms=round(estimate.expected_ms, 3) if estimate else None,
                    latency_measured=bool(estimate and estimate.measured),
                    reason=state.reason,
                )
            )
        return ModelsResponse(
            models=infos,
            auto_policy=AUTO_POLICY,
            default_top_k=self.catalog.top_k,
            triton_reachable=self.tracker.reachable,
        )

    async def history_page(self, query: history.HistoryQuery) -> HistoryPage:
        await self.history.flush()  # this worker's queued rows first: callers see their last request
        rows, next_cursor = await anyio.to_thread.run_sync(history.list_page, self.engine, query)
        return HistoryPage(records=[HistoryRecord.model_validate(r) for r in rows], next_cursor=next_cursor)

    async def history_csv(self, query: history.HistoryQuery, max_rows: int) -> StreamingResponse:
        await self.history.flush()
        # The first page is read here, before any byte is sent: a database outage is still a
        # 503 with Retry-After, not a 200 carrying only the header.
        lines = await anyio.to_thread.run_sync(history.csv_lines, self.engine, query, max_rows)

        async def body() -> Any:
            while True:
                chunk = await anyio.to_thread.run_sync(next, lines, None)
                if chunk is None:
                    return
                yield chunk

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            body(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="history-{stamp}.csv"'},
        )

    async def history_record(self, caller: Identity, record_id: str) -> HistoryRecord:
        await self.history.flush()
        owner = None if caller.is_admin else caller.user
        row = await anyio.to_thread.run_sync(history.get_record, self.engine, record_id, owner)
        if row is None:
            raise NotFound(f"no history record {record_id!r}")  # someone else's looks exactly like this
        return HistoryRecord.model_validate(row)


# -- routes: thin, typed, documented; the work is in Gateway's methods above -------------------
async def current_gateway() -> Any:
    """The service instance (a coroutine: FastAPI runs it inline, not in a thread)."""
    return get_current_service()


Svc = Annotated[Any, Depends(current_gateway)]


@dataclass(frozen=True)
class HistoryFilters:
    """Query parameters shared by the history listing and its CSV export."""

    model: str | None
    since: datetime | None
    until: datetime | None
    user: str | None

    def query(self, caller: Identity, cursor: str | None = None, limit: int = 50) -> history.HistoryQuery:
        if self.user is not None and self.user != caller.user and not caller.is_admin:
            raise Forbidden("only admins may read other users' history")
        who = self.user if self.user is not None else (None if caller.is_admin else caller.user)
        return history.HistoryQuery(
            user=who,
            model=self.model,
            since=self.since,
            until=self.until,
            cursor=history.decode_cursor(cursor) if cursor else None,
            limit=limit,
        )


Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]


def history_filters(
    model: Annotated[str | None, Query(max_length=MODEL_NAME_MAX_CHARS, description="only this model")] = None,
    since: Annotated[
        Timestamp, Query(description="from this time (ISO 8601, naive = UTC; or Unix seconds), inclusive")
    ] = None,
    until: Annotated[
        Timestamp, Query(description="before this time (ISO 8601, naive = UTC; or Unix seconds), exclusive")
    ] = None,
    user: Annotated[
        str | None, Query(max_length=100, description="admins: this user's records (default: everyone's)")
    ] = None,
) -> HistoryFilters:
    return HistoryFilters(model, since, until, user)


Filters = Annotated[HistoryFilters, Depends(history_filters)]


@api.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=error_responses(400, 404, 415, 422, 502),
    openapi_extra=request_body(("multipart/form-data", ClassifyForm), ("application/json", ClassifyJSON)),
    summary="Classify one image",
)
async def classify(svc: Svc, request: Request, caller: Caller, budget_ms: Budget = None) -> Response:
    """Top-k classes of one image: multipart field `image`, or JSON `image_base64`."""
    return await svc.classify(request, caller, budget_ms)


@api.post(
    "/classify/batch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 415, 422, 502),
    openapi_extra=request_body(("multipart/form-data", BatchForm)),
    summary="Classify several images in one Triton request",
)
async def classify_batch(svc: Svc, request: Request, caller: Caller, budget_ms: Budget = None) -> Response:
    """Up to `GATEWAY_BATCH_MAX_IMAGES` images (field `image` repeated); one result or error per image."""
    return await svc.classify_batch(request, caller, budget_ms)


@api.post(
    "/classify/video",
    response_model=VideoResponse,
    responses=error_responses(400, 404, 415, 422, 502),
    openapi_extra=request_body(("multipart/form-data", VideoForm)),
    summary="Classify a short video, frame by sampled frame",
)
async def classify_video(svc: Svc, request: Request, caller: Caller, budget_ms: Budget = None) -> Response:
    """Top-k of each sampled frame (`every_seconds`, default 1, or `keyframes_only`), their mean and segments.

    One rate-limit token per sampled frame; limits: `GATEWAY_VIDEO_*` (docs/gateway.md).
    """
    return await svc.classify_video(request, caller, budget_ms)


@api.get("/models", response_model=ModelsResponse, responses=error_responses(), summary="Served models")
async def list_models(svc: Svc, caller: Caller) -> Response:
    """Catalog models with their served and ready versions, demo-weights flag and `auto` figures."""
    del caller
    return _json(svc.models())


@api.get(
    "/history",
    response_model=HistoryPage,
    responses=error_responses(400, 403, 422),
    summary="Your classification history",
)
async def list_history(
    svc: Svc,
    caller: Caller,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="records per page")] = 50,
) -> Response:
    """The caller's records, newest first (admins: everyone's, or `user=`'s)."""
    return _json(await svc.history_page(filters.query(caller, cursor, limit)))


@api.get(
    "/history/export",
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV, one row per record"},
        **error_responses(400, 403, 422),
    },
    response_class=StreamingResponse,
    summary="Your history as CSV",
)
async def export_history(
    svc: Svc,
    caller: Caller,
    filters: Filters,
    max_rows: Annotated[int, Query(ge=1, le=EXPORT_MAX_ROWS, description="most records")] = EXPORT_MAX_ROWS,
) -> StreamingResponse:
    """Same filters as `/v1/history`, newest first, as CSV (spreadsheet formulas neutralised)."""
    return await svc.history_csv(filters.query(caller), max_rows)


@api.get(
    "/history/{record_id}",
    response_model=HistoryRecord,
    responses=error_responses(404, 422),
    summary="One history record",
)
async def get_history(
    svc: Svc, caller: Caller, record_id: Annotated[str, Path(max_length=64, description="the record's id")]
) -> Response:
    """One of the caller's records; someone else's record is 404, as if it did not exist."""
    return _json(await svc.history_record(caller, record_id))


def _allowed_methods(request: Request) -> set[str]:
    """Methods that the routes matching this path take (none: the path does not exist)."""
    allowed: set[str] = set()
    for route in api.routes:
        if route is not _CATCH_ALL and isinstance(route, APIRoute):
            match, _ = route.matches({**request.scope, "method": ""})
            if match != Match.NONE:
                allowed |= route.methods
    return allowed


@api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False)
async def no_such_route(caller: Caller, request: Request) -> Response:
    """Anything else under /v1: authenticated and rate-limited like the rest, then 405 or 404."""
    del caller
    allowed = _allowed_methods(request)
    if allowed:
        raise MethodNotAllowed(
            f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}",
            headers={"Allow": ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))},
        )
    raise NotFound(f"no route {request.method} {request.url.path}")


_CATCH_ALL = api.routes[-1]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document served at ``/docs.json`` (``gateway.openapi``)."""
    return document(Gateway.openapi_spec.asdict(), metrics_protected=SETTINGS.metrics_token is not None)


Gateway.add_asgi_middleware(
    GatewayMiddleware,
    max_request_bytes=SETTINGS.max_request_bytes,
    max_batch_request_bytes=SETTINGS.max_batch_request_bytes,
    hsts_max_age_s=SETTINGS.hsts_max_age_s,
    metrics_token=SETTINGS.metrics_token.get_secret_value() if SETTINGS.metrics_token else None,
    openapi_document=lambda: orjson.dumps(openapi_document()),
    admit=admit_request,
)
# Added after GatewayMiddleware, so it runs inside it: the pages get its headers and request ids.
Gateway.add_asgi_middleware(ConsoleMiddleware)
