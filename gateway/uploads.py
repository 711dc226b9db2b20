"""Upload checks: only real JPEG/PNG/WebP/BMP/GIF images of bounded size reach Triton.

The declared content type is ignored: what the bytes *are* decides. Checks, cheapest first:

1. ``sniff`` — not empty, magic bytes of an allowed format (PDFs, archives, executables,
   scripts, SVG, TIFF, HEIC… are named in the 415 message), size within the format's limit.
2. ``inspect`` — the header (Pillow, lazily: no pixel is decoded) gives width × height, checked
   against the pixel limit *before* decoding, which defeats decompression bombs; the file's
   own structure is walked to its end marker (JPEG EOI, PNG IEND, GIF trailer, RIFF size, BMP
   file size) so truncation and anything appended after the image (a ZIP or JAR behind a
   JPEG/GIF — "GIFAR" — an executable, a script) are refused; a ZIP directory or PDF header
   hidden inside the image, and HTML/script/PHP markup, are refused as polyglots.
3. ``verify_decodes`` — the image is decoded with the same code the Triton preprocessing uses
   (``visionserve.imaging.decode_rgb``, at a reduced JPEG scale), so corrupt data is refused
   here and not by the model. PNG skips it: step 2 checked the CRC-32 of every chunk.

The gateway runs 1 on every request and 2–3 only when the answer is not cached: a cached
answer exists only for bytes (same SHA-256) that passed all three under the same policy.
"""

from __future__ import annotations

import hashlib
import io
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import Image

from gateway.errors import ImageTooLarge, InvalidImage, UnsupportedImage
from gateway.settings import DEFAULT_MAX_BYTES
from visionserve import imaging

__all__ = [
    "ALLOWED_FORMATS",
    "ImageInfo",
    "UploadPolicy",
    "check_upload",
    "inspect",
    "sniff",
    "verify_decodes",
]

#: Formats accepted (magic-byte names); Pillow may report a multi-picture JPEG as "MPO".
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
_ACCEPTED = "send a JPEG, PNG, WebP, BMP or GIF image"
#: Reduced-scale decode for verification: libjpeg still reads every byte of the stream.
_VERIFY_DRAFT = (64, 64)
#: ZIP readers look for the end-of-central-directory record in the last 64 KiB + 22 bytes.
_ZIP_TAIL = 65_535 + 22
_ACTIVE_CONTENT = re.compile(rb"<(?:script|html|iframe)[\s>/]|<\?php", re.IGNORECASE)
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}

#: Leading bytes of things people upload instead of images, for a useful 415 message.
_FOREIGN: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (ZIP, JAR, APK, Office document)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"\xca\xfe\xba\xbe", "a Java class file or Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\x00asm", "a WebAssembly module"),
    (b"#!", "a script"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"8BPS", "a Photoshop document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "an OLE/Office document"),
)


@dataclass(frozen=True)
class UploadPolicy:
    """Limits an upload must meet (from GatewaySettings).

    Args:
        max_bytes: largest encoded size per format.
        max_pixels: largest width × height.
        max_aspect_ratio: most elongated shape (long side / short side).
    """

    max_bytes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BYTES))
    max_pixels: int = 36_000_000
    max_aspect_ratio: float = imaging.DEFAULT_MAX_ASPECT_RATIO

    @property
    def fingerprint(self) -> str:
        """Short digest of the limits: cached answers are only reused under the same policy."""
        text = repr((sorted(self.max_bytes.items()), self.max_pixels, self.max_aspect_ratio))
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ImageInfo:
    """What the checks learned about an accepted image."""

    format: str
    width: int
    height: int
    size_bytes: int


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


def _describe_foreign(data: bytes) -> str:
    for magic, what in _FOREIGN:
        if data.startswith(magic):
            return what
    if data[4:8] == b"ftyp":
        return "an ISO media file (HEIC, AVIF or video)"
    if data[:4] == b"RIFF":
        return f"a RIFF {data[8:12].decode('latin-1', 'replace')!r} file that is not WebP"
    if data[:2] == b"BM":
        return "a file that starts like a BMP but has no valid BMP header"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml", b"<!doctype", b"<html", b"<script", b"<")):
        return "an XML/SVG/HTML document"
    return "data of an unrecognised type"


def _bmp_header_ok(data: bytes) -> bool:
    if len(data) < 26:
        return False
    dib = int.from_bytes(data[14:18], "little")
    offset = int.from_bytes(data[10:14], "little")
    return dib in _BMP_DIB_SIZES and 14 + dib <= offset


def sniff(data: bytes, policy: UploadPolicy) -> str:
    """The image format the bytes really are, within its size limit.

    Args:
        data: the uploaded bytes.
        policy: size limits.

    Returns:
        One of ``ALLOWED_FORMATS``.

    Raises:
        InvalidImage: no bytes (400).
        UnsupportedImage: not an allowed format, whatever it was declared as (415).
        ImageTooLarge: over the format's byte limit (413).
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)", code="empty_image")
    if data.startswith(b"\xff\xd8\xff"):
        fmt = "JPEG"
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = "PNG"
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        fmt = "GIF"
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "WEBP"
    elif data[:2] == b"BM" and _bmp_header_ok(data):
        fmt = "BMP"
    else:
        raise UnsupportedImage(f"the upload is {_describe_foreign(data)}, not an image; {_ACCEPTED}")
    limit = policy.max_bytes.get(fmt, 0)
    if len(data) > limit:
        raise ImageTooLarge(f"{fmt} images may be at most {limit:,} bytes; this one is {len(data):,}")
    return fmt


# -- structure walkers: each returns the offset just past the image's last byte -----------
def _jpeg_end(data: bytes, start: int) -> int:
    n, i = len(data), start + 2
    while True:
        if i >= n:
            raise _Truncated
        if data[i] != 0xFF:
            raise _Corrupt(f"expected a JPEG marker at byte {i}")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise _Truncated
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            return i
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker == 0x00:
            raise _Corrupt("stuffed byte outside entropy-coded data")
        if i + 2 > n:
            raise _Truncated
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            raise _Corrupt(f"JPEG segment of length {length}")
        i += length
        if i > n:
            raise _Truncated
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    raise _Truncated
                following = data[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    i = j + 2
                elif following == 0xFF:
                    i = j + 1
                else:
                    i = j
                    break


def _png_end(data: bytes) -> int:
    """Walk the chunks to IEND, checking every chunk's CRC-32 (corrupt bytes anywhere fail it)."""
    n, i, first = len(data), 8, True
    view = memoryview(data)
    while True:
        if i + 8 > n:
            raise _Truncated
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if first and kind != b"IHDR":
            raise _Corrupt("PNG does not start with an IHDR chunk")
        first = False
        end = i + 12 + length
        if end > n:
            raise _Truncated
        if zlib.crc32(view[i + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise _Corrupt(f"PNG chunk {kind.decode('latin-1')!r} fails its CRC check")
        i = end
        if kind == b"IEND":
            return i


def _gif_end(data: bytes) -> int:
    n = len(data)
    if n < 13:
        raise _Truncated
    flags, i = data[10], 13
    if flags & 0x80:
        i += 3 * (2 << (flags & 7))

    def skip_sub_blocks(k: int) -> int:
        while True:
            if k >= n:
                raise _Truncated
            size = data[k]
            k += 1 + size
            if size == 0:
                return k

    while True:
        if i >= n:
            return n  # some encoders omit the trailer after a complete block
        block = data[i]
        i += 1
        if block == 0x3B:  # trailer
            return i
        if block == 0x21:  # extension: label, then sub-blocks
            i = skip_sub_blocks(i + 1)
        elif block == 0x2C:  # image descriptor
            if i + 9 > n:
                raise _Truncated
            local = data[i + 8]
            i += 9
            if local & 0x80:
                i += 3 * (2 << (local & 7))
            i = skip_sub_blocks(i + 1)  # + LZW minimum code size
        else:
            raise _Corrupt(f"unknown GIF block 0x{block:02x} at byte {i - 1}")


def _webp_end(data: bytes) -> int:
    size = int.from_bytes(data[4:8], "little")
    end = 8 + size + (size & 1)
    if end - (size & 1) > len(data):
        raise _Truncated
    return min(end, len(data))


def _bmp_end(data: bytes) -> int:
    size = int.from_bytes(data[2:6], "little")
    if size == 0:  # allowed by the format: rely on the decode check
        return len(data)
    if size > len(data):
        raise _Truncated
    return size


def _image_end(data: bytes, fmt: str, multi_picture: bool) -> int:
    if fmt == "JPEG":
        end = _jpeg_end(data, 0)
        # A camera's multi-picture file (MPO) is JPEGs back to back: walk each of them.
        while multi_picture and data.startswith(b"\xff\xd8\xff", end):
            end = _jpeg_end(data, end)
        return end
    walkers = {"PNG": _png_end, "GIF": _gif_end, "WEBP": _webp_end, "BMP": _bmp_end}
    return walkers[fmt](data)


def _hidden_zip(data: bytes) -> bool:
    """True when a ZIP end-of-central-directory record ends exactly at the end of the file."""
    n = len(data)
    start = max(0, n - _ZIP_TAIL)
    pos = data.find(b"PK\x05\x06", start)
    while pos >= 0:
        if pos + 22 <= n and pos + 22 + int.from_bytes(data[pos + 20 : pos + 22], "little") == n:
            return True
        pos = data.find(b"PK\x05\x06", pos + 1)
    return False


def inspect(data: bytes, fmt: str, policy: UploadPolicy) -> ImageInfo:
    """Header and structure checks (no pixel decoding).

    Args:
        data: the uploaded bytes, already ``sniff``-ed as ``fmt``.
        fmt: the sniffed format.
        policy: pixel and aspect-ratio limits.

    Returns:
        The format and dimensions.

    Raises:
        ImageTooLarge: more pixels than allowed (413), read from the header.
        InvalidImage: unreadable header, truncated, bad shape, or another file inside (400).
    """
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
            multi_picture = img.format == "MPO"
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise InvalidImage(f"unreadable {fmt} header: {exc}", code="corrupt_image") from None
    if width < 1 or height < 1:
        raise InvalidImage(f"the image has no pixels ({width}x{height})", code="corrupt_image")
    if width * height > policy.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {policy.max_pixels:,}",
            code="too_many_pixels",
        )
    if max(width, height) > policy.max_aspect_ratio * min(width, height):
        raise InvalidImage(
            f"the image is {width}x{height}; aspect ratios above {policy.max_aspect_ratio:g}:1 are not accepted",
            code="bad_aspect_ratio",
        )
    try:
        end = _image_end(data, fmt, multi_picture)
    except _Truncated:
        raise InvalidImage(f"the {fmt} image is truncated", code="truncated_image") from None
    except _Corrupt as exc:
        raise InvalidImage(f"the {fmt} image is corrupt: {exc}", code="corrupt_image") from None
    trailing = data[end:]
    if trailing.strip(b"\x00"):
        raise InvalidImage(
            f"{len(trailing):,} bytes follow the end of the {fmt} image; files with other data appended "
            "(polyglots such as an image with a ZIP/JAR behind it) are not accepted",
            code="polyglot",
        )
    if _hidden_zip(data) or b"%PDF-" in data[:1024]:
        raise InvalidImage(f"the {fmt} image also carries a ZIP or PDF file (polyglot)", code="polyglot")
    if _ACTIVE_CONTENT.search(data):
        raise InvalidImage(f"the {fmt} image carries HTML, script or PHP markup (polyglot)", code="polyglot")
    return ImageInfo(format=fmt, width=width, height=height, size_bytes=len(data))


def verify_decodes(data: bytes, fmt: str, policy: UploadPolicy) -> None:
    """Decode the image exactly as the Triton preprocessing will (reduced JPEG scale).

    PNG is the exception: ``inspect`` has checked the CRC-32 of every chunk, which catches
    corrupt or truncated data at a small fraction of a full inflate and decode (about 5 ms
    for a 200 KiB photo); what a crafted PNG with valid CRCs still hides, Triton's own decode
    refuses per request (400 ``rejected_by_model``).

    Args:
        data: the upload.
        fmt: its format, as ``sniff`` named it.
        policy: the upload limits.

    Raises:
        InvalidImage: truncated or corrupt pixel data (400).
    """
    if fmt == "PNG":
        return
    try:
        imaging.decode_rgb(
            data,
            draft_size=_VERIFY_DRAFT,
            max_pixels=policy.max_pixels,
            max_aspect_ratio=policy.max_aspect_ratio,
        )
    except imaging.InvalidImage as exc:
        raise InvalidImage(str(exc), code="corrupt_image") from None


def check_upload(data: bytes, policy: UploadPolicy) -> ImageInfo:
    """All checks in order: ``sniff``, ``inspect``, ``verify_decodes``."""
    fmt = sniff(data, policy)
    info = inspect(data, fmt, policy)
    verify_decodes(data, fmt, policy)
    return info
