"""ASGI middleware around every response: request id, body size cap, security headers.

Pure ASGI (no BaseHTTPMiddleware): it wraps ``send`` to edit headers, which costs a few
microseconds and does not buffer bodies.

- ``X-Request-ID``: the caller's value when it is a sane token (≤ 128 of ``[A-Za-z0-9._:-]``),
  else a new random UUID (``uuid4``, from the OS's CSPRNG: ids must not be predictable from
  earlier ones); echoed on every response and stored in ``scope["state"]["request_id"]``.
- ``/metrics``: with a token configured (``GATEWAY_METRICS_TOKEN``) only
  ``Authorization: Bearer <token>`` reads it; anything else is 401 before BentoML runs.
- ``/docs.json``: the gateway's OpenAPI 3.0 document (``gateway.openapi``) instead of
  BentoML's, which mixes in 3.1 forms.
- Body cap: a declared ``Content-Length`` over the route's cap is refused with 413 before any
  byte is read; a chunked body is counted as it streams: at the cap the middleware answers
  413 itself and hands the app a disconnect, dropping anything the app sends after.
- OWASP REST headers: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a CSP
  that allows nothing for API responses (the HTML docs page gets a policy it can work with),
  ``Referrer-Policy: no-referrer``, ``Cross-Origin-Resource-Policy: same-origin``,
  ``Cache-Control: no-store`` on /v1, optional HSTS; any ``Server`` header is removed.
- Admission (``gateway.admission``: API key, rate limit) of ``/v1/…`` requests runs here,
  before routing and the body: a 401 or 429 is answered from this layer, with the same JSON
  body and headers the app's handlers give; the connection is kept (the unread body is
  discarded by the server).
- Rate-limit headers placed in ``scope["state"]["ratelimit_headers"]`` by admission are
  added here, so every /v1 response carries them, errors included.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.errors import NotFound, PayloadTooLarge, Unauthorized, error_body, error_headers
from visionserve.errors import VisionServeError

__all__ = ["ADMITTED_METHODS", "API_PREFIX", "GatewayMiddleware"]

API_PREFIX = "/v1"
_API_PATHS = API_PREFIX + "/"
#: Methods whose ``/v1/…`` requests are admitted here: every route and the catch-all take
#: them, each authenticating first. HEAD (a 405 on unknown paths, no auth) and OPTIONS (CORS
#: preflights, when enabled, are answered further in) are left to the app's own dependency.
ADMITTED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CSP_API = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_CSP_HTML = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)
_DROP = {b"server", b"x-powered-by"}


class GatewayMiddleware:
    """Request id, body cap and security headers for every HTTP response.

    Args:
        app: the wrapped ASGI app.
        max_request_bytes: body cap of every route but the batch route.
        max_batch_request_bytes: body cap of ``/v1/classify/batch``.
        hsts_max_age_s: HSTS max-age; 0 sends no HSTS header.
        metrics_token: the bearer token ``/metrics`` needs; None leaves it open.
        openapi_document: builds the JSON served at ``/docs.json`` (once, on first request);
            None leaves BentoML's.
        admit: admits a ``/v1/…`` request before the app runs (``gateway.admission``): raises
            the ``VisionServeError`` to answer with (401, 429, 503), else leaves the caller in
            ``scope["state"]``. None leaves admission to the app.
    """

    def __init__(
        self,
        app: Any,
        *,
        max_request_bytes: int,
        max_batch_request_bytes: int,
        hsts_max_age_s: int = 0,
        metrics_token: str | None = None,
        openapi_document: Callable[[], bytes] | None = None,
        admit: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
    ) -> None:
        self.app = app
        self._admit = admit
        self.metrics_authorization = f"Bearer {metrics_token}".encode() if metrics_token else None
        self._openapi_document = openapi_document
        self._openapi_bytes: bytes | None = None
        self.max_request_bytes = max_request_bytes
        self.max_batch_request_bytes = max_batch_request_bytes
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains".encode() if hsts_max_age_s > 0 else None

    def _cap(self, path: str) -> int:
        return (
            self.max_batch_request_bytes if path.startswith(f"{API_PREFIX}/classify/batch") else self.max_request_bytes
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = _request_id(scope)
        state["started_s"] = time.perf_counter()
        reply = _Reply(send, state, is_api=scope["path"].startswith(API_PREFIX), hsts=self.hsts)
        if not await self._answered_here(scope, reply):
            await self._forward(scope, receive, reply)

    async def _answered_here(self, scope: dict[str, Any], reply: _Reply) -> bool:
        """Answer what needs no app (guarded /metrics, /docs.json, 404, 413, refused admission)."""
        path: str = scope["path"]
        if path == "/metrics" and self.metrics_authorization is not None and not self._metrics_allowed(scope):
            await _send_error(reply, Unauthorized("/metrics needs its bearer token"))
        elif path == "/docs.json" and self._openapi_document is not None and scope.get("method") in ("GET", "HEAD"):
            if self._openapi_bytes is None:
                self._openapi_bytes = self._openapi_document()
            await _send_json(reply, 200, self._openapi_bytes, [])
        elif reply.is_api and ("\n" in path or "\r" in path):
            # Found by the fuzzer: routers match paths with `.*`, which stops at a line break, so
            # such a path fell through to BentoML's plain-text 404; answer it as every 404 is.
            await _send_error(reply, NotFound("no such route"))
        elif (declared := _content_length(scope)) is not None and declared > self._cap(path):
            await _reject(reply, self._cap(path))
        elif self._admit is not None and path.startswith(_API_PATHS) and scope["method"] in ADMITTED_METHODS:
            try:
                await self._admit(scope)
            except VisionServeError as exc:  # 401, 429, 503: before routing, dependencies or the body
                await _send_error(reply, exc)
                return True
            return False
        else:
            return False
        return True

    async def _forward(self, scope: dict[str, Any], receive: Any, reply: _Reply) -> None:
        """Run the app, counting the body as it streams: past the cap, 413 and a disconnect."""
        cap = self._cap(scope["path"])
        received = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            if reply.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # A streamed (chunked) body passed the cap: answer 413 now and tell the app
                    # the client is gone, so it stops reading.
                    if not reply.started:
                        await _reject(reply, cap)
                    reply.refused = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counting_receive, reply)
        except Exception:
            if not reply.refused:
                raise
            # the app failed on the disconnect we simulated; the caller already has its 413

    def _metrics_allowed(self, scope: dict[str, Any]) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.metrics_authorization or b"")
        return False


class _Reply:
    """The ``send`` the app gets: adds the request id, security and rate-limit headers.

    After the middleware answered 413 itself (``refused``), whatever the app sends is dropped.
    """

    def __init__(self, send: Any, state: dict[str, Any], *, is_api: bool, hsts: bytes | None) -> None:
        self._send = send
        self._state = state
        self._hsts = hsts
        self.is_api = is_api
        self.started = False
        self.refused = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
            message["headers"] = self._headers(message.get("headers", []))
        await self._send(message)

    def _headers(self, given: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in given if k.lower() not in _DROP]
        html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
        headers += [
            (b"x-request-id", self._state["request_id"].encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", _CSP_HTML if html else _CSP_API),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        if self.is_api:
            headers.append((b"cache-control", b"no-store"))
            present = {k.lower() for k, _ in headers}
            for key, value in (self._state.get("ratelimit_headers") or {}).items():
                name = key.lower().encode()
                if name not in present:  # e.g. Retry-After set by the 429 itself
                    headers.append((name, value.encode()))
        if self._hsts is not None:
            headers.append((b"strict-transport-security", self._hsts))
        return headers


def _request_id(scope: dict[str, Any]) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new random one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


async def _send_error(send: Any, exc: VisionServeError) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in error_headers(exc).items()]
    await _send_json(send, exc.error_code, orjson.dumps(error_body(exc)), extra)


async def _reject(send: Any, cap: int) -> None:
    body = orjson.dumps(error_body(PayloadTooLarge(f"the request body is larger than {cap:,} bytes")))
    await _send_json(send, 413, body, [(b"connection", b"close")])


async def _send_json(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
