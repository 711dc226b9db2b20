"""Sticky weighted routing and client pins (no services)."""

from __future__ import annotations

import pytest

from gateway.errors import NotFound
from gateway.release_assign import KeyAssigner
from gateway.release_routing import Pin, bucket, choose_route
from gateway.versions import ModelState
from visionserve.catalog import load_catalog
from visionserve.release import ReleaseLabels

SPEC = load_catalog().get("resnet18")


def _state(canary: int | None = 2, weight: float = 0.1, served: int = 1) -> ModelState:
    release = ReleaseLabels(1, canary, weight, 0.0, "rel-1", "") if canary else None
    return ModelState(SPEC.ensemble, True, (served,), served, "demo", "", release)


def test_bucket_is_deterministic_uniform_and_re_dealt_per_release() -> None:
    keys = [f"key{i:04d}" for i in range(20_000)]
    values = [bucket(k, "rel-1") for k in keys]
    assert values == [bucket(k, "rel-1") for k in keys]
    assert all(0.0 <= v < 1.0 for v in values)
    assert abs(sum(v < 0.1 for v in values) / len(values) - 0.1) < 0.01
    assert abs(sum(values) / len(values) - 0.5) < 0.01
    other = [bucket(k, "rel-2") for k in keys]
    both = sum(a < 0.1 and b < 0.1 for a, b in zip(values, other, strict=True)) / len(keys)
    assert both < 0.02  # independent deals: ~1 % of keys are canaries in both


def test_weight_routes_a_share_of_keys_to_the_canary_ensemble() -> None:
    routes = [choose_route(SPEC, _state(), 1, f"k{i}", None) for i in range(5000)]
    canary = [r for r in routes if r.canary]
    assert abs(len(canary) / 5000 - 0.1) < 0.02
    assert {(r.ensemble, r.version, r.reason) for r in canary} == {(SPEC.canary_ensemble, 2, "weight")}
    assert {(r.ensemble, r.version, r.reason) for r in routes if not r.canary} == {(SPEC.ensemble, 1, "stable")}


def test_no_release_or_a_promoted_canary_routes_to_stable_without_a_reason() -> None:
    assert choose_route(SPEC, _state(canary=None), 1, "k", None).reason is None
    promoted = choose_route(SPEC, _state(canary=2, weight=1.0, served=2), 2, "k", None)
    assert (promoted.ensemble, promoted.version, promoted.reason) == (SPEC.ensemble, 2, None)


def test_pins() -> None:
    state = _state(weight=1.0)
    stable = choose_route(SPEC, state, 1, "k", Pin(label="stable"))
    assert (stable.ensemble, stable.reason) == (SPEC.ensemble, "pin")
    assert choose_route(SPEC, state, 1, "k", Pin(version=2)).canary
    assert choose_route(SPEC, state, 1, "k", Pin(label="canary")).reason == "pin"
    with pytest.raises(NotFound):
        choose_route(SPEC, state, 1, "k", Pin(version=7))
    with pytest.raises(NotFound):
        choose_route(SPEC, _state(canary=None), 1, "k", Pin(label="canary"))


@pytest.mark.anyio
async def test_without_redis_the_assigner_is_the_hash() -> None:
    release = ReleaseLabels(1, 2, 0.3, 0.0, "rel-9", "")
    assigner = KeyAssigner(None)
    for i in range(200):
        assert await assigner.in_canary(release, f"k{i}") == (bucket(f"k{i}", "rel-9") < 0.3)
    assert not await assigner.in_canary(ReleaseLabels(1, 2, 0.0, 1.0, "r", ""), "k")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
