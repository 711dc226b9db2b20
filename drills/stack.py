"""The stack a drill runs against: tritonserver, Redis, PostgreSQL and the gateway, on free ports.

Each part is a real process in its own process group, started here and stopped here, so a
drill can take one away (SIGKILL Triton, stop Redis, restart PostgreSQL) and bring it back
on the same port. The gateway is ``visionserve gateway`` with its own state and BentoML home;
keys are made and revoked with the real ``visionserve keys`` command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx

from drills.services import DrillPostgres, DrillRedis
from serving.launcher import TritonServer, free_port, free_ports
from serving.processes import http_ok, spawn, stop_group, wait_until_ready
from serving.stack import LocalStack, create_key, run_visionserve, triton_models, visionserve_command
from visionserve.catalog import load_catalog
from visionserve.errors import ServerError
from visionserve.settings import PROJECT_ROOT, repository_path

__all__ = ["DRILL_MODEL", "DrillStack", "copy_repository"]

#: The smallest catalog model (fewest GFLOPs): drills measure the stack, not the backbone.
DRILL_MODEL = min(load_catalog().models.values(), key=lambda s: s.gflops or 1e9).name
GATEWAY_START_TIMEOUT_S = 120.0
#: The stack's caches are small on purpose: the soak's never-seen images fill them within its
#: warm-up (a Triton response is ~4 KiB), so memory that grows after warm-up is what a leak
#: would be, not a cache filling up to a production size (256 MiB by default for Triton).
TRITON_CACHE_BYTES = 2**20
REDIS_MAXMEMORY_BYTES = 3 * 2**20  # Redis itself uses ~1 MiB of it


def copy_repository(target: Path, model: str = DRILL_MODEL) -> Path:
    """A private copy of ``model``'s Triton models (publishing drills write new versions into it)."""
    source = repository_path()
    spec = load_catalog().models[model]
    target.mkdir(parents=True, exist_ok=True)
    for name in spec.triton_models:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, symlinks=True)
    return target


class DrillStack(LocalStack):
    """Triton (one catalog model), Redis, PostgreSQL and a gateway with ``workers`` workers.

    Args:
        workdir: logs, state and (for publishing drills) the repository copy live here.
        repository: the model repository (the project's when None).
        workers: gateway worker processes.
        gateway_env: more gateway settings (``GATEWAY_*``).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        repository: Path | None = None,
        workers: int = 2,
        gateway_env: dict[str, str] | None = None,
    ) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="visionserve-drill-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.repository = Path(repository) if repository else repository_path()
        self.model = DRILL_MODEL
        self.workers = workers
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.gateway_port = free_port()
        self.redis = DrillRedis(self.workdir / "redis", maxmemory_bytes=REDIS_MAXMEMORY_BYTES)
        self.postgres = DrillPostgres()
        self.triton: TritonServer | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self._gateway_env_extra = dict(gateway_env or {})
        self.pepper = uuid.uuid4().hex

    # -- urls: gateway_url, triton_grpc_url (LocalStack) ----------------------------------
    @property
    def gateway_pid(self) -> int | None:
        return self._gateway.pid if self._gateway else None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> DrillStack:
        try:
            self.redis.start()
            self.postgres.start()
            self.start_triton()
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def start_triton(self, ready_timeout_s: float = 300) -> None:
        """Start tritonserver on the stack's ports (again, after a kill)."""
        self.triton = TritonServer(
            self.repository,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            metrics_port=self.metrics_port,
            models=triton_models(load_catalog(), self.repository, [self.model]),
            cache_size_bytes=TRITON_CACHE_BYTES,
            exit_timeout_s=1,
            log_path=self.workdir / "tritonserver.log",
        )
        self.triton.start(ready_timeout_s=ready_timeout_s)

    def kill_triton(self) -> None:
        """SIGKILL tritonserver (no goodbye), then clear what it left (stubs, shared memory)."""
        assert self.triton is not None and self.triton.pid is not None
        os.kill(self.triton.pid, signal.SIGKILL)
        self.triton.stop()

    @property
    def env(self) -> dict[str, str]:
        """The environment of the gateway and of ``visionserve keys``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env |= {
            "TRITON_URL": self.triton_grpc_url,
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": self.postgres.url(),
            "GATEWAY_API_KEY_PEPPER": self.pepper,
            "GATEWAY_STATE_DIR": str(self.workdir / "state"),
            "BENTOML_HOME": str(self.workdir / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "GATEWAY_RATE_PER_S": "100000",
            "GATEWAY_RATE_BURST": "100000",
            **self._gateway_env_extra,
        }
        return env

    def start_gateway(self, env: dict[str, str] | None = None) -> None:
        """Start (or, with new settings, restart) the gateway and wait for ``/readyz``."""
        if env is not None:
            self.stop_gateway()
            self._gateway_env_extra = dict(env)
        cmd = visionserve_command("gateway", "--host", "127.0.0.1", "--port", str(self.gateway_port),
                                  "--workers", str(self.workers))  # fmt: skip
        self._gateway = spawn(cmd, log_path=self.workdir / "gateway.log", env=self.env, cwd=PROJECT_ROOT)
        wait_until_ready(self._gateway, lambda: http_ok(self.gateway_url + "/readyz"),
                         timeout_s=GATEWAY_START_TIMEOUT_S, what="the gateway", log_tail=self.log_tail)  # fmt: skip

    def stop_gateway(self) -> None:
        if self._gateway is not None:
            stop_group(self._gateway, timeout_s=30)
            self._gateway = None

    def gateway_alive(self) -> bool:
        return self._gateway is not None and self._gateway.poll() is None

    def stop(self) -> None:
        """Stop everything this stack started, by process group; idempotent."""
        self.stop_gateway()
        if self.triton is not None:
            self.triton.stop()
            self.triton = None
        self.redis.stop()
        self.postgres.remove()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- keys ------------------------------------------------------------------------------
    def key(self, name: str | None = None, role: str = "user") -> str:
        """A new API key for user ``name`` (a unique one when None)."""
        return create_key(self.env, name or f"drill-{uuid.uuid4().hex[:8]}", role)

    def revoke(self, name: str) -> None:
        run = run_visionserve("keys", "revoke", "--name", name, env=self.env)
        if run.returncode != 0:
            raise ServerError(f"`visionserve keys revoke` failed: {run.stderr[-800:]}")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "gateway.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def client(self, key: str | None = None, timeout_s: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.gateway_url, headers=headers, timeout=timeout_s)

    def processes(self) -> list[int]:
        """Pids of every process of the stack (gateway workers, Triton and its stubs, Redis, PostgreSQL)."""
        return [pid for pids in self.process_roles().values() for pid in pids]

    def process_roles(self) -> dict[str, list[int]]:
        """The stack's pids by part, so a drill can judge ours and report PostgreSQL apart.

        Parts: ``gateway`` (server, workers, decode processes), ``triton`` (tritonserver and
        its python stubs), ``redis`` and ``postgres`` (postmaster, backends).
        """
        import psutil

        roots = {
            "gateway": self.gateway_pid,
            "triton": self.triton.pid if self.triton else None,
            "redis": self.redis.pid,
            "postgres": self.postgres.pid,
        }
        roles: dict[str, list[int]] = {}
        for role, pid in roots.items():
            roles[role] = []
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                roles[role] = [root.pid, *(c.pid for c in root.children(recursive=True))]
        return roles
