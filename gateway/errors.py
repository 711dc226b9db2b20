"""Errors the gateway answers with, each carrying its HTTP status, a stable code and headers.

Error tree (all under ``visionserve.errors.VisionServeError``)::

    GatewayError                  base: ``error_code`` (HTTP status), ``code``, ``headers``
    ├── BadRequest           400  a malformed request (fields, JSON, base64, headers)
    ├── Unauthorized         401  no key, unknown key, revoked key
    ├── Forbidden            403  a user asking for an admin-only view
    ├── NotFound             404  unknown or someone else's record
    ├── MethodNotAllowed     405  a method the path does not take (``Allow``)
    ├── PayloadTooLarge      413  request body over the cap
    ├── RateLimited          429  the key's bucket is empty (``Retry-After``)
    ├── UpstreamError        502  Triton rejected an inference
    └── UpstreamUnavailable  503  Triton unreachable, the model not ready, or the database down (``Retry-After``)
    ImageError (visionserve)      an upload that is not an acceptable image
    ├── BadImage             400  empty, truncated, corrupt, polyglot (code ``invalid_image``,
    │                             refined: ``empty_image``, ``truncated_image``, ``corrupt_image``…)
    ├── ImageTooLarge        413  bytes or pixels over the format's limit
    └── UnsupportedImage     415  not JPEG/PNG/WebP/BMP/GIF (PDF, ZIP, executables, …)

Every one becomes ``{"error": {"code": …, "message": …}}`` with its status: never a 500.
"""

from __future__ import annotations

from typing import Any

from visionserve.errors import ImageError, VisionServeError

__all__ = [
    "BadImage",
    "BadRequest",
    "Forbidden",
    "GatewayError",
    "ImageTooLarge",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "UnsupportedImage",
    "UpstreamError",
    "UpstreamUnavailable",
    "INTERNAL_MESSAGE",
    "error_body",
    "error_headers",
]

#: What the caller of a request that failed unexpectedly is told (details go to the log).
INTERNAL_MESSAGE = "internal error; the request id is in X-Request-ID"


class _Coded:
    """Mixin: an instance may refine the class's ``code`` and add response headers."""

    code: str
    error_code: int

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)  # type: ignore[call-arg]
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class GatewayError(_Coded, VisionServeError):
    """A request the gateway refuses or cannot serve; the message is safe to show the caller."""

    error_code = 500
    code = "internal"


class BadRequest(GatewayError):
    error_code = 400
    code = "invalid_request"


class Unauthorized(GatewayError):
    error_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="visionserve"')


class Forbidden(GatewayError):
    error_code = 403
    code = "forbidden"


class NotFound(GatewayError):
    error_code = 404
    code = "not_found"


class MethodNotAllowed(GatewayError):
    error_code = 405
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    error_code = 413
    code = "payload_too_large"


class RateLimited(GatewayError):
    error_code = 429
    code = "rate_limited"


class UpstreamError(GatewayError):
    error_code = 502
    code = "inference_failed"


class UpstreamUnavailable(GatewayError):
    error_code = 503
    code = "triton_unavailable"


class BadImage(_Coded, ImageError):
    """Bytes that claim to be an image but are empty, truncated, corrupt or carry another file.

    The gateway's 400 for an image, named like its siblings after the HTTP status it answers
    (``BadRequest`` 400, ``ImageTooLarge`` 413, ``UnsupportedImage`` 415); not
    ``visionserve.imaging.InvalidImage``, the decoder's own ValueError, which ``uploads``
    translates into this.
    """

    error_code = 400
    code = "invalid_image"


class ImageTooLarge(_Coded, ImageError):
    error_code = 413
    code = "image_too_large"


class UnsupportedImage(_Coded, ImageError):
    error_code = 415
    code = "unsupported_media_type"


def error_body(exc: BaseException) -> dict[str, dict[str, str]]:
    """The JSON body of an error response; unknown exceptions say nothing about internals."""
    if isinstance(exc, VisionServeError):
        return {"error": {"code": exc.code, "message": str(exc)}}
    return {"error": {"code": "internal", "message": INTERNAL_MESSAGE}}


def error_headers(exc: BaseException) -> dict[str, str]:
    """Extra response headers of an error (``Retry-After``, ``WWW-Authenticate``)."""
    return dict(getattr(exc, "headers", None) or {})
