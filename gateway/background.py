"""The one background task of a gateway part (version polling, history writing, shadowing).

Each part starts its task on the running loop when the service opens and stops it when the
service closes; this holds the start-once / cancel-and-wait steps they all need, so a close
before any start, or a second close, is a no-op everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["LoopTask"]


class LoopTask:
    """A named task made on the running loop on ``start`` and awaited on ``cancel`` / ``join``.

    Args:
        name: the asyncio task's name (shown by ``asyncio.all_tasks`` and in tracebacks).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``run()`` as the task, unless it was started already."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(run(), name=self.name)

    async def cancel(self) -> None:
        """Cancel the task and wait until it has stopped (nothing when it was not started)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def join(self) -> None:
        """Wait for the task to end by itself (its loop has been told to stop)."""
        if self._task is not None:
            await self._task
            self._task = None
