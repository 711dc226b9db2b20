"""Redis and PostgreSQL servers that can be stopped and started again (same port, same data).

A drill takes a server away under load and brings the *same* one back; the test fixtures
(``tests/fixtures/services.py``) run these same classes (one implementation of how the
project starts its services). Each runs in its own process group, stopped by group.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from serving.launcher import free_port
from serving.processes import spawn, stop_group, wait_until_ready
from visionserve.errors import ServerError
from visionserve.settings import PROJECT_ROOT

__all__ = ["DrillPostgres", "DrillRedis"]

START_TIMEOUT_S = 60.0


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _binary(name: str) -> str:
    """The server binary, installed first with ``.ci/services.sh`` (apt) when missing, as the tests do."""
    found = _find(name)
    if found is None:
        subprocess.run(["bash", str(PROJECT_ROOT / ".ci" / "services.sh")], capture_output=True, timeout=900)
        found = _find(name)
    if found:
        return found
    raise ServerError(f"{name} is not installed: run `make test-services` (Debian: redis-server, postgresql)")


def _wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, what: str, poll_s: float) -> None:
    """Wait until ``ready()``; raise with the log's tail if ``proc`` exits or time runs out."""
    wait_until_ready(
        proc, ready, timeout_s=START_TIMEOUT_S, what=what, poll_s=poll_s,
        log_tail=lambda: log.read_text(errors="replace")[-1500:],
    )  # fmt: skip


class DrillRedis:
    """A private redis-server (no persistence) on a fixed port; ``stop()``/``start()`` at will.

    Args:
        directory: working directory (log file).
        port: the port; a free one when None (kept across restarts).
        maxmemory_bytes: a memory bound with LRU eviction (``--maxmemory``), none when None.
    """

    def __init__(self, directory: Path, port: int | None = None, maxmemory_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.maxmemory_bytes = maxmemory_bytes
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's pid (None while stopped)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> DrillRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        if self.maxmemory_bytes:
            cmd += ["--maxmemory", str(self.maxmemory_bytes), "--maxmemory-policy", "allkeys-lru"]
        self._proc = spawn(cmd, log_path=self.directory / "redis.log")
        try:
            _wait_ready(self._proc, self.ping, self.directory / "redis.log", f"redis-server on {self.port}", 0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def ping(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def keys(self) -> int:
        """How many keys the server holds (the cache's entries, plus rate-limit buckets)."""
        import redis

        with contextlib.closing(redis.Redis.from_url(self.url)) as client:
            return int(client.dbsize())

    def stop(self) -> None:
        if self._proc is not None:
            stop_group(self._proc)
            self._proc = None


class DrillPostgres:
    """A throw-away PostgreSQL cluster whose server can be stopped and started on its data again.

    ``initdb`` refuses root, so as root the cluster is owned by and run as ``postgres``.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="visionserve-drill-pg-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._initialised = False

    def url(self, database: str = "visionserve") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The running server's pid (``runuser`` when run as ``postgres``; None while stopped)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> DrillPostgres:
        import psycopg

        data = self.base / "data"
        if not self._initialised:
            cmd = [*self._as_user, _binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "--no-sync", "-E", "UTF8", "--locale=C"]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ServerError(f"initdb failed: {proc.stderr[-1500:]}")
        cmd = [*self._as_user, _binary("postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.base),
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
               "-c", "full_page_writes=off", "-c", "max_connections=200"]  # fmt: skip
        self._proc = spawn(cmd, log_path=self.base / "postgres.log")

        def accepts() -> bool:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=2) as conn:
                    if not self._initialised:
                        conn.execute("CREATE DATABASE visionserve")
            except psycopg.OperationalError:
                return False
            self._initialised = True
            return True

        try:
            _wait_ready(self._proc, accepts, self.base / "postgres.log", f"postgres on {self.port}", 0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown), keeping the data for the next ``start()``."""
        if self._proc is not None:
            stop_group(self._proc, signal.SIGINT)
            self._proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
