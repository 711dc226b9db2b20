"""Request bodies of the classify routes: multipart files or base64 JSON → bytes + options.

The body has already been capped by ``GatewayMiddleware``; here every malformed body becomes
a 400 (or 415 for a content type that is neither form nor JSON) with a message saying what
to send instead.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from pydantic import ValidationError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from gateway.errors import BadRequest, UnsupportedImage
from gateway.schemas import ClassifyJSON, ClassifyOptions

__all__ = ["Upload", "decode_base64_image", "parse_multipart", "read_batch", "read_single"]

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
_OPTION_FIELDS = ("model", "top_k", "min_score")
_MAX_FIELD_BYTES = 1024


@dataclass(frozen=True)
class Upload:
    """One uploaded image: its bytes and the part's filename (if any)."""

    data: bytes
    filename: str | None = None


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def decode_base64_image(text: str) -> bytes:
    """Base64 (optionally a ``data:…;base64,`` URL, whitespace allowed) → bytes.

    Raises:
        BadRequest: not valid base64.
    """
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end() :]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image_base64 is not valid base64", code="invalid_base64") from None


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


#: The common shape ``form-data; name="…"[; filename="…"]`` without escapes, matched directly;
#: anything else goes through python-multipart's full header parser.
_SIMPLE_DISPOSITION = re.compile(rb'^form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?$')


def _disposition(value: bytes) -> tuple[str, str | None]:
    """(name, filename) of a Content-Disposition header value of a form-data part."""
    simple = _SIMPLE_DISPOSITION.match(value)
    if simple:
        raw_name, raw_filename = simple.group(1), simple.group(2)
    else:
        kind, params = parse_options_header(value)
        if kind != b"form-data" or b"name" not in params:
            raise BadRequest("multipart part is not form-data with a name", code="invalid_multipart")
        raw_name, raw_filename = params[b"name"], params.get(b"filename")
    name = raw_name.decode("utf-8", "replace")
    return name, raw_filename.decode("utf-8", "replace") if raw_filename is not None else None


def parse_multipart(body: bytes, content_type: str, *, max_parts: int) -> list[tuple[str, str | None, bytes]]:
    """Split an in-memory multipart/form-data body into (name, filename, data) parts.

    The body is already complete and capped (``GatewayMiddleware``), so the parts are found by
    searching for the delimiter (RFC 7578 / RFC 2046: ``CRLF--boundary``), with python-multipart
    parsing the part headers. Streaming through python-multipart and Starlette's UploadFile
    costs about 0.3 ms per request on this path, a third of a cache hit.

    Raises:
        BadRequest: no boundary, a malformed body, or more than ``max_parts`` parts.
    """
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not 1 <= len(boundary) <= 200:
        raise BadRequest("multipart body without a valid boundary", code="invalid_multipart")
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise BadRequest("multipart body does not start with its boundary", code="invalid_multipart")
    pos = start + len(delimiter)
    parts: list[tuple[str, str | None, bytes]] = []
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", pos):  # close delimiter: what follows is the epilogue
            return parts
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise BadRequest("malformed multipart delimiter line", code="invalid_multipart")
        head_start = line_end + 2
        if body.startswith(b"\r\n", head_start):  # a part without headers
            head_end, data_start = head_start, head_start + 2
        else:
            head_end = body.find(b"\r\n\r\n", head_start)
            if head_end < 0:
                raise BadRequest("multipart part headers are not terminated", code="invalid_multipart")
            data_start = head_end + 4
        data_end = body.find(separator, data_start)
        if data_end < 0:
            raise BadRequest("multipart body is not closed by its boundary", code="invalid_multipart")
        name: str | None = None
        filename: str | None = None
        for line in body[head_start:head_end].split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-disposition":
                name, filename = _disposition(value.strip())
        if name is None:
            raise BadRequest("multipart part without Content-Disposition", code="invalid_multipart")
        parts.append((name, filename, body[data_start:data_end]))
        if len(parts) > max_parts:
            raise BadRequest(f"too many multipart parts (at most {max_parts})", code="invalid_multipart")
        pos = data_end + len(separator)


async def _form_parts(request: Request, max_files: int) -> tuple[dict[str, str], list[Upload]]:
    body = await request.body()
    parts = parse_multipart(body, request.headers.get("content-type", ""), max_parts=max_files + len(_OPTION_FIELDS))
    options: dict[str, str] = {}
    uploads: list[Upload] = []
    for name, filename, data in parts:
        if name == "image":
            if filename is None:
                raise BadRequest("send `image` as a file part (with a filename), not as a text field")
            if len(uploads) >= max_files:
                raise BadRequest(f"too many files (at most {max_files})", code="too_many_images")
            uploads.append(Upload(data, filename))
        elif name in _OPTION_FIELDS:
            if filename is not None or name in options:
                raise BadRequest(f"`{name}` must be given once, as a text field")
            if len(data) > _MAX_FIELD_BYTES:
                raise BadRequest(f"`{name}` is too long")
            try:
                options[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"`{name}` is not UTF-8 text") from None
        else:
            raise BadRequest(f"unknown form field {name!r}; expected image, model, top_k, min_score")
    return options, uploads


def _options(raw: dict[str, object]) -> ClassifyOptions:
    try:
        return ClassifyOptions.model_validate(raw)
    except ValidationError as err:
        raise BadRequest(_validation_message(err)) from None


async def read_single(request: Request) -> tuple[ClassifyOptions, Upload]:
    """The one image and options of ``POST /v1/classify`` (multipart or JSON).

    Raises:
        BadRequest: malformed body, missing image, bad option values.
        UnsupportedImage: a content type that is neither multipart/form-data nor JSON (415).
    """
    media = _media_type(request)
    if media == "multipart/form-data":
        raw, uploads = await _form_parts(request, max_files=1)
        if len(uploads) != 1:
            raise BadRequest("send exactly one file in the multipart field `image`")
        return _options(dict(raw)), uploads[0]
    if media in ("application/json", ""):
        body = await request.body()
        if not body:
            raise BadRequest("empty body; send multipart/form-data with `image`, or JSON with `image_base64`")
        try:
            parsed = ClassifyJSON.model_validate_json(body)
        except ValidationError as err:
            raise BadRequest(_validation_message(err)) from None
        options = ClassifyOptions(model=parsed.model, top_k=parsed.top_k, min_score=parsed.min_score)
        return options, Upload(decode_base64_image(parsed.image_base64))
    raise UnsupportedImage(
        f"content type {media!r} is not accepted; send multipart/form-data (field `image`) or "
        "application/json (`image_base64`)",
        code="unsupported_content_type",
    )


async def read_batch(request: Request, max_images: int) -> tuple[ClassifyOptions, list[Upload]]:
    """The images and options of ``POST /v1/classify/batch`` (multipart, ``image`` repeated).

    Raises:
        BadRequest: malformed body, no image, more than ``max_images`` images.
        UnsupportedImage: not multipart/form-data (415).
    """
    media = _media_type(request)
    if media != "multipart/form-data":
        raise UnsupportedImage(
            f"content type {media or 'none'!r} is not accepted; send multipart/form-data with the field "
            "`image` repeated once per image",
            code="unsupported_content_type",
        )
    raw, uploads = await _form_parts(request, max_files=max_images + 1)
    if not uploads:
        raise BadRequest("send at least one file in the multipart field `image`")
    if len(uploads) > max_images:
        raise BadRequest(f"at most {max_images} images per batch; got {len(uploads)}", code="too_many_images")
    return _options(dict(raw)), uploads
