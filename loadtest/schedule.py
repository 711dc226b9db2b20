"""Load schedules as pure functions of elapsed time (the Locust shapes only call these).

``step_schedule``: hold each user count for ``step_s`` seconds (1 → 2 → 4 … → 32), then stop —
where throughput stops growing and latency starts to, the server is saturated.
``soak_schedule``: ramp to a constant user count, hold it for the whole run, then stop —
for leaks and slow drift (memory growth, shared-memory regions, history backlog).
"""

from __future__ import annotations

__all__ = ["DEFAULT_STEP_USERS", "Tick", "parse_steps", "soak_schedule", "step_schedule"]

DEFAULT_STEP_USERS = (1, 2, 4, 8, 16, 32)

#: (user count, spawn rate per second), or None to stop the test.
Tick = tuple[int, float] | None


def parse_steps(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` → (1, 2, 4, 8).

    Raises:
        ValueError: empty, not integers, or a count below 1.
    """
    try:
        steps = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise ValueError(f"step users must be comma-separated integers, got {text!r}") from None
    if not steps or min(steps) < 1:
        raise ValueError(f"step users must be integers >= 1, got {text!r}")
    return steps


def step_schedule(elapsed_s: float, steps: tuple[int, ...] = DEFAULT_STEP_USERS, step_s: float = 30.0) -> Tick:
    """The user count at ``elapsed_s`` of a step load; None after the last step.

    Users are added (or removed) at once at each step boundary: the spawn rate equals the
    step's change, so a step's measurement starts with its users all present.
    """
    if step_s <= 0:
        raise ValueError(f"step_s must be > 0, got {step_s}")
    index = int(elapsed_s // step_s)
    if index >= len(steps):
        return None
    previous = steps[index - 1] if index else 0
    return steps[index], float(max(1, abs(steps[index] - previous)))


def soak_schedule(elapsed_s: float, users: int, duration_s: float, ramp_s: float = 60.0) -> Tick:
    """Ramp linearly to ``users`` over ``ramp_s``, hold until ``duration_s``, then stop.

    The ramp takes at most a quarter of the run, so a short soak still holds its full load.

    Raises:
        ValueError: users < 1, or a non-positive duration.
    """
    if users < 1:
        raise ValueError(f"a soak needs at least 1 user, got {users}")
    if duration_s <= 0:
        raise ValueError(f"a soak needs a duration (--run-time), got {duration_s}")
    if elapsed_s >= duration_s:
        return None
    ramp_s = min(ramp_s, duration_s / 4)
    rate = users / ramp_s if ramp_s > 0 else float(users)
    return users, max(rate, 0.1)
