"""The image picker: repeats come from a hot set byte for byte, fresh uploads never repeat bytes."""

from __future__ import annotations

import pytest

from visionserve.samples import ImagePicker, image_set


def test_fresh_picks_never_repeat_bytes() -> None:
    pool = image_set(5, seed=7)
    picker = ImagePicker(pool, repeat_share=0.0, seed=1)
    picks = [picker.pick() for _ in range(40)]
    assert not any(p.repeated for p in picks)
    assert len({p.data for p in picks}) == 40
    assert {p.image.name for p in picks} == {i.name for i in pool}  # cycles through the whole set


def test_two_pickers_never_share_fresh_bytes() -> None:
    pool = image_set(5, seed=7)
    a, b = ImagePicker(pool, seed=1), ImagePicker(pool, seed=1)
    assert not {a.fresh().data for _ in range(10)} & {b.fresh().data for _ in range(10)}


def test_repeats_come_from_the_hot_set_byte_for_byte() -> None:
    pool = image_set(5, seed=7)
    picker = ImagePicker(pool, repeat_share=1.0, hot_count=2, seed=2)
    picks = [picker.pick() for _ in range(30)]
    assert all(p.repeated for p in picks)
    assert {p.data for p in picks} <= {i.data for i in pool[:2]}


def test_the_repeat_share_is_honoured() -> None:
    picker = ImagePicker(image_set(5, seed=7), repeat_share=0.3, seed=3)
    share = sum(picker.pick().repeated for _ in range(2000)) / 2000
    assert 0.26 < share < 0.34


@pytest.mark.parametrize("kwargs", [{"repeat_share": -0.1}, {"repeat_share": 1.5}, {"hot_count": 0}])
def test_picker_refuses_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ImagePicker(image_set(5, seed=7), **kwargs)
