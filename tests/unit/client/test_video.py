"""A video's result from its frames' answers (``client._video``): mean, top-k cut, segments, chunks."""

from __future__ import annotations

import asyncio

import pytest

from client import Classification, InferenceError, Prediction
from client._video import chunked, frame_plan, segments, summarize
from gateway.cache import CachedVideo, LocalCache, entry_bytes, video_cache_key

LABELS = ("cat", "dog", "fox", "owl")


def _full(scores: tuple[float, ...], version: str = "3") -> Classification:
    """Every class of one frame, best first (as Triton's class_count = num_classes answers)."""
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    return Classification("m", version, tuple(Prediction(LABELS[i], i, scores[i]) for i in ranked))


FRAMES = [(0.0, True), (1.0, False), (2.0, False), (3.0, True)]
ANSWERS = [
    _full((0.50, 0.30, 0.15, 0.05)),  # cat
    _full((0.45, 0.35, 0.10, 0.10)),  # cat
    _full((0.05, 0.40, 0.50, 0.05)),  # fox
    _full((0.10, 0.60, 0.20, 0.10)),  # dog
]


def test_the_aggregate_is_the_mean_of_every_class_not_of_the_top_k_lists() -> None:
    result = summarize("m", FRAMES, ANSWERS, top_k=2, duration_s=3.5)
    # dog is never top-1 twice, but is every frame's second-or-better: its mean 0.4125 leads
    assert [(p.label, round(p.score, 6)) for p in result.aggregate] == [("dog", 0.4125), ("cat", 0.275)]
    # averaging only each frame's top-2 would have given cat (0.5+0.45+0+0.1)/4 = 0.2625 and fox 0.125
    assert all(len(f.predictions) == 2 for f in result.frames)
    assert [f.predictions[0].label for f in result.frames] == ["cat", "cat", "fox", "dog"]
    assert [f.keyframe for f in result.frames] == [True, False, False, True]
    assert result.version == "3" and result.top == result.aggregate[0]


def test_segments_run_while_the_top1_stays_and_end_where_the_next_starts() -> None:
    result = summarize("m", FRAMES, ANSWERS, top_k=1, duration_s=3.5)
    got = [(g.start_s, g.end_s, g.label, g.index, g.frames) for g in result.segments]
    assert got == [(0.0, 2.0, "cat", 0, 2), (2.0, 3.0, "fox", 2, 1), (3.0, 3.5, "dog", 1, 1)]
    # a container declaring less than its frames reach: the last segment ends at its last frame
    assert segments(result.frames, duration_s=1.0)[-1].end_s == 3.0
    assert segments((), 2.0) == ()


def test_mixed_versions_or_a_missing_answer_are_refused() -> None:
    with pytest.raises(InferenceError, match="versions"):
        summarize("m", FRAMES[:2], [ANSWERS[0], _full((0.4, 0.3, 0.2, 0.1), version="4")], top_k=1, duration_s=2)
    with pytest.raises(InferenceError, match="3 results for 4 frames"):
        summarize("m", FRAMES, ANSWERS[:3], top_k=1, duration_s=4)


def test_chunks_and_the_plan_come_from_the_served_config() -> None:
    assert [list(c) for c in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    config = {"name": "m", "max_batch_size": 32, "output": [{"name": "probabilities", "dims": ["1000"]}]}
    assert frame_plan(config) == (32, 1000)
    with pytest.raises(InferenceError):
        frame_plan({"name": "m", "max_batch_size": 8, "output": [{"name": "logits", "dims": [10]}]})


def test_a_video_answer_round_trips_through_the_cache_formats() -> None:
    result = summarize("m", FRAMES, ANSWERS, top_k=2, duration_s=3.5)
    entry = CachedVideo(3, result)
    assert CachedVideo.from_bytes(entry.to_bytes()) == entry
    key = video_cache_key("ab" * 32, "m", 3, 2, "every=1.0", "limits", scope="k1")
    assert key != video_cache_key("ab" * 32, "m", 3, 2, "keyframes", "limits", scope="k1")
    assert entry_bytes(key, entry) > 10 * 200  # every frame's predictions count

    async def local() -> None:
        cache = LocalCache(2**20, 60)
        await cache.set(key, entry)
        assert await cache.get(key, CachedVideo) == entry
        assert await cache.get(key) is None  # an image lookup never reads a video's entry

    asyncio.run(local())
