"""Upload corpora made on the spot: hostile files (each with the status it must get) and valid ones.

Used by the unit tests of ``gateway.uploads``, by the integration tests that post the same
files to a running gateway (and check that none of them reached Triton), and by the hostile
upload drill. Three lists:

- ``hostile_corpus()``: files (every format truncated, corrupt, bombed; RLE BMPs; many-scan
  JPEGs; foreign files under image names; polyglots), each with its status and code;
- ``hostile_requests()``: whole request bodies (huge part headers, many parts, deep JSON,
  base64 garbage, wrong content types, oversized bodies) for ``POST /v1/classify``;
- ``costly_valid()``: images that are valid but dear to decode (an RLE BMP and a lossless
  WebP within the limits), for the event-loop drill; ``valid_corpus()``: what must pass.

Everything is generated in well under a second (``lru_cache``d).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = [
    "Hostile",
    "HostileRequest",
    "costly_valid",
    "hostile_corpus",
    "hostile_requests",
    "photo",
    "rle_bmp",
    "valid_corpus",
]


@dataclass(frozen=True)
class Hostile:
    """A file that must be refused, the status it must get and (optionally) the error code."""

    name: str
    data: bytes
    status: int
    code: str | None = None


def photo(size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A small RGB image with structure (gradients and noise), deterministic per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(1, w - 1), yy * 255 / max(1, h - 1), (xx + yy) % 256], -1)
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of width x height zeros: a few hundred KB that decode to gigabytes."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    chunks = [comp.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg_with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Insert a segment (e.g. COM 0xFE) right after SOI."""
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _png_with_chunk_before_iend(png: bytes, kind: bytes, payload: bytes) -> bytes:
    return png[:-12] + _png_chunk(kind, payload) + png[-12:]


def _jpeg_huge_dims(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 frame header's dimensions."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]


def _bmp_header(width: int, height: int) -> bytes:
    pixels = b"\x00" * 64
    header = b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + dib + pixels


#: A real lossless WebP of 6100 x 6000 one-colour pixels: 38 bytes that decode to 110 MB
#: (made with Pillow: ``Image.new("RGB", (6100, 6000)).save(buf, "WEBP", lossless=True)``).
_WEBP_BOMB = bytes.fromhex("524946461e000000574542505650384c110000002fd3d7db050750945294a7ff8188e87f0000")


def _gif_huge_screen() -> bytes:
    gif = _encode(photo((8, 8)).quantize(16), "GIF")
    # logical screen and the image descriptor both claim 65535 x 65535
    gif = gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:]
    i = gif.index(b"\x2c", 13)
    return gif[: i + 5] + struct.pack("<HH", 65535, 65535) + gif[i + 9 :]


def rle_bmp(width: int, height: int, *, bits: int = 8, worst: bool = True) -> bytes:
    """A valid RLE8/RLE4 BMP of ``width`` x ``height``, a few bytes per row.

    ``worst``: one pixel then end-of-line per row, which Pillow's pure-Python decoder pads pixel
    by pixel (its slowest path); else runs of 255 pixels.
    """
    runs = b"".join(bytes([min(255, width - x), 0x11]) for x in range(0, width, 255))
    row = b"\x01\x01\x00\x00" if worst else runs + b"\x00\x00"
    pixels = row * height + b"\x00\x01"
    colours = 16 if bits == 4 else 256
    palette = b"".join(bytes([i, i, i, 0]) for i in range(colours))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 2 if bits == 4 else 1, len(pixels), 2835, 2835,
                      colours, 0)  # fmt: skip
    return header + dib + palette + pixels


def _progressive_many_scans(jpeg: bytes, scans: int) -> bytes:
    """A progressive JPEG with its last refinement scan repeated until it has ``scans`` scans.

    Repeating a successive-approximation scan keeps the file decodable (libjpeg warns, goes on)
    while every scan costs a pass over the coefficients.
    """
    marks = [i for i in range(len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] == 0xDA]
    last = marks[-1]
    end = jpeg.rindex(b"\xff\xd9")
    scan = jpeg[last:end]
    have = len(marks)
    return jpeg[:end] + scan * max(0, scans - have) + jpeg[end:]


def _animated(fmt: str, frames: int, size: tuple[int, int] = (32, 32)) -> bytes:
    images = [photo(size, seed=s % 7) for s in range(frames)]
    if fmt == "GIF":
        images = [im.quantize(16) for im in images]
    buf = io.BytesIO()
    images[0].save(buf, fmt, save_all=True, append_images=images[1:], duration=20, loop=0)
    return buf.getvalue()


def _gif_many_blocks(gif: bytes, count: int) -> bytes:
    """Comment extensions of one-byte sub-blocks before the image: cheap bytes, many blocks."""
    i = 13 + (3 * (2 << (gif[10] & 7)) if gif[10] & 0x80 else 0)
    block = b"\x21\xfe" + b"\x01x" * 64 + b"\x00"
    return gif[:i] + block * (count // 65) + gif[i:]


def _png_16bit(width: int, height: int) -> bytes:
    """A real 16-bit grayscale PNG of zeros (a few KB; 2 bytes per pixel decoded)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 2 * width)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@lru_cache(maxsize=1)
def hostile_corpus() -> tuple[Hostile, ...]:
    """Files a gateway must refuse with 400 / 413 / 415 — never 500, never reaching Triton."""
    img = photo()
    jpeg, png = _encode(img, "JPEG", quality=85), _encode(img, "PNG")
    gif, webp, bmp = _encode(img.quantize(64), "GIF"), _encode(img, "WEBP", quality=80), _encode(img, "BMP")
    jar = _zip_bytes(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nMain-Class: Evil\n",
            "Evil.class": b"\xca\xfe\xba\xbe",
        }
    )
    zip_hidden = _zip_bytes({"payload.txt": b"hidden"})
    # a ZIP inside a PNG chunk whose comment length swallows the trailing IEND chunk
    zip_with_comment = zip_hidden[:-2] + struct.pack("<H", 4 + 12)  # chunk CRC + IEND chunk
    png_zip_inside = _png_with_chunk_before_iend(png, b"zzZp", zip_with_comment)
    pe = b"MZ" + b"\x90" * 58 + struct.pack("<I", 64) + b"PE\x00\x00" + b"\x00" * 200
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 120
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    corrupt_jpeg = bytearray(jpeg)
    sos = corrupt_jpeg.index(b"\xff\xda")
    for k in range(sos + 20, len(corrupt_jpeg) - 2, 7):
        corrupt_jpeg[k] = 0xFF if k % 2 else 0xD9 ^ 0x55
    corrupt_png = bytearray(png)
    idat = corrupt_png.index(b"IDAT")
    for k in range(idat + 10, idat + 60):
        corrupt_png[k] ^= 0xA5
    no_ihdr_png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"tEXt", b"Comment\x00x") + png[8:]
    items = [
        Hostile("empty.jpg", b"", 400, "empty_image"),
        Hostile("document.pdf", pdf, 415, "unsupported_media_type"),
        Hostile("archive.zip", zip_hidden, 415),
        Hostile("app.jar", jar, 415),
        Hostile("setup.exe", pe, 415),
        Hostile("binary.elf", elf, 415),
        Hostile("run.sh", b"#!/bin/sh\nrm -rf /\n", 415),
        Hostile("page.html", b"<!DOCTYPE html><html><script>alert(1)</script></html>", 415),
        Hostile("vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415),
        Hostile("scan.tiff", _encode(img, "TIFF"), 415),
        Hostile("icon.ico", _encode(img.resize((32, 32)), "ICO"), 415),
        Hostile("data.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 40, 415),
        Hostile("random.bin", np.random.default_rng(1).bytes(2048), 415),
        Hostile("notes.txt", b"just some text, not an image\n", 415),
        Hostile("sound.wav", b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + b"\x00" * 28, 415),
        Hostile("photo.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, 415),
        Hostile("fake.bmp", b"BM" + b"\xff" * 100, 415),
        Hostile("macho.bin", b"\xcf\xfa\xed\xfe" + b"\x00" * 64, 415),
        Hostile("truncated.jpg", jpeg[: len(jpeg) // 2], 400, "truncated_image"),
        Hostile("truncated.png", png[: len(png) // 2], 400, "truncated_image"),
        Hostile("truncated.gif", gif[: len(gif) // 2], 400, "truncated_image"),
        Hostile("truncated.webp", webp[: len(webp) // 2], 400),
        Hostile("truncated.bmp", bmp[: len(bmp) // 2], 400, "truncated_image"),
        Hostile("header-only.jpg", jpeg[:20], 400),
        Hostile("corrupt.jpg", bytes(corrupt_jpeg), 400),
        Hostile("corrupt.png", bytes(corrupt_png), 400),
        Hostile("no-ihdr.png", no_ihdr_png, 400),
        Hostile("jpeg+zip.jpg", jpeg + zip_hidden, 400, "polyglot"),
        Hostile("gifar.gif", gif + jar, 400, "polyglot"),
        Hostile("png+zip.png", png + zip_hidden, 400, "polyglot"),
        Hostile("jpeg+exe.jpg", jpeg + pe, 400, "polyglot"),
        Hostile("png-zip-inside.png", png_zip_inside, 400, "polyglot"),
        Hostile("jpeg-php.jpg", _jpeg_with_segment(jpeg, 0xFE, b"<?php system($_GET['c']); ?>"), 400, "polyglot"),
        Hostile(
            "png-script.png",
            _png_with_chunk_before_iend(png, b"tEXt", b"c\x00<script>alert(1)</script>"),
            400,
            "polyglot",
        ),  # fmt: skip
        Hostile("jpeg-pdf.jpg", _jpeg_with_segment(jpeg, 0xFE, pdf), 400, "polyglot"),
        Hostile("bomb.png", _png_bomb(20_000, 20_000), 413, "too_many_pixels"),
        Hostile("bomb.gif", _gif_huge_screen(), 413, "too_many_pixels"),
        Hostile("bomb.jpg", _jpeg_huge_dims(jpeg, 60_000, 60_000), 413, "too_many_pixels"),
        Hostile("bomb.webp", _WEBP_BOMB, 413, "too_many_pixels"),
        Hostile("bomb.bmp", _bmp_header(50_000, 50_000), 413, "too_many_pixels"),
        Hostile("huge.jpg", jpeg[:2] + b"\xff\xfe\xff\xff" + b"\x00" * (12 * 2**20 + 10), 413, "image_too_large"),
        Hostile("strip.png", _encode(Image.new("RGB", (4000, 10)), "PNG"), 400, "bad_aspect_ratio"),
    ]
    items += _more_hostile(img, jpeg, png, gif, webp, bmp, pe, elf, pdf, zip_hidden)
    return tuple(items)


def _more_hostile(
    img: Image.Image, jpeg: bytes, png: bytes, gif: bytes, webp: bytes, bmp: bytes, pe: bytes, elf: bytes, pdf: bytes,
    zip_hidden: bytes,
) -> list[Hostile]:  # fmt: skip
    """The cases issue 12 added: cost by structure, every format corrupt, foreign files renamed."""
    rng = np.random.default_rng(7)
    progressive = _encode(photo((256, 192), seed=5), "JPEG", quality=90, progressive=True)
    segments = jpeg[:2] + (b"\xff\xfe\x00\x03x" * 2000) + jpeg[2:]
    corrupt_webp = bytearray(webp)
    for k in range(40, len(corrupt_webp) - 4, 3):
        corrupt_webp[k] ^= 0x5A
    bad_bpp_bmp = bytearray(bmp)
    bad_bpp_bmp[28:30] = struct.pack("<H", 7)
    corrupt_gif = bytearray(gif)
    corrupt_gif[-20:-1] = b"\x2c" * 19  # image descriptors with nothing behind them
    anim_gif = _animated("GIF", 60)  # within max_frames: its other faults are what it is refused for
    anim_webp = bytearray(_animated("WEBP", 60))
    if anim_webp[12:16] == b"VP8X":  # canvas of 16000 x 16000: the header claims a bomb
        anim_webp[24:30] = (16000 - 1).to_bytes(3, "little") * 2
    strip_bmp = _bmp_header(1, 100_000)
    return [
        Hostile("zeros.jpg", b"\x00" * 4096, 415, "unsupported_media_type"),
        Hostile("random-after-jpeg-magic.jpg", b"\xff\xd8\xff" + rng.bytes(4096), 400),
        Hostile("random-after-png-magic.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(4096), 400),
        Hostile("random-after-gif-magic.gif", b"GIF89a" + rng.bytes(4096), 413, "too_many_pixels"),  # its "screen"
        Hostile("random-after-riff-webp.webp", b"RIFF" + struct.pack("<I", 4100) + b"WEBP" + rng.bytes(4092), 400),
        Hostile("corrupt.webp", bytes(corrupt_webp), 400),
        Hostile("corrupt-bpp.bmp", bytes(bad_bpp_bmp), 400, "corrupt_image"),
        Hostile("corrupt.gif", bytes(corrupt_gif), 400),
        Hostile("truncated-progressive.jpg", progressive[: len(progressive) * 2 // 3], 400, "truncated_image"),
        Hostile("bomb-16bit.png", _png_16bit(7000, 7000), 413, "too_many_pixels"),
        Hostile("bomb-animated.webp", bytes(anim_webp), 413, "too_many_pixels"),
        Hostile("animated-60-frames-truncated.gif", anim_gif[: len(anim_gif) - 300], 400, "truncated_image"),
        Hostile("animated-60-frames-trailing-zip.gif", anim_gif + zip_hidden, 400, "polyglot"),
        Hostile("animated-150-frames.gif", _animated("GIF", 150, (16, 16)), 413, "too_many_frames"),
        Hostile("animated-150-frames.webp", _animated("WEBP", 150, (16, 16)), 413, "too_many_frames"),
        Hostile("strip-1x100000.png", _png_bomb(1, 100_000), 400, "bad_aspect_ratio"),
        Hostile("strip-100000x1.bmp", strip_bmp, 400, "bad_aspect_ratio"),
        Hostile("strip-1x60000.gif", _encode(Image.new("P", (1, 60_000)), "GIF"), 400, "bad_aspect_ratio"),
        Hostile(
            "strip-16000x1.webp", _encode(Image.new("RGB", (16_000, 1)), "WEBP", lossless=True), 400, "bad_aspect_ratio"
        ),  # fmt: skip
        Hostile("rle8-6000x6000.bmp", rle_bmp(6000, 6000), 413, "image_too_costly"),
        Hostile("rle4-4000x4000.bmp", rle_bmp(4000, 4000, bits=4), 413, "image_too_costly"),
        Hostile("scans-200.jpg", _progressive_many_scans(progressive, 200), 413, "too_many_scans"),
        Hostile("segments-2000.jpg", segments, 413, "image_too_costly"),
        Hostile("gif-script.gif", gif[:-1] + b"\x21\xfe\x19<script>alert(1)</script>\x00;", 400, "polyglot"),
        Hostile("webp+exe.webp", webp + pe, 400, "polyglot"),
        Hostile("bmp+zip.bmp", bmp + zip_hidden, 400, "polyglot"),
        Hostile("invoice.pdf.jpg", pdf, 415, "unsupported_media_type"),
        Hostile("zip-renamed.png", zip_hidden, 415, "unsupported_media_type"),
        Hostile("exe-renamed.gif", pe, 415, "unsupported_media_type"),
        Hostile("elf-renamed.webp", elf, 415, "unsupported_media_type"),
        Hostile("html-renamed.bmp", b"<html><body onload=alert(1)>", 415, "unsupported_media_type"),
        Hostile(
            "svg-renamed.png",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            415,
            "unsupported_media_type",
        ),  # fmt: skip
    ]


@dataclass(frozen=True)
class HostileRequest:
    """A whole request body for ``POST /v1/classify`` that must be refused: status, optional code."""

    name: str
    content_type: str
    body: bytes
    status: int
    code: str | None = None


def _multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"hostileBOUNDARY") -> tuple[str, bytes]:
    out = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts)
    return f"multipart/form-data; boundary={boundary.decode()}", out + b"--" + boundary + b"--\r\n"


@lru_cache(maxsize=1)
def hostile_requests() -> tuple[HostileRequest, ...]:
    """Bodies a gateway must refuse with a 4xx JSON error (default limits, ``/v1/classify``)."""
    jpeg = _encode(photo(), "JPEG", quality=85)
    image_head = b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg'
    huge_head = image_head + b"\r\nX-Pad: " + b"a" * 100 + (b"\r\nX-Pad: " + b"a" * 100) * 10_000
    ctype_huge, body_huge = _multipart([(huge_head, jpeg)])
    ctype_many, body_many = _multipart([(b'Content-Disposition: form-data; name="model"', b"resnet18")] * 1000)
    ctype_one, body_text_field = _multipart([(b'Content-Disposition: form-data; name="image"', jpeg)])
    _, body_no_disposition = _multipart([(b"Content-Type: image/jpeg", jpeg)])
    deep = b'{"image_base64": "QUJD", "model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    b64_pdf = base64.b64encode(b"%PDF-1.7\n%%EOF\n").decode()
    return (
        HostileRequest("huge-part-headers", ctype_huge, body_huge, 413, "part_headers_too_large"),
        HostileRequest("many-parts", ctype_many, body_many, 400, "too_many_parts"),
        HostileRequest("image-as-text-field", ctype_one, body_text_field, 400),
        HostileRequest("part-without-disposition", ctype_one, body_no_disposition, 400, "invalid_multipart"),
        HostileRequest("multipart-without-boundary", "multipart/form-data", body_text_field, 400, "invalid_multipart"),
        HostileRequest(
            "boundary-300-chars",
            "multipart/form-data; boundary=" + "b" * 300,
            b"--" + b"b" * 300,
            400,
            "invalid_multipart",
        ),  # fmt: skip
        HostileRequest("deep-json", "application/json", deep, 400, "invalid_request"),
        HostileRequest("deep-json-array", "application/json", b"[" * 200_000, 400, "invalid_request"),
        HostileRequest("json-not-utf8", "application/json", b'{"image_base64": "\xff\xfe"}', 400),
        HostileRequest(
            "base64-garbage", "application/json", b'{"image_base64": "!!!!not*base64$$$$"}', 400, "invalid_base64"
        ),  # fmt: skip
        HostileRequest(
            "base64-non-ascii", "application/json", '{"image_base64": "QUJD\u00e9"}'.encode(), 400, "invalid_base64"
        ),  # fmt: skip
        HostileRequest(
            "base64-of-a-pdf",
            "application/json",
            json.dumps({"image_base64": b64_pdf}).encode(),
            415,
            "unsupported_media_type",
        ),  # fmt: skip
        HostileRequest(
            "base64-too-long", "application/json", b'{"image_base64": "' + b"QUJD" * (34 * 2**20 // 4) + b'"}', 413
        ),  # fmt: skip
        HostileRequest("empty-json", "application/json", b"", 400, "invalid_request"),
        HostileRequest("json-array", "application/json", b"[1, 2, 3]", 400, "invalid_request"),
        HostileRequest("text-plain", "text/plain", jpeg, 415, "unsupported_content_type"),
        HostileRequest("raw-jpeg-body", "image/jpeg", jpeg, 415, "unsupported_content_type"),
        HostileRequest("xml", "application/xml", b"<image>QUJD</image>", 415, "unsupported_content_type"),
        HostileRequest(
            "oversized-body", "application/octet-stream", b"\x00" * (35 * 2**20), 413, "payload_too_large"
        ),  # fmt: skip
    )


@lru_cache(maxsize=1)
def costly_valid() -> tuple[tuple[str, bytes], ...]:
    """Valid images that are dear to decode but within every limit (the event-loop drill's load)."""
    return (
        ("rle8-2000x2000.bmp", rle_bmp(2000, 2000)),
        ("lossless-3000x3000.webp", _encode(Image.new("RGB", (3000, 3000)), "WEBP", lossless=True)),
        ("gif-3000x3000.gif", _encode(Image.new("P", (3000, 3000)), "GIF")),
        ("16bit-3000x3000.png", _png_16bit(3000, 3000)),
    )


@lru_cache(maxsize=1)
def valid_corpus() -> tuple[tuple[str, bytes], ...]:
    """Images that must be accepted: every format and the awkward variants of each."""
    img = photo((80, 60), seed=3)
    rgba = img.convert("RGBA")
    rgba.putalpha(128)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    frames = [photo((40, 40), seed=s).quantize(32) for s in range(3)]
    gif_anim = io.BytesIO()
    frames[0].save(gif_anim, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    mpo = io.BytesIO()
    img.save(mpo, "MPO", save_all=True, append_images=[photo((80, 60), seed=4)])
    png16 = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    return (
        ("baseline.jpg", _encode(img, "JPEG", quality=90)),
        ("progressive.jpg", _encode(img, "JPEG", quality=80, progressive=True)),
        ("exif-rotated.jpg", _encode(img, "JPEG", exif=exif.tobytes())),
        ("cmyk.jpg", _encode(img.convert("CMYK"), "JPEG")),
        ("gray.jpg", _encode(img.convert("L"), "JPEG")),
        ("padded.jpg", _encode(img, "JPEG") + b"\x00" * 64),
        ("multi-picture.mpo", mpo.getvalue()),
        ("rgb.png", _encode(img, "PNG")),
        ("rgba.png", _encode(rgba, "PNG")),
        ("palette.png", _encode(img.quantize(16), "PNG")),
        ("16bit.png", _encode(png16, "PNG")),
        ("lossy.webp", _encode(img, "WEBP", quality=70)),
        ("lossless.webp", _encode(img, "WEBP", lossless=True)),
        ("rgb.bmp", _encode(img, "BMP")),
        ("gray.bmp", _encode(img.convert("L"), "BMP")),
        ("still.gif", _encode(img.quantize(64), "GIF")),
        ("animated.gif", gif_anim.getvalue()),
    )
