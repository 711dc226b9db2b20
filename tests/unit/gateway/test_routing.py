"""model=auto: the declared policy over catalog accuracy, GFLOPs and measured latency."""

from __future__ import annotations

import pytest

from gateway.routing import AutoRouter
from visionserve.catalog import load_catalog

CATALOG = load_catalog()
ELIGIBLE = [s for s in CATALOG.models.values() if s.top1_accuracy is not None and s.gflops is not None]
MOST_ACCURATE = max(ELIGIBLE, key=lambda s: s.top1_accuracy).name
FASTEST = min(ELIGIBLE, key=lambda s: s.gflops).name


@pytest.fixture
def router() -> AutoRouter:
    return AutoRouter(CATALOG, ms_per_gflop=10.0, min_samples=2)


def test_catalog_offers_a_real_trade_off() -> None:
    assert len(ELIGIBLE) >= 2 and MOST_ACCURATE != FASTEST


def test_without_budget_the_most_accurate_ready_model(router: AutoRouter) -> None:
    choice = router.choose(CATALOG.names, None)
    assert choice is not None and choice.model == MOST_ACCURATE


def test_prior_estimates_scale_with_gflops(router: AutoRouter) -> None:
    for spec in ELIGIBLE:
        estimate = router.estimate(spec.name)
        assert not estimate.measured
        assert estimate.expected_ms == pytest.approx(spec.gflops * 10.0)


def test_budget_picks_the_most_accurate_model_that_fits(router: AutoRouter) -> None:
    for budget in (1.0, 5.0, 20.0, 50.0, 1000.0):
        choice = router.choose(CATALOG.names, budget)
        assert choice is not None
        fitting = [s for s in ELIGIBLE if s.gflops * 10.0 <= budget]
        if fitting:
            assert choice.model == max(fitting, key=lambda s: s.top1_accuracy).name
            assert choice.expected_ms <= budget
        else:
            assert choice.model == FASTEST and "fastest" in choice.reason


def test_only_ready_models_are_candidates(router: AutoRouter) -> None:
    others = [n for n in CATALOG.names if n != MOST_ACCURATE]
    choice = router.choose(others, None)
    assert choice is not None and choice.model != MOST_ACCURATE
    assert router.choose([], 100.0) is None


def test_measurements_replace_and_calibrate_the_estimates(router: AutoRouter) -> None:
    # Measure the fastest model as 10x slower than the prior says.
    slow = next(s for s in ELIGIBLE if s.name == FASTEST)
    for _ in range(3):
        router.observe(slow.name, slow.gflops * 100.0)
    assert router.estimate(slow.name).measured
    assert router.estimate(slow.name).expected_ms == pytest.approx(slow.gflops * 100.0)
    assert router.ms_per_gflop() == pytest.approx(100.0)
    other = next(s for s in ELIGIBLE if s.name != FASTEST)
    assert router.estimate(other.name).expected_ms == pytest.approx(other.gflops * 100.0)


def test_unknown_models_and_negative_samples_are_ignored(router: AutoRouter) -> None:
    router.observe("nope", 1.0)
    router.observe(FASTEST, -5.0)
    assert not router.estimate(FASTEST).measured


def test_a_few_slow_images_do_not_move_the_estimate() -> None:
    """Finding: a few slow images (one caller's costly uploads) skewed `auto` for everyone."""
    router = AutoRouter(CATALOG, min_samples=3)
    model = CATALOG.names[0]
    for _ in range(20):
        router.observe(model, 5.0)
    for _ in range(5):
        router.observe(model, 5000.0)  # outliers: a quarter of the recent samples
    assert router.estimate(model).expected_ms == 5.0
    for _ in range(31):  # once most recent images really are slower, the estimate follows
        router.observe(model, 40.0)
    assert router.estimate(model).expected_ms == 40.0


def test_an_int8_served_model_is_expected_at_its_relative_cost(tmp_path) -> None:  # noqa: ANN001
    import yaml

    from visionserve.catalog import load_catalog
    from visionserve.settings import catalog_path

    raw = yaml.safe_load(catalog_path().read_text())
    raw["models"]["resnet50"]["serve_format"] = "onnx_int8"
    raw["quantization"]["relative_cost"] = 0.25
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    catalog = load_catalog(path)
    router = AutoRouter(catalog, ms_per_gflop=10.0)
    r50 = catalog.get("resnet50")
    assert router.estimate("resnet50").expected_ms == pytest.approx(r50.gflops * 0.25 * 10.0)
    assert router.estimate("resnet18").expected_ms == pytest.approx(catalog.get("resnet18").gflops * 10.0)


def test_a_committee_costs_its_members_sum_and_is_not_picked_without_an_accuracy(router: AutoRouter) -> None:
    committee = CATALOG.committee("committee")
    members = sum(router.estimate(m.name).expected_ms for m in committee.member_specs)
    assert router.estimate("committee").expected_ms == pytest.approx(members)
    assert "committee" not in router.eligible
    for budget in (None, 1e9):
        choice = router.choose(CATALOG.served_names, budget)
        assert choice is not None and choice.model != "committee"
