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
from collections.abc import Callable, Iterator

import psutil

__all__ = ["LOAD_GENERATOR", "ROLES", "CpuMeter", "Meter", "Reading", "isolate", "pin", "spent", "stack_processes"]

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
        for role, process in stack_processes(self._stack):
            with contextlib.suppress(psutil.NoSuchProcess):
                reading[role] += _cpu_s(process)
        return reading


def stack_processes(stack: psutil.Process) -> Iterator[tuple[str, psutil.Process]]:
    """(role, process) for every process ``visionserve up`` started, directly or not."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in stack.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                role = "triton" if child.name().startswith("tritonserver") else "gateway"
                for process in (child, *child.children(recursive=True)):
                    yield role, process


def pin(process: psutil.Process, cpus: set[int]) -> None:
    """Run every thread of ``process`` on ``cpus`` (threads it starts later inherit it).

    ``sched_setaffinity`` on a pid moves only that thread, so each of ``/proc/<pid>/task`` is
    moved; a thread that ends meanwhile is skipped.
    """
    for thread in process.threads():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(thread.id, cpus)


def isolate(stack_pid: int) -> dict[str, set[int]]:
    """Give Triton the first half of this machine's cores, the gateway and this process the rest.

    What a deployment with the gateway on machines (pods) of its own looks like, on one
    machine: the gateway's CPU no longer comes out of Triton's. Linux only; needs 2 cores.

    Returns:
        The cores of each role.

    Raises:
        ValueError: fewer than 2 cores.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise ValueError(f"isolating Triton from the gateway needs 2 cores; this process has {len(cores)}")
    half = len(cores) // 2
    plan = {"triton": set(cores[:half]), "gateway": set(cores[half:]), LOAD_GENERATOR: set(cores[half:])}
    for role, process in stack_processes(psutil.Process(stack_pid)):
        with contextlib.suppress(psutil.NoSuchProcess):
            pin(process, plan[role])
    pin(psutil.Process(os.getpid()), plan[LOAD_GENERATOR])
    return plan


def spent(before: Reading, after: Reading) -> Reading:
    """CPU seconds by role between two readings (a process that exited in between counts 0)."""
    return {role: max(0.0, after[role] - before.get(role, 0.0)) for role in after}
