"""Request bodies of the classify routes: multipart files or base64 JSON → bytes + options.

The body has already been capped by ``GatewayMiddleware``; here every malformed body becomes
a 400 (or 415 for a content type that is neither form nor JSON) with a message saying what
to send instead. What a body makes the gateway do is bounded here too: bodies in flight
share a byte budget (``BodyBudget``: past it, 503 and retry), a body is read once into one
buffer (not chunks plus a joined copy plus slices kept alive by the request), multipart part
headers have a size limit and parts a count limit, and base64 text a length limit derived
from the largest image accepted, with whitespace stripped by ``bytes.translate`` (one copy).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import ValidationError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from gateway.admission import Charge
from gateway.errors import BadRequest, ImageTooLarge, PayloadTooLarge, UnsupportedImage, UpstreamUnavailable
from gateway.schemas import ClassifyJSON, ClassifyOptions
from gateway.video_schemas import VideoOptions
from visionserve.errors import InvalidVideo, VideoTooLarge

__all__ = [
    "MAX_PART_HEADER_BYTES",
    "BodyBudget",
    "Upload",
    "base64_limit",
    "decode_base64_image",
    "parse_multipart",
    "read_batch",
    "read_body",
    "read_single",
    "read_video",
]

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
_OPTION_FIELDS = ("model", "top_k", "min_score", "version", "label", "tta")
_VIDEO_FIELDS = ("model", "top_k", "every_seconds", "keyframes_only")
_MAX_FIELD_BYTES = 1024
#: The most header bytes one multipart part may carry (Content-Disposition with a long UTF-8
#: filename and a Content-Type fit in well under 1 KiB), and the most header lines.
MAX_PART_HEADER_BYTES = 4096
_MAX_PART_HEADER_LINES = 16
_BASE64_WHITESPACE = b" \t\r\n\v\f"
#: JSON members besides the base64 text (model, top_k, min_score, quoting, spaces).
_MAX_JSON_OVERHEAD = 4096


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


def base64_limit(max_image_bytes: int) -> int:
    """The longest base64 text accepted for images of at most ``max_image_bytes``.

    Four characters per three bytes, plus room for a data-URL prefix and line breaks every 64
    characters (MIME wraps at 76, PEM at 64) as CRLF.
    """
    encoded = 4 * -(-max_image_bytes // 3)
    return encoded + encoded // 32 + 256


def decode_base64_image(text: str | bytes, max_chars: int | None = None) -> bytes:
    """Base64 (optionally a ``data:…;base64,`` URL, whitespace allowed) → bytes.

    Args:
        text: the base64 text.
        max_chars: refuse longer text before decoding (413); see ``base64_limit``.

    Raises:
        BadRequest: not valid base64 (400 ``invalid_base64``).
        ImageTooLarge: longer than ``max_chars`` (413 ``image_too_large``).
    """
    if max_chars is not None and len(text) > max_chars:
        raise ImageTooLarge(
            f"image_base64 is {len(text):,} characters; at most {max_chars:,} are accepted", code="image_too_large"
        )
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise BadRequest("image_base64 is not valid base64", code="invalid_base64") from None
    else:
        raw = text
    match = _DATA_URL.match(raw[:512].decode("ascii", "replace"))
    if match:
        raw = raw[match.end() :]
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # wrapped lines: one stripped copy (not a list of every line)
        return base64.b64decode(raw.translate(None, _BASE64_WHITESPACE), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image_base64 is not valid base64", code="invalid_base64") from None


class BodyBudget:
    """Bytes of request bodies a worker holds at once; a request past it waits, then gets 503.

    Memory follows concurrency: every classify request holds its body (and the images cut
    from it) until it is answered. Each request reserves its declared ``Content-Length`` (a
    chunked body reserves the route's cap) before a byte is read, so the worker's bodies
    never exceed ``max_bytes`` however many callers send at once.

    Args:
        max_bytes: the budget (raised to ``largest`` if smaller, so any allowed body fits).
        largest: the largest body a request may send (the biggest route cap).
        wait_s: how long a request waits for room before its 503.
        retry_after_s: ``Retry-After`` of the 503.
    """

    def __init__(self, max_bytes: int, *, largest: int, wait_s: float = 5.0, retry_after_s: int = 2) -> None:
        self.max_bytes = max(max_bytes, largest)
        self.largest = largest
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self.held = 0
        self._changed: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, request: Request) -> AsyncIterator[int]:
        """Hold room for this request's body while the request is served."""
        declared = request.headers.get("content-length", "")
        size = min(int(declared), self.largest) if declared.isdigit() else self.largest
        if self._changed is None:
            self._changed = asyncio.Condition()
        changed = self._changed
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(lambda: self.held + size <= self.max_bytes), self.wait_s)
            except TimeoutError:
                raise UpstreamUnavailable(
                    "too many uploads in flight; retry shortly",
                    code="server_busy",
                    headers={"Retry-After": str(self.retry_after_s)},
                ) from None
            self.held += size
        try:
            yield size
        finally:
            async with changed:
                self.held -= size
                changed.notify_all()


async def read_body(request: Request) -> bytearray:
    """The whole body in one buffer, sized from ``Content-Length`` (the middleware capped it).

    Starlette's ``request.body()`` keeps its chunks and their joined copy, and caches the
    result on the request for its lifetime; this keeps one buffer the caller can drop.
    """
    declared = request.headers.get("content-length", "")
    buf = bytearray(int(declared)) if declared.isdigit() else bytearray()
    filled = 0
    async for chunk in request.stream():
        end = filled + len(chunk)
        if end <= len(buf):
            buf[filled:end] = chunk
        else:
            buf[filled:] = chunk
        filled = end
    del buf[filled:]
    return buf


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


def _scan_multipart(
    body: bytes | bytearray, content_type: str, *, max_parts: int
) -> list[tuple[str, str | None, int, int]]:
    """(name, filename, start, end) of every part: the headers are parsed, the data not copied."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not 1 <= len(boundary) <= 200:
        raise BadRequest("multipart body without a valid boundary", code="invalid_multipart")
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise BadRequest("multipart body does not start with its boundary", code="invalid_multipart")
    pos = start + len(delimiter)
    parts: list[tuple[str, str | None, int, int]] = []
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", pos):  # close delimiter: what follows is the epilogue
            return parts
        if len(parts) >= max_parts:  # before the next part is parsed, not after
            raise BadRequest(f"too many multipart parts (at most {max_parts})", code="too_many_parts")
        line_end = body.find(b"\r\n", pos, pos + 256)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise BadRequest("malformed multipart delimiter line", code="invalid_multipart")
        head_start = line_end + 2
        if body.startswith(b"\r\n", head_start):  # a part without headers
            head_end, data_start = head_start, head_start + 2
        else:
            window = head_start + MAX_PART_HEADER_BYTES
            head_end = body.find(b"\r\n\r\n", head_start, window + 4)
            if head_end < 0:
                if len(body) > window + 4:
                    raise PayloadTooLarge(
                        f"a multipart part's headers exceed {MAX_PART_HEADER_BYTES:,} bytes",
                        code="part_headers_too_large",
                    )
                raise BadRequest("multipart part headers are not terminated", code="invalid_multipart")
            data_start = head_end + 4
        data_end = body.find(separator, data_start)
        if data_end < 0:
            raise BadRequest("multipart body is not closed by its boundary", code="invalid_multipart")
        name: str | None = None
        filename: str | None = None
        lines = bytes(body[head_start:head_end]).split(b"\r\n", _MAX_PART_HEADER_LINES)
        if len(lines) > _MAX_PART_HEADER_LINES:
            raise PayloadTooLarge(
                f"a multipart part has more than {_MAX_PART_HEADER_LINES} header lines", code="part_headers_too_large"
            )
        for line in lines:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-disposition":
                name, filename = _disposition(value.strip())
        if name is None:
            raise BadRequest("multipart part without Content-Disposition", code="invalid_multipart")
        parts.append((name, filename, data_start, data_end))
        pos = data_end + len(separator)


def parse_multipart(
    body: bytes | bytearray, content_type: str, *, max_parts: int
) -> list[tuple[str, str | None, bytes]]:
    """Split an in-memory multipart/form-data body into (name, filename, data) parts.

    The body is already complete and capped (``GatewayMiddleware``), so the parts are found by
    searching for the delimiter (RFC 7578 / RFC 2046: ``CRLF--boundary``), with python-multipart
    parsing the part headers. Streaming through python-multipart and Starlette's UploadFile
    costs about 0.3 ms per request on this path, a third of a cache hit. The work is bounded
    whatever the body holds: at most ``max_parts`` parts, ``MAX_PART_HEADER_BYTES`` of headers
    each, every search done by ``bytes.find``.

    Raises:
        BadRequest: no boundary, a malformed body, or more than ``max_parts`` parts.
        PayloadTooLarge: a part's header section over ``MAX_PART_HEADER_BYTES`` (413).
    """
    view = memoryview(body)
    return [(n, f, bytes(view[a:b])) for n, f, a, b in _scan_multipart(body, content_type, max_parts=max_parts)]


async def _form_parts(
    request: Request,
    max_files: int,
    charge: Charge | None = None,
    *,
    file_field: str = "image",
    option_fields: tuple[str, ...] = _OPTION_FIELDS,
) -> tuple[dict[str, str], list[Upload]]:
    body = await read_body(request)
    scanned = _scan_multipart(body, request.headers.get("content-type", ""), max_parts=max_files + len(option_fields))
    if charge is not None:  # rate-limit tokens for the images before any of them is copied or checked
        await charge(sum(1 for name, *_ in scanned if name == file_field))
    view = memoryview(body)
    options: dict[str, str] = {}
    uploads: list[Upload] = []
    for name, filename, start, end in scanned:
        if name == file_field:
            if filename is None:
                raise BadRequest(f"send `{file_field}` as a file part (with a filename), not as a text field")
            if len(uploads) >= max_files:
                raise BadRequest(f"too many files (at most {max_files})", code="too_many_images")
            uploads.append(Upload(bytes(view[start:end]), filename))
        elif name in option_fields:
            data = view[start:end]
            if filename is not None or name in options:
                raise BadRequest(f"`{name}` must be given once, as a text field")
            if len(data) > _MAX_FIELD_BYTES:
                raise BadRequest(f"`{name}` is too long")
            try:
                options[name] = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"`{name}` is not UTF-8 text") from None
        else:
            raise BadRequest(f"unknown form field {name!r}; expected {', '.join((file_field, *option_fields))}")
    return options, uploads


def _options(raw: dict[str, object]) -> ClassifyOptions:
    try:
        return ClassifyOptions.model_validate(raw)
    except ValidationError as err:
        raise BadRequest(_validation_message(err)) from None


async def read_single(request: Request, max_image_bytes: int | None = None) -> tuple[ClassifyOptions, Upload]:
    """The one image and options of ``POST /v1/classify`` (multipart or JSON).

    Args:
        request: the request.
        max_image_bytes: the largest image accepted in any format; bounds the base64 text
            (``base64_limit``) before the JSON is parsed.

    Raises:
        BadRequest: malformed body, missing image, bad option values.
        ImageTooLarge: base64 text longer than any accepted image needs (413).
        UnsupportedImage: a content type that is neither multipart/form-data nor JSON (415).
    """
    media = _media_type(request)
    if media == "multipart/form-data":
        raw, uploads = await _form_parts(request, max_files=1)
        if len(uploads) != 1:
            raise BadRequest("send exactly one file in the multipart field `image`")
        return _options(dict(raw)), uploads[0]
    if media in ("application/json", ""):
        limit = base64_limit(max_image_bytes) if max_image_bytes is not None else None
        declared = request.headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit + _MAX_JSON_OVERHEAD:
            raise ImageTooLarge(
                f"a JSON body may be at most {limit + _MAX_JSON_OVERHEAD:,} bytes (base64 of the largest image "
                f"accepted); this one is {int(declared):,}",
                code="image_too_large",
            )
        body = await read_body(request)
        if not body:
            raise BadRequest("empty body; send multipart/form-data with `image`, or JSON with `image_base64`")
        try:
            parsed = ClassifyJSON.model_validate_json(body)
        except ValidationError as err:
            raise BadRequest(_validation_message(err)) from None
        del body
        options = ClassifyOptions.model_validate(parsed.model_dump(exclude={"image_base64"}))
        return options, Upload(decode_base64_image(parsed.image_base64, limit))
    raise UnsupportedImage(
        f"content type {media!r} is not accepted; send multipart/form-data (field `image`) or "
        "application/json (`image_base64`)",
        code="unsupported_content_type",
    )


async def read_batch(
    request: Request, max_images: int, charge: Charge | None = None
) -> tuple[ClassifyOptions, list[Upload]]:
    """The images and options of ``POST /v1/classify/batch`` (multipart, ``image`` repeated).

    Args:
        request: the request.
        max_images: most images per batch.
        charge: called with the number of image parts once the part headers are read, before
            any image is copied or checked (the batch's rate-limit tokens); it may raise.

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
    raw, uploads = await _form_parts(request, max_files=max_images + 1, charge=charge)
    if not uploads:
        raise BadRequest("send at least one file in the multipart field `image`")
    if len(uploads) > max_images:
        raise BadRequest(f"at most {max_images} images per batch; got {len(uploads)}", code="too_many_images")
    return _options(dict(raw)), uploads


async def read_video(request: Request, max_video_bytes: int) -> tuple[VideoOptions, Upload]:
    """The video and options of ``POST /v1/classify/video`` (multipart: ``video`` + options).

    Raises:
        BadRequest: malformed body, no video or more than one, bad or conflicting options.
        InvalidVideo: an empty file (400 ``empty_video``).
        VideoTooLarge: the video is over ``max_video_bytes`` (413).
        UnsupportedImage: not multipart/form-data (415).
    """
    media = _media_type(request)
    if media != "multipart/form-data":
        raise UnsupportedImage(
            f"content type {media or 'none'!r} is not accepted; send multipart/form-data with the file in `video`",
            code="unsupported_content_type",
        )
    raw, uploads = await _form_parts(request, max_files=1, file_field="video", option_fields=_VIDEO_FIELDS)
    if len(uploads) != 1:
        raise BadRequest("send exactly one file in the multipart field `video`")
    if not uploads[0].data:
        raise InvalidVideo("the `video` file is empty", code="empty_video")
    if len(uploads[0].data) > max_video_bytes:
        raise VideoTooLarge(f"the video is {len(uploads[0].data):,} bytes; at most {max_video_bytes:,} are accepted")
    try:
        return VideoOptions.model_validate(raw), uploads[0]
    except ValidationError as err:
        raise BadRequest(_validation_message(err)) from None
