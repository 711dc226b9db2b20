"""The decode processes' priority: they run only on CPU that nothing else wants."""

from __future__ import annotations

import asyncio
import os

from gateway.decode_pool import DecodePool
from gateway.uploads import UploadPolicy


def test_decode_processes_run_only_on_spare_cpu() -> None:
    """SCHED_IDLE: one key's costly uploads wait for idle cores instead of slowing everyone."""

    async def run() -> list[int]:
        pool = DecodePool(UploadPolicy(), workers=2)
        try:
            await pool.start()
            return [os.sched_getscheduler(w.proc.pid) for w in pool._live]
        finally:
            await pool.close()

    assert asyncio.run(run()) == [os.SCHED_IDLE, os.SCHED_IDLE]
