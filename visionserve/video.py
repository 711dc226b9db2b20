"""Short videos → sampled frames, bounded before decoding (the gateway's video route and the client).

What a video costs the server is frames decoded, not bytes: a 2 MB clip can hold an hour of
4K. So the container is sniffed by its magic bytes, then its headers (no decoding) must declare
a duration, a resolution and a frame count within ``VideoLimits``, and the number of frames the
request would sample is computed and bounded, all before the first frame is decoded. Decoding
then re-checks as it goes (headers can lie): more frames than declared, a later timestamp or a
larger picture stops it with the same 413. In the gateway this runs inside a decode process
(``gateway.decode_worker``), never on the event loop; the pool kills it when it overruns. The
client library (``client.TritonClient.classify_video``) samples with the same code, so the CLI
and the gateway classify the same frames. It lives in the core for both: imports flow one way.

Frames travel to Triton as JPEG (quality ``FRAME_JPEG_QUALITY``) through the image ensembles,
not as a tensor input: one contract for every model (the ensemble's ``image`` input and its
catalog preprocessing, exactly as for a photo), no second input per model to keep in step, and
a frame of 640x480 is ~60 KB instead of 900 KB raw. The price is one JPEG encode per sampled
frame (~2 ms) and a re-encode at quality 95, well below the video codec's own loss.

Sampling: ``every_seconds`` takes the first frame at or after 0, s, 2s, …; ``keyframes_only``
asks the decoder to skip every non-key frame (``skip_frame = NONKEY``: they are not decoded).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from visionserve.errors import InvalidVideo, UnsupportedVideo, VideoTooLarge

__all__ = [
    "CONTAINERS",
    "DEFAULT_VIDEO_LIMITS",
    "FRAME_JPEG_QUALITY",
    "Frame",
    "Sampling",
    "VideoInfo",
    "VideoLimits",
    "sample_video",
    "sniff_container",
]

#: What the endpoint accepts, by sniffed container (PyAV's demuxer name for each).
CONTAINERS = {"mp4": "mp4", "mov": "mov", "webm": "matroska", "avi": "avi"}
FRAME_JPEG_QUALITY = 95
_EBML = b"\x1a\x45\xdf\xa3"


@dataclass(frozen=True)
class VideoLimits:
    """What one video request may make the server do.

    Args:
        max_duration_s: longest declared (and decoded) duration.
        max_pixels: largest frame (width x height).
        max_frames: most frames in the stream (declared, or estimated from duration x rate).
        max_sampled_frames: most frames one request may send to Triton.
    """

    max_duration_s: float
    max_pixels: int
    max_frames: int
    max_sampled_frames: int


#: The limits the gateway starts with (``GATEWAY_VIDEO_*``) and the client samples under: a
#: minute of up to 1080p at up to 60 fps, and at most 64 frames classified per request.
DEFAULT_VIDEO_LIMITS = VideoLimits(max_duration_s=60.0, max_pixels=1920 * 1088, max_frames=3600, max_sampled_frames=64)


@dataclass(frozen=True)
class Sampling:
    """Which frames to classify: one every ``every_seconds``, or every key frame."""

    every_seconds: float | None = 1.0
    keyframes_only: bool = False

    def planned(self, duration_s: float) -> int | None:
        """Frames this sampling takes from a clip of ``duration_s`` (None: known only by decoding)."""
        if self.keyframes_only or not self.every_seconds:
            return None
        return max(1, math.floor(duration_s / self.every_seconds + 1e-9) + 1)


@dataclass
class VideoInfo:
    """What the container's headers say (and what decoding saw)."""

    container: str
    codec: str
    width: int
    height: int
    duration_s: float
    frames: int
    fps: float
    decoded_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Frame:
    """One sampled frame: its timestamp, whether it is a key frame, and its JPEG bytes."""

    t_s: float
    keyframe: bool
    jpeg: bytes = field(repr=False)


def sniff_container(data: bytes) -> str:
    """The container by its magic bytes (``CONTAINERS`` key); 415 for anything else."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mov" if data[8:12] == b"qt  " else "mp4"
    if data[:4] == _EBML:
        if b"webm" in data[:64]:
            return "webm"
        raise UnsupportedVideo("a Matroska file that is not WebM; send MP4, WebM, AVI or MOV")
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    raise UnsupportedVideo("not a video this endpoint reads: send MP4, WebM, AVI or MOV")


def _too_costly(message: str) -> VideoTooLarge:
    return VideoTooLarge(message)


def _inspect(container: Any, kind: str, limits: VideoLimits) -> tuple[Any, VideoInfo]:
    if not container.streams.video:
        raise InvalidVideo(f"the {kind} file has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise InvalidVideo(f"the {kind} file's video stream declares no picture size")
    if width * height > limits.max_pixels:
        raise _too_costly(f"frames of {width}x{height} exceed {limits.max_pixels:,} pixels")
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        raise InvalidVideo(f"the {kind} file declares no duration; it cannot be bounded")
    if not math.isfinite(duration) or duration < 0:
        raise InvalidVideo(f"the {kind} file declares a duration of {duration}")
    if duration > limits.max_duration_s:
        raise _too_costly(f"the video lasts {duration:.1f} s; at most {limits.max_duration_s:g} s")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    frames = int(stream.frames or 0) or math.ceil(duration * fps)
    if frames > limits.max_frames:
        raise _too_costly(f"the video holds {frames:,} frames; at most {limits.max_frames:,}")
    info = VideoInfo(kind, str(ctx.name), width, height, round(duration, 3), frames, round(fps, 3))
    return stream, info


def _encode(frame: Any) -> bytes:
    buf = io.BytesIO()
    frame.to_image().save(buf, "JPEG", quality=FRAME_JPEG_QUALITY)
    return buf.getvalue()


def sample_video(data: bytes, kind: str, sampling: Sampling, limits: VideoLimits) -> tuple[VideoInfo, list[Frame]]:
    """Decode just enough of a video to take the sampled frames, within ``limits``.

    Raises:
        VideoError: 400 ``invalid_video`` / ``corrupt_video`` (``InvalidVideo``), 413
            ``video_too_large`` or ``too_many_frames`` (``VideoTooLarge``), 415
            ``unsupported_video`` (``UnsupportedVideo``).
    """
    import av  # in the decode process only: the gateway's workers never decode video

    try:
        container = av.open(io.BytesIO(data), format=CONTAINERS[kind], metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise InvalidVideo(f"the {kind} file does not open: {exc}", code="corrupt_video") from None
    with container:
        stream, info = _inspect(container, kind, limits)
        planned = sampling.planned(info.duration_s)
        if planned is not None and planned > limits.max_sampled_frames:
            raise VideoTooLarge(
                f"sampling every {sampling.every_seconds:g} s takes {planned} frames; at most "
                f"{limits.max_sampled_frames} per request (raise every_seconds)",
                code="too_many_frames",
            )
        if sampling.keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        frames: list[Frame] = []
        next_t = 0.0
        try:
            for frame in container.decode(stream):
                info.decoded_frames += 1
                if info.decoded_frames > limits.max_frames:
                    raise _too_costly(f"the video holds more than {limits.max_frames:,} frames")
                if frame.width * frame.height > limits.max_pixels:
                    raise _too_costly(f"a frame of {frame.width}x{frame.height} exceeds {limits.max_pixels:,} pixels")
                t = float(frame.time) if frame.time is not None else info.decoded_frames / (info.fps or 1.0)
                if t > limits.max_duration_s:
                    raise _too_costly(f"frames run past {limits.max_duration_s:g} s")
                if sampling.keyframes_only:
                    take = bool(frame.key_frame)
                else:
                    take = t + 1e-6 >= next_t
                    while sampling.every_seconds and next_t <= t + 1e-6:
                        next_t += sampling.every_seconds
                if not take:
                    continue
                if len(frames) >= limits.max_sampled_frames:
                    raise VideoTooLarge(
                        f"the video has more than {limits.max_sampled_frames} key frames to classify",
                        code="too_many_frames",
                    )
                frames.append(Frame(round(t, 3), bool(frame.key_frame), _encode(frame)))
        except av.FFmpegError as exc:
            if not frames:
                raise InvalidVideo(f"the {kind} file does not decode: {exc}", code="corrupt_video") from None
            # a truncated tail: what decoded before it is answered
    if not frames:
        raise InvalidVideo(f"no frame of the {kind} file decoded", code="corrupt_video")
    return info, frames
