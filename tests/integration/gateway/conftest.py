"""Real gateways for the integration tests: ``visionserve gateway`` processes on free ports.

Each ``GatewayProcess`` is the real command (BentoML workers and all) in its own process
group, with its own state directory, BentoML home and database, stopped by group. Keys are
made with the real ``visionserve keys`` command against the same database and pepper.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.launcher import TritonServer
from tests.fixtures.services import free_tcp_port
from tests.fixtures.triton import serving
from visionserve.catalog import load_catalog
from visionserve.settings import PROJECT_ROOT

START_TIMEOUT_S = 90.0

pytestmark = pytest.mark.integration


class GatewayProcess:
    """One ``visionserve gateway`` (real process) with its environment.

    Args:
        directory: its state directory (pepper, SQLite default, BentoML home, log).
        triton_url: Triton's gRPC address.
        env: more environment (REDIS_URL, DATABASE_URL, GATEWAY_* limits).
        workers: gateway worker processes.
    """

    def __init__(self, directory: Path, triton_url: str, env: dict[str, str] | None = None, workers: int = 1):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_tcp_port()
        self.workers = workers
        self.env = {
            **os.environ,
            "TRITON_URL": triton_url,
            "GATEWAY_STATE_DIR": str(self.directory / "state"),
            "BENTOML_HOME": str(self.directory / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "GATEWAY_AUTH_CACHE_TTL_S": "0",
            "GATEWAY_RATE_PER_S": "1000",
            "GATEWAY_RATE_BURST": "1000",
            "GATEWAY_ANONYMOUS_BURST": "1000",
            "GATEWAY_ANONYMOUS_RATE_PER_S": "1000",
            **(env or {}),
        }
        self.env.pop("DATABASE_URL", None) if env is None or "DATABASE_URL" not in env else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "gateway.log"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def start(self, *, wait_ready: bool = True) -> GatewayProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the process
        cmd = [sys.executable, "-m", "visionserve", "gateway", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", str(self.workers)]  # fmt: skip
        self._proc = subprocess.Popen(cmd, env=self.env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        path = "/readyz" if wait_ready else "/livez"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"gateway exited ({self._proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"gateway not {path} within {START_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def key(self, name: str | None = None, role: str = "user") -> str:
        """A new API key made with the real CLI (unique user name unless given)."""
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        run = subprocess.run([sys.executable, "-m", "visionserve", "keys", "create", "--name", name, "--role", role],
                             env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout.strip().splitlines()[-1]

    def keys_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "visionserve", "keys", *args], env=self.env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_gateway(directory: Path, triton_url: str, **kwargs: object) -> Iterator[GatewayProcess]:
    wait_ready = bool(kwargs.pop("wait_ready", True))
    gateway = GatewayProcess(directory, triton_url, **kwargs)  # type: ignore[arg-type]
    try:
        gateway.start(wait_ready=wait_ready)
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def anyio_backend() -> str:
    """Asyncio only: the gateway's clients (redis.asyncio, grpc.aio) run on it, not on trio."""
    return "asyncio"


@pytest.fixture(scope="session")
def gateway(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The main gateway: embedded defaults (SQLite, in-process cache and limits) on the session Triton."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), triton.grpc_url) as gw:
        yield gw


@pytest.fixture(scope="session")
def shared_gateways(triton, redis_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Two gateways (two workers each) sharing Redis and PostgreSQL, with a tight rate limit."""
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": postgres_url,
        "GATEWAY_API_KEY_PEPPER": "shared-test-pepper",
        "GATEWAY_RATE_PER_S": "0.05",
        "GATEWAY_RATE_BURST": "8",
    }
    base = tmp_path_factory.mktemp("shared")
    with running_gateway(base / "a", triton.grpc_url, env=env, workers=2) as a:
        with running_gateway(base / "b", triton.grpc_url, env=env, workers=1) as b:
            yield a, b


_SEEDS = iter(range(10_000, 10**9))


@contextlib.contextmanager
def own_triton_of(repository: Path, model: str, log_dir: Path) -> Iterator[TritonServer]:
    """A tritonserver of the test's own, serving ``model`` alone (ensemble, preprocessing, backbone), stopped after.

    For tests that stop it, publish into its repository or otherwise must not share one.
    """
    spec = load_catalog().get(model)
    models = [spec.ensemble, spec.preprocess_model, spec.backbone_model()]
    with serving(repository, log_dir, models, exit_timeout_s=1) as server:
        yield server


def unique_jpeg(size: tuple[int, int] = (160, 120)) -> bytes:
    """A JPEG nobody has sent before in this session (so neither cache can answer it)."""
    import io

    from tests.fixtures.corpus import photo

    buf = io.BytesIO()
    photo(size, seed=next(_SEEDS)).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def ensemble_counts(triton_url: str, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) of an ensemble, from Triton's statistics extension."""
    from client import TritonClient

    with TritonClient(triton_url) as client:
        stats = client.statistics(model)["model_stats"]
    total = [0, 0]
    for entry in stats:
        total[0] += int(entry["inference_count"])
        total[1] += int(entry["execution_count"])
    return total[0], total[1]
