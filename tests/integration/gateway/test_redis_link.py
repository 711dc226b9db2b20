"""``RedisLink``'s breaker against a real redis-server: stale pooled connections after a restart.

A restart behind a proxy (or one whose goodbye the client has not read yet) leaves the pool
full of connections that look alive and fail only when used — what the Redis restart drill
saw: they failed one by one, each closing Redis for another ``retry_s`` (now each is
reconnected once on first use, and the probe drops the idle ones). ``CuttingProxy``
makes that state on purpose: ``cut()`` drops the server side of every open connection and
closes the client side only when the client next writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from gateway.redis_link import RedisLink, connect

pytestmark = pytest.mark.integration

RETRY_S = 0.2
POOL = 8


class CuttingProxy:
    """A TCP proxy to Redis whose ``cut()`` leaves every open connection dead but not closed."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            cut = threading.Event()
            with self._lock:
                self._pairs.append((client, upstream, cut))
            threading.Thread(target=self._to_server, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._to_client, args=(client, upstream, cut), daemon=True).start()

    @staticmethod
    def _to_server(client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if cut.is_set():  # the client wrote on a dead connection: now it learns
                    break
                upstream.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()

    @staticmethod
    def _to_client(client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
        if not cut.is_set():
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for _client, upstream, cut in pairs:
            cut.set()
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            upstream.close()

    def close(self) -> None:
        self.cut()
        self._listener.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[CuttingProxy]:
    running = CuttingProxy(urlparse(redis_url).port or 6379)
    try:
        yield running
    finally:
        running.close()


async def _burst(link: RedisLink, n: int = POOL) -> int:
    """``n`` commands at once (so they take ``n`` pooled connections); how many failed."""
    results = await asyncio.gather(*(link.call("get", lambda: link.client.get("k")) for _ in range(n)))
    return sum(1 for ok, _ in results if not ok)


@pytest.mark.anyio
async def test_stale_connections_after_a_restart_reconnect_without_failing(proxy: CuttingProxy) -> None:
    """What a worker that saw no command during the outage meets: a pool of dead connections."""
    errors: list[str] = []
    link = RedisLink(
        connect(f"redis://127.0.0.1:{proxy.port}/0", timeout_s=1.0), retry_s=RETRY_S, on_error=errors.append
    )
    try:
        assert await _burst(link) == 0  # the pool now holds POOL connections
        await link.client.set("k", b"v")
        proxy.cut()
        assert await link.call("get", lambda: link.client.get("k")) == (True, b"v")
        assert await _burst(link) == 0  # every stale one was replaced on first use
        assert link.available and errors == []
    finally:
        await link.close()


@pytest.mark.anyio
async def test_after_an_outage_redis_resumes_at_once_with_a_fresh_pool(proxy: CuttingProxy) -> None:
    errors: list[tuple[float, str]] = []
    link = RedisLink(
        connect(f"redis://127.0.0.1:{proxy.port}/0", timeout_s=1.0),
        retry_s=RETRY_S,
        on_error=lambda op: errors.append((time.monotonic(), op)),
    )

    async def refused() -> None:
        raise ConnectionError("Redis is down")

    try:
        assert await _burst(link) == 0  # the pool now holds POOL connections
        proxy.cut()
        assert await link.call("get", refused) == (False, None)
        assert not link.available
        await asyncio.sleep(RETRY_S * 1.5)
        resumed_at = time.monotonic()
        await _burst(link)  # one of them probes; the others skip Redis meanwhile
        assert link.available
        failures_after = 0
        while time.monotonic() - resumed_at < RETRY_S * 8:  # long enough for the old chain to show
            failures_after += await _burst(link)
            await asyncio.sleep(0.01)
        assert [op for t, op in errors if t >= resumed_at] == []
        assert failures_after == 0
    finally:
        await link.close()


@pytest.mark.anyio
async def test_a_straggler_failing_after_the_probe_does_not_reopen_the_breaker(redis_url: str) -> None:
    link = RedisLink(connect(redis_url, timeout_s=1.0), retry_s=RETRY_S)
    release = asyncio.Event()

    async def straggler() -> None:
        await release.wait()
        raise ConnectionError("its connection died with the old server")

    async def fails() -> None:
        raise ConnectionError("refused")

    try:
        slow = asyncio.create_task(link.call("cache_set", straggler))  # began while Redis was up
        await asyncio.sleep(0)
        assert await link.call("cache_get", fails) == (False, None)
        assert not link.available
        await asyncio.sleep(RETRY_S * 1.5)
        assert await link.call("ping", link.client.ping) == (True, True)  # the probe succeeded first
        release.set()
        assert await slow == (False, None)
        assert link.available  # the old command's failure says nothing about the Redis of now
    finally:
        await link.close()


@pytest.mark.anyio
async def test_while_down_only_the_probe_touches_redis() -> None:
    errors: list[str] = []
    calls: list[str] = []
    link = RedisLink(connect("redis://127.0.0.1:1/0", timeout_s=0.2), retry_s=RETRY_S, on_error=errors.append)

    async def get() -> None:
        calls.append("get")
        return await link.client.get("k")

    try:
        assert (await link.call("cache_get", get))[0] is False
        await asyncio.sleep(RETRY_S * 1.5)
        assert (await link.call("cache_get", get))[0] is False  # the probe failed: the command never ran
        assert calls == ["get"] and errors == ["cache_get", "probe"]
        assert not link.available
    finally:
        await link.close()
