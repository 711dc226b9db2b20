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
from tests.unit.gateway.corpus import photo
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
           "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]  # fmt: skip
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
