"""simplejpeg (libjpeg-turbo) as the CPU JPEG decoder: Pillow's pixels, Pillow for what it cannot do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from visionserve import imaging
from visionserve.catalog import load_catalog
from visionserve.imaging import InvalidImage, decode_rgb, draft_scale
from visionserve.samples import base_photos, sample_images

pytest.importorskip("simplejpeg")

SIZES = ((640, 480), (1024, 768), (1920, 1080), (500, 375), (224, 224), (300, 1000), (97, 131))


def _jpeg(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **save)
    return buf.getvalue()


def _both(data: bytes, draft: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    slow = np.asarray(decode_rgb(data, draft_size=draft, jpeg_decoder="pillow"))
    fast = np.asarray(decode_rgb(data, draft_size=draft, jpeg_decoder="simplejpeg"))
    return slow, fast


@pytest.mark.parametrize("draft", [None, (224, 224), (256, 256)])
def test_same_pixels_as_pillow_at_every_draft_scale(draft: tuple[int, int] | None) -> None:
    images = [s.data for s in sample_images(20, seed=5, formats=("JPEG",), sizes=SIZES)]
    images.append(_jpeg(base_photos()[0].resize((1600, 1200)), progressive=True, quality=80))
    images.append(_jpeg(base_photos()[1].resize((800, 600)), subsampling=0))  # 4:4:4
    scales = set()
    for data in images:
        slow, fast = _both(data, draft)
        assert slow.shape == fast.shape
        assert np.array_equal(slow, fast)
        scales.add(draft_scale(Image.open(io.BytesIO(data)).size, draft))
    if draft is not None:
        assert {1, 2} <= scales  # the reduced DCT scales were exercised


def test_draft_scale_is_pillows() -> None:
    for size in SIZES:
        img = Image.open(io.BytesIO(_jpeg(Image.new("RGB", size))))
        img.draft("RGB", (224, 224))
        scale = draft_scale(size, (224, 224))
        assert img.size == (-(-size[0] // scale), -(-size[1] // scale))


def test_pipeline_tensors_are_identical_for_every_model() -> None:
    data = [s.data for s in sample_images(6, seed=11, formats=("JPEG",), sizes=SIZES)]
    for spec in load_catalog().models.values():
        pillow = spec.pipeline(jpeg_decoder="pillow").batch(data)
        turbo = spec.pipeline(jpeg_decoder="simplejpeg").batch(data)
        assert np.array_equal(pillow, turbo), spec.name


def test_catalog_default_reaches_the_pipeline() -> None:
    spec = load_catalog().get("resnet18")
    assert spec.jpeg_decoder in imaging.JPEG_DECODERS
    assert spec.pipeline().jpeg_decoder == spec.pipeline_params()["jpeg_decoder"] == spec.jpeg_decoder


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_fall_back_to_pillow(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(base_photos()[0].resize((300, 200)).convert(mode))
    calls = []
    monkeypatch.setattr(imaging._simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(1))
    slow, fast = _both(data, (224, 224))
    assert not calls and np.array_equal(slow, fast) and fast.shape == (200, 300, 3)


def test_exif_rotation_falls_back_and_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _jpeg(Image.new("RGB", (300, 200), (255, 0, 0)), exif=exif)
    assert decode_rgb(data, jpeg_decoder="simplejpeg").size == (200, 300)


def test_what_simplejpeg_refuses_goes_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(base_photos()[1].resize((320, 240)))

    def refuse(*_a: object, **_k: object) -> None:
        raise ValueError("unsupported")

    monkeypatch.setattr(imaging._simplejpeg, "decode_jpeg", refuse)
    assert np.array_equal(*_both(data, None))


def test_without_simplejpeg_everything_is_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(base_photos()[0].resize((320, 240)))
    monkeypatch.setattr(imaging, "_simplejpeg", None)
    assert np.array_equal(*_both(data, (224, 224)))


def test_truncated_jpeg_is_still_invalid() -> None:
    data = _jpeg(base_photos()[0].resize((640, 480)))
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_rgb(data[: len(data) // 2], jpeg_decoder="simplejpeg")
