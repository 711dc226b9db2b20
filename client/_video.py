"""Videos as sampled frames: the result type, and how per-frame answers become one result.

A video is classified as the frames ``visionserve.video.sample_video`` takes from it, each
sent to the model's image ensemble as a JPEG, several per request (chunks of the model's
``max_batch_size``). Each frame is asked for *every* class (``class_count`` = the model's
class count), not only ``top_k``: the aggregate is the mean probability of each class over the
frames, and a class outside one frame's top-k still has a probability there. Averaging only
the top-k lists would count those as 0 and rank a class seen in every frame at rank k+1 below
one that peaked once. The frames' own answers are then cut to ``top_k``.

The first chunk goes unpinned (the server's served version); the others are pinned to the
version it reported, so a publish in the middle of a video cannot mix two models' answers.
``summarize`` is the pure part the gateway shares (``gateway.classify_video``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from client._errors import InferenceError
from client._types import Classification, Prediction

__all__ = ["FrameClassification", "Segment", "VideoClassification", "chunked", "frame_plan", "segments", "summarize"]

T = TypeVar("T")


@dataclass(frozen=True)
class FrameClassification:
    """The top-k classes of one sampled frame.

    Args:
        t_s: the frame's presentation time, in seconds from the start.
        keyframe: the frame is a key frame of the stream.
        predictions: best first.
    """

    t_s: float
    keyframe: bool
    predictions: tuple[Prediction, ...]


@dataclass(frozen=True)
class Segment:
    """A stretch of the video over which the top-1 class stays the same.

    Args:
        start_s: time of its first sampled frame.
        end_s: time of the next segment's first frame; for the last segment, the end of the
            video (or its last frame's time, if the container declared less).
        label: the top-1 class name.
        index: the top-1 class index.
        frames: sampled frames in the segment.
    """

    start_s: float
    end_s: float
    label: str
    index: int
    frames: int


@dataclass(frozen=True)
class VideoClassification:
    """A video's sampled frames classified, with the mean over them and the top-1 segments.

    Args:
        model: the ensemble that answered.
        version: the version that answered every frame.
        duration_s: the video's duration as its container declares it.
        frames: one result per sampled frame, in time order.
        aggregate: the ``top_k`` classes of highest mean probability over the frames.
        segments: consecutive frames with the same top-1 class, in time order.
    """

    model: str
    version: str
    duration_s: float
    frames: tuple[FrameClassification, ...]
    aggregate: tuple[Prediction, ...]
    segments: tuple[Segment, ...]

    @property
    def top(self) -> Prediction | None:
        """The class of highest mean probability, None when nothing was predicted."""
        return self.aggregate[0] if self.aggregate else None


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (one request each)."""
    return [items[i : i + size] for i in range(0, len(items), max(1, size))]


def frame_plan(config: Mapping[str, Any]) -> tuple[int, int]:
    """(frames per request, classes per frame) from an ensemble's config (``model_config``).

    Raises:
        InferenceError: the config has no ``probabilities`` output of known size.
    """
    batch = int(config.get("max_batch_size") or 1)
    for output in config.get("output", []):
        if output.get("name") == "probabilities" and output.get("dims"):
            return batch, int(output["dims"][-1])
    raise InferenceError(f"model {config.get('name', '?')!r} declares no `probabilities` output of known size")


def _aggregate(classifications: Sequence[Classification], top_k: int) -> tuple[Prediction, ...]:
    totals: dict[int, list[Any]] = {}
    for result in classifications:
        for p in result.predictions:
            entry = totals.setdefault(p.index, [p.label, 0.0])
            entry[1] += p.score
    n = max(1, len(classifications))
    means = [Prediction(label, index, total / n) for index, (label, total) in totals.items()]
    means.sort(key=lambda p: (-p.score, p.index))
    return tuple(means[:top_k])


def segments(frames: Sequence[FrameClassification], duration_s: float) -> tuple[Segment, ...]:
    """Runs of frames whose top-1 class is the same (frames without predictions are skipped)."""
    runs: list[list[Any]] = []  # [start_s, label, index, frames]
    for frame in frames:
        if not frame.predictions:
            continue
        top = frame.predictions[0]
        if runs and runs[-1][2] == top.index:
            runs[-1][3] += 1
        else:
            runs.append([frame.t_s, top.label, top.index, 1])
    if not runs:
        return ()
    ends = [run[0] for run in runs[1:]] + [max(duration_s, frames[-1].t_s)]
    return tuple(Segment(start, end, label, index, n) for (start, label, index, n), end in zip(runs, ends, strict=True))


def summarize(
    model: str,
    frames: Sequence[tuple[float, bool]],
    classifications: Sequence[Classification],
    *,
    top_k: int,
    duration_s: float,
) -> VideoClassification:
    """One video's result from its frames' (time, key frame) and their full classifications.

    Raises:
        InferenceError: as many answers as frames were not given, or they name two versions.
    """
    if len(frames) != len(classifications):
        raise InferenceError(f"model {model!r} answered {len(classifications)} results for {len(frames)} frames")
    versions = {c.version for c in classifications}
    if len(versions) > 1:
        raise InferenceError(f"model {model!r} answered the frames with versions {sorted(versions)}")
    per_frame = tuple(
        FrameClassification(t_s, keyframe, tuple(c.predictions[:top_k]))
        for (t_s, keyframe), c in zip(frames, classifications, strict=True)
    )
    return VideoClassification(
        model=model,
        version=versions.pop() if versions else "",
        duration_s=duration_s,
        frames=per_frame,
        aggregate=_aggregate(classifications, top_k),
        segments=segments(per_frame, duration_s),
    )
