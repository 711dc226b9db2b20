"""Admission (key + rate limit) as one step, and the middleware that runs it before the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.admission import Admission, Quota, bearer_key
from gateway.auth import KeyStore
from gateway.db import make_engine, migrate
from gateway.errors import RateLimited, Unauthorized
from gateway.limits import RateLimiter
from gateway.metrics import GatewayMetrics
from gateway.middleware import GatewayMiddleware


def scope(key: str | None = None, *, client: str = "10.0.0.1", extra: list[tuple[bytes, bytes]] = ()) -> dict:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return {"type": "http", "headers": [*headers, *extra], "client": (client, 1234), "state": {}}


@pytest.fixture
def admission(tmp_path: Path) -> tuple[Admission, str, GatewayMetrics]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    keys = KeyStore(engine, b"pepper", cache_ttl_s=60)
    _, key = keys.create("alice")
    metrics = GatewayMetrics(CollectorRegistry())
    gate = Admission(keys, RateLimiter(), metrics, key_quota=Quota(1.0, 2), anonymous_quota=Quota(1.0, 1))
    return gate, key, metrics


@pytest.mark.anyio
@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "bearer abc ", "Bearer  abc", "Basic abc", "Bearer", "Bearer ", "", "Token x y", "BEARER a b"],
)
async def test_bearer_key_is_parsed_as_fastapis_http_bearer_does(header: str) -> None:
    app = FastAPI()
    bearer = HTTPBearer(auto_error=False)

    @app.get("/")
    async def read(request: Request) -> dict:
        found = await bearer(request)
        return {"key": found.credentials if found else None}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        expected = (await c.get("/", headers={"Authorization": header} if header else {})).json()["key"]
    assert bearer_key(scope(extra=[(b"authorization", header.encode())] if header else [])) == expected


@pytest.mark.anyio
async def test_a_key_past_its_burst_is_refused_with_headers_and_a_count(admission) -> None:
    gate, key, metrics = admission
    for _ in range(2):
        s = scope(key)
        identity = await gate.admit(s)
        assert s["state"]["identity"] == identity and identity.user == "alice"
        assert s["state"]["ratelimit_headers"]["X-RateLimit-Limit"] == "2"
    s = scope(key)
    with pytest.raises(RateLimited) as refused:
        await gate.admit(s)
    assert refused.value.headers["Retry-After"] == "1"
    assert str(refused.value) == "rate limit of 2 requests (refill 1/s) exceeded"
    assert s["state"]["ratelimit_headers"]["X-RateLimit-Remaining"] == "0"
    assert "identity" not in s["state"]
    assert metrics.rate_limited.labels("key")._value.get() == 1


@pytest.mark.anyio
async def test_no_key_takes_from_the_address_bucket_then_is_unauthorized(admission) -> None:
    gate, _, metrics = admission
    with pytest.raises(Unauthorized, match="missing API key"):
        await gate.admit(scope())
    with pytest.raises(RateLimited, match="too many unauthenticated requests"):
        await gate.admit(scope())
    with pytest.raises(Unauthorized):  # another address has its own bucket
        await gate.admit(scope(client="10.0.0.2"))
    assert metrics.rate_limited.labels("anonymous")._value.get() == 1


@pytest.mark.anyio
async def test_an_unknown_key_is_not_looked_up_once_its_address_bucket_is_empty(admission) -> None:
    gate, _, _ = admission
    lookups: list[str] = []
    real = gate.keys.alookup

    async def counting(key: str) -> Any:
        lookups.append(key)
        return await real(key)

    gate.keys.alookup = counting  # type: ignore[method-assign]
    made_up = "vsk_0123456789ab_" + "x" * 30
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        await gate.admit(scope(made_up))
    with pytest.raises(RateLimited):
        await gate.admit(scope(made_up[:-1] + "y"))
    assert len(lookups) == 1


@pytest.mark.anyio
async def test_a_batch_is_charged_one_token_per_further_image(admission) -> None:
    gate, key, _ = admission
    s = scope(key)
    caller = await gate.admit(s)
    await gate.charge(s, caller, 0)  # a single image costs nothing more
    with pytest.raises(RateLimited, match="a batch of 3 images needs 3 tokens"):
        await gate.charge(s, caller, 2)


def guarded(admit: Any, calls: list[str]) -> httpx.AsyncClient:
    async def route(request: Any) -> JSONResponse:
        calls.append(request.method)
        return JSONResponse({"identity": request.scope["state"].get("identity")})

    app = Starlette(routes=[Route("/v1/{path:path}", route, methods=["GET", "POST", "HEAD"]), Route("/livez", route)])
    wrapped = GatewayMiddleware(app, max_request_bytes=1000, max_batch_request_bytes=1000, admit=admit)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://gw")


@pytest.mark.anyio
async def test_middleware_answers_a_refused_admission_before_the_app() -> None:
    calls: list[str] = []

    async def refuse(s: dict) -> None:
        s["state"]["ratelimit_headers"] = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
                                           "X-RateLimit-Reset": "2", "Retry-After": "1"}  # fmt: skip
        raise RateLimited("rate limit of 20 requests (refill 10/s) exceeded", headers={"Retry-After": "1"})

    async with guarded(refuse, calls) as c:
        r = await c.post("/v1/classify", files={"image": ("a.jpg", b"x" * 500, "image/jpeg")})
        live = await c.get("/livez")
    assert r.status_code == 429 and calls == ["GET"] and live.status_code == 200
    assert r.json() == {
        "error": {"code": "rate_limited", "message": "rate limit of 20 requests (refill 10/s) exceeded"}
    }
    assert r.headers["retry-after"] == "1" and r.headers.get_list("retry-after") == ["1"]
    assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == ("20", "0")
    assert r.headers["content-type"] == "application/json" and "connection" not in r.headers
    assert r.headers["x-request-id"] and r.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_middleware_admits_api_methods_only_and_leaves_the_rest_to_the_app() -> None:
    calls: list[str] = []
    admitted: list[str] = []

    async def admit(s: dict) -> None:
        admitted.append(s["method"])
        s["state"]["identity"] = "alice"

    async with guarded(admit, calls) as c:
        ok = await c.get("/v1/models")
        head = await c.head("/v1/models")
        await c.get("/livez")
    assert ok.json() == {"identity": "alice"} and head.status_code == 200
    assert admitted == ["GET"] and calls == ["GET", "HEAD", "GET"]


@pytest.mark.anyio
async def test_middleware_checks_the_body_cap_before_admission() -> None:
    async def refuse(_s: dict) -> None:
        raise Unauthorized("missing API key")

    async with guarded(refuse, []) as c:
        big = await c.post("/v1/classify", content=b"x" * 2000)
        small = await c.post("/v1/classify", content=b"x")
    assert big.status_code == 413 and small.status_code == 401
    assert small.headers["www-authenticate"] == 'Bearer realm="visionserve"'
