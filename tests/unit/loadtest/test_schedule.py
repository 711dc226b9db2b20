"""Step and soak load schedules."""

from __future__ import annotations

import pytest

from loadtest.schedule import parse_steps, soak_schedule, step_schedule


def test_step_schedule_walks_the_steps_then_stops() -> None:
    steps = (1, 2, 4, 8, 16, 32)
    assert step_schedule(0, steps, 10) == (1, 1.0)
    assert step_schedule(9.9, steps, 10) == (1, 1.0)
    assert step_schedule(10, steps, 10) == (2, 1.0)
    assert step_schedule(35, steps, 10) == (8, 4.0)  # all new users of a step start at once
    assert step_schedule(59.9, steps, 10) == (32, 16.0)
    assert step_schedule(60, steps, 10) is None


def test_step_schedule_refuses_a_zero_step() -> None:
    with pytest.raises(ValueError):
        step_schedule(0, (1,), 0)


def test_parse_steps() -> None:
    assert parse_steps("1, 2,4") == (1, 2, 4)
    for bad in ("", "1,x", "0,1"):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_soak_ramps_holds_and_stops() -> None:
    assert soak_schedule(0, users=8, duration_s=3600, ramp_s=80) == (8, 0.1)
    assert soak_schedule(3599, users=8, duration_s=3600, ramp_s=4) == (8, 2.0)
    assert soak_schedule(3600, users=8, duration_s=3600) is None
    assert soak_schedule(0, users=8, duration_s=30, ramp_s=60) == (8, 8 / 7.5)  # ramp ≤ a quarter of the run
    with pytest.raises(ValueError):
        soak_schedule(0, users=0, duration_s=10)
    with pytest.raises(ValueError):
        soak_schedule(0, users=2, duration_s=0)
