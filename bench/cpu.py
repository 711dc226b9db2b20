"""CPU time by role — Triton, the gateway, the load generator — read from ``/proc`` via psutil.

On a machine whose cores are shared by every part of the stack, throughput is bounded by the
CPU each request costs all parts together: once the cores are busy, what one process spends
per request the others cannot. ``bench gateway`` reads these counters at the edges of every
measurement window, so next to each throughput it prints what a request cost each role, and
the cost of the gateway is stated in milliseconds of CPU, a figure that does not depend on
which machine runs the load or Triton.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import psutil

__all__ = ["LOAD_GENERATOR", "ROLES", "CpuMeter", "Meter", "Reading", "spent"]

LOAD_GENERATOR = "load generator"
#: Roles in the order tables show them.
ROLES = ("triton", "gateway", LOAD_GENERATOR)
#: Cumulative CPU seconds (user + system) by role.
Reading = dict[str, float]
#: What the driver calls at the edges of a measurement window.
Meter = Callable[[], Reading]


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class CpuMeter:
    """``meter()`` → cumulative CPU seconds of this process and, if given, a ``visionserve up`` tree.

    ``up``'s child ``tritonserver`` and all its descendants (the Python backend stubs that run
    the preprocessing and ONNX models) are ``triton``; every other descendant of ``up`` (the
    BentoML server and its workers) is ``gateway``; ``up`` itself only waits and is left out.
    The processes are listed anew at every reading, so workers started late are counted.

    Args:
        stack_pid: pid of ``visionserve up``; None measures the load generator only.
    """

    def __init__(self, stack_pid: int | None = None) -> None:
        self._me = psutil.Process(os.getpid())
        self._stack = psutil.Process(stack_pid) if stack_pid else None

    def __call__(self) -> Reading:
        reading: Reading = {LOAD_GENERATOR: _cpu_s(self._me)}
        if self._stack is None:
            return reading
        reading["triton"] = reading["gateway"] = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in self._stack.children():
                role = "triton" if child.name().startswith("tritonserver") else "gateway"
                with contextlib.suppress(psutil.NoSuchProcess):
                    for process in (child, *child.children(recursive=True)):
                        with contextlib.suppress(psutil.NoSuchProcess):
                            reading[role] += _cpu_s(process)
        return reading


def spent(before: Reading, after: Reading) -> Reading:
    """CPU seconds by role between two readings (a process that exited in between counts 0)."""
    return {role: max(0.0, after[role] - before.get(role, 0.0)) for role in after}

