"""`visionserve up`: tritonserver + gateway from one command; SIGTERM stops both, leaving nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from serving.launcher import free_ports
from tests.fixtures.corpus import photo
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_serves_and_shuts_down_cleanly(exported_repository: Path, tmp_path: Path) -> None:
    gw_port, http_port, grpc_port, metrics_port = free_ports(4)
    env = {**os.environ, "GATEWAY_STATE_DIR": str(tmp_path / "state"), "BENTOML_HOME": str(tmp_path / "bentoml")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    cmd = [sys.executable, "-m", "visionserve", "up", "--repository", str(exported_repository), "--models",
           "resnet18", "--host", "127.0.0.1", "--port", str(gw_port), "--http-port", str(http_port),
           "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
           "--repository-key-file", str(tmp_path / "repository_key")]  # fmt: skip
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{gw_port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.5)
        assert ready, (tmp_path / "up.log").read_text()[-4000:]
        family = psutil.Process(proc.pid).children(recursive=True)
        assert any("tritonserver" in " ".join(p.cmdline()) for p in family)
        keys = subprocess.run([sys.executable, "-m", "visionserve", "keys", "create", "--name", "up-user"],
                              env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)  # fmt: skip
        key = keys.stdout.strip().splitlines()[-1]
        import io

        buf = io.BytesIO()
        photo((128, 96), seed=5).save(buf, "PNG")
        r = httpx.post(f"http://127.0.0.1:{gw_port}/v1/classify", headers={"Authorization": f"Bearer {key}"},
                       files={"image": ("a.png", buf.getvalue())}, data={"model": "resnet18"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "resnet18" and r.json()["version"] == 1
        _repository_api_is_restricted_and_the_key_publishes(tmp_path / "repository_key", http_port, grpc_port)
        r = httpx.post(f"http://127.0.0.1:{gw_port}/v1/classify", headers={"Authorization": f"Bearer {key}"},
                       files={"image": ("b.png", buf.getvalue())}, data={"model": "resnet18"}, timeout=60)  # fmt: skip
        assert r.status_code == 200 and r.json()["version"] == 1, r.text  # the gateway kept serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert alive == [], [p.cmdline() for p in alive]
    for port in (gw_port, http_port, grpc_port, metrics_port):
        assert not _port_open(port), port
    assert "visionserve up: stopped" in (tmp_path / "up.log").read_text()


def _repository_api_is_restricted_and_the_key_publishes(key_file: Path, http_port: int, grpc_port: int) -> None:
    """Finding: `make up` left Triton's repository API open (the gateway polled its index).

    Now the gateway is ready without it (it learns versions from configs and readiness), the
    index and load calls need the key written 0600, and what publishing sends works with it.
    """
    from export.publish import TritonControl
    from visionserve.errors import ServerError

    assert key_file.stat().st_mode & 0o777 == 0o600
    refused = httpx.post(f"http://127.0.0.1:{http_port}/v2/repository/index", json={}, timeout=10)
    assert refused.status_code == 403, refused.text
    os.environ.pop("VISIONSERVE_TRITON_REPOSITORY_KEY", None)
    anonymous = TritonControl(f"127.0.0.1:{grpc_port}", key="not-the-key")
    try:
        with pytest.raises(ServerError, match="restricted"):
            anonymous.loaded()
    finally:
        anonymous.close()
    control = TritonControl(f"127.0.0.1:{grpc_port}", key=key_file.read_text().strip())
    try:
        assert "resnet18" in control.loaded()
        control.load("resnet18")  # what `make export` does to switch live: a reload, here of the same version
        assert control.ready("resnet18", 1)
    finally:
        control.close()
