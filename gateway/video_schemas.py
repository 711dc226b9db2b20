"""The request and response models of ``POST /v1/classify/video`` (OpenAPI schemas too)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.schemas import ClassifyOptions, Prediction
from visionserve.video import Sampling

__all__ = ["FramePredictions", "VideoForm", "VideoOptions", "VideoResponse", "VideoSampling", "VideoSegment"]

#: The sampling when a request names none.
DEFAULT_EVERY_SECONDS = Sampling().every_seconds


class VideoOptions(BaseModel):
    """Options of a video classification (form fields): a model, top_k and one sampling."""

    model_config = ConfigDict(extra="forbid")

    model: str = ClassifyOptions.model_fields["model"]
    top_k: int = Field(ClassifyOptions.model_fields["top_k"].default, ge=1, description="classes per frame and overall")
    every_seconds: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description=f"classify the first frame at or after 0, s, 2s, ... (default {DEFAULT_EVERY_SECONDS:g}); "
        "not with `keyframes_only`",
    )
    keyframes_only: bool = Field(False, description="classify every key frame instead; not with `every_seconds`")

    @model_validator(mode="after")
    def _one_sampling(self) -> VideoOptions:
        if self.keyframes_only and self.every_seconds is not None:
            raise ValueError("send either `every_seconds` or `keyframes_only=true`, not both")
        return self

    @property
    def sampling(self) -> Sampling:
        if self.keyframes_only:
            return Sampling(every_seconds=None, keyframes_only=True)
        return Sampling(every_seconds=self.every_seconds or DEFAULT_EVERY_SECONDS)


class VideoForm(VideoOptions):
    """multipart/form-data of ``POST /v1/classify/video``."""

    video: bytes = Field(description="the video file: MP4, MOV, WebM or AVI (sniffed by its bytes)")


class VideoSampling(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from ``visionserve.video.Sampling``

    every_seconds: float | None = Field(description="seconds between sampled frames; null for key frames")
    keyframes_only: bool


class FramePredictions(BaseModel):
    """The top-k of one sampled frame."""

    model_config = ConfigDict(from_attributes=True)  # read from ``client.FrameClassification``

    t_s: float = Field(description="the frame's time from the start, in seconds")
    keyframe: bool = Field(description="the frame is a key frame of the stream")
    predictions: list[Prediction] = Field(description="best first")


class VideoSegment(BaseModel):
    """Consecutive sampled frames whose top-1 class is the same."""

    model_config = ConfigDict(from_attributes=True)  # read from ``client.Segment``

    start_s: float = Field(description="time of the segment's first sampled frame")
    end_s: float = Field(description="time of the next segment's first frame; the video's end for the last")
    label: str
    index: int
    frames: int = Field(description="sampled frames in the segment")


class VideoResponse(BaseModel):
    """The answer for one video: every sampled frame, the mean over them, and the top-1 segments."""

    request_id: str = Field(description="also in the X-Request-ID header")
    model: str = Field(description="the model that answered (the one `auto` chose)")
    version: int = Field(description="the model version that answered every frame")
    weights: str | None = Field(description="`demo` for demonstration weights, else what the export recorded")
    duration_s: float = Field(description="the video's duration as its container declares it")
    sampling: VideoSampling
    frames: list[FramePredictions] = Field(description="one entry per classified frame, in time order")
    aggregate: list[Prediction] = Field(description="the classes of highest mean probability over the frames")
    segments: list[VideoSegment] = Field(description="where the top-1 class stays the same, in time order")
    cached: bool = Field(description="true when answered from the gateway's cache")
    route: Literal["stable", "weight"] | None = Field(
        None, description="during a release, why this version answered (the key's split); null otherwise"
    )
    latency_ms: float = Field(description="time spent in the gateway, decoding and Triton included")
