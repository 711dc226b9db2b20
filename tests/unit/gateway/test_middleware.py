"""Request id, body cap and security headers, on a small ASGI app behind the middleware."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from gateway.middleware import GatewayMiddleware


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    request.scope["state"]["ratelimit_headers"] = {"X-RateLimit-Limit": "9"}
    return JSONResponse(
        {"n": len(body), "rid": request.scope["state"]["request_id"]}, headers={"server": "x/1.0"}
    )


async def page(_request: Request) -> HTMLResponse:
    return HTMLResponse("<html></html>")


def client(hsts: int = 0) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/v1/echo", echo, methods=["POST"]), Route("/v1/classify/batch", echo,
                    methods=["POST"]), Route("/", page)])  # fmt: skip
    wrapped = GatewayMiddleware(app, max_request_bytes=100, max_batch_request_bytes=1000, hsts_max_age_s=hsts)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://gw")


@pytest.mark.anyio
async def test_security_headers_on_api_responses() -> None:
    async with client(hsts=300) as c:
        r = await c.post("/v1/echo", content=b"abc")
    assert r.status_code == 200 and r.json()["n"] == 3
    h = r.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert "default-src 'none'" in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["strict-transport-security"] == "max-age=300; includeSubDomains"
    assert h["cache-control"] == "no-store"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-ratelimit-limit"] == "9"
    assert "server" not in h


@pytest.mark.anyio
async def test_html_gets_a_workable_csp_and_hsts_can_be_off() -> None:
    async with client(hsts=0) as c:
        r = await c.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "strict-transport-security" not in r.headers
    assert "cache-control" not in r.headers  # only /v1 is no-store


@pytest.mark.anyio
async def test_request_id_is_echoed_when_sane_and_generated_otherwise() -> None:
    async with client() as c:
        given = await c.post("/v1/echo", headers={"X-Request-ID": "abc-123"})
        hostile = await c.post("/v1/echo", headers={"X-Request-ID": 'x"; <script>' + "a" * 200})
        missing = await c.post("/v1/echo")
    assert given.headers["x-request-id"] == "abc-123" == given.json()["rid"]
    assert hostile.headers["x-request-id"] != "x" and len(hostile.headers["x-request-id"]) == 32
    assert len(missing.headers["x-request-id"]) == 32


@pytest.mark.anyio
async def test_declared_oversize_body_is_refused_before_reading() -> None:
    async with client() as c:
        r = await c.post("/v1/echo", content=b"x" * 101)
        ok_batch = await c.post("/v1/classify/batch", content=b"x" * 900)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert ok_batch.status_code == 200  # the batch route has its own, larger cap


@pytest.mark.anyio
async def test_streamed_oversize_body_is_cut_off() -> None:
    async def chunks():
        for _ in range(5):
            yield b"y" * 40

    async with client() as c:
        r = await c.post("/v1/echo", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def metrics(_request: Request) -> HTMLResponse:
    return HTMLResponse("# metrics\n", media_type="text/plain")


def guarded(token: str | None) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/metrics", metrics), Route("/v1/echo", echo, methods=["POST"])])
    wrapped = GatewayMiddleware(app, max_request_bytes=100, max_batch_request_bytes=1000, metrics_token=token,
                                openapi_document=lambda: b'{"openapi": "3.0.3"}')  # fmt: skip
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://gw")


@pytest.mark.anyio
async def test_generated_request_ids_do_not_follow_the_random_module() -> None:
    """Finding: request ids came from ``random.getrandbits`` (predictable once its state is known)."""
    import random

    ids = []
    async with client() as c:
        for _ in range(2):
            random.seed(12345)
            ids.append((await c.post("/v1/echo", content=b"")).headers["x-request-id"])
    assert ids[0] != ids[1]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.anyio
async def test_metrics_token_guards_metrics_only() -> None:
    """Finding: /metrics was public through the ingress; a token setting protects it."""
    async with guarded("s3cret") as c:
        anonymous = await c.get("/metrics")
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        api = await c.post("/v1/echo", content=b"x")
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized" and anonymous.headers["www-authenticate"]
    assert anonymous.headers["x-request-id"] and anonymous.headers["x-content-type-options"] == "nosniff"
    assert right.status_code == 200 and right.text == "# metrics\n"
    assert api.status_code == 200
    async with guarded(None) as c:
        assert (await c.get("/metrics")).status_code == 200


@pytest.mark.anyio
async def test_docs_json_is_the_gateways_document() -> None:
    async with guarded(None) as c:
        r = await c.get("/docs.json")
    assert r.status_code == 200 and r.json() == {"openapi": "3.0.3"}
    assert r.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_a_path_with_a_line_break_is_a_json_404() -> None:
    """Found by the fuzzer: /v1/history/%0A fell through every router to a plain-text 404."""
    async with client() as c:
        r = await c.get("/v1/history/a%0Ab")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
