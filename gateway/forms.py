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
from starlette.datastructures import UploadFile
from starlette.requests import Request

from gateway.errors import BadRequest, UnsupportedImage
from gateway.schemas import ClassifyJSON, ClassifyOptions

__all__ = ["Upload", "decode_base64_image", "read_batch", "read_single"]

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


async def _form_parts(request: Request, max_files: int) -> tuple[dict[str, str], list[Upload]]:
    form = await request.form(
        max_files=max_files, max_fields=len(_OPTION_FIELDS) + 2, max_part_size=_MAX_FIELD_BYTES
    )
    options: dict[str, str] = {}
    uploads: list[Upload] = []
    try:
        for name, value in form.multi_items():
            if name == "image":
                if not isinstance(value, UploadFile):
                    raise BadRequest("send `image` as a file part (with a filename), not as a text field")
                uploads.append(Upload(await value.read(), value.filename))
            elif name in _OPTION_FIELDS:
                if isinstance(value, UploadFile) or name in options:
                    raise BadRequest(f"`{name}` must be given once, as a text field")
                options[name] = value
            else:
                raise BadRequest(f"unknown form field {name!r}; expected image, model, top_k, min_score")
    finally:
        await form.close()
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
