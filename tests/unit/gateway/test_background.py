"""LoopTask: the start-once / stop steps every background part of the gateway shares."""

from __future__ import annotations

import asyncio

from gateway.background import LoopTask


def test_start_is_once_and_cancel_stops_it() -> None:
    async def scenario() -> tuple[int, bool, set[str]]:
        runs = 0
        stopped = asyncio.Event()

        async def forever() -> None:
            nonlocal runs
            runs += 1
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()

        task = LoopTask("poller")
        await task.cancel()  # before any start: nothing to do
        task.start(forever)
        task.start(forever)
        await asyncio.sleep(0)
        names = {t.get_name() for t in asyncio.all_tasks()}
        await task.cancel()
        await task.cancel()  # twice: still nothing raised
        return runs, stopped.is_set(), names

    runs, stopped, names = asyncio.run(scenario())
    assert runs == 1 and stopped and "poller" in names


def test_join_waits_for_the_task_to_end_by_itself() -> None:
    async def scenario() -> list[str]:
        done: list[str] = []
        stop = asyncio.Event()

        async def until_told() -> None:
            await stop.wait()
            await asyncio.sleep(0.01)
            done.append("flushed")

        task = LoopTask("writer")
        task.start(until_told)
        stop.set()
        await task.join()
        await task.join()
        return done

    assert asyncio.run(scenario()) == ["flushed"]
