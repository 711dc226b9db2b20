"""Fault drills as tests: Triton SIGKILLed, Redis stopped, PostgreSQL restarted, under load."""

from __future__ import annotations

import pytest

from drills import faults
from drills.stack import DrillStack
from tests.integration.drills.conftest import assert_passed

pytestmark = pytest.mark.integration


def test_redis_restart_keeps_answering_uncached_and_caching_resumes(stack: DrillStack) -> None:
    assert_passed(faults.redis_restart(stack, outage_s=2.0))


def test_postgres_restart_loses_no_row_and_the_gateway_reconnects(stack: DrillStack) -> None:
    assert_passed(faults.postgres_restart(stack, outage_s=2.0, after_s=4.0))


def test_triton_sigkill_answers_503_then_recovers_without_losing_rows(stack: DrillStack) -> None:
    assert_passed(faults.triton_kill(stack, outage_s=2.0, after_s=10.5))
