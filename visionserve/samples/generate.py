"""Deterministic sets of realistic test images, made on the spot (nothing can be downloaded here).

Real photographs shipped inside matplotlib (Grace Hopper, a gift box) are cropped, flipped,
colour-shifted, resized and encoded in every accepted format, so calibration, parity checks,
tests, load tests and benchmarks all see varied, real pixels instead of one image or noise.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = ["MIME_TYPES", "SAMPLE_FORMATS", "SampleImage", "base_photos", "encode", "mime_type", "sample_images"]

_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
_SIZES = ((640, 480), (480, 640), (320, 240), (1024, 768), (500, 375), (224, 224), (800, 600), (300, 420))
#: The formats a sample set cycles through (PIL format names).
SAMPLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}
#: The media type an upload of each sample format is declared as.
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp", "GIF": "image/gif"}


def mime_type(fmt: str) -> str:
    """The media type of PIL format ``fmt`` (``application/octet-stream`` when it has none here)."""
    return MIME_TYPES.get(fmt.upper(), "application/octet-stream")


@dataclass(frozen=True)
class SampleImage:
    """One encoded image of a sample set.

    Args:
        name: file name (``sample_<seed>_<i>.<ext>``).
        format: PIL format name.
        size: (width, height) in pixels.
        data: the encoded bytes.
    """

    name: str
    format: str
    size: tuple[int, int]
    data: bytes


@lru_cache(maxsize=1)
def base_photos() -> tuple[Image.Image, ...]:
    """The real photographs everything is derived from (RGB)."""
    from matplotlib import cbook

    photos = []
    for name in _PHOTOS:
        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
            photos.append(im.convert("RGB").copy())
    return tuple(photos)


def _synthetic(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Smooth colour fields with shapes: scene-like structure for a third of the set."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        chans.append(127 + 120 * np.sin(xx / w * fx * 3.14 + ph) * np.cos(yy / h * fy * 3.14))
    img = Image.fromarray(np.stack(chans, -1).clip(0, 255).astype(np.uint8), "RGB")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2 + 11)), y0 + int(rng.integers(10, h // 2 + 11))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img


def _variant(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    if rng.random() < 0.33:
        return _synthetic(rng, size)
    photo = base_photos()[int(rng.integers(len(base_photos())))]
    pw, ph = photo.size
    frac = rng.uniform(0.35, 1.0)
    cw, ch = max(16, int(pw * frac)), max(16, int(ph * frac * rng.uniform(0.75, 1.33)))
    cw, ch = min(cw, pw), min(ch, ph)
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    img = photo.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.4, 1.6))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.3))
    return img.resize(size, Image.BICUBIC)


def encode(img: Image.Image, fmt: str) -> bytes:
    """Encode an RGB image in ``fmt`` (GIF is palette-quantised, as GIFs are)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=90)
    elif fmt == "GIF":
        img.quantize(256).save(buf, "GIF")
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=90)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def sample_images(
    count: int,
    *,
    seed: int = 0,
    formats: tuple[str, ...] = SAMPLE_FORMATS,
    sizes: tuple[tuple[int, int], ...] = _SIZES,
) -> Iterator[SampleImage]:
    """Yield ``count`` distinct encoded images, cycling through formats; same seed, same bytes."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        fmt = formats[i % len(formats)]
        size = sizes[int(rng.integers(len(sizes)))]
        data = encode(_variant(rng, size), fmt)
        yield SampleImage(f"sample_{seed}_{i:04d}.{_EXT[fmt]}", fmt, size, data)
