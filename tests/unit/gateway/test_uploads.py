"""Upload checks: every hostile file gets its status and code; every valid variant passes."""

from __future__ import annotations

import pytest

from gateway.errors import BadImage, ImageTooLarge, UnsupportedImage
from gateway.uploads import UploadPolicy, inspect, sniff
from tests.fixtures.corpus import hostile_corpus, photo, valid_corpus
from tests.fixtures.uploads import check_upload
from visionserve.errors import ImageError
from visionserve.samples import sample_images

POLICY = UploadPolicy()


def test_the_hostile_corpus_is_large_and_covers_every_status() -> None:
    corpus = hostile_corpus()
    assert len(corpus) >= 60
    assert {h.status for h in corpus} == {400, 413, 415}
    assert len({h.name for h in corpus}) == len(corpus)
    codes = {h.code for h in corpus}
    assert {"too_many_scans", "image_too_costly", "too_many_pixels", "polyglot", "truncated_image"} <= codes
    for ext in ("jpg", "png", "gif", "webp", "bmp"):  # every format truncated or corrupt, and bombed
        assert any(h.name.endswith(ext) and h.code == "too_many_pixels" for h in corpus), ext
        broken = [h for h in corpus if h.name.startswith(("truncated", "corrupt")) and h.status == 400]
        assert any(h.name.endswith(ext) for h in broken), ext


def test_the_request_corpus_states_a_4xx_for_every_body() -> None:
    from tests.fixtures.corpus import hostile_requests

    cases = hostile_requests()
    assert len(cases) >= 15 and len({c.name for c in cases}) == len(cases)
    assert all(400 <= c.status < 500 for c in cases)


@pytest.mark.parametrize("item", hostile_corpus(), ids=lambda h: h.name)
def test_hostile_upload_is_refused_with_its_status(item) -> None:
    with pytest.raises(ImageError) as info:
        check_upload(item.data, POLICY)
    assert info.value.error_code == item.status, str(info.value)
    if item.code is not None:
        assert info.value.code == item.code, str(info.value)
    assert str(info.value)  # a message for the caller


@pytest.mark.parametrize("name,data", valid_corpus(), ids=lambda v: v if isinstance(v, str) else "")
def test_valid_variants_pass(name: str, data: bytes) -> None:
    info = check_upload(data, POLICY)
    assert info.width > 0 and info.height > 0
    assert info.size_bytes == len(data)


def test_real_sample_images_of_every_format_pass() -> None:
    for image in sample_images(15, seed=11):
        info = check_upload(image.data, POLICY)
        assert info.format == image.format
        assert (info.width, info.height) == image.size


def test_declared_type_is_irrelevant_sniff_reads_the_bytes() -> None:
    png = next(d for n, d in valid_corpus() if n == "rgb.png")
    assert sniff(png, POLICY) == "PNG"
    with pytest.raises(UnsupportedImage, match="PDF"):
        sniff(b"%PDF-1.4 pretending to be a jpeg", POLICY)


def test_per_format_size_limits_apply() -> None:
    png = next(d for n, d in valid_corpus() if n == "rgb.png")
    jpeg = next(d for n, d in valid_corpus() if n == "baseline.jpg")
    tight = UploadPolicy(max_bytes={"JPEG": 10**6, "PNG": len(png) - 1, "WEBP": 1, "GIF": 1, "BMP": 1})
    assert sniff(jpeg, tight) == "JPEG"
    with pytest.raises(ImageTooLarge) as info:
        sniff(png, tight)
    assert info.value.error_code == 413


def test_pixel_limit_is_read_from_the_header_before_decoding() -> None:
    import io

    buf = io.BytesIO()
    photo((200, 100)).save(buf, "PNG")
    data = buf.getvalue()
    assert inspect(data, "PNG", UploadPolicy(max_pixels=20_000)).width == 200
    with pytest.raises(ImageTooLarge) as info:
        inspect(data, "PNG", UploadPolicy(max_pixels=19_999))
    assert info.value.code == "too_many_pixels"


def test_trailing_padding_is_tolerated_but_trailing_data_is_not() -> None:
    jpeg = next(d for n, d in valid_corpus() if n == "baseline.jpg")
    check_upload(jpeg + b"\x00" * 100, POLICY)
    with pytest.raises(BadImage) as info:
        check_upload(jpeg + b"\x00" * 10 + b"X", POLICY)
    assert info.value.code == "polyglot"


def test_policy_fingerprint_changes_with_limits() -> None:
    assert UploadPolicy().fingerprint == UploadPolicy().fingerprint
    assert UploadPolicy(max_pixels=1000).fingerprint != UploadPolicy().fingerprint


def test_png_corruption_anywhere_fails_its_chunk_crc_without_a_decode() -> None:
    png = dict(valid_corpus())["rgb.png"]
    check_upload(png, UploadPolicy())
    idat = png.index(b"IDAT")
    for offset in (idat + 8, idat + (len(png) - idat) // 2):  # first and middle bytes of the pixel data
        damaged = bytearray(png)
        damaged[offset] ^= 0x01  # one flipped bit
        with pytest.raises(BadImage, match="fails its CRC check"):
            check_upload(bytes(damaged), UploadPolicy())
