"""Upload corpora made on the spot: hostile files (each with the status it must get) and valid ones.

Used by the unit tests of ``gateway.uploads`` and by the integration tests that post the same
files to a running gateway (and check that none of them reached Triton).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["Hostile", "hostile_corpus", "photo", "valid_corpus"]


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
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


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
        Hostile(
            "vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415
        ),
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
        Hostile(
            "jpeg-php.jpg", _jpeg_with_segment(jpeg, 0xFE, b"<?php system($_GET['c']); ?>"), 400, "polyglot"
        ),
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
        Hostile(
            "huge.jpg", jpeg[:2] + b"\xff\xfe\xff\xff" + b"\x00" * (12 * 2**20 + 10), 413, "image_too_large"
        ),
        Hostile("strip.png", _encode(Image.new("RGB", (4000, 10)), "PNG"), 400, "bad_aspect_ratio"),
    ]
    return tuple(items)


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
