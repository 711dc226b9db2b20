"""Make an encoded image's bytes unique without touching a single pixel.

Caches (the gateway's, keyed on the SHA-256 of the upload; Triton's response cache, keyed on
the request's input bytes) only miss for bytes they have not seen. A load test or benchmark
that wants cache misses therefore needs an endless supply of distinct uploads, and encoding
fresh images on the load generator would steal CPU from the server under test on a small
machine. Instead, a short token goes into a place every decoder skips — a JPEG comment
segment, a PNG ``tEXt`` chunk, a GIF comment extension, an unknown RIFF chunk in a WebP, the
gap before a BMP's pixel array — each written by the format's own rules (lengths, CRC, sizes),
so the upload checks of the gateway, which refuse anything appended after an image, accept it
and every decoder returns exactly the same pixels.
"""

from __future__ import annotations

import struct
import zlib

from visionserve.imaging import UPLOAD_FORMATS

__all__ = ["MAX_TOKEN_BYTES", "UNIQUE_FORMATS", "make_unique"]

#: Formats ``make_unique`` handles: every format a client may upload.
UNIQUE_FORMATS = UPLOAD_FORMATS
#: Longest token (a JPEG segment length and a GIF sub-block hold at most this much).
MAX_TOKEN_BYTES = 250


def _jpeg(data: bytes, token: bytes) -> bytes:
    # After SOI and any APPn segments (JFIF/EXIF must stay first), before the tables.
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF and 0xE0 <= data[i + 1] <= 0xEF:
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    segment = b"\xff\xfe" + (2 + len(token)).to_bytes(2, "big") + token
    return data[:i] + segment + data[i:]


def _png(data: bytes, token: bytes) -> bytes:
    # After the 8-byte signature and the IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    cut = 8 + 25
    body = b"tEXt" + b"visionserve\x00" + token
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:cut] + chunk + data[cut:]


def _gif(data: bytes, token: bytes) -> bytes:
    # After the header, the logical screen descriptor and the global colour table, if any.
    flags, cut = data[10], 13
    if flags & 0x80:
        cut += 3 * (2 << (flags & 7))
    extension = b"\x21\xfe" + bytes([len(token)]) + token + b"\x00"
    return data[:cut] + extension + data[cut:]


def _webp(data: bytes, token: bytes) -> bytes:
    # An unknown chunk at the end of the RIFF container; the RIFF size grows with it.
    chunk = b"VSID" + struct.pack("<I", len(token)) + token + (b"\x00" if len(token) % 2 else b"")
    body = data[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _bmp(data: bytes, token: bytes) -> bytes:
    # In the gap between the headers (+ palette) and the pixel array: bfOffBits and bfSize move.
    offset = int.from_bytes(data[10:14], "little")
    out = bytearray(data[:offset] + token + data[offset:])
    out[2:6] = len(out).to_bytes(4, "little")
    out[10:14] = (offset + len(token)).to_bytes(4, "little")
    return bytes(out)


_WRITERS = {"JPEG": _jpeg, "PNG": _png, "GIF": _gif, "WEBP": _webp, "BMP": _bmp}


def make_unique(data: bytes, fmt: str, token: str) -> bytes:
    """``data`` with ``token`` embedded where decoders ignore it: new bytes, same pixels.

    Args:
        data: an encoded image, as ``sample_images`` makes them.
        fmt: its PIL format name (``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"WEBP"``, ``"BMP"``).
        token: short ASCII text that makes the result unique (e.g. a run id and a counter).

    Returns:
        A valid image of the same format whose bytes contain ``token``.

    Raises:
        ValueError: unknown format, or a token that is empty, not ASCII or too long.
    """
    writer = _WRITERS.get(fmt.upper())
    if writer is None:
        raise ValueError(f"cannot make a {fmt} image unique; formats: {', '.join(UNIQUE_FORMATS)}")
    if not token or len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise ValueError(f"token must be 1..{MAX_TOKEN_BYTES} ASCII characters, got {token!r}")
    return writer(data, token.encode("ascii"))
