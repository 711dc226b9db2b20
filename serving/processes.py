"""Start a server process in a group of its own, wait until it is ready, stop the whole group.

Every long-running process the project starts — tritonserver and its python stubs, the
gateway and its workers, ``visionserve up``, Locust and its workers, the naive baseline,
the drills' Redis and PostgreSQL — runs as the leader of a new session, so one signal to its
process group reaches everything it forked, and nothing outlives a stop (orphans may not be
reaped on these machines)::

    proc = spawn(cmd, log_path=log)
    wait_until_ready(proc, lambda: http_ok(url), timeout_s=60, what="the server", log_tail=...)
    ...
    stop_group(proc)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from visionserve.errors import ServerError

__all__ = ["Lifecycle", "http_ok", "signal_group", "spawn", "stop_group", "wait_group_gone", "wait_until_ready"]

#: How long a stopped group's leader may take to exit before the group is SIGKILLed.
DEFAULT_STOP_TIMEOUT_S = 20.0


class Lifecycle(ABC):
    """Something started by ``start()`` and stopped by ``stop()``: ``with`` starts it and stops it on exit.

    Every server and stack the project starts (Triton, ``up`` in the background, the drills'
    stack, the naive baseline, a load loop) is one, so a block that raises never leaves a
    process group behind.
    """

    @abstractmethod
    def start(self) -> object:
        """Start it (and wait until it is ready); a failed start stops what it began."""

    @abstractmethod
    def stop(self) -> object:
        """Stop everything it started; idempotent."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn(
    cmd: Sequence[str],
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new session (its own process group), stdin closed.

    Args:
        cmd: the command line.
        log_path: where stdout and stderr go (appended unless ``append`` is False; the
            directory is created); the caller's own when None.
        env: the environment (the caller's when None).
        cwd: the working directory (the caller's when None).
        append: False truncates the log first.
    """
    if log_path is None:
        return subprocess.Popen(list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(
            list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 (False for any error, refused connection or timeout)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    poll_s: float = 0.25,
    log_tail: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``ready()`` until it is true; raise if ``proc`` exits first or time runs out.

    Args:
        proc: the process that should become ready.
        ready: the readiness check (cheap, never raising).
        timeout_s: how long it may take.
        what: names the process in messages (``"tritonserver"``).
        poll_s: pause between checks.
        log_tail: what to append to an error message (the process's log tail).

    Raises:
        ServerError: ``proc`` exited, or was not ready within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerError(f"{what} exited with status {code} while starting\n{log_tail()}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerError(f"{what} was not ready within {timeout_s:.0f} s\n{log_tail()}")
        time.sleep(poll_s)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone (or not ours) is ignored."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no process is left in group ``pgid``; SIGKILL the rest after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    signal_group(pgid, signal.SIGKILL)


def stop_group(
    proc: subprocess.Popen[bytes],
    sig: signal.Signals = signal.SIGTERM,
    *,
    timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    linger_s: float = 0.0,
) -> int:
    """Stop ``proc`` (a session leader from ``spawn``) and everything in its process group.

    Sends ``sig`` to the group, waits ``timeout_s`` for the leader, SIGKILLs the group if it
    is still there; then gives what is left of the group ``linger_s`` to exit (a server's
    helpers finishing) before SIGKILLing it. A leader that had already exited gets only the
    last step. Idempotent.

    Args:
        proc: the group's leader.
        sig: the polite signal (SIGTERM; SIGINT where that is the graceful one: Locust's
            reports, PostgreSQL's fast shutdown).
        timeout_s: how long the leader may take to exit.
        linger_s: how long the rest of the group may take after the leader.

    Returns:
        The leader's exit status.
    """
    if proc.poll() is None:
        signal_group(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_group_gone(proc.pid, linger_s)
    return int(proc.returncode or 0)
