"""Locustfile adding a soak shape: ramp to ``--users`` over ``--soak-ramp-s``, hold for ``--run-time``.

Use with a user locustfile: ``locust -f loadtest/gateway_user.py,loadtest/shape_soak.py -u 8 -t 1h``
(``visionserve loadtest --shape soak`` does this).
"""

from __future__ import annotations

from locust import LoadTestShape

import loadtest.options  # noqa: F401  (registers --soak-ramp-s)
from loadtest.schedule import Tick, soak_schedule

__all__ = ["SoakLoadShape"]


class SoakLoadShape(LoadTestShape):
    """Constant load for the whole run time: memory growth and drift show here, not in short runs."""

    use_common_options = True  # reads -u and -t

    def tick(self) -> Tick:
        options = self.runner.environment.parsed_options
        return soak_schedule(
            self.get_run_time(),
            users=int(options.num_users or 1),
            duration_s=float(options.run_time or 0),
            ramp_s=float(options.soak_ramp_s),
        )
