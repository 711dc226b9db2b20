"""The classification cache: Redis when configured, else an in-process TTL'd LRU.

Key = SHA-256 of the image bytes + model + *served version* + top_k (+ a fingerprint of the
upload policy, so an answer is only reused for bytes that passed today's checks) + the
*scope* (``GATEWAY_CACHE_SCOPE``): with ``key`` (the default) each API key has its own
answers, so ``cached: true`` never tells one caller that another uploaded the same bytes;
with ``shared`` every caller shares them (more hits, and that leak). The scope is set per
request by the auth step (``CACHE_SCOPE``, a context variable: each request runs in its own
task), so the classification flow builds keys without knowing who asks. The served
version comes from ``gateway.versions``; once a new version is ready in Triton the gateway
looks up new keys, so an older version's answer is never read again and simply expires.

A video's answer (``CachedVideo``: every frame's top-k, the aggregate and the segments) is
one entry under ``video_cache_key``: the same key with the sampling asked for, and the video
limits' fingerprint in place of the upload policy's.

Redis failures never fail a request: ``get`` answers "miss", ``set`` is skipped, the breaker
in ``RedisLink`` logs and counts, and the request is served uncached.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from cachetools import TTLCache

from client import FrameClassification, Prediction, Segment, VideoClassification
from gateway.redis_link import RedisLink

__all__ = [
    "CACHE_SCOPE",
    "SHARED_SCOPE",
    "CachedAnswer",
    "CachedVideo",
    "LocalCache",
    "RedisCache",
    "ResultCache",
    "cache_key",
    "entry_bytes",
    "video_cache_key",
]

SHARED_SCOPE = "shared"
#: Whose answers a lookup may see: the caller's key id, or ``SHARED_SCOPE``.
CACHE_SCOPE: ContextVar[str] = ContextVar("visionserve_cache_scope", default=SHARED_SCOPE)
#: Python-object overhead of one cached entry and of one prediction beyond their text (measured
#: with tracemalloc on CPython 3.11: key str, tuples, dataclass, TTLCache links; ~10 % over).
_ENTRY_OVERHEAD_BYTES = 400
_PREDICTION_OVERHEAD_BYTES = 200


@dataclass(frozen=True)
class CachedAnswer:
    """What Triton answered for one image: the version that answered and the top-k."""

    model: str
    version: int
    predictions: tuple[Prediction, ...]

    def to_bytes(self) -> bytes:
        # each prediction as [label, index, score]: compact, and what entries written before hold
        return orjson.dumps(
            {"m": self.model, "v": self.version, "p": [(p.label, p.index, p.score) for p in self.predictions]}
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        data = orjson.loads(raw)
        return cls(data["m"], int(data["v"]), tuple(Prediction(str(a), int(b), float(c)) for a, b, c in data["p"]))


def _predictions(raw: list[Any]) -> tuple[Prediction, ...]:
    return tuple(Prediction(str(a), int(b), float(c)) for a, b, c in raw)


def _packed(predictions: tuple[Prediction, ...]) -> list[tuple[str, int, float]]:
    return [(p.label, p.index, p.score) for p in predictions]


@dataclass(frozen=True)
class CachedVideo:
    """What Triton answered for one video under one sampling: the version and the whole result."""

    version: int
    result: VideoClassification

    @property
    def model(self) -> str:
        return self.result.model

    @property
    def predictions(self) -> tuple[Prediction, ...]:
        """Every prediction held (frames and aggregate): what the entry's size is estimated from."""
        return self.result.aggregate + tuple(p for f in self.result.frames for p in f.predictions)

    def to_bytes(self) -> bytes:
        r = self.result
        return orjson.dumps(
            {
                "m": r.model,
                "v": self.version,
                "d": r.duration_s,
                "f": [(f.t_s, f.keyframe, _packed(f.predictions)) for f in r.frames],
                "a": _packed(r.aggregate),
                "s": [(g.start_s, g.end_s, g.label, g.index, g.frames) for g in r.segments],
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedVideo:
        data = orjson.loads(raw)
        result = VideoClassification(
            model=data["m"],
            version=str(data["v"]),
            duration_s=float(data["d"]),
            frames=tuple(FrameClassification(float(t), bool(k), _predictions(p)) for t, k, p in data["f"]),
            aggregate=_predictions(data["a"]),
            segments=tuple(Segment(float(a), float(b), str(c), int(d), int(e)) for a, b, c, d, e in data["s"]),
        )
        return cls(int(data["v"]), result)


Entry = TypeVar("Entry", CachedAnswer, CachedVideo)


def cache_key(  # noqa: PLR0913 - the key's parts
    image_sha256: str,
    model: str,
    version: int,
    top_k: int,
    policy: str,
    scope: str | None = None,
    *,
    tta: str | None = None,
) -> str:
    """The cache key of one (image, model, served version, top_k) under an upload policy.

    Args:
        image_sha256: the image bytes' digest.
        model: the resolved model.
        version: the served version.
        top_k: classes cached.
        policy: the upload policy's fingerprint.
        scope: whose answers; None takes the request's ``CACHE_SCOPE``.
        tta: the test-time augmentation asked for (another answer than the plain one).
    """
    scope = CACHE_SCOPE.get() if scope is None else scope
    pipeline = f"{model}+{tta}" if tta else model
    return f"vs:c:{policy}:{scope}:{pipeline}:{version}:{top_k}:{image_sha256}"


def video_cache_key(
    video_sha256: str, model: str, version: int, top_k: int, sampling: str, limits: str, scope: str | None = None
) -> str:
    """The cache key of one video's answer: ``cache_key`` with the sampling asked for.

    Args:
        video_sha256: the video bytes' digest.
        model: the resolved model.
        version: the served version.
        top_k: classes cached per frame and in the aggregate.
        sampling: the sampling's tag (``every=1.0``, ``keyframes``).
        limits: the video limits' fingerprint (an answer is reused only under today's limits).
        scope: whose answers; None takes the request's ``CACHE_SCOPE``.
    """
    return cache_key(f"{video_sha256}:{sampling}", model, version, top_k, f"video-{limits}", scope)


def entry_bytes(key: str, answer: CachedAnswer | CachedVideo) -> int:
    """An estimate of what one cached entry holds in memory (what the local cache is bounded by)."""
    labels = sum(len(p.label) + _PREDICTION_OVERHEAD_BYTES for p in answer.predictions)
    return _ENTRY_OVERHEAD_BYTES + len(key) + len(answer.model) + labels


class ResultCache(Protocol):
    """What the service needs from a cache backend."""

    name: str

    async def get(self, key: str, kind: type[Entry] = CachedAnswer) -> Entry | None: ...  # type: ignore[assignment]

    async def set(self, key: str, answer: CachedAnswer | CachedVideo) -> None: ...

    async def close(self) -> None: ...


class LocalCache:
    """An LRU with a TTL, private to this worker process (event-loop only, no locking needed).

    Bounded by the bytes its entries hold (estimated by ``entry_bytes``), not by their count:
    a top-100 answer is ~30 times a top-3 one, so a count bound says little about memory.

    Args:
        max_bytes: the most (estimated) bytes of entries kept; least recently used go first.
        ttl_s: how long an entry is served.
    """

    name = "local"

    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self._entries: TTLCache[str, tuple[int, CachedAnswer | CachedVideo]] = TTLCache(
            maxsize=max_bytes, ttl=ttl_s, getsizeof=lambda entry: entry[0]
        )

    async def get(self, key: str, kind: type[Entry] = CachedAnswer) -> Entry | None:  # type: ignore[assignment]
        entry = self._entries.get(key)
        return entry[1] if entry is not None and isinstance(entry[1], kind) else None

    async def set(self, key: str, answer: CachedAnswer | CachedVideo) -> None:
        size = entry_bytes(key, answer)
        if size <= self._entries.maxsize:  # one entry larger than the cache is not kept
            self._entries[key] = (size, answer)

    @property
    def bytes(self) -> int:
        """Estimated bytes held now."""
        return int(self._entries.currsize)

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Answers in Redis, shared by every worker and replica; expiry by Redis (``SET … EX``)."""

    name = "redis"

    def __init__(self, link: RedisLink, ttl_s: float) -> None:
        self._link = link
        self._ttl_ms = max(1, int(ttl_s * 1000))

    async def get(self, key: str, kind: type[Entry] = CachedAnswer) -> Entry | None:  # type: ignore[assignment]
        ok, raw = await self._link.call("cache_get", lambda: self._link.client.get(key))
        if not ok or raw is None:
            return None
        try:
            return kind.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            return None  # a foreign or corrupt value is a miss, and gets overwritten

    async def set(self, key: str, answer: CachedAnswer | CachedVideo) -> None:
        raw = answer.to_bytes()
        await self._link.call("cache_set", lambda: self._link.client.set(key, raw, px=self._ttl_ms))

    async def close(self) -> None:
        return None  # the link is closed by its owner
