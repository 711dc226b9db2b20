"""Decode cost follows pixels and structure: header limits, inline-vs-process, killable decodes."""

from __future__ import annotations

import asyncio
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from gateway.decode_pool import DecodePool
from gateway.errors import BadImage, ImageTooLarge
from gateway.uploads import INLINE_MAX_STEPS, CheckTooCostly, UploadPolicy, assess, inspect, sniff
from tests.fixtures.corpus import (
    _animated,
    _encode,
    _gif_many_blocks,
    _png_chunk,
    _progressive_many_scans,
    costly_valid,
    photo,
    rle_bmp,
)
from tests.fixtures.uploads import check_upload
from visionserve import imaging

POLICY = UploadPolicy()


def test_jpeg_scans_are_counted_from_the_bytes_and_limited() -> None:
    progressive = _encode(photo((128, 96)), "JPEG", progressive=True)
    normal = assess(progressive, "JPEG", POLICY)
    assert normal.kind == "jpeg-progressive" and 2 <= normal.scans <= 32
    check_upload(progressive, POLICY)
    many = _progressive_many_scans(progressive, 200)
    assert assess(many, "JPEG", UploadPolicy(max_jpeg_scans=300)).scans == 200
    with pytest.raises(ImageTooLarge) as info:
        check_upload(many, POLICY)
    assert (info.value.error_code, info.value.code) == (413, "too_many_scans")


def test_rle_bmps_get_a_pixel_budget_of_their_own() -> None:
    small = rle_bmp(200, 200)
    assert assess(small, "BMP", POLICY).kind == "bmp-rle"
    check_upload(small, POLICY)
    big = rle_bmp(6000, 6000)  # 25 KB, valid, ~4 s of pure-Python decode
    assert len(big) < 30_000
    with pytest.raises(ImageTooLarge) as info:
        check_upload(big, POLICY)
    assert info.value.code == "image_too_costly"
    check_upload(rle_bmp(300, 300, bits=4), POLICY)


def test_inline_is_decided_by_pixels_and_structure_not_bytes() -> None:
    photo_jpeg = _encode(photo((640, 480)), "JPEG", quality=85)
    assert len(photo_jpeg) < 128 * 1024 and assess(photo_jpeg, "JPEG", POLICY).inline
    assert assess(_encode(photo((96, 64)), "PNG"), "PNG", POLICY).inline
    for name, data in costly_valid():  # all small in bytes, all dear to decode
        cost = assess(data, sniff(data, POLICY), POLICY)
        assert len(data) < 128 * 1024 and not cost.inline, (name, cost)
    webp = dict(costly_valid())["lossless-3000x3000.webp"]
    assert assess(webp, "WEBP", POLICY).kind == "webp-lossless"
    assert assess(dict(costly_valid())["16bit-3000x3000.png"], "PNG", POLICY).kind == "png-16bit"


def test_a_walk_of_many_small_blocks_is_handed_away_from_the_loop() -> None:
    gif = _gif_many_blocks(_encode(photo((16, 16)).quantize(8), "GIF"), 200_000)
    assert len(gif) < 512 * 1024
    with pytest.raises(CheckTooCostly):
        inspect(gif, "GIF", POLICY, max_steps=INLINE_MAX_STEPS)
    assert inspect(gif, "GIF", POLICY).width == 16  # unbounded (in a decode process) it is a valid GIF


def test_animations_past_max_frames_are_refused_from_their_structure() -> None:
    for fmt in ("GIF", "WEBP"):
        few, many = _animated(fmt, 20, (16, 16)), _animated(fmt, 150, (16, 16))
        check_upload(few, POLICY)  # a short animation is a normal upload (its first frame is classified)
        assert check_upload(many, UploadPolicy(max_frames=150)).width == 16  # the limit is the setting's
        with pytest.raises(ImageTooLarge) as info:
            assess(many, fmt, POLICY)  # refused from the header walk, before any decode or process hop
        assert (info.value.error_code, info.value.code) == (413, "too_many_frames"), fmt
        assert "100 frames" in str(info.value)
        with pytest.raises(ImageTooLarge):
            check_upload(many, UploadPolicy(max_frames=149))


def test_a_frame_count_the_loop_cannot_finish_is_finished_in_the_checks() -> None:
    # Frames behind more blocks than the inline walk may step through: assess cannot count
    # them all, so the upload is not inline, and the full (killable) check refuses it.
    many = _animated("GIF", 150, (16, 16))
    i = 13 + 3 * (2 << (many[10] & 7))
    padded = many[:i] + (b"\x21\xfe" + b"\x01x" * 64 + b"\x00") * (INLINE_MAX_STEPS // 60) + many[i:]
    cost = assess(padded, "GIF", POLICY)
    assert not cost.inline
    with pytest.raises(ImageTooLarge) as info:
        check_upload(padded, POLICY)
    assert info.value.code == "too_many_frames"


def test_jpeg_segment_count_is_bounded() -> None:
    jpeg = _encode(photo(), "JPEG")
    many = jpeg[:2] + b"\xff\xfe\x00\x03x" * 2000 + jpeg[2:]
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as info:
        check_upload(many, POLICY)
    assert info.value.code == "image_too_costly"
    assert time.perf_counter() - started < 0.5


def test_16bit_pngs_are_decode_checked_by_the_gateway() -> None:
    good = _encode(Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20), "PNG")
    check_upload(good, POLICY)
    ihdr = struct.pack(">IIBBBBB", 64, 48, 16, 0, 0, 0, 0)
    bad = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"not zlib data at all")
        + _png_chunk(b"IEND", b"")
    )  # every CRC valid: only a decode finds the fault
    with pytest.raises(BadImage) as info:
        check_upload(bad, POLICY)
    assert info.value.code == "corrupt_image"


def test_16bit_conversion_is_exact_and_integer_sized() -> None:
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    converted = np.asarray(imaging._to_rgb(Image.fromarray(values)))[..., 0]
    reference = np.clip(np.rint(values.astype(np.float64) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    assert np.array_equal(converted, reference)  # the ÷257 rounding of before, bit for bit
    signed = Image.fromarray(np.array([[-5, 0, 200, 255]], dtype=np.int32), "I")
    assert np.asarray(imaging._to_rgb(signed))[0, :, 0].tolist() == [0, 0, 200, 255]
    big = Image.fromarray(np.full((1500, 2000), 40_000, dtype=np.uint16))
    tracemalloc.start()
    try:
        imaging._to_rgb(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = 1500 * 2000
    assert peak < 7 * pixels, f"{peak / pixels:.1f} bytes per pixel"  # float64 temporaries took ~24


@pytest.fixture
async def pool():
    # 0.1 s: the costly case below decodes for 0.33-0.65 s here (a margin of 3x or more, also on a
    # fast moment, where 0.4 s was not), the small photos the other checks decode take ~1 ms.
    p = DecodePool(POLICY, workers=1, timeout_s=0.1)
    await p.start()
    yield p
    await p.close()


@pytest.mark.anyio
async def test_pool_answers_like_the_checks(pool: DecodePool) -> None:
    jpeg = _encode(photo(), "JPEG")
    await pool.check(jpeg, "JPEG")
    with pytest.raises(BadImage) as info:
        await pool.check(jpeg[: len(jpeg) // 2], "JPEG")
    assert (info.value.error_code, info.value.code) == (400, "truncated_image")
    with pytest.raises(ImageTooLarge) as too_big:
        await pool.check(rle_bmp(6000, 6000), "BMP")
    assert too_big.value.code == "image_too_costly"


@pytest.mark.anyio
async def test_an_overrunning_decode_is_killed_replaced_and_answered_4xx(pool: DecodePool) -> None:
    (victim,) = pool._live
    costly = rle_bmp(2000, 2000)  # 0.33-0.65 s of decode here, over the 0.1 s limit
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        for _ in range(40):
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as info:
        await pool.check(costly, "BMP")
    assert info.value.code == "decode_timeout" and info.value.error_code == 413
    assert time.perf_counter() - started < 2.0
    await tick
    assert max(gaps) < 0.2  # the loop ran all along
    await asyncio.sleep(0.2)
    assert victim.proc.returncode is not None  # killed, not left decoding
    with pytest.raises(ProcessLookupError):
        os.kill(victim.proc.pid, 0)
    assert pool.kills == 1
    await pool.check(_encode(photo(), "JPEG"), "JPEG")  # its replacement works


def test_tokens_follow_the_estimated_decode_and_stay_within_the_burst() -> None:
    photo_jpeg = _encode(photo((640, 480)), "JPEG", quality=85)
    assert assess(photo_jpeg, "JPEG", POLICY).tokens(25.0, 20) == 1
    costs = {name: assess(data, sniff(data, POLICY), POLICY) for name, data in costly_valid()}
    tokens = {name: cost.tokens(25.0, 20) for name, cost in costs.items()}
    assert all(1 <= t <= 20 for t in tokens.values()) and max(tokens.values()) > 1, tokens
    for name, cost in costs.items():  # more tokens per ms makes each image dearer, never cheaper
        assert cost.tokens(5.0, 1000) >= cost.tokens(25.0, 1000) >= 1, name
    rle = assess(rle_bmp(2000, 2000), "BMP", POLICY)
    assert rle.serve_ms > 100 and rle.tokens(25.0, 20) == min(20, -(-int(rle.serve_ms * 1000) // 25_000))
    assert rle.tokens(25.0, 4) == 4  # capped: an image the limits accept must fit the bucket
    header_only = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"  # no size known
    assert assess(header_only, "JPEG", POLICY).tokens(25.0, 1000) == 1
    png = _encode(photo((2000, 2000)), "PNG")
    assert assess(png, "PNG", POLICY).serve_ms > assess(png, "PNG", POLICY).estimate_ms  # Triton decodes, checks don't
