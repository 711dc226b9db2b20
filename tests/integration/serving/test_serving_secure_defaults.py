"""Secure defaults of ``visionserve serve`` (issue 12 point 4), against the real tritonserver.

By default Triton binds HTTP, gRPC and metrics to 127.0.0.1 only; ``--repository-api
restricted`` makes its model-repository API refuse callers without the key, which the
launcher writes 0600 under the state directory and ``TritonControl`` (publishing) sends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from export.publish import TritonControl
from serving.launcher import REPOSITORY_KEY_ENV, REPOSITORY_KEY_HEADER, free_ports, is_loopback
from tests.integration.serving.tiny_models import ONNX, write_onnx
from visionserve.errors import ServerError
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-entry catalog ``tinynet`` and a repository of three copies of the tiny ONNX model."""
    base = tmp_path_factory.mktemp("secure")
    onnx_repository = base / "onnx"
    write_onnx(onnx_repository)
    raw = yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())
    entry = next(iter(raw["models"].values()))
    raw["models"] = {"tinynet": {**entry, "formats": [entry["serve_format"]]}}
    raw.pop("committees", None)  # their members are not in this catalog
    catalog = base / "models.yaml"
    catalog.write_text(yaml.safe_dump(raw))
    repository = base / "repository"
    for name in ("tinynet", "tinynet_preprocess", f"tinynet_{entry['serve_format']}"):
        shutil.copytree(onnx_repository / ONNX.name, repository / name)
        config = repository / name / "config.pbtxt"
        config.write_text(config.read_text().replace(f'name: "{ONNX.name}"', f'name: "{name}"'))
    return catalog, repository


@contextlib.contextmanager
def _serve(tiny: tuple[Path, Path], tmp_path: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    catalog, repository = tiny
    ports = free_ports(3)
    command = [
        sys.executable, "-m", "visionserve.cli", "serve", "--repository", str(repository),
        "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
        "--log-file", str(tmp_path / "tritonserver.log"), "--exit-timeout", "1", *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != REPOSITORY_KEY_ENV} | {"VISIONSERVE_CATALOG": str(catalog)}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("Ctrl-C") or not line:
                break
        assert lines[-1].startswith("Ctrl-C"), "".join(lines)
        yield proc, ports
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _listening(root_pid: int) -> dict[int, str]:
    """Map port -> address of every TCP socket the process tree under ``root_pid`` listens on."""
    found: dict[int, str] = {}
    root = psutil.Process(root_pid)
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found[conn.laddr.port] = conn.laddr.ip
    return found


def _http_index(port: int, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/repository/index", data=b"{}", headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_listens_on_loopback_only_by_default(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    with _serve(tiny, tmp_path) as (proc, ports):
        listening = _listening(proc.pid)
        assert set(ports) <= set(listening), listening
        for port in ports:
            address = listening[port].removeprefix("::ffff:")  # gRPC binds the v4-mapped form
            assert is_loopback(address), f"port {port} listens on {listening[port]}"
        # Loopback only: the repository API stays open to local tools (the gateway's index poll).
        assert _http_index(ports[0], {}) == 200


def test_restricted_repository_api_refuses_callers_without_the_key(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "triton_repository_key"
    with _serve(tiny, tmp_path, "--repository-api", "restricted", "--repository-key-file", str(key_file)) as (
        _proc,
        ports,
    ):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) >= 32

        # HTTP: refused without the header, answered with it.
        assert _http_index(ports[0], {}) == 403
        assert _http_index(ports[0], {REPOSITORY_KEY_HEADER: "wrong"}) == 403
        assert _http_index(ports[0], {REPOSITORY_KEY_HEADER: key}) == 200

        # gRPC: a bare client can neither list nor unload; inference metadata stays open.
        url = f"127.0.0.1:{ports[1]}"
        bare = grpcclient.InferenceServerClient(url)
        try:
            with pytest.raises(InferenceServerException, match="restricted"):
                bare.get_model_repository_index()
            with pytest.raises(InferenceServerException, match="restricted"):
                bare.unload_model("tinynet")
            assert bare.is_model_ready("tinynet")
            assert bare.get_model_metadata("tinynet").name == "tinynet"
        finally:
            bare.close()

        # Publishing (TritonControl) without the key says why; with it, it loads.
        control = TritonControl(url, key="not-the-key")
        try:
            with pytest.raises(ServerError, match=REPOSITORY_KEY_ENV):
                control.loaded()
        finally:
            control.close()
        control = TritonControl(url, key=key)
        try:
            assert "tinynet" in control.loaded()
            control.load("tinynet")
            assert control.ready("tinynet")
        finally:
            control.close()
