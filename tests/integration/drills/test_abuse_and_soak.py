"""Abuse drills (rate limit, event loop) and the soak, shortened for CI by ``VISIONSERVE_SOAK_S``."""

from __future__ import annotations

import os

import pytest

from drills import abuse, soak
from drills.stack import DrillStack
from tests.integration.drills.conftest import assert_passed

pytestmark = pytest.mark.integration

#: The soak's length in the suite (the drill itself runs 600 s under `make drills`).
SOAK_S = float(os.environ.get("VISIONSERVE_SOAK_S", "30"))


def test_one_key_at_ten_times_its_limit_gets_429_and_others_keep_their_p99(stack: DrillStack) -> None:
    assert_passed(abuse.rate_limit(stack, seconds=4.0, rounds=3))


def test_costly_uploads_at_full_rate_keep_livez_fast_and_others_p99(stack: DrillStack) -> None:
    assert_passed(abuse.event_loop(stack, seconds=4.0, rounds=3))


def test_soak_rss_stays_flat_without_errors(stack: DrillStack) -> None:
    assert_passed(soak.run(stack, duration_s=SOAK_S))
