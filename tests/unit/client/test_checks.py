"""The answer checks load tests and benchmarks share: a fast wrong answer is a failure."""

from __future__ import annotations

import numpy as np
import pytest

from client import LabelBook, WrongAnswer, check_gateway_answer, check_predictions, check_triton_answer
from visionserve.catalog import PROBABILITIES

GOOD = [("tabby", 281, 0.6), ("tiger cat", 282, 0.2), ("Egyptian cat", 285, 0.1)]


def test_a_valid_top_k_passes() -> None:
    check_predictions(GOOD, model="m", top_k=3, num_classes=1000, labels=LabelBook())


@pytest.mark.parametrize(
    "predictions, why",
    [
        (GOOD[:2], "2 predictions"),
        ([("a", 1000, 0.5), *GOOD[1:]], "outside"),
        ([("a", 281, 0.5), ("b", 281, 0.4), GOOD[2]], "twice"),
        ([("a", 1, 1.7), *GOOD[1:]], "not a probability"),
        ([("a", 1, float("nan")), *GOOD[1:]], "not a probability"),
        ([GOOD[1], GOOD[0], GOOD[2]], "best first"),
        ([("", 281, 0.6), *GOOD[1:]], "no label"),
    ],
)
def test_wrong_answers_are_named(predictions: list, why: str) -> None:
    with pytest.raises(WrongAnswer, match=why):
        check_predictions(predictions, model="m", top_k=3, num_classes=1000)


def test_known_labels_must_match_their_index() -> None:
    book = LabelBook({"m": [f"class {i}" for i in range(1000)]})
    book.check("m", 7, "class 7")
    with pytest.raises(WrongAnswer, match="expected 'class 7'"):
        book.check("m", 7, "class 8")


def test_learned_labels_must_stay_the_same() -> None:
    book = LabelBook()
    book.check("m", 3, "cat")
    book.check("other", 3, "dog")  # per model
    with pytest.raises(WrongAnswer, match="was labelled 'cat'"):
        book.check("m", 3, "dog")


def _answer(**overrides: object) -> dict:
    body = {"model": "m", "version": 2, "cached": False,
            "predictions": [{"label": label, "index": i, "score": s} for label, i, s in GOOD]}  # fmt: skip
    return {**body, **overrides}


def test_gateway_answers_are_checked_against_the_expected_cache_flag() -> None:
    assert [p.index for p in check_gateway_answer(_answer(), model="m", top_k=3, cached=False)] == [281, 282, 285]
    check_gateway_answer(_answer(cached=True), model="m", top_k=3, cached=True)
    check_gateway_answer(_answer(cached=True), model="m", top_k=3)  # not checked
    with pytest.raises(WrongAnswer, match="from the cache"):
        check_gateway_answer(_answer(cached=True), model="m", top_k=3, cached=False)
    with pytest.raises(WrongAnswer, match="cached=False where True"):
        check_gateway_answer(_answer(), model="m", top_k=3, cached=True)
    with pytest.raises(WrongAnswer, match="2 predictions"):
        check_gateway_answer(_answer(predictions=_answer()["predictions"][:2]), model="m", top_k=3)
    with pytest.raises(WrongAnswer, match="not a JSON object"):
        check_gateway_answer([], model="m", top_k=3)


def test_an_unversioned_answer_passes_only_where_none_is_expected() -> None:
    body = _answer()
    del body["version"]
    check_gateway_answer(body, model="m", top_k=3, versioned=False)
    with pytest.raises(WrongAnswer, match="version"):
        check_gateway_answer(body, model="m", top_k=3)


class _Result:
    def __init__(self, rows: np.ndarray | None) -> None:
        self.rows = rows

    def as_numpy(self, name: str) -> np.ndarray | None:
        assert name == PROBABILITIES
        return self.rows


def test_triton_answers_keep_the_servers_order_and_are_checked() -> None:
    rows = np.array([[f"{s}:{i}:{label}".encode() for label, i, s in GOOD]], dtype=object)
    predictions = check_triton_answer(_Result(rows), model="m", top_k=3, num_classes=1000)
    assert [(p.label, p.index, p.score) for p in predictions] == GOOD
    with pytest.raises(WrongAnswer, match="best first"):  # not re-sorted: the server's order is judged
        check_triton_answer(_Result(rows[:, ::-1].copy()), model="m", top_k=3)
    with pytest.raises(WrongAnswer, match="2 results for 1 image"):
        check_triton_answer(_Result(np.concatenate([rows, rows])), model="m", top_k=3)
    with pytest.raises(WrongAnswer, match="no classification output"):
        check_triton_answer(_Result(None), model="m", top_k=3)
    with pytest.raises(WrongAnswer, match="instead of 'score:index:label'"):
        check_triton_answer(_Result(np.zeros((1, 3), dtype=np.float32)), model="m", top_k=3)
