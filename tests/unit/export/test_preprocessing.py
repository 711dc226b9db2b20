"""Preprocessing parity against the frameworks' own functions, and decoding of awkward images.

References are the frameworks', not ours: ``keras.utils.load_img`` + ``preprocess_input`` of
the module the catalog names, and torchvision's ``ResNet18_Weights.IMAGENET1K_V1.transforms()``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.backbone import resolve_builder
from visionserve.catalog import load_catalog
from visionserve.imaging import InvalidImage, Pipeline, decode_rgb
from visionserve.samples import base_photos

SIZES = [(224, 224), (640, 480), (479, 641), (300, 1000), (97, 131), (1023, 257), (256, 256), (225, 300)]
MODES = ["RGB", "L", "P", "RGBA", "LA", "CMYK"]


def _image(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    photo = base_photos()[seed % 2].resize(size, Image.BICUBIC)
    arr = np.asarray(photo).astype(np.int16) + rng.integers(-20, 21, (size[1], size[0], 3))
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")
    if mode == "P":
        return img.quantize(64)
    if mode in {"RGBA", "LA"}:
        alpha = Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L")
        out = img.convert(mode[:-1])
        out.putalpha(alpha)
        return out
    return img.convert(mode)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


CASES = [(size, mode, i) for i, (size, mode) in enumerate((s, m) for s in SIZES for m in MODES)]


def _keras_reference(name: str, path: Path) -> np.ndarray:
    import keras

    spec = load_catalog().get(name)
    size = spec.preprocessing.resize.size
    img = keras.utils.load_img(path, target_size=(size, size), interpolation="bilinear")
    preprocess_input = resolve_builder(spec.preprocessing.reference)
    return np.asarray(preprocess_input(keras.utils.img_to_array(img)))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_keras_parity(name: str, tmp_path: Path) -> None:
    pipeline = load_catalog().get(name).pipeline(use_draft=False)
    worst = 0.0
    for size, mode, seed in CASES:
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        data = _encode(_image(size, mode, seed), fmt)
        path = tmp_path / f"{seed}.{fmt.lower()}"
        path.write_bytes(data)
        ours, ref = pipeline(data), _keras_reference(name, path)
        assert ours.shape == ref.shape == (224, 224, 3)
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst < 1e-3, f"{name}: max |diff| {worst}"


def test_torchvision_parity() -> None:
    from torchvision.models import ResNet18_Weights

    reference = ResNet18_Weights.IMAGENET1K_V1.transforms()
    pipeline = load_catalog().get("resnet18").pipeline(use_draft=False)
    worst = 0.0
    for size, mode, seed in CASES:
        fmt = "JPEG" if mode == "CMYK" else "PNG"
        data = _encode(_image(size, mode, seed), fmt)
        ref = reference(Image.open(io.BytesIO(data)).convert("RGB")).numpy()
        ours = pipeline(data)
        assert ours.shape == ref.shape == (3, 224, 224)
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst < 1e-4, f"resnet18: max |diff| {worst}"


def test_jpeg_draft_stays_close_to_full_decode() -> None:
    """draft() decodes big JPEGs at a reduced DCT scale: fast, and visually the same input."""
    data = _encode(base_photos()[0].resize((1600, 1200)), "JPEG")
    for name in ("mobilenet_v2", "resnet18"):
        spec = load_catalog().get(name)
        fast, exact = spec.pipeline()(data), spec.pipeline(use_draft=False)(data)
        rel = np.abs(fast - exact).mean() / np.abs(exact).mean()
        assert 0 < rel < 0.05, f"{name}: draft changed the tensor by {rel:.3%}"


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decode_rgb(buf.getvalue()).size == (200, 300)


def test_16_bit_is_scaled_not_clipped() -> None:
    arr = np.full((40, 50), 32896, dtype=np.uint16)  # 128 * 257
    data = _encode(Image.fromarray(arr), "PNG")
    rgb = np.asarray(decode_rgb(data))
    assert rgb.shape == (40, 50, 3) and np.all(rgb == 128)


def test_animated_gif_takes_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((250, 0, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    r, _g, b = np.asarray(decode_rgb(buf.getvalue())).mean(axis=(0, 1))
    assert r > 200 and b < 50


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "GIF", "JPEG", "PNG"])
def test_every_accepted_format_decodes(fmt: str) -> None:
    data = _encode(base_photos()[1].resize((320, 240)), fmt)
    assert load_catalog().get("resnet50").pipeline()(data).shape == (224, 224, 3)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a recognised image"),
        (_png_header_only(60000, 60000), "above the limit"),
        (_encode(Image.new("L", (1, 100000)), "PNG"), "aspect ratio"),
        (_encode(Image.new("RGB", (64, 64)), "TIFF"), "TIFF is not accepted"),
    ],
    ids=["empty", "garbage", "bomb", "strip", "tiff"],
)
def test_bad_images_fail_clearly(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage, match=message):
        load_catalog().get("resnet18").pipeline()(data)


def test_truncated_jpeg_fails_clearly() -> None:
    data = _encode(base_photos()[0], "JPEG")
    with pytest.raises(InvalidImage, match="truncated or corrupt JPEG"):
        Pipeline.from_params(load_catalog().get("resnet18").pipeline_params())(data[: len(data) // 2])
