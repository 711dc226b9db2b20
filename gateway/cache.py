"""The classification cache: Redis when configured, else an in-process TTL'd LRU.

Key = SHA-256 of the image bytes + model + *served version* + top_k (+ a fingerprint of the
upload policy, so an answer is only reused for bytes that passed today's checks). The served
version comes from ``gateway.versions``; once a new version is ready in Triton the gateway
looks up new keys, so an older version's answer is never read again and simply expires.

Redis failures never fail a request: ``get`` answers "miss", ``set`` is skipped, the breaker
in ``RedisLink`` logs and counts, and the request is served uncached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import orjson
from cachetools import TTLCache

from gateway.redis_link import RedisLink

__all__ = ["CachedAnswer", "LocalCache", "RedisCache", "ResultCache", "cache_key"]


@dataclass(frozen=True)
class CachedAnswer:
    """What Triton answered for one image: the version that answered and the top-k."""

    model: str
    version: int
    predictions: tuple[tuple[str, int, float], ...]

    def to_bytes(self) -> bytes:
        return orjson.dumps({"m": self.model, "v": self.version, "p": self.predictions})

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        data = orjson.loads(raw)
        return cls(data["m"], int(data["v"]), tuple((str(a), int(b), float(c)) for a, b, c in data["p"]))


def cache_key(image_sha256: str, model: str, version: int, top_k: int, policy: str) -> str:
    """The cache key of one (image, model, served version, top_k) under an upload policy."""
    return f"vs:c:{policy}:{model}:{version}:{top_k}:{image_sha256}"


class ResultCache(Protocol):
    """What the service needs from a cache backend."""

    name: str

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def set(self, key: str, answer: CachedAnswer) -> None: ...

    async def close(self) -> None: ...


class LocalCache:
    """An LRU with a TTL, private to this worker process (event-loop only, no locking needed)."""

    name = "local"

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._entries: TTLCache[str, CachedAnswer] = TTLCache(maxsize=max_entries, ttl=ttl_s)

    async def get(self, key: str) -> CachedAnswer | None:
        return self._entries.get(key)

    async def set(self, key: str, answer: CachedAnswer) -> None:
        self._entries[key] = answer

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

    async def get(self, key: str) -> CachedAnswer | None:
        ok, raw = await self._link.call("cache_get", lambda: self._link.client.get(key))
        if not ok or raw is None:
            return None
        try:
            return CachedAnswer.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            return None  # a foreign or corrupt value is a miss, and gets overwritten

    async def set(self, key: str, answer: CachedAnswer) -> None:
        raw = answer.to_bytes()
        await self._link.call("cache_set", lambda: self._link.client.set(key, raw, px=self._ttl_ms))

    async def close(self) -> None:
        return None  # the link is closed by its owner
