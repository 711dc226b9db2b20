"""``visionserve up`` / ``make up``: tritonserver and the gateway together, one command.

Starts the bundled tritonserver on the model repository (``serving.launcher.TritonServer``,
the catalog's default models), waits until every model is ready, then starts the gateway
(``visionserve gateway``) in its own process group pointed at that server, on embedded
defaults unless the environment says otherwise. Ctrl-C or SIGTERM stops the gateway's whole
process group (workers included), then Triton's; if either exits on its own, the other is
stopped too and the exit code says which.

Triton's model-repository API (index, load, unload) is restricted by default: the gateway in
front never needs it (it learns versions from model configs and readiness), and the key that
unlocks it is written to ``--repository-key-file`` (0600), where ``make export`` and
``make rollback`` (``export.publish.TritonControl``) read it to switch versions live.
``--repository-api open`` leaves it open (Triton still listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from serving.cli import repository_api_key
from serving.launcher import DEFAULT_REPOSITORY_KEY_PATH, LOOPBACK, TritonServer
from serving.processes import spawn, stop_group
from serving.stack import triton_models
from visionserve.catalog import load_catalog
from visionserve.settings import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    repository_path,
)

__all__ = ["main"]

GATEWAY_STOP_TIMEOUT_S = 20.0
#: How long the gateway's workers may take to finish after its main process has exited.
GATEWAY_LINGER_S = 5.0
#: Niceness of the gateway beside a local tritonserver: under CPU contention the engine runs first
#: (measured on 2 cores: see docs/decisions.md). Separate machines or pods need nothing of the kind.
GATEWAY_NICENESS = 5


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve up", description="Run tritonserver and the gateway together.")
    p.add_argument("--repository", default=None, help="model repository (default: model_repository/)")
    p.add_argument("--models", default="", help="comma-separated catalog models (default: all)")
    p.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT, help="gateway port")
    p.add_argument("--host", default="0.0.0.0", help="gateway address")
    p.add_argument("--workers", type=int, default=None, help="gateway worker processes")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help="Triton HTTP port")
    p.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="Triton gRPC port")
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="Triton metrics port")
    p.add_argument("--ready-timeout-s", type=float, default=600.0, help="how long Triton may take to load")
    p.add_argument(
        "--repository-api",
        choices=("restricted", "open"),
        default="restricted",
        help="Triton's model-repository API (index, load, unload): restricted (default) needs the key in "
        "--repository-key-file, which `make export` sends; open needs none",
    )
    p.add_argument(
        "--repository-key-file",
        type=Path,
        default=DEFAULT_REPOSITORY_KEY_PATH,
        help="where the repository-API key is written (mode 0600)",
    )
    return p


def main(argv: list[str]) -> int:
    """Start Triton, then the gateway; stop both on Ctrl-C / SIGTERM or when either dies."""
    args = _parser().parse_args(argv)
    repository = repository_path() if args.repository is None else Path(args.repository)
    models = triton_models(load_catalog(), repository, args.models)
    stop = threading.Event()
    serving = threading.Event()  # set once both are up: from then on a signal just ends the wait loop
    previous = _catch_signals(stop, serving)
    server = TritonServer(
        repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        models=models,
        repository_api_key=repository_api_key(args.repository_api, LOOPBACK, args.repository_key_file),
        exit_timeout_s=5,
    )
    gateway: subprocess.Popen[bytes] | None = None
    code = 130
    try:
        print(f"visionserve up: starting tritonserver ({', '.join(models)})…", flush=True)
        server.start(ready_timeout_s=args.ready_timeout_s)
        if stop.is_set():
            return 130
        restricted = f"restricted (key in {args.repository_key_file})" if server.repository_api_key else "open"
        print(
            f"visionserve up: Triton ready: HTTP {server.http_url}, gRPC {server.grpc_url}; "
            f"model-repository API {restricted}",
            flush=True,
        )
        gateway = _start_gateway(args, server)
        serving.set()
        print(
            f"visionserve up: gateway on http://{args.host}:{args.port} (docs at /, API under /v1)",
            flush=True,
        )
        code = _watch(gateway, server, stop)
    finally:
        if gateway is not None:
            stop_group(gateway, timeout_s=GATEWAY_STOP_TIMEOUT_S, linger_s=GATEWAY_LINGER_S)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("visionserve up: stopped", flush=True)
    return code


def _catch_signals(stop: threading.Event, serving: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM set ``stop`` (and interrupt a Triton start still under way); the handlers replaced."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"\nvisionserve up: {signal.Signals(signum).name}, stopping…", file=sys.stderr, flush=True)
        stop.set()
        if not serving.is_set():
            raise KeyboardInterrupt  # interrupt a Triton start that may take minutes

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def _start_gateway(args: argparse.Namespace, server: TritonServer) -> subprocess.Popen[bytes]:
    """``visionserve gateway`` in a process group of its own, pointed at ``server``."""
    env = {**os.environ, "TRITON_URL": server.grpc_url}
    # One machine, two servers: the gateway yields the cores to Triton when both want them.
    cmd = ["nice", "-n", str(GATEWAY_NICENESS), sys.executable, "-m", "visionserve", "gateway"]
    cmd += ["--host", args.host, "--port", str(args.port)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return spawn(cmd, env=env)


def _watch(gateway: subprocess.Popen[bytes], server: TritonServer, stop: threading.Event) -> int:
    """Wait until ``stop`` is set (exit 0) or either server exits (the gateway's code, or 1)."""
    while not stop.is_set():
        if gateway.poll() is not None:
            print(f"visionserve up: the gateway exited ({gateway.returncode})", file=sys.stderr)
            return gateway.returncode or 1
        if not server.running:
            print("visionserve up: tritonserver exited", file=sys.stderr)
            return 1
        stop.wait(0.5)
    return 0
