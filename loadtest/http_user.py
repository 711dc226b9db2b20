"""``WorkloadHttpUser``: what the HTTP locustfiles share — Locust's ``FastHttpUser`` on the run's workload.

``--request-timeout-s`` has to reach geventhttpclient when the user is built: FastHttpSession
takes ``connection_timeout`` and ``network_timeout`` from the user class as it is created,
and the per-request ``timeout=`` of ``client.post`` is dropped for a bytes body, which would
leave every HTTP user on Locust's 60 s default whatever the option said.
"""

from __future__ import annotations

import random
from typing import Any

from locust import FastHttpUser

from loadtest.options import workload_for
from visionserve.samples import ImagePicker

__all__ = ["WorkloadHttpUser", "status_failure"]


def status_failure(response: Any) -> str:
    """What a non-200 answer failed with; status 0 is no answer at all (refused, reset, timed out)."""
    if response.status_code == 0:
        return f"no answer: {response.error!r}"
    return f"HTTP {response.status_code}: {(response.text or '')[:200]}"


class WorkloadHttpUser(FastHttpUser):
    """A FastHttpUser with the run's workload, its request limit, think time and image picker."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        self.workload = workload_for(environment)
        self.connection_timeout = self.network_timeout = self.workload.settings.timeout_s
        super().__init__(environment)

    def wait_time(self) -> float:
        return self.workload.settings.think_time_s

    def on_start(self) -> None:
        self.rng = random.Random()
        self.picker: ImagePicker = self.workload.picker()
