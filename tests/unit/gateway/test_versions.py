"""Served versions: highest ready pinned version per ensemble, learned by polling (fake client here)."""

from __future__ import annotations

import asyncio

import pytest

from client import ModelNotFound, ServerUnavailable, weights_of
from gateway.versions import VersionTracker, pinned_versions
from visionserve.catalog import load_catalog

CATALOG = load_catalog()
NAME = next(iter(CATALOG.models))


class FakeTriton:
    """Answers ``model_config`` and ``is_ready`` like the client; has no repository index at all.

    ``pinned`` is what each ensemble's config pins, ``ready`` the (model, version) pairs ready.
    """

    def __init__(self) -> None:
        self.pinned: dict[str, list[int]] = {}
        self.ready: set[tuple[str, int]] = set()
        self.down = False
        self.config_calls = 0
        self.weights = "demo"
        self.not_loaded_text = "Request for unknown model: 'x' is not found"

    def serve(self, *versions: int, pinned: list[int] | None = None, name: str = NAME) -> None:
        self.pinned[name] = list(pinned if pinned is not None else versions)
        self.ready = {r for r in self.ready if r[0] != name} | {(name, v) for v in versions}

    async def model_config(self, model: str) -> dict:
        if self.down:
            raise ServerUnavailable("down")
        self.config_calls += 1
        if model not in self.pinned:
            raise ModelNotFound(self.not_loaded_text)
        versions = [str(v) for v in self.pinned[model]]  # int64s come as strings from protobuf's JSON
        return {
            "name": model,
            "version_policy": {"specific": {"versions": versions}},
            "parameters": {"weights": {"string_value": self.weights}},
        }

    async def is_ready(self, model: str | None = None, version: str | int = "") -> bool:
        return not self.down and (model, int(version)) in self.ready

    async def models(self) -> list:
        raise AssertionError("the tracker must not read the repository index (a restricted API)")


@pytest.mark.anyio
async def test_served_version_is_the_highest_ready_pinned_one() -> None:
    triton = FakeTriton()
    changes: list[tuple] = []
    tracker = VersionTracker(triton, CATALOG, on_change=lambda *c: changes.append(c))
    triton.serve(1, pinned=[1, 2])  # 2 is pinned but still loading
    triton.serve(9, name="other_model")
    assert await tracker.refresh()
    assert tracker.served_version(NAME) == 1 and tracker.state(NAME).versions == (1,)
    assert tracker.ready_models() == [NAME]
    assert tracker.weights(NAME, 1) == "demo"
    triton.serve(1, 2)
    await tracker.refresh()
    assert tracker.served_version(NAME) == 2 and tracker.state(NAME).versions == (1, 2)
    triton.serve(1)  # rollback: serve 1 again
    await tracker.refresh()
    assert tracker.served_version(NAME) == 1
    assert changes == [(NAME, None, 1), (NAME, 1, 2), (NAME, 2, 1)]


def test_pinned_versions_reads_strings_and_numbers() -> None:
    assert pinned_versions({"version_policy": {"specific": {"versions": ["3", 1]}}}) == (1, 3)
    assert pinned_versions({"config": {"version_policy": {"specific": {"versions": ["2"]}}}}) == (2,)
    assert pinned_versions({"version_policy": {"latest": {"num_versions": 1}}}) == ()


@pytest.mark.anyio
async def test_unreachable_triton_keeps_the_last_state() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    triton.serve(3)
    await tracker.refresh()
    triton.down = True
    assert not await tracker.refresh()
    assert not tracker.reachable and tracker.served_version(NAME) == 3


@pytest.mark.anyio
async def test_a_newer_answer_moves_the_version_forward_at_once() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    triton.serve(1)
    await tracker.refresh()
    tracker.note_answer(NAME, 2)
    assert tracker.served_version(NAME) == 2
    tracker.note_answer(NAME, 1)  # an older answer never moves it back
    assert tracker.served_version(NAME) == 2


@pytest.mark.anyio
async def test_background_polling_sees_a_new_version_within_the_interval() -> None:
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG, interval_s=0.05)
    triton.serve(1)
    tracker.start()
    try:
        await asyncio.sleep(0.1)
        assert tracker.served_version(NAME) == 1
        triton.serve(2)
        await asyncio.sleep(0.15)
        assert tracker.served_version(NAME) == 2
    finally:
        await tracker.close()


def test_weights_flag_reads_both_config_shapes() -> None:
    assert weights_of({"parameters": {"weights": {"string_value": "demo"}}}) == "demo"
    assert weights_of({"config": {"parameters": {"weights": {"string_value": "imagenet"}}}}) == "imagenet"
    assert weights_of({"parameters": {}}) == ""


@pytest.mark.anyio
async def test_not_ready_reasons_are_stable_words_not_tritons_text() -> None:
    """Finding: /v1/models returned Triton's raw not-ready reason (paths, backend errors)."""
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    assert tracker.state(NAME).reason == "not_polled"
    triton.not_loaded_text = (
        "failed to load 'x': /opt/models/x/1/model.onnx: Protobuf parsing failed at /src/onnx.cc:42"
    )
    await tracker.refresh()
    assert tracker.state(NAME).reason == "not_loaded"
    triton.serve(pinned=[2])  # loaded, but its pinned version is not ready (yet)
    await tracker.refresh()
    assert tracker.state(NAME).reason == "loading" and not tracker.state(NAME).ready
    triton.serve(2)
    await tracker.refresh()
    assert tracker.state(NAME).reason == "" and tracker.state(NAME).ready
    triton.down = True
    triton.pinned.clear()
    tracker2 = VersionTracker(triton, CATALOG)
    await tracker2.refresh()
    assert tracker2.state(NAME).reason == "triton_unreachable"


@pytest.mark.anyio
async def test_cache_lookups_keep_the_last_served_version_while_none_is_ready() -> None:
    """Triton shutting down unloads the models before its port closes: hits must keep flowing."""
    triton = FakeTriton()
    tracker = VersionTracker(triton, CATALOG)
    triton.serve(3)
    await tracker.refresh()
    triton.serve(pinned=[3])  # still pinned, no longer ready (unloading)
    await tracker.refresh()
    assert not tracker.state(NAME).ready and tracker.state(NAME).served is None
    assert tracker.served_version(NAME) == 3
    del triton.pinned[NAME]  # gone from the server
    await tracker.refresh()
    triton.down = True
    await tracker.refresh()
    assert tracker.served_version(NAME) == 3
    triton.down = False
    triton.serve(4)
    await tracker.refresh()
    assert tracker.served_version(NAME) == 4  # a ready version replaces it at once
