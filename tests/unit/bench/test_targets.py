"""DistinctImages: every call is bytes no cache has seen, whatever request index it gets."""

from __future__ import annotations

import asyncio
import hashlib

from bench.driver import run_closed_loop
from visionserve.imaging import decode_rgb
from visionserve.samples import DistinctImages, image_set


def test_a_sender_reused_across_runs_never_repeats_bytes() -> None:
    images = DistinctImages(image_set(3, seed=7))
    seen: list[str] = []

    async def send(i: int) -> None:
        seen.append(hashlib.sha256(images(i)).hexdigest())
        await asyncio.sleep(0.001)

    for _ in range(2):  # the driver restarts i at 0 each run, as interleaved rounds do
        asyncio.run(run_closed_loop(send, label="t", model="m", concurrency=2, duration_s=0.05, warmup_s=0))
    assert len(seen) > 10
    assert len(set(seen)) == len(seen)


def test_distinct_bytes_keep_the_pixels_and_repeats_keep_the_bytes() -> None:
    pool = image_set(2, seed=7)
    distinct, repeats = DistinctImages(pool), DistinctImages(pool, distinct=False)
    first, again = distinct(0), distinct(0)
    assert first != again != pool[0].data
    assert decode_rgb(first).tobytes() == decode_rgb(pool[0].data).tobytes()
    assert repeats(2) == repeats(2) == pool[0].data
