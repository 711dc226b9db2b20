"""Locustfile adding a step-load shape: 1 → 2 → 4 → 8 → 16 → 32 users, ``--step-s`` each.

Use with a user locustfile: ``locust -f loadtest/triton_grpc_user.py,loadtest/shape_step.py``
(``visionserve loadtest --shape step`` does this). ``--step-users`` changes the steps.
"""

from __future__ import annotations

from locust import LoadTestShape

import loadtest.options  # noqa: F401  (registers --step-users / --step-s)
from loadtest.schedule import Tick, parse_steps, step_schedule

__all__ = ["StepLoadShape"]


class StepLoadShape(LoadTestShape):
    """Doubling user counts, each held for ``--step-s`` seconds; the run ends after the last."""

    def tick(self) -> Tick:
        options = self.runner.environment.parsed_options
        return step_schedule(self.get_run_time(), parse_steps(options.step_users), float(options.step_s))
