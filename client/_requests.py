"""Requests built without a client object: for load generators that carry them on their own connections.

Locust's users and the benchmarks time the exchange on connections they own (geventhttpclient,
a gRPC channel per user, a minimal HTTP/1.1 client), so they need the request itself, built
exactly as ``TritonClient`` builds it, and the gateway's multipart form.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from client._adapters import adapter_for
from client._config import DEFAULT_TIMEOUT_S, Protocol

__all__ = ["CLASSIFY_PATH", "CLASSIFY_VIDEO_PATH", "classification_request", "classify_form"]

#: The gateway's classification endpoints.
CLASSIFY_PATH = "/v1/classify"
CLASSIFY_VIDEO_PATH = "/v1/classify/video"


def classification_request(
    images: Sequence[bytes], top_k: int, *, protocol: Protocol = "grpc"
) -> tuple[list[Any], list[Any]]:
    """(inputs, outputs) of one classification for tritonclient's ``infer`` of ``protocol``.

    The same request ``TritonClient.classify`` sends: ``image`` [batch, 1] BYTES and
    ``probabilities`` with ``class_count=top_k``; over HTTP both travel as binary data.

    Raises:
        InvalidRequest: unknown protocol, ``top_k`` < 1, or an image that is not bytes.
    """
    return adapter_for(protocol, DEFAULT_TIMEOUT_S).classification_request(images, top_k)


def classify_form(
    image: bytes,
    *,
    model: str,
    top_k: int,
    filename: str = "image",
    content_type: str = "application/octet-stream",
    boundary: str | None = None,
    field: str = "image",
    options: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """The multipart body of one ``POST /v1/classify`` (fields ``model``, ``top_k``, ``image``).

    Args:
        image: the encoded image (or video).
        model: the model asked for.
        top_k: predictions asked for.
        filename: the upload's file name.
        content_type: the image part's declared media type (the gateway goes by the bytes).
        boundary: the multipart boundary (a random one when None).
        field: the file part's name: ``video`` for ``POST /v1/classify/video``.
        options: more text fields (``{"every_seconds": "1"}``).

    Returns:
        (body, the request's ``Content-Type`` header value).
    """
    boundary = boundary or uuid.uuid4().hex
    fields = {"model": model, "top_k": str(top_k), **(options or {})}
    head = (
        "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
        + f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return b"".join((head, image, f"\r\n--{boundary}--\r\n".encode())), f"multipart/form-data; boundary={boundary}"
