"""How much the cores of this machine get in each other's way: wake-ups and a busy neighbour.

The gateway benchmark puts a load generator, the gateway and Triton on the same few cores, and
every request hands work from one process to another several times. What that costs depends
on the machine as much as on the code: on a virtual machine a wake-up that crosses cores goes
through the hypervisor, and two virtual CPUs may be threads of one physical core, so a busy
neighbour slows a core that has nothing to do with it. ``probe()`` measures both before the
stack starts, so every report says what kind of machine its figures come from.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Interference", "probe", "wake_round_trip_us", "work_ms"]

_WAKES = 2_000
_ROUNDS = 7


@dataclass(frozen=True)
class Interference:
    """What the probe measured (None where the machine has a single usable core).

    Attributes:
        same_core_wake_us: one round trip through a pipe between two processes on one core.
        cross_core_wake_us: the same round trip with the processes on two cores.
        neighbour_slowdown: CPU time of a fixed Python workload with another core spinning,
            over the same workload with that core idle (medians of alternating rounds).
    """

    same_core_wake_us: float
    cross_core_wake_us: float | None
    neighbour_slowdown: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"wake round trip {self.same_core_wake_us:.0f} µs on one core"]
        if self.cross_core_wake_us is not None:
            parts.append(f"{self.cross_core_wake_us:.0f} µs across cores")
        if self.neighbour_slowdown is not None:
            parts.append(f"a spinning neighbour core makes Python {self.neighbour_slowdown:.2f}× as slow")
        return ", ".join(parts)


def _echo(reader: int, writer: int, cpu: int, count: int) -> None:
    os.sched_setaffinity(0, {cpu})
    for _ in range(count):
        os.read(reader, 1)
        os.write(writer, b"x")


def _spin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


def _context() -> Any:
    # fork: the children need nothing but these functions, and start in milliseconds.
    return multiprocessing.get_context("fork")


def wake_round_trip_us(cpu_a: int, cpu_b: int, count: int = _WAKES) -> float:
    """Mean wall time of a one-byte ping-pong between a process on ``cpu_a`` and one on ``cpu_b``."""
    from_parent, to_child = os.pipe()  # (read end, write end)
    from_child, to_parent = os.pipe()
    child = _context().Process(target=_echo, args=(from_parent, to_parent, cpu_b, count), daemon=True)
    before = os.sched_getaffinity(0)
    try:
        child.start()
        os.sched_setaffinity(0, {cpu_a})
        os.write(to_child, b"x")  # the first exchange also waits for the child to start
        os.read(from_child, 1)
        started = time.perf_counter()
        for _ in range(count - 1):
            os.write(to_child, b"x")
            os.read(from_child, 1)
        return (time.perf_counter() - started) / (count - 1) * 1e6
    finally:
        os.sched_setaffinity(0, before)
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
        for fd in (to_child, from_parent, from_child, to_parent):
            os.close(fd)


def work_ms(iterations: int = 20_000) -> float:
    """CPU milliseconds of a fixed, interpreter-bound workload (dicts, lists, strings)."""
    started = time.process_time()
    table: dict[str, list[Any]] = {}
    for i in range(iterations):
        table[str(i)] = [i, i * 2, {"a": i}]
    "".join(table)
    return (time.process_time() - started) * 1000


def _neighbour_slowdown(cpu: int, neighbour: int, rounds: int) -> float:
    before = os.sched_getaffinity(0)
    idle: list[float] = []
    busy: list[float] = []
    try:
        os.sched_setaffinity(0, {cpu})
        work_ms()  # warm
        for _ in range(rounds):  # alternate, so the machine's drift hits both alike
            idle.append(min(work_ms() for _ in range(3)))
            spinner = _context().Process(target=_spin, args=(neighbour,), daemon=True)
            spinner.start()
            try:
                time.sleep(0.05)
                busy.append(min(work_ms() for _ in range(3)))
            finally:
                spinner.kill()
                spinner.join()
    finally:
        os.sched_setaffinity(0, before)
    return statistics.median(busy) / statistics.median(idle)


def probe(rounds: int = _ROUNDS, wakes: int = _WAKES) -> Interference:
    """Measure wake-ups on one core and across two, and what a busy neighbour core costs (~3 s)."""
    cores = sorted(os.sched_getaffinity(0))
    same = wake_round_trip_us(cores[0], cores[0], wakes)
    if len(cores) < 2:
        return Interference(same, None, None)
    cross = wake_round_trip_us(cores[0], cores[1], wakes)
    return Interference(same, cross, _neighbour_slowdown(cores[1], cores[0], rounds))
