"""Video sniffing, bounding and frame sampling (``visionserve.video``) on clips the tests make."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from gateway.decode_pool import DecodePool
from gateway.uploads import UploadPolicy
from visionserve.errors import ImageError, InvalidVideo, UnsupportedVideo, VideoTooLarge
from visionserve.samples.videos import FORMATS, make_video
from visionserve.video import Sampling, VideoLimits, sample_video, sniff_container

LIMITS = VideoLimits(max_duration_s=60, max_pixels=1920 * 1080, max_frames=3000, max_sampled_frames=64)


@pytest.mark.parametrize(("container", "codec"), FORMATS, ids=[f"{c}-{k}" for c, k in FORMATS])
def test_every_container_is_sniffed_and_sampled_once_a_second(container: str, codec: str) -> None:
    data = make_video(container, codec, seconds=3.0, fps=10)
    kind = sniff_container(data)
    assert kind == container
    info, frames = sample_video(data, kind, Sampling(every_seconds=1.0), LIMITS)
    assert (info.width, info.height, info.codec) == (320, 240, codec)
    assert info.duration_s == pytest.approx(3.0, abs=0.15) and info.decoded_frames == 30
    assert [f.t_s for f in frames] == pytest.approx([0.0, 1.0, 2.0], abs=0.05)
    for frame in frames:
        img = Image.open(io.BytesIO(frame.jpeg))
        assert img.format == "JPEG" and img.size == (320, 240)


def test_keyframes_only_takes_the_key_frames() -> None:
    data = make_video("webm", "vp8", seconds=4.0, fps=10, gop=20)
    _, frames = sample_video(data, "webm", Sampling(every_seconds=None, keyframes_only=True), LIMITS)
    assert [f.t_s for f in frames] == pytest.approx([0.0, 2.0], abs=0.05)
    assert all(f.keyframe for f in frames)


@pytest.mark.parametrize(
    ("limits", "sampling", "code"),
    [
        (VideoLimits(2.0, 1920 * 1080, 3000, 64), Sampling(1.0), "video_too_large"),  # duration
        (VideoLimits(60, 320 * 200, 3000, 64), Sampling(1.0), "video_too_large"),  # resolution
        (VideoLimits(60, 1920 * 1080, 20, 64), Sampling(1.0), "video_too_large"),  # frames
        (VideoLimits(60, 1920 * 1080, 3000, 2), Sampling(1.0), "too_many_frames"),  # sampled, planned
        (VideoLimits(60, 1920 * 1080, 3000, 1), Sampling(None, True), "too_many_frames"),  # sampled, decoding
    ],
)
def test_limits_refuse_with_413(limits: VideoLimits, sampling: Sampling, code: str) -> None:
    data = make_video("mp4", "h264", seconds=3.0, fps=10, gop=10)
    with pytest.raises(VideoTooLarge) as caught:
        sample_video(data, "mp4", sampling, limits)
    assert caught.value.code == code and caught.value.error_code == 413


def test_what_is_not_a_video_is_refused_by_its_magic() -> None:
    for data in (b"", b"GIF89a" + bytes(20), b"\x1a\x45\xdf\xa3" + b"\x42\x82\x88matroska" + bytes(40), b"PK\x03\x04"):
        with pytest.raises(UnsupportedVideo) as caught:
            sniff_container(data)
        assert caught.value.error_code == 415 and caught.value.code == "unsupported_video"


@pytest.mark.parametrize("cut", [0.02, 0.3, 0.7])
def test_corrupt_and_truncated_videos_are_400_or_answer_what_decoded(cut: float) -> None:
    data = make_video("mp4", "h264", seconds=3.0)
    truncated = data[: int(len(data) * cut)]
    try:
        _, frames = sample_video(truncated, "mp4", Sampling(1.0), LIMITS)
    except InvalidVideo as exc:
        assert exc.error_code == 400 and exc.code in ("corrupt_video", "invalid_video")
    else:
        assert frames  # a cut tail: the frames before it
    garbage = data[:64] + bytes(range(256)) * 40
    with pytest.raises(InvalidVideo):
        sample_video(garbage, "mp4", Sampling(1.0), LIMITS)


def test_the_decode_pool_samples_in_a_worker_process_and_kills_an_overrun() -> None:
    async def run() -> None:
        pool = DecodePool(UploadPolicy(), workers=1, timeout_s=30)
        try:
            info, frames = await pool.sample_video(make_video("avi", "mpeg4"), "avi", Sampling(1.0), LIMITS)
            assert info.container == "avi" and len(frames) == 3
            assert all(Image.open(io.BytesIO(f.jpeg)).size == (320, 240) for f in frames)
            with pytest.raises(VideoTooLarge):
                await pool.sample_video(make_video("mp4", "h264"), "mp4", Sampling(1.0), VideoLimits(1, 10**7, 99, 9))
            slow = DecodePool(UploadPolicy(), workers=1, timeout_s=0.05)
            try:
                big = make_video("mp4", "h264", seconds=20, fps=25, size=(640, 480))
                with pytest.raises(ImageError) as caught:
                    await slow.sample_video(big, "mp4", Sampling(0.5), LIMITS)
                assert caught.value.code == "decode_timeout" and caught.value.error_code == 413 and slow.kills == 1
            finally:
                await slow.close()
        finally:
            await pool.close()

    asyncio.run(run())
