"""Served versions: highest READY version per ensemble, learned by polling (fake client here)."""

from __future__ import annotations

import asyncio

import pytest

from client import ModelStatus, ServerUnavailable
from gateway.versions import VersionTracker, weights_flag
from visionserve.catalog import load_catalog

CATALOG = load_catalog()
NAME = next(iter(CATALOG.models))


class FakeTriton:
    def __init__(self) -> None:
        self.rows: list[ModelStatus] = []
        self.down = False
        self.config_calls = 0
        self.weights = "demo"

    async def models(self) -> list[ModelStatus]:
        if self.down:
            raise ServerUnavailable("down")
        return list(self.rows)

    async def model_config(self, model: str) -> dict:
        self.config_calls += 1
        return {"name": model, "parameters": {"weights": {"string_value": self.weights}}}


def ready(version: int, name: str = NAME) -> ModelStatus:
    return ModelStatus(name, str(version), "READY", True)


@pytest.mark.anyio
async def test_served_version_is_the_highest_ready_one() -> None:
    triton = FakeTriton()
    changes: list[tuple] = []
    tracker = VersionTracker(triton, CATALOG, on_change=lambda *c: changes.append(c))
    triton.rows = [
        ready(1),
        ModelStatus(NAME, "2", "LOADING", False),
        ModelStatus("other_model", "9", "READY", True),
    ]
    assert await tracker.refresh()
    assert tracker.served_version(NAME) == 1 and tracker.state(NAME).versions == (1,)
    assert tracker.ready_models() == [NAME]
    assert tracker.weights(NAME, 1) == "demo"
    triton.rows = [ready(1), ready(2)]
    await tracker.refresh()
    assert tracker.served_version(NAME) == 2 and tracker.state(NAME).versions == (1, 2)
    triton.rows = [ready(1)]  # rollback: serve 1 again
    await tracker.refresh()
    assert tracker.served_version(NAME) == 1
    assert changes == [(NAME, None, 1), (NAME, 1, 2), (NAME, 2, 1)]
    assert triton.config_calls == 2  # once per new (model, version)


@pytest.mark.anyio
async def test_unreachable_triton_keeps_the_last_state() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    triton.rows = [ready(3)]
    await tracker.refresh()
    triton.down = True
    assert not await tracker.refresh()
    assert not tracker.reachable and tracker.served_version(NAME) == 3


@pytest.mark.anyio
async def test_a_newer_answer_moves_the_version_forward_at_once() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    triton.rows = [ready(1)]
    await tracker.refresh()
    tracker.note_answer(NAME, 2)
    assert tracker.served_version(NAME) == 2
    tracker.note_answer(NAME, 1)  # an older answer never moves it back
    assert tracker.served_version(NAME) == 2


@pytest.mark.anyio
async def test_background_polling_sees_a_new_version_within_the_interval() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG, interval_s=0.05)
    triton.rows = [ready(1)]
    tracker.start()
    try:
        await asyncio.sleep(0.1)
        assert tracker.served_version(NAME) == 1
        triton.rows = [ready(1), ready(2)]
        await asyncio.sleep(0.15)
        assert tracker.served_version(NAME) == 2
    finally:
        await tracker.close()


def test_weights_flag_reads_both_config_shapes() -> None:
    assert weights_flag({"parameters": {"weights": {"string_value": "demo"}}}) == "demo"
    assert weights_flag({"config": {"parameters": {"weights": {"string_value": "imagenet"}}}}) == "imagenet"
    assert weights_flag({"parameters": {}}) is None


@pytest.mark.anyio
async def test_not_ready_reasons_are_stable_words_not_tritons_text() -> None:
    """Finding: /v1/models returned Triton's raw not-ready reason (paths, backend errors)."""
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    assert tracker.state(NAME).reason == "not_polled"
    leaky = "failed to load 'x': /opt/models/x/1/model.onnx: Protobuf parsing failed at /src/onnx.cc:42"
    cases = [
        (ModelStatus(NAME, "1", "UNAVAILABLE", False, leaky), "load_failed"),
        (ModelStatus(NAME, "1", "LOADING", False, "loading weights from /secret/path"), "loading"),
        (ModelStatus(NAME, "1", "UNLOADING", False), "unloading"),
        (ModelStatus(NAME, "1", "UNAVAILABLE", False, "unloaded"), "unloaded"),
        (ModelStatus(NAME, "", "UNAVAILABLE", False, "not loaded"), "not_loaded"),
    ]
    for row, word in cases:
        triton.rows = [row]
        await tracker.refresh()
        assert tracker.state(NAME).reason == word
    triton.rows = []
    await tracker.refresh()
    assert tracker.state(NAME).reason == "not_loaded"
    triton.down = True
    await tracker.refresh()
    assert tracker.state(NAME).reason == "triton_unreachable"
