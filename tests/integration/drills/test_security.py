"""Security drills as tests: hostile uploads and broken access control against the real gateway."""

from __future__ import annotations

import pytest

from drills import access, hostile
from drills.stack import DrillStack
from tests.integration.drills.conftest import assert_passed

pytestmark = pytest.mark.integration


def test_hostile_uploads_get_a_4xx_json_error_each_and_crash_nothing(stack: DrillStack) -> None:
    assert_passed(hostile.run(stack))


def test_user_a_cannot_reach_user_b_history_and_revocation_is_fast(stack: DrillStack) -> None:
    assert_passed(access.run(stack))
