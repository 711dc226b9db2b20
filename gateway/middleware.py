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
- Rate-limit headers placed in ``scope["state"]["ratelimit_headers"]`` by the auth
  dependency are added here, so every /v1 response carries them, errors included.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import NotFound, PayloadTooLarge, Unauthorized, error_body, error_headers

__all__ = ["API_PREFIX", "GatewayMiddleware"]

API_PREFIX = "/v1"
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
    ) -> None:
        self.app = app
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
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started_s"] = time.perf_counter()
        path: str = scope["path"]
        is_api = path.startswith(API_PREFIX)
        started = False
        refused = False  # we answered 413 ourselves: whatever the app sends later is dropped

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _DROP]
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", _CSP_HTML if html else _CSP_API),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                if is_api:
                    headers.append((b"cache-control", b"no-store"))
                    present = {k.lower() for k, _ in headers}
                    for key, value in (state.get("ratelimit_headers") or {}).items():
                        name = key.lower().encode()
                        if name not in present:  # e.g. Retry-After set by the 429 itself
                            headers.append((name, value.encode()))
                if self.hsts is not None:
                    headers.append((b"strict-transport-security", self.hsts))
                message["headers"] = headers
            await send(message)

        if path == "/metrics" and self.metrics_authorization is not None and not self._metrics_allowed(scope):
            await self._send_error(send_with_headers, Unauthorized("/metrics needs its bearer token"), 401)
            return
        if path == "/docs.json" and self._openapi_document is not None and scope.get("method") in ("GET", "HEAD"):
            if self._openapi_bytes is None:
                self._openapi_bytes = self._openapi_document()
            await _send_json(send_with_headers, 200, self._openapi_bytes, [])
            return
        if is_api and ("\n" in path or "\r" in path):
            # Found by the fuzzer: routers match paths with `.*`, which stops at a line break, so
            # such a path fell through to BentoML's plain-text 404; answer it as every 404 is.
            await self._send_error(send_with_headers, NotFound("no such route"), 404)
            return
        cap = self._cap(path)
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await self._reject(send_with_headers, cap)
            return
        received = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # A streamed (chunked) body passed the cap: answer 413 now and tell the app
                    # the client is gone, so it stops reading.
                    if not started:
                        await self._reject(send_with_headers, cap)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except Exception:
            if not refused:
                raise
            # the app failed on the disconnect we simulated; the caller already has its 413

    def _metrics_allowed(self, scope: dict[str, Any]) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self.metrics_authorization or b"")
        return False

    @staticmethod
    async def _send_error(send: Any, exc: Exception, status: int) -> None:
        extra = [(k.lower().encode(), v.encode()) for k, v in error_headers(exc).items()]
        await _send_json(send, status, orjson.dumps(error_body(exc)), extra)

    @staticmethod
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
