"""``visionserve serve`` / ``make serve``: run the bundled tritonserver until Ctrl-C or SIGTERM.

By default it loads, for every catalog entry, the ensemble, its preprocessing model and the
backbone of its ``serve_format``; ``--models`` picks entries, ``--all-formats`` adds every
exported twin (SavedModel, TorchScript) of the picked entries.

Triton listens on 127.0.0.1 only unless ``--listen`` says otherwise (``--listen 0.0.0.0``
opens HTTP, gRPC and metrics to the network). ``--repository-api restricted`` (the default
whenever it listens beyond loopback) makes Triton's model-repository API (index, load,
unload) answer only callers with a key, which is written to ``.state/triton_repository_key``
(mode 0600) for ``make export`` on this machine; elsewhere, set
``VISIONSERVE_TRITON_REPOSITORY_KEY`` to it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from serving.launcher import (
    DEFAULT_CACHE_SIZE_BYTES,
    DEFAULT_REPOSITORY_KEY_PATH,
    LOOPBACK,
    REPOSITORY_KEY_ENV,
    TritonServer,
    default_models,
    is_loopback,
    write_repository_key,
)
from visionserve.catalog import Catalog, load_catalog
from visionserve.settings import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    PROJECT_ROOT,
    repository_path,
)

__all__ = ["main", "parse_bytes", "repository_api_key", "select_models"]

DEFAULT_LOG_PATH = PROJECT_ROOT / ".state" / "tritonserver.log"
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20}
_UNITS |= {"g": 10**9, "gb": 10**9, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """``"256MiB"``, ``"1GB"``, ``"512m"`` or ``"1048576"`` as a byte count.

    Raises:
        ValueError: not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match[2].lower() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 268435456, 256MiB, 1GB, 0 to turn off)")
    return int(float(match[1]) * _UNITS[unit])


def select_models(catalog: Catalog, names: str | None, all_formats: bool, repository: Path) -> list[str]:
    """Triton models to load for catalog entries ``names`` (comma-separated; all when empty).

    Each entry contributes its ensemble and the models its served version's steps run
    (``default_models``), plus every exported backbone when ``all_formats``.

    Raises:
        CatalogError: an unknown entry name.
    """
    models = default_models(catalog, repository, names)
    if all_formats:
        models += [spec.backbone_model(f) for spec in catalog.select(names) for f in spec.formats]
    return list(dict.fromkeys(models))


def repository_api_key(mode: str | None, listen: str, key_file: Path) -> str | None:
    """The key that restricts the repository API for this run, or None to leave it open.

    ``mode`` None means the default: restricted when ``listen`` reaches beyond this machine,
    open on loopback (where the gateway and ``visionserve models`` read the index without a
    key). A restricted run takes ``$VISIONSERVE_TRITON_REPOSITORY_KEY`` when set, else a new
    random key, and writes it to ``key_file`` (0600) so publishers on this machine find it.
    """
    restricted = (not is_loopback(listen)) if mode is None else mode == "restricted"
    if not restricted:
        return None
    key = os.environ.get(REPOSITORY_KEY_ENV, "").strip()
    if not key:
        return write_repository_key(key_file)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    os.chmod(key_file, 0o600)  # an older file may have had wider permissions
    return key


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve serve", description=__doc__.splitlines()[0])
    p.add_argument("--repository", type=Path, default=None, help="model repository (default: model_repository/)")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    p.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT)
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT)
    p.add_argument(
        "--listen",
        default=LOOPBACK,
        metavar="ADDRESS",
        help="address HTTP, gRPC and metrics bind to (default 127.0.0.1: this machine only; 0.0.0.0 opens it)",
    )
    p.add_argument(
        "--repository-api",
        choices=("restricted", "open"),
        default=None,
        help="restricted: the model-repository API (index, load, unload) needs the key written to "
        "--repository-key-file; default: restricted unless --listen is a loopback address",
    )
    p.add_argument(
        "--repository-key-file",
        type=Path,
        default=DEFAULT_REPOSITORY_KEY_PATH,
        help="where a restricted run writes its key (mode 0600)",
    )
    p.add_argument("--models", default=None, help="catalog entries to load, comma-separated (default: all)")
    p.add_argument(
        "--all-formats",
        action="store_true",
        help="also load every exported backbone (SavedModel, TorchScript)",
    )
    p.add_argument(
        "--cache-size",
        type=parse_bytes,
        default=DEFAULT_CACHE_SIZE_BYTES,
        help="response cache, e.g. 256MiB; 0 = off",
    )
    p.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    p.add_argument("--log-file", type=Path, default=DEFAULT_LOG_PATH, help="where the server log goes")
    p.add_argument("--exit-timeout", type=int, default=5, help="seconds Triton waits for in-flight work on stop")
    p.add_argument("--ready-timeout", type=float, default=120, help="seconds to wait for every model to load")
    return p


def main(argv: list[str]) -> int:
    """Start tritonserver, print its URLs, and serve until Ctrl-C / SIGTERM; stop everything.

    Returns:
        0 after a requested stop, 1 when the server died on its own.
    """
    args = _parser().parse_args(argv)
    repository = (args.repository or repository_path()).resolve()
    server = _server(args, repository)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set() and server.running:
            stop.set()  # serving: leave the wait loop
        else:
            raise KeyboardInterrupt  # still starting: abort start(), which stops what it began

    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        print(f"starting tritonserver on {repository} (log: {server.log_path}) ...", flush=True)
        server.start(ready_timeout_s=args.ready_timeout)
        print(_ready_message(server, args), flush=True)
        while not stop.wait(0.5):
            if not server.running:
                print(f"tritonserver exited on its own\n{server.log_tail()}", file=sys.stderr)
                return 1
        print("stopping tritonserver ...", flush=True)
        return 0
    except KeyboardInterrupt:
        print("interrupted; stopping tritonserver ...", file=sys.stderr)
        return 130
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _server(args: argparse.Namespace, repository: Path) -> TritonServer:
    """The server the options describe (not started)."""
    return TritonServer(
        repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        models=select_models(load_catalog(), args.models, args.all_formats, repository),
        listen_address=args.listen,
        repository_api_key=repository_api_key(args.repository_api, args.listen, args.repository_key_file),
        cache_size_bytes=args.cache_size,
        exit_timeout_s=args.exit_timeout,
        log_path=args.log_file,
        extra_args=[f"--log-verbose={args.log_verbose}"] if args.log_verbose else [],
    )


def _ready_message(server: TritonServer, args: argparse.Namespace) -> str:
    """What a started server prints: its models, URLs, bind address and whether the repository API is locked."""
    return (
        f"ready in {server.ready_time_s:.1f} s: {len(server.models)} models: "
        f"{', '.join(server.models)}\n"
        f"  HTTP    http://{server.http_url}\n  gRPC    {server.grpc_url}\n"
        f"  metrics {server.metrics_url}\n  listening on {args.listen}"
        + (" (this machine only)" if is_loopback(args.listen) else "")
        + (
            f"; model-repository API restricted (key in {args.repository_key_file})"
            if server.repository_api_key
            else "; model-repository API open"
        )
        + "\nCtrl-C stops it."
    )
