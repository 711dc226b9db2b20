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
   here and not by the model. 8-bit PNG skips it: step 2 checked the CRC-32 of every chunk.

What a decode costs follows pixels and structure, not bytes (a 420-byte lossless WebP decodes
to 9 MP; an RLE BMP decodes in a pure-Python loop; a progressive JPEG pays per scan), so
``assess`` reads the header first — bounded work, no pixel decoded — and refuses what no
sane image needs (more than ``max_jpeg_scans`` scans, RLE BMPs over ``max_rle_pixels``) and
estimates the decode's cost. Animations are counted the same way (GIF image descriptors,
WebP ``ANMF`` chunks, a step per block) and refused past ``max_frames``: only the first frame
is classified, so a thousand frames are cost with no use. The caller runs cheap checks
inline (``DecodeCost.inline``) and the rest in a process it can kill (``gateway.decode_pool``);
the structure walkers take a step budget so that even the inline walk stays bounded
(``CheckTooCostly`` sends it away).

The gateway runs 1 on every request and 2–3 only when the answer is not cached: a cached
answer exists only for bytes (same SHA-256) that passed all three under the same policy.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from PIL import Image

from gateway.errors import BadImage, ImageTooLarge, UnsupportedImage
from gateway.settings import DEFAULT_MAX_BYTES, GatewaySettings
from visionserve import imaging

__all__ = [
    "ALLOWED_FORMATS",
    "INLINE_MAX_BYTES",
    "INLINE_MAX_MS",
    "INLINE_MAX_STEPS",
    "CheckTooCostly",
    "DecodeCost",
    "ImageInfo",
    "UploadPolicy",
    "assess",
    "check_image",
    "inspect",
    "sniff",
    "verify_decodes",
]

#: Formats accepted (magic-byte names); Pillow may report a multi-picture JPEG as "MPO".
ALLOWED_FORMATS = imaging.UPLOAD_FORMATS
_ACCEPTED = "send a JPEG, PNG, WebP, BMP or GIF image"
#: Reduced-scale decode for verification: libjpeg still reads every byte of the stream.
_VERIFY_DRAFT = (64, 64)
#: ZIP readers look for the end-of-central-directory record in the last 64 KiB + 22 bytes.
_ZIP_TAIL = 65_535 + 22
_ACTIVE_CONTENT = re.compile(rb"<(?:script|html|iframe)[\s>/]|<\?php", re.IGNORECASE)
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
#: The next real JPEG marker in entropy-coded data: 0xFF followed by anything but a stuffed
#: zero, a restart marker or another fill byte (found by the regex engine, not a Python loop).
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Segments (markers with a length) a JPEG may have; real files have fewer than 100.
MAX_JPEG_SEGMENTS = 1024
#: Checks run on the event loop only for uploads this small whose decode is estimated this cheap;
#: the walkers stop after this many steps (chunks, blocks, segments) and hand the check away.
INLINE_MAX_BYTES = 128 * 1024
INLINE_MAX_MS = 2.0
INLINE_MAX_STEPS = 2048
#: Decode cost per pixel (ns) by structure, measured with Pillow on this project's 2-core VM
#: (docs/decisions.md); a JPEG is decoded at 1/8 scale, so its cost follows its bytes instead.
_NS_PER_PIXEL = {
    "jpeg": 0.5,
    "jpeg-progressive": 8.0,  # per scan
    "png": 0.0,  # CRC-checked, not decoded: bytes only
    "png-16bit": 60.0,
    "webp-lossy": 80.0,
    "webp-lossless": 40.0,
    "gif": 75.0,
    "bmp": 15.0,
    "bmp-rle": 110.0,  # Pillow's pure-Python RLE decoder, worst case (one pixel per command)
}
_NS_PER_BYTE = {"jpeg": 15.0, "jpeg-progressive": 15.0, "png": 1.0, "png-16bit": 1.0}
#: Where Triton's preprocessing decodes pixels the checks do not (a PNG's are only CRC-checked).
_SERVE_NS_PER_PIXEL = {**_NS_PER_PIXEL, "png": 5.0}
_JPEG_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}

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
        max_jpeg_scans: most scans (SOS markers) in one JPEG; a progressive photo has ~10,
            and every scan costs a pass over the whole coefficient buffer.
        max_rle_pixels: largest RLE4/RLE8 BMP; Pillow decodes those in pure Python
            (~0.1 µs per pixel, holding the GIL), so they get a budget of their own.
        max_frames: most frames in an animated GIF or WebP; the first frame is what gets
            classified, and every frame is work for each reader that walks or demuxes the file.
    """

    max_bytes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BYTES))
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = imaging.DEFAULT_MAX_ASPECT_RATIO
    max_jpeg_scans: int = 32
    max_rle_pixels: int = 4_000_000
    max_frames: int = 100

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> UploadPolicy:
        """The limits the gateway is configured with: each field is the setting of its name."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    @property
    def fingerprint(self) -> str:
        """Short digest of the limits: cached answers are only reused under the same policy."""
        text = repr(
            (
                sorted(self.max_bytes.items()),
                self.max_pixels,
                self.max_aspect_ratio,
                self.max_jpeg_scans,
                self.max_rle_pixels,
                self.max_frames,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def to_json(self) -> dict[str, object]:
        """The policy as JSON-able values (what a decode worker process is started with)."""
        return {
            "max_bytes": dict(self.max_bytes),
            "max_pixels": self.max_pixels,
            "max_aspect_ratio": self.max_aspect_ratio,
            "max_jpeg_scans": self.max_jpeg_scans,
            "max_rle_pixels": self.max_rle_pixels,
            "max_frames": self.max_frames,
        }


@dataclass(frozen=True)
class ImageInfo:
    """What the checks learned about an accepted image."""

    format: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class DecodeCost:
    """What the header says a check of the image will cost (``assess``).

    Args:
        format: the sniffed format.
        kind: the structure that sets the cost (``jpeg-progressive``, ``webp-lossless``,
            ``bmp-rle``, ``png-16bit``, …).
        width / height: from the header.
        scans: JPEG scans (SOS markers), 0 for other formats.
        estimate_ms: the estimated CPU time of ``inspect`` + ``verify_decodes``.
        size_bytes: the upload's size.
        serve_ms: the estimated CPU time of decoding it once more to serve it (Triton's
            preprocessing): what ``tokens`` charges for.
    """

    format: str
    kind: str
    width: int
    height: int
    scans: int
    estimate_ms: float
    size_bytes: int
    serve_ms: float = 0.0

    def tokens(self, ms_per_token: float, most: int) -> int:
        """Rate-limit tokens for serving it: one per ``ms_per_token`` of decode, 1 to ``most``.

        Capped at ``most`` (the bucket's burst) so that any image the limits accept can be
        served; a costly one then empties the bucket, and the key waits for the refill. A header
        only Pillow can read has no estimate: 1 token, its check runs in a decode process under
        a time limit, where its cost is bounded anyway.
        """
        if self.serve_ms == float("inf"):
            return 1
        return max(1, min(most, math.ceil(self.serve_ms / ms_per_token)))

    @property
    def inline(self) -> bool:
        """Cheap enough for the event loop (a few ms at most, walkers step-bounded too)."""
        return self.size_bytes <= INLINE_MAX_BYTES and self.estimate_ms <= INLINE_MAX_MS


class CheckTooCostly(Exception):
    """A structure walk ran out of its step budget: run the check where it can be killed."""


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


class _Steps:
    """A countdown of walker steps; ``None`` means unbounded (the worker's time limit applies)."""

    __slots__ = ("left",)

    def __init__(self, limit: int | None) -> None:
        self.left = limit if limit is not None else -1

    def take(self) -> None:
        if self.left == 0:
            raise CheckTooCostly
        self.left -= 1


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
        BadImage: no bytes (400).
        UnsupportedImage: not an allowed format, whatever it was declared as (415).
        ImageTooLarge: over the format's byte limit (413).
    """
    if not data:
        raise BadImage("the image is empty (0 bytes)", code="empty_image")
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


class _Frames:
    """Frames seen by a walk; past ``limit`` the upload is refused at once (the walk stops there)."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int | None) -> None:
        self.limit, self.seen = limit, 0

    def add(self, fmt: str) -> None:
        self.seen += 1
        if self.limit is not None and self.seen > self.limit:
            raise ImageTooLarge(
                f"the {fmt} animation has more than {self.limit} frames; only the first is classified: "
                "send a still image",
                code="too_many_frames",
            )


# -- structure walkers: each returns the offset just past the image's last byte -----------
# Each takes a ``_Steps`` budget: one step per segment, chunk, block or sub-block, so the work
# of a walk is bounded by the budget and not by what the file chose to repeat.
@dataclass
class _JpegWalk:
    end: int = 0
    scans: int = 0
    segments: int = 0
    width: int = 0
    height: int = 0
    progressive: bool = False


def _jpeg_walk(data: bytes, start: int, steps: _Steps, walk: _JpegWalk) -> _JpegWalk:
    """Walk one JPEG from its SOI to its EOI, counting segments and scans into ``walk``."""
    n, i = len(data), start + 2
    while True:
        steps.take()
        if i >= n:
            raise _Truncated
        if data[i] != 0xFF:
            raise _Corrupt(f"expected a JPEG marker at byte {i}")
        while i < n and data[i] == 0xFF:  # fill bytes (a run of them is bounded by the file)
            i += 1
        if i >= n:
            raise _Truncated
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            walk.end = i
            return walk
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker == 0x00:
            raise _Corrupt("stuffed byte outside entropy-coded data")
        if i + 2 > n:
            raise _Truncated
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            raise _Corrupt(f"JPEG segment of length {length}")
        walk.segments += 1
        if walk.segments > MAX_JPEG_SEGMENTS:
            raise ImageTooLarge(
                f"the JPEG has more than {MAX_JPEG_SEGMENTS} segments; a photo has fewer than 100",
                code="image_too_costly",
            )
        if marker in _JPEG_SOF and not walk.width and i + 7 <= n:
            walk.height = int.from_bytes(data[i + 3 : i + 5], "big")
            walk.width = int.from_bytes(data[i + 5 : i + 7], "big")
            walk.progressive = marker in _JPEG_PROGRESSIVE_SOF
        i += length
        if i > n:
            raise _Truncated
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            walk.scans += 1
            found = _JPEG_NEXT_MARKER.search(data, i)
            if found is None:
                raise _Truncated
            i = found.start()


def _png_end(data: bytes, steps: _Steps, frames: _Frames | None = None) -> int:
    """Walk the chunks to IEND, checking every chunk's CRC-32 (corrupt bytes anywhere fail it)."""
    del frames  # an APNG's frames are not decoded: Pillow reads the default image only
    n, i, first = len(data), 8, True
    view = memoryview(data)
    while True:
        steps.take()
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


def _gif_end(data: bytes, steps: _Steps, frames: _Frames | None = None) -> int:
    frames = frames or _Frames(None)
    n = len(data)
    if n < 13:
        raise _Truncated
    flags, i = data[10], 13
    if flags & 0x80:
        i += 3 * (2 << (flags & 7))

    def skip_sub_blocks(k: int) -> int:
        while True:
            steps.take()
            if k >= n:
                raise _Truncated
            size = data[k]
            k += 1 + size
            if size == 0:
                return k

    while True:
        steps.take()
        if i >= n:
            return n  # some encoders omit the trailer after a complete block
        block = data[i]
        i += 1
        if block == 0x3B:  # trailer
            return i
        if block == 0x21:  # extension: label, then sub-blocks
            i = skip_sub_blocks(i + 1)
        elif block == 0x2C:  # image descriptor
            frames.add("GIF")
            if i + 9 > n:
                raise _Truncated
            local = data[i + 8]
            i += 9
            if local & 0x80:
                i += 3 * (2 << (local & 7))
            i = skip_sub_blocks(i + 1)  # + LZW minimum code size
        else:
            raise _Corrupt(f"unknown GIF block 0x{block:02x} at byte {i - 1}")


def _webp_end(data: bytes, steps: _Steps, frames: _Frames | None = None) -> int:
    """The RIFF end; the chunks inside are walked (a step each) to count animation frames."""
    frames = frames or _Frames(None)
    size = int.from_bytes(data[4:8], "little")
    end = 8 + size + (size & 1)
    if end - (size & 1) > len(data):
        raise _Truncated
    i, stop = 12, min(8 + size, len(data))
    while data[12:16] == b"VP8X" and i + 8 <= stop:  # only an extended file can be animated
        steps.take()
        if data[i : i + 4] == b"ANMF":
            frames.add("WebP")
        length = int.from_bytes(data[i + 4 : i + 8], "little")
        i += 8 + length + (length & 1)  # a chunk past the end is for the decoder to refuse
    return min(end, len(data))


def _bmp_end(data: bytes, steps: _Steps, frames: _Frames | None = None) -> int:
    del steps, frames
    size = int.from_bytes(data[2:6], "little")
    if size == 0:  # allowed by the format: rely on the decode check
        return len(data)
    if size > len(data):
        raise _Truncated
    return size


def _jpeg_pictures(data: bytes, steps: _Steps, multi_picture: bool = True) -> _JpegWalk:
    """Walk a JPEG, and a camera's multi-picture file (MPO: JPEGs back to back) to its last EOI."""
    walk = _jpeg_walk(data, 0, steps, _JpegWalk())
    while multi_picture and data.startswith(b"\xff\xd8\xff", walk.end):
        walk = _jpeg_walk(data, walk.end, steps, walk)
    return walk


def _image_end(data: bytes, fmt: str, multi_picture: bool, steps: _Steps, max_frames: int | None = None) -> int:
    if fmt == "JPEG":
        return _jpeg_pictures(data, steps, multi_picture).end
    walkers = {"PNG": _png_end, "GIF": _gif_end, "WEBP": _webp_end, "BMP": _bmp_end}
    return walkers[fmt](data, steps, _Frames(max_frames))


def _frames_within_limit(data: bytes, fmt: str, policy: UploadPolicy) -> bool:
    """Count a GIF's or WebP's frames (refusing past ``max_frames``) in a walk of bounded steps.

    Returns:
        False when the walk ran out of steps before the end (``inspect`` counts again, where
        it may take longer); a truncated or corrupt file is left for ``inspect`` to name.
    """
    if fmt not in ("GIF", "WEBP"):
        return True
    try:
        _image_end(data, fmt, False, _Steps(INLINE_MAX_STEPS), policy.max_frames)
    except CheckTooCostly:
        return False
    except (_Truncated, _Corrupt):
        pass
    return True


# -- cost: what the header says a decode will take, read without Pillow ------------------
def _webp_kind(data: bytes) -> tuple[str, int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = int.from_bytes(data[26:28], "little"), int.from_bytes(data[28:30], "little")
        return "webp-lossy", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return "webp-lossless", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        lossless = b"VP8L" in data[30:4096] and b"VP8 " not in data[30:4096]
        return ("webp-lossless" if lossless else "webp-lossy"), width, height
    return "webp-lossy", 0, 0  # Pillow's header read decides


def _header(data: bytes, fmt: str, policy: UploadPolicy, steps: _Steps) -> tuple[str, int, int, int]:
    """(kind, width, height, scans) from the bytes; 0 × 0 when the header is for Pillow to judge."""
    if fmt == "JPEG":
        try:
            walk = _jpeg_pictures(data, steps)
        except (_Truncated, _Corrupt):
            return "jpeg", 0, 0, 0  # ``inspect`` names the fault
        if walk.scans > policy.max_jpeg_scans:
            raise ImageTooLarge(
                f"the JPEG has {walk.scans} scans; at most {policy.max_jpeg_scans} are accepted "
                "(a progressive photo has about 10)",
                code="too_many_scans",
            )
        return ("jpeg-progressive" if walk.progressive else "jpeg"), walk.width, walk.height, walk.scans
    if fmt == "PNG":
        if len(data) < 29 or data[12:16] != b"IHDR":
            return "png", 0, 0, 0
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return ("png-16bit" if data[24] == 16 else "png"), width, height, 0
    if fmt == "WEBP":
        kind, width, height = _webp_kind(data)
        return kind, width, height, 0
    if fmt == "GIF":
        return "gif", int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"), 0
    dib = int.from_bytes(data[14:18], "little")
    if dib == 12:
        return "bmp", int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little"), 0
    width = abs(int.from_bytes(data[18:22], "little", signed=True))
    height = abs(int.from_bytes(data[22:26], "little", signed=True))
    compression = int.from_bytes(data[30:34], "little") if len(data) >= 34 else 0
    return ("bmp-rle" if compression in (1, 2) else "bmp"), width, height, 0


def assess(data: bytes, fmt: str, policy: UploadPolicy) -> DecodeCost:
    """What checking the image will cost, from its header and structure (no pixel decoded).

    Cheap by construction: fixed-offset header fields, and for JPEG a marker walk that the
    regex engine carries through the entropy-coded data and that stops after
    ``MAX_JPEG_SEGMENTS`` segments, and for GIF/WebP a frame count of at most
    ``INLINE_MAX_STEPS`` blocks. Safe on the event loop for any upload.

    Args:
        data: the upload, ``sniff``-ed as ``fmt``.
        fmt: the sniffed format.
        policy: the limits.

    Returns:
        The cost estimate; ``inline`` says whether the event loop may run the checks.

    Raises:
        ImageTooLarge: more pixels than allowed (``too_many_pixels``), more JPEG scans than
            allowed (``too_many_scans``), more animation frames than allowed
            (``too_many_frames``), an RLE BMP over its pixel budget or a JPEG of
            absurdly many segments (``image_too_costly``) — all 413.
    """
    try:
        kind, width, height, scans = _header(data, fmt, policy, _Steps(None))
    except CheckTooCostly:  # pragma: no cover - the JPEG walk is bounded by MAX_JPEG_SEGMENTS
        kind, width, height, scans = fmt.lower(), 0, 0, 0
    counted = _frames_within_limit(data, fmt, policy)
    pixels = width * height
    if pixels > policy.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {pixels:,} pixels; the limit is {policy.max_pixels:,}",
            code="too_many_pixels",
        )
    if kind == "bmp-rle" and pixels > policy.max_rle_pixels:
        raise ImageTooLarge(
            f"the BMP is RLE-compressed and {width}x{height} = {pixels:,} pixels; RLE BMPs may have at most "
            f"{policy.max_rle_pixels:,} (their decoder is slow); send it uncompressed, or as PNG",
            code="image_too_costly",
        )
    passes = max(1, scans) if kind == "jpeg-progressive" else 1
    per_byte = len(data) * _NS_PER_BYTE.get(kind, 2.0)
    estimate_ns = pixels * _NS_PER_PIXEL.get(kind, 100.0) * passes + per_byte
    serve_ns = pixels * _SERVE_NS_PER_PIXEL.get(kind, 100.0) * passes + per_byte
    if not pixels or not counted:  # a header only Pillow can read, frames not counted: never inline
        estimate_ns = serve_ns = float("inf")
    return DecodeCost(fmt, kind, width, height, scans, estimate_ns / 1e6, len(data), serve_ns / 1e6)


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


def inspect(data: bytes, fmt: str, policy: UploadPolicy, *, max_steps: int | None = None) -> ImageInfo:
    """Header and structure checks (no pixel decoding).

    The structure is walked before Pillow reads the header: Pillow's own header readers loop
    in Python over whatever blocks precede the image (GIF extensions, JPEG segments), and the
    walk is what bounds them (``max_steps``, ``MAX_JPEG_SEGMENTS``).

    Args:
        data: the uploaded bytes, already ``sniff``-ed as ``fmt``.
        fmt: the sniffed format.
        policy: pixel and aspect-ratio limits.
        max_steps: most walker steps (chunks, blocks, segments); ``None``: no limit.

    Returns:
        The format and dimensions.

    Raises:
        ImageTooLarge: more pixels (read from the header) or animation frames than allowed (413).
        BadImage: unreadable header, truncated, bad shape, or another file inside (400).
        CheckTooCostly: the walk needed more than ``max_steps`` steps.
    """
    multi_picture = fmt == "JPEG"  # every JPEG behind the first is walked; Pillow says MPO below
    try:
        end = _image_end(data, fmt, multi_picture, _Steps(max_steps), policy.max_frames)
    except _Truncated:
        raise BadImage(f"the {fmt} image is truncated", code="truncated_image") from None
    except _Corrupt as exc:
        raise BadImage(f"the {fmt} image is corrupt: {exc}", code="corrupt_image") from None
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            width, height = img.size
            is_mpo = img.format == "MPO"
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise BadImage(f"unreadable {fmt} header: {exc}", code="corrupt_image") from None
    if width < 1 or height < 1:
        raise BadImage(f"the image has no pixels ({width}x{height})", code="corrupt_image")
    if width * height > policy.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is {policy.max_pixels:,}",
            code="too_many_pixels",
        )
    if max(width, height) > policy.max_aspect_ratio * min(width, height):
        raise BadImage(
            f"the image is {width}x{height}; aspect ratios above {policy.max_aspect_ratio:g}:1 are not accepted",
            code="bad_aspect_ratio",
        )
    if fmt == "JPEG" and not is_mpo:  # a plain JPEG ends at its first EOI: anything after is appended
        end = _jpeg_walk(data, 0, _Steps(None), _JpegWalk()).end
    trailing = data[end:]
    if trailing.strip(b"\x00"):
        raise BadImage(
            f"{len(trailing):,} bytes follow the end of the {fmt} image; files with other data appended "
            "(polyglots such as an image with a ZIP/JAR behind it) are not accepted",
            code="polyglot",
        )
    if _hidden_zip(data) or b"%PDF-" in data[:1024]:
        raise BadImage(f"the {fmt} image also carries a ZIP or PDF file (polyglot)", code="polyglot")
    if _ACTIVE_CONTENT.search(data):
        raise BadImage(f"the {fmt} image carries HTML, script or PHP markup (polyglot)", code="polyglot")
    return ImageInfo(format=fmt, width=width, height=height, size_bytes=len(data))


def verify_decodes(data: bytes, fmt: str, policy: UploadPolicy) -> None:
    """Decode the image exactly as the Triton preprocessing will (reduced JPEG scale).

    8-bit PNG is the exception: ``inspect`` has checked the CRC-32 of every chunk, which
    catches corrupt or truncated data at a small fraction of a full inflate and decode (about
    5 ms for a 200 KiB photo); what a crafted PNG with valid CRCs still hides, Triton's own
    decode refuses per request (400 ``rejected_by_model``). A 16-bit PNG is decoded: its
    conversion is the costly case of the preprocessing, so it is proven here, off the loop.

    Args:
        data: the upload.
        fmt: its format, as ``sniff`` named it.
        policy: the upload limits.

    Raises:
        BadImage: truncated or corrupt pixel data (400).
    """
    if fmt == "PNG" and not (len(data) > 24 and data[24] == 16):
        return
    try:
        imaging.decode_rgb(
            data,
            draft_size=_VERIFY_DRAFT,
            max_pixels=policy.max_pixels,
            max_aspect_ratio=policy.max_aspect_ratio,
        )
    except imaging.InvalidImage as exc:
        raise BadImage(str(exc), code="corrupt_image") from None
    except MemoryError:
        raise ImageTooLarge("the image needs more memory to decode than allowed", code="image_too_costly") from None


def check_image(data: bytes, fmt: str, policy: UploadPolicy, *, max_steps: int | None = None) -> ImageInfo:
    """``assess``, ``inspect`` and ``verify_decodes`` of sniffed bytes (what a decode worker runs).

    Raises:
        ImageError: the first check that fails (400/413).
        CheckTooCostly: the walk needed more than ``max_steps`` steps.
    """
    assess(data, fmt, policy)
    info = inspect(data, fmt, policy, max_steps=max_steps)
    verify_decodes(data, fmt, policy)
    return info
