"""Decode encoded image bytes to RGB and apply a catalog preprocessing.

This module is the one implementation of preprocessing. It runs in-process (reference
pipeline, benchmarks) and inside Triton: the repository writer copies this file next to each
``<model>_preprocess/<version>/model.py``. It therefore imports only numpy and Pillow (what the
NGC image plus Pillow has) and nothing from visionserve.

Geometry and pixel transforms follow the frameworks exactly (parity-tested):
Keras ``load_img(target_size=…)`` is a PIL bilinear resize to a square; torchvision
``Resize(n)`` sets the shorter side to ``n`` (long side truncated), ``CenterCrop`` rounds the
offsets; both use PIL's antialiased bilinear filter. Decoding is the CPU hot spot, so JPEGs are
decoded at a reduced DCT scale (``Image.draft``) when the target is much smaller.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_ASPECT_RATIO",
    "DEFAULT_MAX_PIXELS",
    "InvalidImage",
    "Pipeline",
    "decode_rgb",
]

#: Formats the ensembles accept (PIL format names).
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "MPO"})
#: Largest image (width × height) decoded at all: a guard against decompression bombs.
DEFAULT_MAX_PIXELS = 50_000_000
#: Longest side / shorter side above which an image is refused (a 1×100000 strip would
#: otherwise resize to gigapixels under "shorter side to 256").
DEFAULT_MAX_ASPECT_RATIO = 32.0

Image.MAX_IMAGE_PIXELS = None  # we enforce our own, clearer limit before decoding


class InvalidImage(ValueError):
    """The bytes are not an acceptable image; the message says why, for the caller."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit and 32-bit integer data are scaled, not clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def decode_rgb(
    data: bytes,
    *,
    draft_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
) -> Image.Image:
    """Decode bytes to an RGB image: first frame, EXIF orientation applied, any mode converted.

    Args:
        data: encoded JPEG / PNG / WebP / BMP / GIF bytes.
        draft_size: for JPEG, let libjpeg decode at a reduced scale while both sides stay at
            least this large — several times faster for photos much larger than the target.
        max_pixels: refuse images whose header claims more pixels than this, before decoding.
        max_aspect_ratio: refuse images more elongated than this.

    Raises:
        InvalidImage: empty, unrecognised, disallowed, oversized, or truncated/corrupt data.
    """
    if not data:
        raise InvalidImage("empty image: 0 bytes received")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        raise InvalidImage("not a recognised image; send JPEG, PNG, WebP, BMP or GIF bytes") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise InvalidImage(f"unreadable image header: {exc}") from None
    if img.format not in ALLOWED_FORMATS:
        raise InvalidImage(f"image format {img.format} is not accepted; send JPEG, PNG, WebP, BMP or GIF")
    width, height = img.size
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,}"
        )
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise InvalidImage(
            f"image is {width}x{height}; aspect ratios above {max_aspect_ratio:g}:1 are not accepted"
        )
    if draft_size is not None and img.format in {"JPEG", "MPO"}:
        img.draft("RGB", draft_size)
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return _to_rgb(img)
    except Exception as exc:  # truncated streams raise OSError, broken chunks SyntaxError/ValueError
        raise InvalidImage(f"truncated or corrupt {img.format} image: {exc}") from None


@dataclass(frozen=True)
class Pipeline:
    """One catalog preprocessing: geometry, then ``(pixel * scale - mean) / std``, then layout.

    Built from the catalog with ``Pipeline.from_params(ModelSpec.pipeline_params())`` so the
    constants are never written twice; inside Triton the same dict arrives as a JSON config
    parameter.
    """

    resize_mode: str
    resize_size: int
    crop: int | None
    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    use_draft: bool = True

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> Pipeline:
        """Build from the dict of ``ModelSpec.pipeline_params()`` (catalog preprocessing + layout)."""
        resize = params["resize"]
        return cls(
            resize_mode=resize["mode"],
            resize_size=int(resize["size"]),
            crop=params.get("crop"),
            channel_order=params["channel_order"],
            scale=float(params["scale"]),
            mean=tuple(float(v) for v in params["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in params["std"]),  # type: ignore[arg-type]
            layout=params["layout"],
            **overrides,
        )

    @property
    def output_size(self) -> int:
        return self.crop or self.resize_size

    @property
    def output_shape(self) -> tuple[int, int, int]:
        s = self.output_size
        return (s, s, 3) if self.layout == "NHWC" else (3, s, s)

    def decode(self, data: bytes) -> Image.Image:
        draft = (self.resize_size, self.resize_size) if self.use_draft else None
        return decode_rgb(data, draft_size=draft, max_pixels=self.max_pixels,
                          max_aspect_ratio=self.max_aspect_ratio)

    def geometry(self, img: Image.Image) -> Image.Image:
        """Resize (and centre-crop) an RGB image exactly as the framework's reference does."""
        size = self.resize_size
        if self.resize_mode == "square":
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
        else:  # torchvision Resize(int): shorter side -> size, longer side truncated
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = size, int(size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
            if (new_w, new_h) != (w, h):
                img = img.resize((new_w, new_h), Image.BILINEAR)
        if self.crop:
            w, h = img.size
            top = int(round((h - self.crop) / 2.0))
            left = int(round((w - self.crop) / 2.0))
            img = img.crop((left, top, left + self.crop, top + self.crop))
        return img

    def normalize(self, img: Image.Image) -> np.ndarray:
        """RGB image -> float32 tensor in the model's channel order, scale and layout."""
        arr = np.asarray(img, dtype=np.float32)
        if self.channel_order == "BGR":
            arr = arr[..., ::-1]
        std = np.asarray(self.std, dtype=np.float32)
        mul = np.float32(self.scale) / std
        add = -np.asarray(self.mean, dtype=np.float32) / std
        arr = arr * mul + add
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def __call__(self, data: bytes) -> np.ndarray:
        """Encoded bytes -> one preprocessed image (no batch axis)."""
        return self.normalize(self.geometry(self.decode(data)))

    def batch(self, images: list[bytes]) -> np.ndarray:
        """Encoded bytes -> a batch tensor."""
        return np.stack([self(b) for b in images])
