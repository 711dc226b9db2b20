"""Start the local stack for a load test or benchmark, and stop all of it afterwards.

``GatewayStack`` runs ``visionserve up`` (tritonserver + gateway) in the background on free
ports, with its own state directory (SQLite history, pepper) and rate limits raised so the
load generator measures the stack, not the quota; it creates an API key with ``visionserve
keys create`` and waits for the gateway's ``/readyz``. ``stop()`` sends SIGTERM to ``up``'s
process group (``up`` then stops the gateway's group and Triton's), and, should anything
outlive that, kills the processes it had started, by their ids.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import psutil

from serving.launcher import TritonServer, default_models, free_ports
from serving.processes import Lifecycle, http_ok, spawn, stop_group, wait_until_ready
from visionserve.catalog import Catalog, load_catalog
from visionserve.errors import ServerError
from visionserve.settings import PROJECT_ROOT, repository_path

__all__ = [
    "LOAD_TEST_LIMITS",
    "GatewayStack",
    "LocalStack",
    "create_key",
    "run_visionserve",
    "start_triton",
    "triton_models",
    "visionserve_command",
]

#: Gateway settings of a stack started for load: quotas would otherwise be what is measured.
LOAD_TEST_LIMITS = {"GATEWAY_RATE_PER_S": "1000000", "GATEWAY_RATE_BURST": "1000000"}
STOP_TIMEOUT_S = 60.0
_POLL_S = 0.5
#: Beyond ``ready_timeout_s`` (which ``up`` gives Triton): the gateway's own start.
_GATEWAY_START_S = 60.0


def triton_models(catalog: Catalog, repository: Path, names: str | list[str] | None = None) -> list[str]:
    """The Triton models ``make serve`` loads for the catalog models ``names`` (list or comma-separated; all: empty)."""
    specs = catalog.select(names or None)
    wanted = {m for s in specs for m in s.triton_models}
    return [m for m in default_models(catalog, repository) if m in wanted]


def start_triton(
    repository: Path | None = None, names: list[str] | None = None, log_path: Path | None = None
) -> TritonServer:
    """A started TritonServer on free ports with the default models of ``names`` (all when None)."""
    repository = Path(repository) if repository else repository_path()
    models = triton_models(load_catalog(), repository, names)
    server = TritonServer.on_free_ports(repository, models=models, exit_timeout_s=2, log_path=log_path)
    server.start(ready_timeout_s=600)
    return server


def visionserve_command(*args: str) -> list[str]:
    """The command line of ``visionserve ARGS`` run by this interpreter (the project's environment)."""
    return [sys.executable, "-m", "visionserve", *args]


def run_visionserve(*args: str, env: Mapping[str, str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``visionserve ARGS`` to completion from the project root, output captured as text."""
    return subprocess.run(
        visionserve_command(*args), env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s
    )


def create_key(env: Mapping[str, str], name: str, role: str = "user") -> str:
    """A new API key in the database ``env`` names (``visionserve keys create``: the last line of its output).

    Raises:
        ServerError: the command failed or printed nothing.
    """
    proc = run_visionserve("keys", "create", "--name", name, "--role", role, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ServerError(f"`visionserve keys create` failed ({proc.returncode}): {proc.stderr[-800:]}")
    return lines[-1].strip()


class LocalStack(Lifecycle):
    """A gateway and a tritonserver on this machine, reached on loopback at ``gateway_port`` and ``grpc_port``."""

    gateway_port: int
    grpc_port: int

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class GatewayStack(LocalStack):
    """``visionserve up`` in the background, on free ports, with an API key for the load.

    Args:
        repository: the model repository (``model_repository/`` when None).
        log_path: where ``up``'s output (Triton's and the gateway's console) goes.
        models: catalog models to serve (all when None).
        env: extra environment for the gateway (e.g. ``REDIS_URL``); wins over the defaults.
        ready_timeout_s: how long Triton and the gateway may take to become ready.
    """

    def __init__(
        self,
        repository: Path | None = None,
        *,
        log_path: Path,
        models: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 600.0,
    ) -> None:
        self.repository = Path(repository) if repository else repository_path()
        self.log_path = Path(log_path)
        self.models = list(models or [])
        self.ready_timeout_s = ready_timeout_s
        self.gateway_port, self.http_port, self.grpc_port, self.metrics_port = free_ports(4)
        self._state = tempfile.TemporaryDirectory(prefix="visionserve-stack-")
        self.env = {
            **os.environ,
            "GATEWAY_STATE_DIR": self._state.name,
            "VISIONSERVE_REPOSITORY": str(self.repository.resolve()),
            **LOAD_TEST_LIMITS,
            **(env or {}),
        }
        self.api_key = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._started: list[psutil.Process] = []

    @property
    def pid(self) -> int | None:
        """Process id of ``visionserve up`` (the root of Triton's and the gateway's processes)."""
        return self._proc.pid if self._proc else None

    def create_key(self, name: str = "loadtest") -> str:
        """A new API key in the stack's database (``visionserve keys create``)."""
        return create_key(self.env, name)

    def start(self) -> GatewayStack:
        """Create a key, start ``visionserve up``, wait for the gateway to be ready.

        Raises:
            ServerError: ``up`` exited or was not ready in time (its log tail is in the message).
        """
        self.api_key = self.create_key()
        cmd = visionserve_command(
            "up", "--host", "127.0.0.1", "--port", str(self.gateway_port),
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), "--repository", str(self.repository),
            "--ready-timeout-s", str(int(self.ready_timeout_s)),
        )  # fmt: skip
        if self.models:
            cmd += ["--models", ",".join(self.models)]
        self._proc = spawn(cmd, log_path=self.log_path, env=self.env, cwd=PROJECT_ROOT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _remember_children(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(psutil.Error):
            known = {p.pid for p in self._started}
            root = psutil.Process(self._proc.pid)
            self._started += [p for p in [root, *root.children(recursive=True)] if p.pid not in known]

    def _wait_ready(self) -> None:
        assert self._proc is not None

        def ready() -> bool:
            self._remember_children()
            return http_ok(f"{self.gateway_url}/readyz")

        wait_until_ready(
            self._proc, ready, timeout_s=self.ready_timeout_s + _GATEWAY_START_S, what="`visionserve up`",
            poll_s=_POLL_S, log_tail=self.log_tail,
        )  # fmt: skip
        self._remember_children()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"log tail ({self.log_path}):\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM ``up``'s group, wait, then kill whatever it started that is still alive; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._remember_children_of(proc)
            stop_group(proc, timeout_s=STOP_TIMEOUT_S)
        survivors = [p for p in self._started if _alive(p)]
        for p in survivors:  # the gateway and Triton run in groups of their own
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(survivors, timeout=10)
        self._started = []
        self._state.cleanup()

    def _remember_children_of(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            self._proc = proc
            try:
                self._remember_children()
            finally:
                self._proc = None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
