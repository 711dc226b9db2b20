"""Model mix, labels and the per-process workload of the load tests (which checks every answer)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from client import WrongAnswer
from loadtest.mix import parse_mix
from loadtest.workload import LoadSettings, Workload, read_repository_labels
from visionserve.catalog import load_catalog
from visionserve.errors import CatalogError

CATALOG = load_catalog()
GOOD = [("tabby", 281, 0.6), ("tiger cat", 282, 0.2), ("Egyptian cat", 285, 0.1)]


def test_default_mix_is_every_catalog_model_equally() -> None:
    mix = parse_mix("", CATALOG)
    assert list(mix.names) == CATALOG.names
    assert list(mix.shares().values()) == pytest.approx([1 / len(CATALOG.names)] * len(CATALOG.names))


def test_weighted_mix_is_drawn_by_weight() -> None:
    first, second = CATALOG.names[:2]
    mix = parse_mix(f"{first}=3, {second}", CATALOG)
    assert mix.shares() == {first: 0.75, second: 0.25}
    rng = random.Random(0)
    draws = [mix.choose(rng) for _ in range(4000)]
    assert 0.71 < draws.count(first) / 4000 < 0.79


@pytest.mark.parametrize(
    "spec, error",
    [("nosuchmodel", CatalogError), ("{m}=0", ValueError), ("{m}=x", ValueError), ("{m},{m}", ValueError),
     (",", ValueError)],
)  # fmt: skip
def test_bad_mixes_are_refused(spec: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_mix(spec.format(m=CATALOG.names[0]), CATALOG)


def test_labels_are_read_from_a_repository(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "labels.txt").write_text("a\nb\n\n")
    assert read_repository_labels(tmp_path, "m") == ["a", "b"]
    assert read_repository_labels(tmp_path, "missing") is None
    assert read_repository_labels(None, "m") is None


def _workload(**kwargs: object) -> Workload:
    return Workload(LoadSettings(**kwargs), CATALOG)  # type: ignore[arg-type]


def test_gateway_answers_are_checked() -> None:
    model = CATALOG.names[0]
    workload = _workload(top_k=3)
    body = {"model": model, "version": 2, "cached": False,
            "predictions": [{"label": label, "index": i, "score": s} for label, i, s in GOOD]}  # fmt: skip
    workload.check_gateway_answer(body, model=model, fresh=True)
    workload.check_gateway_answer({**body, "cached": True}, model=model, fresh=False)
    with pytest.raises(WrongAnswer, match="from the cache"):
        workload.check_gateway_answer({**body, "cached": True}, model=model, fresh=True)
    with pytest.raises(WrongAnswer, match="answered by"):
        workload.check_gateway_answer({**body, "model": "other"}, model=model, fresh=True)
    with pytest.raises(WrongAnswer, match="version"):
        workload.check_gateway_answer({**body, "version": 0}, model=model, fresh=True)
    with pytest.raises(WrongAnswer, match="malformed"):
        workload.check_gateway_answer({**body, "predictions": [{"x": 1}]}, model=model, fresh=True)


def test_workload_defaults_and_validation() -> None:
    workload = _workload()
    assert workload.top_k == CATALOG.top_k
    assert list(workload.mix.names) == CATALOG.names
    for bad in ({"repeat_share": 2.0}, {"top_k": -1}, {"timeout_s": 0.0}, {"video_share": -0.1}):
        with pytest.raises(ValueError):
            _workload(**bad)


def test_video_answers_are_checked_frame_by_frame() -> None:
    model = CATALOG.names[0]
    workload = _workload(top_k=3)
    preds = [{"label": label, "index": i, "score": s} for label, i, s in GOOD]
    frames = [
        {"t_s": 0.0, "keyframe": True, "predictions": preds},
        {"t_s": 1.0, "keyframe": False, "predictions": preds},
    ]
    segments = [{"start_s": 0.0, "end_s": 2.0, "label": GOOD[0][0], "index": GOOD[0][1], "frames": 2}]
    body = {"model": model, "version": 1, "frames": frames, "aggregate": preds, "segments": segments}
    workload.check_video_answer(body, model=model)
    with pytest.raises(WrongAnswer):
        workload.check_video_answer({**body, "segments": segments[:0]}, model=model)
    with pytest.raises(WrongAnswer):
        workload.check_video_answer({**body, "frames": [{**frames[0], "predictions": preds[:1]}]}, model=model)
    clips = _workload(video_share=0.5).videos
    assert len(clips) >= 2 and len({data for _, data in clips}) == len(clips)
