"""Run the bundled tritonserver on a model repository, as a context manager.

    with TritonServer(repository, http_port=free_port(), ...) as server:
        requests.get(f"http://{server.http_url}/v2/health/ready")

``start()`` returns only when the server *and every requested model* are ready, or raises
with the server's log tail. ``stop()`` ends the whole process group (server and python
stubs), waits, escalates to SIGKILL, and removes the backend directory and shared-memory
regions the run created, so nothing outlives the object.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serving.backend_dir import assemble_backend_directory
from serving.install import check_stub_numpy, find_install, server_environment
from serving.model_config import ensemble_steps, item_bytes, list_models, read_model_config
from serving.processes import Lifecycle, http_ok, spawn, stop_group, wait_until_ready
from visionserve.catalog import Catalog
from visionserve.errors import RepositoryError, ServerError
from visionserve.release import read_labels
from visionserve.settings import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT, PROJECT_ROOT

__all__ = [
    "DEFAULT_CACHE_SIZE_BYTES",
    "DEFAULT_REPOSITORY_KEY_PATH",
    "LOOPBACK",
    "MIN_SHM_BYTES",
    "REPOSITORY_KEY_ENV",
    "REPOSITORY_KEY_HEADER",
    "TritonServer",
    "default_models",
    "free_port",
    "free_ports",
    "is_loopback",
    "read_repository_key",
    "repository_key_headers",
    "shm_byte_sizes",
    "write_repository_key",
]

DEFAULT_CACHE_SIZE_BYTES = 256 * 2**20
#: Where Triton listens unless told otherwise: nothing off this machine reaches it (issue 12).
LOOPBACK = "127.0.0.1"
#: The header that unlocks Triton's model-repository API when it is restricted. Over HTTP it is
#: sent as is; over gRPC Triton expects it as ``triton-grpc-protocol-<header>`` metadata.
REPOSITORY_KEY_HEADER = "visionserve-repository-key"
#: The environment variable a publisher reads the key from (before the state file).
REPOSITORY_KEY_ENV = "VISIONSERVE_TRITON_REPOSITORY_KEY"
#: The file ``visionserve serve`` writes the key to (0600), for ``make export`` on the same machine.
DEFAULT_REPOSITORY_KEY_PATH = PROJECT_ROOT / ".state" / "triton_repository_key"
#: The python backend's own default region size (1 MiB); never go below it.
MIN_SHM_BYTES = 2**20
#: Extra seconds after --exit-timeout-secs before the process group is SIGKILLed.
KILL_GRACE_S = 10.0
_LOG_TAIL_LINES = 40
_POLL_INTERVAL_S = 0.25
#: Log lines that every CPU-only start prints; they are not why a start failed.
_HARMLESS = ("CudaDriverHelper has not been initialized", "Failed to initialize NVML", "DCGM")


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it).

    Another process may take it before you bind it: use it at once.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all sockets are held until every port is picked)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _port_taken(port: int) -> bool:
    # SO_REUSEADDR: a port in TIME_WAIT from a previous run is free to Triton too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def is_loopback(address: str) -> bool:
    """Whether ``address`` is only reachable from this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def write_repository_key(path: Path = DEFAULT_REPOSITORY_KEY_PATH) -> str:
    """A new random repository-API key, written to ``path`` with mode 0600 (replacing any old one).

    Written to a temporary file created 0600 and renamed over ``path``, so the key is never
    readable by others, not even for a moment, and a reader never sees half a key.
    """
    import secrets

    key = secrets.token_urlsafe(32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


def read_repository_key(path: Path = DEFAULT_REPOSITORY_KEY_PATH) -> str | None:
    """The repository-API key a publisher sends: ``$VISIONSERVE_TRITON_REPOSITORY_KEY``, else ``path``'s text."""
    key = os.environ.get(REPOSITORY_KEY_ENV, "").strip()
    if key:
        return key
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def repository_key_headers(key: str | None, protocol: str = "grpc") -> dict[str, str]:
    """The request headers that carry ``key`` to a restricted repository API (none when ``key`` is None)."""
    if not key:
        return {}
    name = f"triton-grpc-protocol-{REPOSITORY_KEY_HEADER}" if protocol == "grpc" else REPOSITORY_KEY_HEADER
    return {name: key}


def default_models(catalog: Catalog, repository: Path, names: str | list[str] | None = None) -> list[str]:
    """What ``make serve`` loads: each catalog ensemble and the models its served version runs.

    While a release runs (``release.json`` names a canary) the canary ensemble and its steps
    are loaded too, so a restarted server serves both labels.

    A CPU-profile version runs its preprocess model and default backbone, a GPU-profile version
    its GPU model: the ensemble's config.pbtxt in ``repository`` says which. An entry that was
    never exported (or whose config has no steps) contributes the CPU names, so a start fails
    naming what to export.

    Args:
        catalog: the model catalog.
        repository: the model repository.
        names: catalog entries (comma-separated or a list); every entry when None.

    Returns:
        Triton model names, ensemble first for every entry.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    wanted = [n for n in names or [] if n != "all"]
    committees = [c for c in catalog.committees.values() if not wanted or c.name in wanted]
    models: list[str] = []
    for spec in catalog.select([n for n in wanted if n not in catalog.committees] or None):
        try:
            steps = ensemble_steps(repository, spec.ensemble)
        except RepositoryError:
            steps = []
        steps = steps or [spec.preprocess_model, spec.backbone_model()]  # not exported, or not an ensemble
        models += [spec.ensemble, *steps]
        for view in spec.tta:  # the TTA ensembles the served version has
            if (repository / spec.tta_ensemble(view) / "config.pbtxt").is_file():
                models += [spec.tta_ensemble(view), *ensemble_steps(repository, spec.tta_ensemble(view))]
        labels = read_labels(repository, spec.ensemble)
        if labels is not None and labels.active:  # a release is running: its canary pipeline too
            models += [spec.canary_ensemble, *ensemble_steps(repository, spec.canary_ensemble)]
    for committee in committees:  # exported ones: each member's pinned pipeline and the mean
        if (repository / committee.ensemble / "config.pbtxt").is_file():
            models += [committee.ensemble, *ensemble_steps(repository, committee.ensemble)]
    return list(dict.fromkeys(models))


def shm_byte_sizes(repository: Path, models: Sequence[str]) -> tuple[int, int]:
    """``shm-default-byte-size`` and ``shm-growth-byte-size`` for the python backend.

    Every python-backend model instance (here: every non-ensemble model) gets its own region;
    a request batch's inputs and outputs live in it at once. The default region holds a full
    batch (``max_batch_size`` x bytes of one item's inputs and outputs, from config.pbtxt, which
    the exporter derives from the catalog), so a batch never waits on growth; a growth step
    is as large, so an oversized batch (large encoded images) needs one step, not many.

    Args:
        repository: the model repository.
        models: the models that will be loaded.

    Returns:
        (default_bytes, growth_bytes), whole MiB, at least ``MIN_SHM_BYTES``.
    """
    need = 0
    for name in models:
        config = read_model_config(Path(repository) / name)
        if config.platform == "ensemble":
            continue
        need = max(need, max(1, config.max_batch_size) * item_bytes(config))
    mib = 2**20
    default = max(MIN_SHM_BYTES, math.ceil(need / mib) * mib + mib)  # + 1 MiB for message overhead
    return default, default


class TritonServer(Lifecycle):
    """The bundled tritonserver on one repository, with explicit model control and a response cache.

    Args:
        repository: the Triton model repository.
        http_port: HTTP/REST port (KServe v2).
        grpc_port: gRPC port.
        metrics_port: Prometheus metrics port.
        models: the models to load; every model in the repository when None.
        listen_address: the address HTTP, gRPC and metrics bind to; loopback by default, so only
            this machine reaches the server (``"0.0.0.0"`` opens it to the network).
        repository_api_key: when set, Triton's model-repository API (index, load, unload) over
            HTTP and gRPC answers only requests carrying this key in ``REPOSITORY_KEY_HEADER``
            (Triton's restricted-API options); None leaves it open.
        cache_size_bytes: size of the local response cache; 0 turns the cache off.
        exit_timeout_s: ``--exit-timeout-secs``: how long Triton waits for in-flight work on stop.
        log_path: where the server's log goes; a temporary file when None.
        extra_args: more tritonserver flags, e.g. ``["--log-verbose=1"]``.
    """

    def __init__(
        self,
        repository: Path,
        *,
        http_port: int = DEFAULT_HTTP_PORT,
        grpc_port: int = DEFAULT_GRPC_PORT,
        metrics_port: int = DEFAULT_METRICS_PORT,
        models: list[str] | None = None,
        listen_address: str = LOOPBACK,
        repository_api_key: str | None = None,
        cache_size_bytes: int = DEFAULT_CACHE_SIZE_BYTES,
        exit_timeout_s: int = 5,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._repository = Path(repository).resolve()
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self._requested = list(models) if models is not None else None
        self.listen_address = listen_address
        self.repository_api_key = repository_api_key
        self.cache_size_bytes = cache_size_bytes
        self.exit_timeout_s = exit_timeout_s
        self._log_path = Path(log_path) if log_path else None
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._backend_dir: Path | None = None
        self._own_log: Path | None = None
        self._shm_prefix = f"visionserve_{uuid.uuid4().hex[:12]}_"
        self.models: list[str] = []
        self.ready_time_s: float | None = None

    @classmethod
    def on_free_ports(cls, repository: Path, **kwargs: Any) -> TritonServer:
        """A server whose HTTP, gRPC and metrics ports are free right now (start it at once).

        Args:
            repository: the Triton model repository.
            **kwargs: any other argument of ``TritonServer`` but the ports.
        """
        http_port, grpc_port, metrics_port = free_ports(3)
        return cls(repository, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, **kwargs)

    # -- properties -------------------------------------------------------------------
    @property
    def repository(self) -> Path:
        return self._repository

    @property
    def _connect_host(self) -> str:
        # A wildcard bind is reached on loopback; a bind to one address only on that address.
        wildcard = self.listen_address in ("0.0.0.0", "::", "")
        return LOOPBACK if wildcard or is_loopback(self.listen_address) else self.listen_address

    @property
    def http_url(self) -> str:
        """``host:port`` as tritonclient.http expects it."""
        return f"{self._connect_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` as tritonclient.grpc expects it."""
        return f"{self._connect_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint."""
        return f"http://{self._connect_host}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        """Process id of tritonserver (also its process-group id), None when not running."""
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        """The server's log file (set once started)."""
        return self._log_path or self._own_log

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle (with-blocks: Lifecycle) -----------------------------------------------
    def start(self, ready_timeout_s: float = 120) -> None:
        """Start tritonserver and wait until it and every requested model are ready.

        Raises:
            RepositoryError: the repository is empty or lacks a requested model.
            ServerError: the binary is missing, a port is taken, the server exited, or it
                was not ready within ``ready_timeout_s`` (the log tail is in the message).
        """
        if self._proc is not None:
            raise ServerError(f"tritonserver is already running (pid {self._proc.pid})")
        install = find_install()
        self.models = self._check_repository()
        self._check_ports()
        default_shm, growth_shm = shm_byte_sizes(self._repository, self.models)
        env = server_environment(install)
        check_stub_numpy(env)
        self._backend_dir = assemble_backend_directory(install=install)
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(fd)
            self._own_log = Path(name)
        else:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)

        cmd = [
            str(install.binary),
            f"--model-repository={self._repository}",
            f"--backend-directory={self._backend_dir}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in self.models),
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--http-address={self.listen_address}",
            f"--grpc-address={self.listen_address}",
            f"--metrics-address={self.listen_address}",
            *self._restricted_api_args(),
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--strict-readiness=true",
            f"--backend-config=python,shm-default-byte-size={default_shm}",
            f"--backend-config=python,shm-growth-byte-size={growth_shm}",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
        ]
        if self.cache_size_bytes > 0:
            cmd += [
                f"--cache-directory={install.cache_dir}",
                f"--cache-config=local,size={self.cache_size_bytes}",
            ]
        cmd += list(self.extra_args)

        started = time.monotonic()
        # Its own process group: stop() ends the python stubs too.
        self._proc = spawn(cmd, log_path=self.log_path, env=env, append=False)
        atexit.register(self.stop)
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.ready_time_s = time.monotonic() - started

    def stop(self) -> None:
        """SIGTERM the process group, wait, SIGKILL if needed; clean up; idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            # Stubs left in the group (e.g. the server was SIGKILLed) go too.
            stop_group(proc, timeout_s=self.exit_timeout_s + KILL_GRACE_S, linger_s=5.0)
        for region in glob.glob(f"/dev/shm/{self._shm_prefix}*"):
            with contextlib.suppress(OSError):
                os.unlink(region)
        if self._backend_dir is not None:
            shutil.rmtree(self._backend_dir, ignore_errors=True)
            self._backend_dir = None

    # -- helpers ------------------------------------------------------------------------
    def _restricted_api_args(self) -> list[str]:
        # 2.51's syntax is <apis>:<header>=<value> (its --help text says "," but rejects it).
        if not self.repository_api_key:
            return []
        rule = f"model-repository:{REPOSITORY_KEY_HEADER}={self.repository_api_key}"
        return [f"--http-restricted-api={rule}", f"--grpc-restricted-protocol={rule}"]

    def _check_repository(self) -> list[str]:
        available = list_models(self._repository)
        if not available:
            raise RepositoryError(f"the model repository {self._repository} is empty: run `make export`")
        wanted = available if self._requested is None else self._requested
        missing = [m for m in wanted if m not in available]
        if missing:
            raise RepositoryError(
                f"not in the model repository {self._repository}: {', '.join(missing)} "
                f"(it has: {', '.join(available)}); run `make export` to write them"
            )
        return list(dict.fromkeys(wanted))

    def _check_ports(self) -> None:
        ports = {"HTTP": self.http_port, "gRPC": self.grpc_port, "metrics": self.metrics_port}
        if len(set(ports.values())) != len(ports):
            raise ServerError(f"the HTTP, gRPC and metrics ports must differ, got {ports}")
        for what, port in ports.items():
            if _port_taken(port):
                raise ServerError(
                    f"{what} port {port} is already in use (another tritonserver?): stop that "
                    f"process or choose another port"
                )

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._proc is not None
        pending = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in self.models)]

        def ready() -> bool:
            pending[:] = [p for p in pending if not http_ok(f"http://{self.http_url}{p}")]
            return not pending

        def detail() -> str:
            return f"(still waiting on {', '.join(pending)})\n{self.log_tail()}"

        wait_until_ready(
            self._proc, ready, timeout_s=timeout_s, what="tritonserver", poll_s=_POLL_INTERVAL_S, log_tail=detail
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the server log, error lines first, for error messages."""
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").splitlines()
        errors = [
            line
            for line in text
            if (line.startswith("E") or "failed to load" in line) and not any(h in line for h in _HARMLESS)
        ]
        head = ["errors:", *errors[-10:], ""] if errors else []
        return "\n".join([*head, f"log tail ({path}):", *text[-lines:]])
