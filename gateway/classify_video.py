"""The flow behind ``POST /v1/classify/video``, independent of HTTP.

1. Model and ``top_k`` are checked as for an image; the container is sniffed by its magic
   bytes (415 for anything else) before anything is decoded.
2. The answer is looked up under the video's SHA-256, the model's served version, ``top_k``
   and the sampling (``cache.video_cache_key``).
3. On a miss a decode process samples the frames within ``VideoLimits`` (``DecodePool.sample_video``:
   never on the event loop, killed past its timeout).
4. The caller pays one rate-limit token per sampled frame *now*, before Triton is asked: the
   frame count is known only after sampling (a cache hit pays for the frames it holds). Why
   after and not up front: docs/decisions.md ("Video requests pay per frame").
5. Triton classifies the frames as JPEGs through the model's image ensemble, as many per
   request as the catalog's ``max_batch_size`` (``AsyncTritonClient.classify_frames``); the
   result (per-frame top-k, mean, segments) is cached and one history row is queued with the
   frames and duration, for an answer and a refusal alike.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, replace

from client import ClientError, ModelNotFound, ModelReloading, VideoClassification
from gateway.admission import Charge
from gateway.cache import CachedVideo, video_cache_key
from gateway.classify import Answer, Classifier, ClassifyRequest, image_digest
from gateway.release_routing import Route
from visionserve.errors import VisionServeError
from visionserve.video import Frame, Sampling, VideoLimits, sniff_container

__all__ = ["VideoAnswer", "VideoClassifier", "sampling_tag"]


@dataclass(frozen=True)
class VideoAnswer:
    """One video's result as the route answers it."""

    version: int
    weights: str | None
    result: VideoClassification
    cached: bool
    #: why this version answered during a release (``stable``, ``weight``), else None
    route: str | None = None


def sampling_tag(sampling: Sampling) -> str:
    """The sampling as a cache-key part: ``keyframes`` or ``every=<seconds>``."""
    return "keyframes" if sampling.keyframes_only else f"every={float(sampling.every_seconds or 0)!r}"


def _fingerprint(limits: VideoLimits) -> str:
    return hashlib.sha256(repr(sorted(asdict(limits).items())).encode()).hexdigest()[:12]


class VideoClassifier:
    """Classifies videos with the image flow's parts (model choice, cache, Triton, history).

    Args:
        images: the image ``Classifier`` whose catalog, Triton client (``TritonClassifier``),
            cache, tracker, decode pool, metrics and history this uses.
        limits: what one video may cost.
        decode_timeout_s: the most sampling one video may take.
    """

    def __init__(self, images: Classifier, *, limits: VideoLimits, decode_timeout_s: float) -> None:
        self.images = images
        self.limits = limits
        self.decode_timeout_s = decode_timeout_s
        self._limits_tag = _fingerprint(limits)

    async def classify(self, req: ClassifyRequest, data: bytes, sampling: Sampling, charge: Charge) -> VideoAnswer:
        """Classify one video and queue its history row.

        Raises:
            GatewayError / ImageError: what the caller gets (4xx/5xx), after the row is queued.
        """
        images = self.images
        model = images.resolve_model(req.model, req.budget_ms)
        images.check_top_k(model, req.top_k)
        route = await images.route(model, req)  # a release's split covers videos as it does images
        digest = await image_digest(data)
        frames: int | None = None
        duration_s: float | None = None
        try:
            kind = sniff_container(data)
            answer = await self._lookup(model, route, digest, req.top_k, sampling)
            if answer is not None:
                frames, duration_s = len(answer.result.frames), answer.result.duration_s
                await charge(frames)
            else:
                info, sampled = await images.decode_pool.sample_video(
                    data, kind, sampling, self.limits, timeout_s=self.decode_timeout_s
                )
                frames, duration_s = len(sampled), info.duration_s
                await charge(frames)  # before any Triton work: a 429 here costs Triton nothing
                answer = await self._infer(model, route, digest, req.top_k, sampling, sampled, info.duration_s)
        except VisionServeError as exc:
            asked = route.version if route.reason else None
            images._record(req, model, digest, None, exc, route.reason, asked, frames=frames, duration_s=duration_s)
            raise
        aggregate = Answer(model, answer.version, answer.weights, answer.result.aggregate, answer.cached, answer.route)
        images._record(req, model, digest, aggregate, None, answer.route, frames=frames, duration_s=duration_s)
        return answer

    async def _lookup(
        self, model: str, route: Route, digest: str, top_k: int, sampling: Sampling
    ) -> VideoAnswer | None:
        images = self.images
        version = route.version  # a canary's answers are keyed on its version, stable's on stable's
        hit = None
        if version is not None:
            key = video_cache_key(digest, model, version, top_k, sampling_tag(sampling), self._limits_tag)
            hit = await images.cache.get(key, CachedVideo)
        images.metrics.child(images.metrics.cache, model, "miss" if hit is None else "hit").inc()
        if hit is None:
            return None
        return VideoAnswer(hit.version, images.tracker.weights(model, hit.version), hit.result, True, route.reason)

    async def _infer(
        self,
        model: str,
        route: Route,
        digest: str,
        top_k: int,
        sampling: Sampling,
        frames: list[Frame],
        duration_s: float,
    ) -> VideoAnswer:
        images = self.images
        spec = images.catalog.served[model]
        started = time.perf_counter()
        try:
            result = await images.triton.classify_frames(
                frames, route.ensemble, top_k=top_k, batch_size=spec.max_batch_size, num_classes=spec.num_classes,
                duration_s=duration_s,
            )  # fmt: skip
        except (ModelNotFound, ModelReloading) as exc:
            if not route.canary:
                raise images._failed(model, exc) from exc
            stable = images.stable_instead(model, route)
            return await self._infer(model, stable, digest, top_k, sampling, frames, duration_s)
        except (ClientError, OSError) as exc:
            raise images._failed(model, exc) from exc
        images.metrics.child(images.metrics.triton_seconds, model).observe(time.perf_counter() - started)
        result = replace(result, model=model)  # the catalog name, also when the canary ensemble answered
        version = int(result.version)
        if not route.canary:  # a canary's version is not the served one
            images.tracker.note_answer(model, version)
        key = video_cache_key(digest, model, version, top_k, sampling_tag(sampling), self._limits_tag)
        await images.cache.set(key, CachedVideo(version, result))
        return VideoAnswer(version, images.tracker.weights(model, version), result, False, route.reason)
