"""Fixtures of the chart tests: each value set rendered once per session (Helm engine, offline)."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from helm.chart import Rendered, ValueSet, render, value_sets
from helm.schema import CHART_DIR
from visionserve.catalog import Catalog, load_catalog

VALUE_SETS = [v.name for v in value_sets()]


@pytest.fixture(scope="session")
def rendered_sets() -> dict[str, Rendered]:
    helm_python.disable_logging()
    return {v.name: render(v) for v in value_sets()}


@pytest.fixture(scope="session")
def default_render(rendered_sets: dict[str, Rendered]) -> Rendered:
    return rendered_sets["default"]


@pytest.fixture(scope="session")
def chart_defaults() -> dict[str, Any]:
    with helm_python.Chart.load(CHART_DIR) as chart:
        return chart.values


@pytest.fixture(scope="session")
def merged_values() -> dict[str, dict[str, Any]]:
    with helm_python.Chart.load(CHART_DIR) as chart:
        return {v.name: chart.merge_values(v.values()) for v in value_sets()}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


def value_set(name: str) -> ValueSet:
    """The ValueSet called ``name`` (a ci/ file or "default")."""
    return next(v for v in value_sets() if v.name == name)
