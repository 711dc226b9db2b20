"""Steady load beside a drill: an asyncio + httpx loop in a background thread.

Why not Locust here: a drill test must start, load, fault and judge in seconds on 2 cores;
a Locust runner in-process (gevent) does not mix with the drill's own threads, and a Locust
subprocess costs a core of its own. This loop records every answer (time, status, latency,
``Retry-After``, ``cached``, ``version``), which is what each drill judges.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

__all__ = ["LoadLoop", "Sample", "p99", "unique_jpeg"]

_SEEDS = itertools.count(int(time.time() * 1000) % 10**9)


def unique_jpeg(size: tuple[int, int] = (96, 72)) -> bytes:
    """A small JPEG nobody sent before (random pixels), so no cache can answer it."""
    rng = np.random.default_rng(next(_SEEDS))
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=80)
    return buf.getvalue()


@dataclass(frozen=True)
class Sample:
    """One answer of the gateway."""

    t_s: float
    latency_s: float
    status: int
    retry_after: str | None = None
    cached: bool | None = None
    version: int | None = None
    request_id: str | None = None


def p99(values: list[float]) -> float:
    """The 99th percentile (nan when empty)."""
    return float(np.percentile(values, 99)) if values else float("nan")


@dataclass
class LoadLoop:
    """``concurrency`` closed-loop senders (each paced to ``rate_per_s`` when set) for one key.

    Args:
        url: the gateway's base URL.
        key: the API key sent.
        model: the catalog model asked for.
        concurrency: senders.
        rate_per_s: requests per second of each sender (as fast as answered when None).
        image: what each request uploads (a fresh unique JPEG per request when None).
        path: the endpoint (``/v1/classify`` by default; ``/livez`` probes too).
        timeout_s: per-request timeout.
    """

    url: str
    key: str | None
    model: str
    concurrency: int = 2
    rate_per_s: float | None = None
    image: Callable[[], bytes] | None = None
    path: str = "/v1/classify"
    timeout_s: float = 30.0
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def start(self) -> LoadLoop:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 10)
        return list(self.samples)

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout_s, limits=limits) as c:
            await asyncio.gather(*(self._sender(c) for _ in range(self.concurrency)))

    async def _sender(self, client: httpx.AsyncClient) -> None:
        interval = 1.0 / self.rate_per_s if self.rate_per_s else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - interval)
            started = time.monotonic()
            try:
                if self.path == "/v1/classify":
                    body = (self.image or unique_jpeg)()
                    response = await client.post(
                        self.path, files={"image": ("drill.jpg", body, "image/jpeg")}, data={"model": self.model}
                    )
                else:
                    response = await client.get(self.path)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.samples.append(Sample(started - self.t0, time.monotonic() - started, 0))
                await asyncio.sleep(0.05)
                continue
            cached = version = request_id = None
            if response.headers.get("content-type", "").startswith("application/json"):
                try:
                    data = response.json()
                except ValueError:
                    data = {}
                if isinstance(data, dict):
                    cached, version, request_id = data.get("cached"), data.get("version"), data.get("request_id")
            self.samples.append(
                Sample(
                    started - self.t0,
                    time.monotonic() - started,
                    response.status_code,
                    response.headers.get("retry-after"),
                    cached,
                    version,
                    request_id or response.headers.get("x-request-id"),
                )
            )
