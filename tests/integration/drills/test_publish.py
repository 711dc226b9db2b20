"""Publishing drills as tests: `visionserve export` under load, and a broken version that never serves.

Their own stack, on a private copy of the smallest model's repository: both write versions.
The publish drill runs the real export (~1 minute on 2 cores: the cost of the real command).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drills import publish
from drills.stack import DrillStack, copy_repository
from tests.integration.drills.conftest import assert_passed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillStack]:
    workdir = tmp_path_factory.mktemp("publish-drill")
    with DrillStack(workdir, repository=copy_repository(workdir / "model_repository")) as running:
        yield running


def test_publish_under_load_fails_nothing_and_serves_no_stale_answer(stack: DrillStack) -> None:
    assert_passed(publish.publish_under_load(stack))


def test_a_broken_version_fails_its_publish_and_the_good_one_keeps_serving(stack: DrillStack) -> None:
    assert_passed(publish.broken_version(stack))
