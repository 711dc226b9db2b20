"""Start and stop of the real tritonserver: nothing outlives it, failures say why.

Covers ``TritonServer`` (start, stop, load failure) and ``visionserve serve`` under SIGTERM.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

from serving.launcher import TritonServer, free_ports
from tests.integration.serving.tiny_models import ONNX, write_onnx
from visionserve.errors import ServerError
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def onnx_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("onnx_repository")
    write_onnx(repository)
    return repository


def _gone(pids: set[int]) -> set[int]:
    """The pids in ``pids`` that still run (zombies count as gone: they hold no resources)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _port_free(port: int) -> bool:
    return all(c.laddr.port != port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN)


def test_stop_leaves_no_process_region_or_directory(onnx_repository: Path, tmp_path: Path) -> None:
    ports = free_ports(3)
    server = TritonServer(
        onnx_repository, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2], exit_timeout_s=2
    )
    server.start()
    assert server.pid is not None
    children = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
    assert children, "expected python stub processes"
    backend_dir = server._backend_dir
    assert backend_dir is not None and (backend_dir / "onnxruntime" / "model.py").exists()
    regions = glob.glob(f"/dev/shm/{server._shm_prefix}*")
    assert regions, "expected the stubs' shared-memory regions"

    pid = server.pid
    server.stop()

    assert _gone({pid, *children}) == set()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert glob.glob(f"/dev/shm/{server._shm_prefix}*") == []
    assert not backend_dir.exists()
    assert all(_port_free(p) for p in ports)
    server.stop()  # idempotent


def test_a_model_that_fails_to_load_is_reported_with_its_reason(onnx_repository: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(onnx_repository / ONNX.name, repository / ONNX.name)
    config = repository / ONNX.name / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "y"', 'name: "scores"'))
    ports = free_ports(3)
    server = TritonServer(repository, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2], exit_timeout_s=1)
    with pytest.raises(ServerError) as err:
        server.start(ready_timeout_s=60)
    message = str(err.value)
    assert "tiny_onnx" in message and "'scores'" in message and "lacks" in message
    assert server.pid is None


def _tiny_catalog(tmp_path: Path, onnx_repository: Path) -> tuple[Path, Path]:
    """A catalog with one entry ``tinynet`` and a repository holding its three model names.

    The three are copies of the tiny ONNX model: ``serve`` only needs them to load.
    """
    raw = yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())
    entry = next(iter(raw["models"].values()))
    raw["models"] = {"tinynet": {**entry, "formats": [entry["serve_format"]]}}
    raw.pop("committees", None)  # their members are not in this catalog
    catalog = tmp_path / "models.yaml"
    catalog.write_text(yaml.safe_dump(raw))
    repository = tmp_path / "repository"
    for name in ("tinynet", "tinynet_preprocess", f"tinynet_{entry['serve_format']}"):
        shutil.copytree(onnx_repository / ONNX.name, repository / name)
        config = repository / name / "config.pbtxt"
        config.write_text(config.read_text().replace(f'name: "{ONNX.name}"', f'name: "{name}"'))
    return catalog, repository


def test_serve_cli_stops_server_and_stubs_on_sigterm(onnx_repository: Path, tmp_path: Path) -> None:
    catalog, repository = _tiny_catalog(tmp_path, onnx_repository)
    http_port, grpc_port, metrics_port = free_ports(3)
    command = [
        sys.executable, "-m", "visionserve.cli", "serve", "--repository", str(repository),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
        "--log-file", str(tmp_path / "tritonserver.log"), "--exit-timeout", "1",
    ]  # fmt: skip
    env = {**os.environ, "VISIONSERVE_CATALOG": str(catalog)}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("ready in") or not line:
                break
        assert lines[-1].startswith("ready in"), "".join(lines)
        assert "tinynet_preprocess" in lines[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/tinynet/ready", timeout=5) as resp:
            assert resp.status == 200
        descendants = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert len(descendants) >= 2  # tritonserver + stubs

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert _gone(descendants) == set()
        assert _port_free(http_port) and _port_free(grpc_port)
    finally:
        if proc.poll() is None:  # the test failed half-way: stop the CLI, and what it started
            leftovers = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for child in leftovers:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                proc.kill()
                proc.wait()
