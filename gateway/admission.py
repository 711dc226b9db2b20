"""Admission: the one step in front of every /v1 route — who is calling, and a token for it.

``Admission.admit`` reads the bearer key, looks it up, takes a token from the right bucket
and leaves ``X-RateLimit-*`` headers (``scope["state"]["ratelimit_headers"]``) and the
caller (``scope["state"]["identity"]``) in the request's state. It runs in
``GatewayMiddleware`` (pure ASGI), before routing, FastAPI's dependency solver, the body and
exception rendering, so a refused request (401, 429) costs a bucket lookup and a small JSON
write; the routes' dependency (``service.authenticate``) takes the identity it left, and
admits by itself only for a request the middleware let through unadmitted (HEAD, OPTIONS).

The order of the checks:

1. a malformed key, or one found or missed within the key cache's TTL, is known without
   the database (``KeyStore.cached``);
2. an unknown but well-formed key must find a token in its client address's bucket *before*
   its database lookup, so made-up keys cost no query once that bucket is empty (a lookup
   that fails because the database is down still takes the token);
3. no valid key: a token from the address's bucket (429 when empty), then 401;
4. a valid key: a token from the key's bucket (429 when empty). A batch takes one more per
   further image (``charge``) once its part headers are read; a video one more per further
   sampled frame, once the frames are known and before Triton is asked (``gateway.classify_video``);
   an image that misses the cache one more per ``decode_ms_per_token`` of its estimated decode
   beyond the first, before it is checked (``Classifier._check``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import sqlalchemy.exc

from gateway.auth import Identity, KeyStore
from gateway.cache import CACHE_SCOPE
from gateway.errors import RateLimited, Unauthorized
from gateway.limits import LimitDecision, RateLimiter
from gateway.metrics import GatewayMetrics
from gateway.proxies import Network, client_address

__all__ = ["Admission", "Charge", "Quota", "bearer_key"]

#: Takes that many more tokens from the caller's bucket (raises ``RateLimited``, 429): what the
#: routes hand the flows for a batch's images, a video's frames and an image's decode cost.
Charge = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Quota:
    """A token bucket's size: ``burst`` tokens, refilled at ``rate_per_s``."""

    rate_per_s: float
    burst: int


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of a request header (as Starlette's ``headers.get`` reads it)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_key(scope: dict[str, Any]) -> str | None:
    """The key of ``Authorization: Bearer <key>``, parsed as FastAPI's ``HTTPBearer`` does."""
    authorization = _header(scope, b"authorization")
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if not scheme or not credentials or scheme.lower() != "bearer":
        return None
    return credentials


class Admission:
    """Authentication and rate limits of the /v1 API.

    Args:
        keys: the API-key store.
        limiter: the token buckets (Redis, or this process's).
        metrics: ``rate_limited`` is counted per bucket kind (``key``, ``anonymous``).
        key_quota: each key's bucket.
        anonymous_quota: each client address's bucket (requests without a valid key).
        trusted_proxies: proxies whose ``X-Forwarded-For`` names the client address.
        cache_per_key: scope the result cache to the caller's key (``GATEWAY_CACHE_SCOPE=key``).
    """

    def __init__(
        self,
        keys: KeyStore,
        limiter: RateLimiter,
        metrics: GatewayMetrics,
        *,
        key_quota: Quota,
        anonymous_quota: Quota,
        trusted_proxies: Sequence[Network] = (),
        cache_per_key: bool = True,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics
        self.key_quota = key_quota
        self.anonymous_quota = anonymous_quota
        self.trusted_proxies = trusted_proxies
        self.cache_per_key = cache_per_key

    async def admit(self, scope: dict[str, Any]) -> Identity:
        """The caller's identity, after a token from its bucket.

        Raises:
            Unauthorized: no key, unknown or revoked key (401).
            RateLimited: the key's (or, without a valid key, the address's) bucket is empty (429).
            sqlalchemy.exc.SQLAlchemyError: the key database failed during a lookup.
        """
        state = scope.setdefault("state", {})
        key = bearer_key(scope)
        known, identity = self.keys.cached(key) if key else (True, None)
        if not known:
            assert key is not None
            bucket = self._address_bucket(scope)
            peeked = await self.limiter.peek(bucket, *self._anonymous)
            if not peeked.allowed:
                self._report(state, peeked, "anonymous")
            try:
                identity = await self.keys.alookup(key)
            except sqlalchemy.exc.SQLAlchemyError:
                # the database is down: the lookup still counts, or retries would hammer it
                await self.limiter.take(bucket, *self._anonymous)
                raise
        if identity is None:
            await self._take(state, self._address_bucket(scope), self.anonymous_quota, 1, "anonymous")
            raise Unauthorized("missing API key" if not key else "invalid or revoked API key")
        await self._take(state, f"key:{identity.key_id}", self.key_quota, 1, "key")
        if self.cache_per_key:
            CACHE_SCOPE.set(identity.key_id)
        state["identity"] = identity
        return identity

    async def charge(self, scope: dict[str, Any], caller: Identity, extra: int, *, unit: str = "images") -> None:
        """Take ``extra`` more tokens from the caller's bucket (one per image of a batch, per frame of a video).

        ``unit`` names what the tokens pay for in the 429's message ("images", "sampled frames").
        """
        if extra > 0:
            state = scope.setdefault("state", {})
            await self._take(state, f"key:{caller.key_id}", self.key_quota, extra, "key", batch=extra + 1, unit=unit)

    @property
    def _anonymous(self) -> tuple[float, int]:
        return self.anonymous_quota.rate_per_s, self.anonymous_quota.burst

    async def _take(
        self,
        state: dict[str, Any],
        bucket: str,
        quota: Quota,
        cost: int,
        kind: str,
        *,
        batch: int = 0,
        unit: str = "images",
    ) -> None:
        decision = await self.limiter.take(bucket, quota.rate_per_s, quota.burst, cost)
        self._report(state, decision, kind, batch=batch, unit=unit)

    def _report(
        self, state: dict[str, Any], decision: LimitDecision, kind: str, *, batch: int = 0, unit: str = "images"
    ) -> None:
        """Put the decision's headers on the response; refuse (429) when it was no."""
        state["ratelimit_headers"] = decision.headers()
        if not decision.allowed:
            self._refuse(decision, kind, batch, unit)

    def _refuse(self, decision: LimitDecision, kind: str, batch: int, unit: str = "images") -> NoReturn:
        self.metrics.rate_limited.labels(kind).inc()
        if batch and unit == "decode tokens":
            message = f"decoding this image costs {batch} tokens (its pixels and structure); too few are left"
        elif batch:
            what = "a batch" if unit == "images" else "a request"
            message = f"{what} of {batch} {unit} needs {batch} tokens; too few are left"
        elif kind == "key":
            quota = self.key_quota
            message = f"rate limit of {quota.burst} requests (refill {quota.rate_per_s:g}/s) exceeded"
        else:
            message = "too many unauthenticated requests"
        raise RateLimited(message, headers={"Retry-After": str(decision.retry_after_s)})

    def _address_bucket(self, scope: dict[str, Any]) -> str:
        client = scope.get("client")
        peer = client[0] if client else None
        return "anon:" + client_address(peer, _header(scope, b"x-forwarded-for"), self.trusted_proxies)
