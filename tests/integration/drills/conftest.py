"""One drill stack (Triton on the smallest model, Redis, PostgreSQL, a 2-worker gateway) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drills.stack import DrillStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillStack]:
    with DrillStack(tmp_path_factory.mktemp("drill")) as running:
        yield running


def assert_passed(result) -> None:  # noqa: ANN001 - a DrillResult
    assert result.passed, f"{result.drill}: {result.failures}\n{result.figure}"
