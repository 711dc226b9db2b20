"""The chart's way of giving the stock Triton image extra Python packages works on a real tritonserver.

The python backend's stub embeds an isolated interpreter: PYTHONPATH is ignored, and the
interpreter's prefix comes from the ``python3`` first on PATH. The chart therefore runs, in
an init container, a script that builds a ``--system-site-packages`` venv and pip-installs
the pinned packages into it, and starts Triton with that venv first on PATH. This test runs
the *rendered* script and command: Debian's system Python 3.11 stands in for the NGC image's
system Python, and a locally built wheel for Pillow (no network).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from helm.chart import render

pytestmark = pytest.mark.integration

SYSTEM_PYTHON = Path("/usr/bin/python3.11")
SYSTEM_LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
CHART_VENV = "/opt/visionserve/venv"

PROBE_CONFIG = """name: "probe"
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

PROBE_MODEL = """import json, sys
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        import vsprobe
        info = {"prefix": sys.prefix, "probe": vsprobe.__file__, "numpy": np.__file__}
        out = np.array([json.dumps(info).encode()], dtype=np.object_)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", out)]) for _ in requests]
"""


def _wheel(directory: Path) -> Path:
    """A minimal valid wheel ``vsprobe-1.0`` (pure Python), built without network or build tools."""
    files = {
        "vsprobe/__init__.py": b"VERSION = '1.0'\n",
        "vsprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: vsprobe\nVersion: 1.0\n",
        "vsprobe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("vsprobe-1.0.dist-info/RECORD,,")
    path = directory / "vsprobe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("vsprobe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture(scope="module")
def triton_install():
    if not SYSTEM_PYTHON.exists() or not list(SYSTEM_LIBDIR.glob("libpython3.11.so*")):
        pytest.skip("needs Debian's python3.11 and libpython3.11 to stand in for the NGC image's Python")
    from serving.install import find_install

    try:
        return find_install()
    except Exception as exc:  # noqa: BLE001 - no bundled tritonserver: nothing to test against
        pytest.skip(f"bundled tritonserver not available: {exc}")


def _install_packages(init: list[str], venv: Path, tmp_path: Path) -> Path:
    """Run the chart's init script on Debian's Python with a local wheel index; the venv's site-packages."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    # The image's "system": Debian's python3 and a pip3 (this venv's pip, same Python version).
    system_bin = tmp_path / "system-bin"
    system_bin.mkdir()
    (system_bin / "python3").symlink_to(SYSTEM_PYTHON)
    (system_bin / "pip3").symlink_to(Path(sys.executable).with_name("pip3"))
    env = {
        "PATH": f"{system_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
    }
    done = subprocess.run(init, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    site = next(venv.glob("lib/python3.11/site-packages"))
    assert (site / "vsprobe" / "__init__.py").exists()
    # The NGC image has numpy system-wide; Debian's Python does not: lend it this venv's.
    numpy_site = Path(__import__("numpy").__file__).parent.parent
    (site / "system-numpy.pth").write_text(f"{numpy_site}\n")
    return site


def _probe_repository(root: Path) -> Path:
    """A repository of one python model that reports the stub's prefix and where ``vsprobe`` came from."""
    (root / "probe" / "1").mkdir(parents=True)
    (root / "probe" / "config.pbtxt").write_text(PROBE_CONFIG)
    (root / "probe" / "1" / "model.py").write_text(PROBE_MODEL)
    return root


def _ask_the_probe(command: list[str], triton_install, repo: Path, tmp_path: Path) -> dict:  # noqa: ANN001
    """Start tritonserver with the rendered command (PYTHONPATH set, to show it is ignored); the probe's answer."""
    from serving.backend_dir import assemble_backend_directory
    from serving.launcher import free_ports
    from serving.processes import http_ok, spawn, stop_group, wait_until_ready

    backends = assemble_backend_directory(tmp_path / "backends", triton_install)
    http, grpc, metrics = free_ports(3)
    args = [
        f"--model-repository={repo}",
        f"--backend-directory={backends}",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
        "--model-control-mode=explicit",
        "--load-model=probe",
        "--exit-timeout-secs=2",
    ]
    server_env = {
        "PATH": f"{triton_install.binary.parent}:/usr/bin:/bin",
        "LD_LIBRARY_PATH": f"{SYSTEM_LIBDIR}:{triton_install.lib_dir}",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(tmp_path / "ignored"),  # the stub ignores it: the venv must do the work
    }
    log = tmp_path / "triton.log"
    proc = spawn(command + args, log_path=log, env=server_env, append=False)
    try:
        ready = f"http://127.0.0.1:{http}/v2/health/ready"
        wait_until_ready(proc, lambda: http_ok(ready, timeout_s=1), timeout_s=90, what="tritonserver",
                         poll_s=0.3, log_tail=lambda: log.read_text()[-3000:])  # fmt: skip
        # `exec`: tritonserver itself is the container's main process and gets SIGTERM.
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "tritonserver"
        body = json.dumps({"inputs": [{"name": "IN", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/v2/models/probe/infer",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(json.loads(resp.read())["outputs"][0]["data"][0])
    finally:
        stop_group(proc, timeout_s=15)
        shutil.rmtree(backends, ignore_errors=True)


def test_rendered_init_script_and_command_give_the_stub_the_packages(triton_install, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    rendered = render({"triton": {"pythonPackages": {"packages": ["vsprobe==1.0"]}}})
    pod = rendered.one("Deployment", "triton")["spec"]["template"]["spec"]
    init = [arg.replace(CHART_VENV, str(venv)) for arg in pod["initContainers"][0]["command"]]
    command = [arg.replace(CHART_VENV, str(venv)) for arg in pod["containers"][0]["command"]]
    site = _install_packages(init, venv, tmp_path)
    info = _ask_the_probe(command, triton_install, _probe_repository(tmp_path / "repo"), tmp_path)
    assert info["prefix"] == str(venv)
    assert info["probe"].startswith(str(site))
