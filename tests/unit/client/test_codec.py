"""Parsing of the classification extension's ``score:index:label`` strings and request building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client import Classification, InferenceError, InvalidRequest, Prediction, parse_prediction
from client._codec import check_top_k, image_batch, model_statuses, parse_classifications, weights_of


@pytest.mark.parametrize("entry", [b"0.75:3:tabby cat", "0.75:3:tabby cat"])
def test_prediction_from_bytes_and_str(entry: bytes | str) -> None:
    assert parse_prediction(entry) == Prediction(label="tabby cat", index=3, score=0.75)


@pytest.mark.parametrize(
    ("entry", "label"),
    [
        (b"0.5:12:aspect ratio 16:9", "aspect ratio 16:9"),
        (b"0.5:12:a:b:c", "a:b:c"),
        (b"0.5:12::leading colon", ":leading colon"),
        (b"0.5:12:trailing:", "trailing:"),
    ],
)
def test_label_keeps_its_colons(entry: bytes, label: str) -> None:
    prediction = parse_prediction(entry)
    assert (prediction.label, prediction.index, prediction.score) == (label, 12, 0.5)


def test_utf8_label_from_bytes() -> None:
    assert parse_prediction("0.1:4:naïve café".encode()).label == "naïve café"


def test_no_labels_file_gives_empty_label() -> None:
    assert parse_prediction(b"0.285714:1") == Prediction(label="", index=1, score=0.285714)


def test_scientific_and_negative_scores() -> None:
    assert parse_prediction(b"-1.5e-05:7:x").score == pytest.approx(-1.5e-05)


@pytest.mark.parametrize("entry", [b"0.5", b"cat:1:x", b"0.5:one:x", b"", "0.1"])
def test_malformed_entry_is_an_inference_error(entry: bytes | str) -> None:
    with pytest.raises(InferenceError, match="score:index:label"):
        parse_prediction(entry)


def test_classifications_one_per_row_best_first() -> None:
    rows = np.array(
        [[b"0.2:1:b", b"0.7:0:a", b"0.1:2:c"], [b"0.6:2:c", b"0.3:0:a", b"0.1:1:b"]],
        dtype=object,
    )
    results = parse_classifications(rows, "m", "3")
    assert [r.version for r in results] == ["3", "3"]
    assert [p.label for p in results[0].predictions] == ["a", "b", "c"]
    assert [p.index for p in results[1].predictions] == [2, 0, 1]
    assert all(isinstance(r, Classification) and r.model == "m" for r in results)
    assert results[0].top == Prediction("a", 0, 0.7)


def test_equal_scores_keep_server_order() -> None:
    rows = np.array([[b"0.5:9:first", b"0.5:1:second", b"0.5:4:third"]], dtype=object)
    assert [p.label for p in parse_classifications(rows, "m", "1")[0].predictions] == [
        "first",
        "second",
        "third",
    ]


def test_json_http_strings_parse_like_bytes() -> None:
    as_bytes = np.array([[b"0.9:1:x:y", b"0.1:0:z"]], dtype=object)
    as_str = np.array([["0.9:1:x:y", "0.1:0:z"]], dtype=object)
    assert parse_classifications(as_bytes, "m", "1") == parse_classifications(as_str, "m", "1")


def test_raw_probabilities_are_refused() -> None:
    """class_count=0 (Triton's default) returns floats: that must not pass for a result."""
    with pytest.raises(InferenceError, match="class_count"):
        parse_classifications(np.array([[0.1, 0.9]], dtype=np.float32), "m", "1")


def test_missing_output() -> None:
    with pytest.raises(InferenceError, match="no classification output"):
        parse_classifications(None, "m", "1")


@pytest.mark.parametrize("top_k", [1, 5, np.int64(3)])
def test_top_k_accepted(top_k: int) -> None:
    assert check_top_k(top_k) == int(top_k)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, "5", True, None])
def test_top_k_refused(top_k: object) -> None:
    with pytest.raises(InvalidRequest, match="top_k"):
        check_top_k(top_k)  # type: ignore[arg-type]


def test_image_batch_shape_and_type() -> None:
    batch = image_batch([b"abc", bytearray(b"de"), memoryview(b"f")])
    assert batch.shape == (3, 1)
    assert batch.dtype == np.object_
    assert [item for item in batch[:, 0]] == [b"abc", b"de", b"f"]
    assert all(type(item) is bytes for item in batch[:, 0])


@pytest.mark.parametrize("bad", ["cat.jpg", Path("cat.jpg"), np.zeros((2, 2), np.uint8)])
def test_image_batch_refuses_non_bytes(bad: object) -> None:
    with pytest.raises(InvalidRequest, match="image 1 is .* not bytes"):
        image_batch([b"ok", bad])  # type: ignore[list-item]


def test_model_statuses_sorted_and_unloaded_rows_explained() -> None:
    rows = [
        {"name": "b", "version": "10", "state": "READY"},
        {"name": "b", "version": "2", "state": "UNAVAILABLE", "reason": "unloaded"},
        {"name": "a"},
        {"name": "b", "version": "9", "state": "LOADING"},
    ]
    statuses = model_statuses(rows)
    assert [(s.name, s.version) for s in statuses] == [("a", ""), ("b", "2"), ("b", "9"), ("b", "10")]
    assert (statuses[0].state, statuses[0].ready, statuses[0].reason) == ("UNAVAILABLE", False, "not loaded")
    assert statuses[1].reason == "unloaded"
    assert [s.ready for s in statuses[1:]] == [False, False, True]


@pytest.mark.parametrize(
    ("config", "weights"),
    [
        ({"parameters": {"weights": {"string_value": "demo"}}}, "demo"),
        ({"parameters": {"other": {"string_value": "x"}}}, ""),
        ({"parameters": {}}, ""),
        ({}, ""),
    ],
)
def test_weights_parameter(config: dict, weights: str) -> None:
    assert weights_of(config) == weights
