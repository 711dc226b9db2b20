"""Steady load beside a drill: an asyncio + httpx loop in a background thread.

Why not Locust here: a drill test must start, load, fault and judge in seconds on 2 cores;
a Locust runner in-process (gevent) does not mix with the drill's own threads, and a Locust
subprocess costs a core of its own. This loop records every answer (time, status, latency,
``Retry-After``, ``cached``, ``version``), which is what each drill judges.

A loop for a key that sends far more than the gateway will serve (the rate-limit abuser) can
be made cheap to drive, so that what the drill measures is the gateway's cost, not its own:
``raw=True`` sends requests prebuilt as bytes (the headers and multipart body httpx would
send) over plain keep-alive sockets, and ``jpeg_variants`` makes a never-seen JPEG per call by
giving one encoded image a new comment segment (new bytes, so no cache answers it; the same
pixels, so each costs the gateway and Triton what the first does). Measured here: httpx costs
~1.4-1.9 ms of CPU per request and a fresh random JPEG ~0.75 ms more — at 100 requests/s,
a quarter of a core in the process (and under the GIL) that times the other keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
from PIL import Image

from bench.stats import percentile
from visionserve.samples import make_unique

__all__ = ["LoadLoop", "Sample", "jpeg_variants", "p99", "unique_jpeg"]

_SEEDS = itertools.count(int(time.time() * 1000) % 10**9)


def unique_jpeg(size: tuple[int, int] = (96, 72)) -> bytes:
    """A small JPEG nobody sent before (random pixels), so no cache can answer it."""
    rng = np.random.default_rng(next(_SEEDS))
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def jpeg_variants(size: tuple[int, int] = (96, 72)) -> Callable[[], bytes]:
    """A maker of never-seen JPEGs at the cost of a counter: one ``unique_jpeg``, a new comment each call.

    The comment goes where every decoder skips it (``visionserve.samples.make_unique``): new
    bytes for the caches, the same pixels for the decoder.
    """
    base, run, counter = unique_jpeg(size), uuid.uuid4().hex[:8], itertools.count()
    return lambda: make_unique(base, "JPEG", f"drill-{run}-{next(counter)}")


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
    """The 99th percentile (nan when empty): the figure every drill judges latency by."""
    return percentile(values, 99)


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
        raw: send prebuilt requests over plain sockets instead of through httpx (see above).
    """

    url: str
    key: str | None
    model: str
    concurrency: int = 2
    rate_per_s: float | None = None
    image: Callable[[], bytes] | None = None
    path: str = "/v1/classify"
    timeout_s: float = 30.0
    raw: bool = False
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
        if self.raw:
            await asyncio.gather(*(self._raw_sender(_RawRequests(self)) for _ in range(self.concurrency)))
            return
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout_s, limits=limits) as c:
            await asyncio.gather(*(self._sender(c) for _ in range(self.concurrency)))

    async def _paced(self) -> AsyncIterator[None]:
        """Yields once per request, at ``rate_per_s`` when set, until stopped."""
        interval = 1.0 / self.rate_per_s if self.rate_per_s else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - interval)
            yield

    async def _raw_sender(self, requests: _RawRequests) -> None:
        try:
            async for _ in self._paced():
                started = time.monotonic()
                try:
                    status, headers, body = await asyncio.wait_for(requests.send(), self.timeout_s)
                except (OSError, EOFError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    await requests.close()
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    self.samples.append(Sample(started - self.t0, time.monotonic() - started, 0))
                    await asyncio.sleep(0.05)
                    continue
                latency = time.monotonic() - started
                cached = version = request_id = None
                if status == 200 and headers.get(b"content-type", b"").startswith(b"application/json"):
                    data = orjson.loads(body)
                    cached, version, request_id = data.get("cached"), data.get("version"), data.get("request_id")
                retry_after = headers.get(b"retry-after")
                request_id = request_id or (headers[b"x-request-id"].decode() if b"x-request-id" in headers else None)
                self.samples.append(
                    Sample(started - self.t0, latency, status, retry_after and retry_after.decode(), cached, version,
                           request_id)
                )  # fmt: skip
        finally:
            await requests.close()

    async def _sender(self, client: httpx.AsyncClient) -> None:
        async for _ in self._paced():
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


class _RawRequests:
    """One keep-alive connection sending ``loop``'s requests as prebuilt bytes.

    The request line, headers and multipart framing are what httpx sends for the same call
    (built once by httpx); only the image and ``Content-Length`` change per request.
    """

    def __init__(self, loop: LoadLoop) -> None:
        url = urlsplit(loop.url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._image = loop.image or unique_jpeg
        marker = b"\x00visionserve-image\x00"
        headers = {"Authorization": f"Bearer {loop.key}"} if loop.key else {}
        with httpx.Client(base_url=loop.url, headers=headers) as client:
            if loop.path == "/v1/classify":
                built = client.build_request(
                    "POST", loop.path, files={"image": ("drill.jpg", marker, "image/jpeg")}, data={"model": loop.model}
                )
            else:
                built = client.build_request("GET", loop.path)
            body = built.read()
        self._body = body.split(marker) if loop.path == "/v1/classify" else None
        head = [f"{built.method} {built.url.raw_path.decode()} HTTP/1.1"]
        head += [f"{k}: {v}" for k, v in built.headers.items() if k.lower() != "content-length"]
        self._head = "\r\n".join(head).encode() + b"\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """One request and its answer: (status, headers with lower-case names, body)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        if self._body is None:
            self._writer.write(self._head + b"\r\n")
        else:
            body = self._image().join(self._body)
            self._writer.write(self._head + b"content-length: %d\r\n\r\n" % len(body) + body)
        lines = (await self._reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers.setdefault(name.strip().lower(), value.strip())
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            answer = b""
            while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
                answer += (await self._reader.readexactly(size + 2))[:-2]
            await self._reader.readuntil(b"\r\n")
        else:
            answer = await self._reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, headers, answer

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
