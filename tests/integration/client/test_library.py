"""The client library against a real tritonserver, in all four variants (sync/async x gRPC/HTTP)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from client import (
    Classification,
    InferenceError,
    InvalidRequest,
    ModelNotFound,
    ServerUnavailable,
)
from tests.integration.client.conftest import make_client
from tests.integration.client.toy_model.toy_scores import UNDECODABLE_PREFIX, toy_scores
from tests.integration.client.toy_repository import ToyRepository
from visionserve.catalog import IMAGE_INPUT, PROBABILITIES

pytestmark = pytest.mark.integration
#: How long Triton may take to publish the statistics of a request it has answered.
STATS_SETTLE_S = 5.0


def expected_top(repo: ToyRepository, data: bytes, version: int, k: int, labels: bool = True) -> list[tuple]:
    """(label, index, score) of the k best classes, computed outside Triton."""
    scores = toy_scores(data, version, repo.num_classes)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(repo.labels[i] if labels else "", int(i), float(scores[i])) for i in order]


def as_tuples(result: Classification) -> list[tuple]:
    return [(p.label, p.index, p.score) for p in result.predictions]


def assert_matches(result: Classification, expected: list[tuple]) -> None:
    got = as_tuples(result)
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], abs=1e-6)


def test_classify_latest_version(any_client: Any, toy_repo: ToyRepository, images: dict[str, bytes]) -> None:
    data = images["img0"]
    result = any_client.classify(data, toy_repo.labelled, top_k=3)
    assert result.model == toy_repo.labelled
    assert result.version == str(max(toy_repo.versions))  # from the response, not the request
    assert_matches(result, expected_top(toy_repo, data, max(toy_repo.versions), 3))


def test_labels_with_colons_and_unicode_survive(any_client: Any, toy_repo: ToyRepository) -> None:
    # All classes: every label, ':' and non-ASCII ones included, comes back intact and in order.
    data = b"every label"
    result = any_client.classify(data, toy_repo.labelled, top_k=toy_repo.num_classes)
    assert sorted(p.label for p in result.predictions) == sorted(toy_repo.labels)
    assert_matches(result, expected_top(toy_repo, data, 2, toy_repo.num_classes))
    assert [p.score for p in result.predictions] == sorted(
        (p.score for p in result.predictions), reverse=True
    )


def test_pinned_version(any_client: Any, toy_repo: ToyRepository, images: dict[str, bytes]) -> None:
    data = images["img1"]
    v1 = any_client.classify(data, toy_repo.labelled, top_k=2, version=1)
    v2 = any_client.classify(data, toy_repo.labelled, top_k=2, version="2")
    assert (v1.version, v2.version) == ("1", "2")
    assert_matches(v1, expected_top(toy_repo, data, 1, 2))
    assert_matches(v2, expected_top(toy_repo, data, 2, 2))


def test_top_k_larger_than_classes_is_clamped(any_client: Any, toy_repo: ToyRepository) -> None:
    assert len(any_client.classify(b"x", toy_repo.labelled, top_k=100).predictions) == toy_repo.num_classes


def test_model_without_labels(any_client: Any, toy_repo: ToyRepository) -> None:
    result = any_client.classify(b"plain", toy_repo.plain, top_k=2)
    assert_matches(result, expected_top(toy_repo, b"plain", 1, 2, labels=False))


def test_batch_is_one_request(any_client: Any, toy_repo: ToyRepository, images: dict[str, bytes]) -> None:
    def counts() -> tuple[int, int]:
        stats = any_client.statistics(toy_repo.labelled, "2")["model_stats"][0]
        return stats["inference_stats"]["success"]["count"], stats["inference_count"]

    batch = list(images.values())
    requests_before, items_before = counts()
    results = any_client.classify_batch(batch, toy_repo.labelled, top_k=2)
    # Triton records statistics just after it sends the response: wait for them to land.
    deadline = time.monotonic() + STATS_SETTLE_S
    while (after := counts())[1] - items_before < len(batch) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (after[0] - requests_before, after[1] - items_before) == (1, len(batch))
    for data, result in zip(batch, results, strict=True):
        assert_matches(result, expected_top(toy_repo, data, 2, 2))


def test_empty_batch_sends_nothing(any_client: Any, toy_repo: ToyRepository) -> None:
    assert any_client.classify_batch([], toy_repo.labelled) == []


def test_raw_infer(any_client: Any, toy_repo: ToyRepository) -> None:
    batch = np.array([[b"raw a"], [b"raw b"]], dtype=object)
    out = any_client.infer(toy_repo.labelled, {IMAGE_INPUT: batch}, [PROBABILITIES], version=1)
    assert set(out) == {PROBABILITIES}
    assert out[PROBABILITIES].dtype == np.float32 and out[PROBABILITIES].shape == (2, toy_repo.num_classes)
    expected = np.stack(
        [toy_scores(b"raw a", 1, toy_repo.num_classes), toy_scores(b"raw b", 1, toy_repo.num_classes)]
    )
    np.testing.assert_allclose(out[PROBABILITIES], expected, rtol=1e-6)


def test_unknown_model(any_client: Any) -> None:
    with pytest.raises(ModelNotFound, match="'no_such_model'"):
        any_client.classify(b"x", "no_such_model")


def test_unknown_version(any_client: Any, toy_repo: ToyRepository) -> None:
    with pytest.raises(ModelNotFound, match=f"'{toy_repo.labelled}' version 7"):
        any_client.classify(b"x", toy_repo.labelled, version=7)


def test_undecodable_image_is_tritons_message(any_client: Any, toy_repo: ToyRepository) -> None:
    with pytest.raises(InferenceError) as error:
        any_client.classify(UNDECODABLE_PREFIX + b" at all", toy_repo.labelled)
    assert "cannot decode image" in error.value.detail
    assert error.value.error_code == 400  # the model said INVALID_ARG: the caller's fault


def test_batch_over_max_batch_size(any_client: Any, toy_repo: ToyRepository) -> None:
    with pytest.raises(InferenceError, match="batch-size must be <= 8"):
        any_client.classify_batch([b"x"] * 9, toy_repo.labelled)


def test_invalid_arguments_fail_before_sending(any_client: Any, toy_repo: ToyRepository) -> None:
    with pytest.raises(InvalidRequest, match="top_k"):
        any_client.classify(b"x", toy_repo.labelled, top_k=0)
    with pytest.raises(InvalidRequest, match="not bytes"):
        any_client.classify("cat.jpg", toy_repo.labelled)


def test_health(any_client: Any, toy_repo: ToyRepository) -> None:
    assert any_client.is_live() is True
    assert any_client.is_ready() is True
    assert any_client.is_ready(toy_repo.labelled) is True
    assert any_client.is_ready(toy_repo.labelled, 1) is True
    assert any_client.is_ready(toy_repo.labelled, 7) is False
    assert any_client.is_ready(toy_repo.spare) is False
    assert any_client.is_ready("no_such_model") is False


def test_models_index(any_client: Any, toy_repo: ToyRepository) -> None:
    rows = {(s.name, s.version): s for s in any_client.models()}
    for version in toy_repo.versions:
        status = rows[(toy_repo.labelled, str(version))]
        assert (status.state, status.ready) == ("READY", True)
    spare = rows[(toy_repo.spare, "")]
    assert (spare.state, spare.ready, spare.reason) == ("UNAVAILABLE", False, "not loaded")


def test_model_config_and_weights(any_client: Any, toy_repo: ToyRepository) -> None:
    config = any_client.model_config(toy_repo.labelled)
    assert config["name"] == toy_repo.labelled
    assert config["input"][0]["name"] == IMAGE_INPUT and config["input"][0]["dims"] == [1]
    assert config["output"][0]["dims"] == [toy_repo.num_classes]  # ints over both protocols
    assert config["max_batch_size"] == 8
    assert any_client.weights(toy_repo.labelled) == "demo"
    assert any_client.weights(toy_repo.plain) == "checkpoint"
    with pytest.raises(ModelNotFound):
        any_client.model_config(toy_repo.spare)


def test_statistics_are_ints(any_client: Any, toy_repo: ToyRepository) -> None:
    any_client.classify(b"count me", toy_repo.plain)
    stats = any_client.statistics(toy_repo.plain)["model_stats"]
    assert [s["name"] for s in stats] == [toy_repo.plain]
    assert isinstance(stats[0]["inference_count"], int) and stats[0]["inference_count"] >= 1
    assert isinstance(stats[0]["inference_stats"]["success"]["ns"], int)
    everything = any_client.statistics()["model_stats"]
    assert {s["name"] for s in everything} >= set(toy_repo.loaded)


def test_load_and_unload(any_client: Any, toy_repo: ToyRepository) -> None:
    any_client.load(toy_repo.spare)
    try:
        assert any_client.is_ready(toy_repo.spare) is True
        assert any_client.classify(b"spare", toy_repo.spare, top_k=1).version == "1"
    finally:
        any_client.unload(toy_repo.spare)
    assert any_client.is_ready(toy_repo.spare) is False
    with pytest.raises(ModelNotFound, match="'not_in_repository'"):
        any_client.load("not_in_repository")


@pytest.mark.parametrize(
    ("kind", "protocol"), [("sync", "grpc"), ("sync", "http"), ("async", "grpc"), ("async", "http")]
)
def test_server_down(kind: str, protocol: str, dead_url: str) -> None:
    client = make_client(kind, protocol, dead_url, timeout_s=5)
    try:
        assert client.is_live() is False
        assert client.is_ready() is False
        with pytest.raises(ServerUnavailable) as error:
            client.classify(b"x", "m")
        assert dead_url in str(error.value) and "make serve" in str(error.value)
        with pytest.raises(ServerUnavailable):
            client.models()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kind", "protocol"), [("sync", "grpc"), ("sync", "http"), ("async", "grpc"), ("async", "http")]
)
def test_hung_server_times_out(kind: str, protocol: str, silent_url: str) -> None:
    client = make_client(kind, protocol, silent_url, timeout_s=0.5)
    try:
        with pytest.raises(ServerUnavailable, match="did not answer within 0.5 s"):
            client.classify(b"x", "m")
    finally:
        client.close()
