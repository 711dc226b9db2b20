# ruff: noqa: E501 - the request table reads best one case per line
"""Hostile uploads drill: generated attack files and malformed requests posted to the real gateway.

The file cases are the upload corpus of the gateway's unit tests (``hostile_corpus()``, and
the request-level ``hostile_requests()`` once it exists there), plus what is built here:
RLE BMPs, many-scan progressive JPEGs, many-frame animations, and malformed requests (huge
part headers, many parts, deep JSON, base64 garbage, wrong content types, an oversized body).
Every one must get a 4xx with a JSON error body, and every process must still run.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
from PIL import Image

from drills.report import DrillResult
from drills.stack import DrillStack
from visionserve.settings import PROJECT_ROOT

__all__ = ["Case", "cases", "rle8_bmp", "run"]


@dataclass(frozen=True)
class Case:
    """One hostile request: a name and how to send it."""

    name: str
    send: Callable[[httpx.Client, str], httpx.Response]


def _file(name: str, data: bytes, content_type: str = "application/octet-stream") -> Callable:
    def send(http: httpx.Client, model: str) -> httpx.Response:
        return http.post("/v1/classify", files={"image": (name, data, content_type)}, data={"model": model})

    return send


def _raw(body: bytes, content_type: str) -> Callable:
    def send(http: httpx.Client, model: str) -> httpx.Response:
        return http.post("/v1/classify", content=body, headers={"content-type": content_type})

    return send


def rle8_bmp(width: int, height: int, shade: int = 7) -> bytes:
    """An RLE8 BMP whose every row is a few run bytes: tiny file, width x height pixels to decode.

    ``shade`` is the grey its runs paint: BMPs that differ only in it cost the same to decode
    but are new to every cache.
    """
    rows = bytearray()
    for _ in range(height):
        left = width
        while left:
            run = min(255, left)
            rows += bytes([run, shade])
            left -= run
        rows += b"\x00\x00"
    rows += b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + bytes(rows)


def _progressive_jpeg(scans: int) -> bytes:
    """A progressive JPEG with its scans repeated ``scans`` times (each rescan costs a decode pass)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, "JPEG", progressive=True)
    data = buf.getvalue()
    first = data.find(b"\xff\xda")
    body = data[first:-2]
    return data[:first] + body * max(1, scans // 8) + b"\xff\xd9"


def _animation(fmt: str, frames: int, size: int = 256) -> bytes:
    images = [Image.new("RGB", (size, size), (i % 255, 0, 0)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, fmt, save_all=True, append_images=images[1:], duration=10)
    return buf.getvalue()


def _multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"drillboundary") -> tuple[bytes, str]:
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary.decode()}"


def _request_cases(model: str) -> list[Case]:
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32)).save(jpeg, "JPEG")
    small = jpeg.getvalue()
    image_part = b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg'
    huge_headers = image_part + b"".join(b"\r\nX-Pad-%d: %s" % (i, b"a" * 200) for i in range(5000))
    many = [(b'Content-Disposition: form-data; name="model"', model.encode())] * 2000
    deep = "[" * 100_000 + "]" * 100_000
    cases = [
        Case("huge part headers (1 MiB)", _raw(*_multipart([(huge_headers, small)]))),
        Case("2000 parts", _raw(*_multipart(many))),
        Case("2000 image parts", _raw(*_multipart([(image_part, small)] * 2000))),
        Case("multipart without boundary", _raw(b"--x\r\n\r\n", "multipart/form-data")),
        Case("multipart, no closing boundary", _raw(_multipart([(image_part, small)])[0][:-20], _multipart([])[1])),
        Case("deep JSON", _raw(deep.encode(), "application/json")),
        Case("deep JSON object", _raw(('{"a":' * 50_000 + "1" + "}" * 50_000).encode(), "application/json")),
        Case("JSON base64 garbage", _raw(json.dumps({"image_base64": "!!notbase64@@" * 100}).encode(), "application/json")),
        Case("JSON base64 of text", _raw(json.dumps({"image_base64": base64.b64encode(b"hello" * 99).decode()}).encode(), "application/json")),
        Case("JSON base64 whitespace flood", _raw(json.dumps({"image_base64": " \n" * 4_000_000 + "QQ=="}).encode(), "application/json")),
        Case("JSON huge model name", _raw(json.dumps({"image_base64": base64.b64encode(small).decode(), "model": "m" * 1_000_000}).encode(), "application/json")),
        Case("JSON not an object", _raw(b'"just a string"', "application/json")),
        Case("JSON invalid UTF-8", _raw(b'{"image_base64": "\xff\xfe"}', "application/json")),
        Case("JSON top_k as object", _raw(json.dumps({"image_base64": base64.b64encode(small).decode(), "top_k": {"$gt": 1}}).encode(), "application/json")),
        Case("text/plain body", _raw(small, "text/plain")),
        Case("image/jpeg raw body", _raw(small, "image/jpeg")),
        Case("no content type", _raw(small, "")),
        Case("form-urlencoded", _raw(b"image=abc&model=" + model.encode(), "application/x-www-form-urlencoded")),
        Case("empty body, JSON", _raw(b"", "application/json")),
        Case("oversized body (40 MiB)", _raw(b"\x00" * (40 * 2**20), "application/json")),
        Case("image as text field", _raw(*_multipart([(b'Content-Disposition: form-data; name="image"', small)]))),
        Case("unknown form field", _raw(*_multipart([(image_part, small), (b'Content-Disposition: form-data; name="evil"', b"1")]))),
        Case("top_k 10^9", _raw(*_multipart([(image_part, small), (b'Content-Disposition: form-data; name="top_k"', b"1000000000")]))),
        Case("SVG as image/jpeg", _file("x.jpg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "image/jpeg")),
    ]  # fmt: skip
    return cases


def _corpus() -> list[Case]:
    """The gateway's upload corpus (tests/fixtures/corpus.py, from a source checkout)."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from tests.fixtures import corpus

    found = [Case(f"corpus: {h.name}", _file(h.name, h.data)) for h in corpus.hostile_corpus()]
    for item in getattr(corpus, "hostile_requests", lambda: ())():  # H1's request-level list
        found.append(Case(f"corpus request: {item.name}", _raw(item.body, item.content_type)))
    return found


def cases(model: str) -> list[Case]:
    """Every hostile case of the drill (at least 60)."""
    built = [
        Case("RLE8 BMP 6000x6000 (25 KB)", _file("rle.bmp", rle8_bmp(6000, 6000), "image/bmp")),
        Case("RLE8 BMP 8000x8000 (64 MP in 130 KB)", _file("rle3.bmp", rle8_bmp(8000, 8000), "image/bmp")),
        Case("RLE8 BMP 1x100000 strip", _file("strip.bmp", rle8_bmp(1, 100_000), "image/bmp")),
        Case("RLE8 BMP 100000x1 strip", _file("strip2.bmp", rle8_bmp(100_000, 1), "image/bmp")),
        Case("progressive JPEG, 800 scans", _file("scans.jpg", _progressive_jpeg(800), "image/jpeg")),
        Case("animated GIF, 2000 frames", _file("anim.gif", _animation("GIF", 2000, 64), "image/gif")),
        Case("animated WebP, 1000 frames 512px", _file("anim.webp", _animation("WEBP", 1000, 512), "image/webp")),
        Case("zero bytes as PNG", _file("zero.png", b"", "image/png")),
        Case("random bytes as JPEG", _file("rand.jpg", np.random.default_rng(1).bytes(50_000), "image/jpeg")),
    ]
    return built + _corpus() + _request_cases(model)


def run(stack: DrillStack) -> DrillResult:
    """Post every case; count 5xx, non-JSON errors, non-4xx answers, and processes that died."""
    key = stack.key()
    before = set(stack.processes())
    bad: list[str] = []
    statuses: dict[int, int] = {}
    all_cases = cases(stack.model)
    with stack.client(key, timeout_s=120) as http:
        for case in all_cases:
            try:
                response = case.send(http, stack.model)
            except httpx.HTTPError as exc:
                bad.append(f"{case.name}: no answer ({type(exc).__name__})")
                continue
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                error = response.json().get("error", {})
                named = bool(error.get("code")) and bool(error.get("message"))
            except (ValueError, AttributeError):
                named = False
            if not (400 <= response.status_code < 500 and named):
                bad.append(f"{case.name}: {response.status_code} {response.text[:80]!r}")
        livez = http.get("/livez").status_code
    after = set(stack.processes())
    crashed = sorted(before - after)
    five = sum(n for s, n in statuses.items() if s >= 500)
    figure = (
        f"{len(all_cases)} cases: statuses {dict(sorted(statuses.items()))}; {five} 5xx; "
        f"{len(bad)} not a 4xx JSON error{': ' + '; '.join(bad[:6]) if bad else ''}; "
        f"{len(crashed)} processes gone; /livez {livez}"
    )
    return DrillResult.judge(
        "hostile uploads",
        f"{len(all_cases)} generated hostile files and malformed requests posted to /v1/classify",
        figure,
        {
            ">= 60 cases": len(all_cases) >= 60,
            "0 responses 5xx": five == 0,
            "each a 4xx JSON error": not bad,
            "0 crashed processes": not crashed and stack.gateway_alive() and livez == 200,
        },
    )
