"""Short real Locust runs of every user class through `visionserve loadtest` (≤ 10 s of load each).

gRPC and HTTP users run against the session's tritonserver; the gateway user against a
local stack the command starts itself (``visionserve up``) and must stop again. Every run
must make requests for every catalog model, fresh and repeated, with no failure — and a run
whose answers are wrong, or slower than its threshold, must fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from serving.launcher import TritonServer, free_port
from visionserve.catalog import load_catalog
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

LOAD = ["--users", "3", "--spawn-rate", "3", "--duration", "6s", "--repeat-share", "0.5"]


def _loadtest(
    args: list[str], report_dir: Path, timeout_s: float = 300
) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "visionserve", "loadtest", *args, "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=timeout_s, cwd=PROJECT_ROOT,
    )  # fmt: skip
    runs = sorted(report_dir.iterdir())
    assert len(runs) == 1, (proc.stdout, proc.stderr)
    summary_path = runs[0] / "summary.json"
    assert summary_path.exists(), f"no summary; stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert (runs[0] / "locust.html").exists() and (runs[0] / "locust_stats.csv").exists()
    return proc, json.loads(summary_path.read_text())


def _assert_clean_run(
    proc: subprocess.CompletedProcess[str], summary: dict, kinds: frozenset[str] = frozenset({"fresh", "repeat"})
) -> None:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    rows = {r["name"]: r for r in summary["rows"]}
    total = rows.pop("Aggregated")
    assert total["requests"] >= 10 and total["failures"] == 0, summary
    assert summary["passed"] and not summary["failures"]
    assert {name.split()[0] for name in rows} == set(load_catalog().names)
    assert {name.split()[1] for name in rows} == kinds
    assert "PASSED" in proc.stdout


def test_grpc_user(triton: TritonServer, exported_repository: Path, tmp_path: Path) -> None:
    args = ["--target", "grpc", "--host", triton.grpc_url, "--labels-dir", str(exported_repository), *LOAD]
    _assert_clean_run(*_loadtest(args, tmp_path))


def test_http_user(triton: TritonServer, exported_repository: Path, tmp_path: Path) -> None:
    args = ["--target", "http", "--host", triton.http_url, "--labels-dir", str(exported_repository), *LOAD]
    _assert_clean_run(*_loadtest(args, tmp_path))


def _processes_using(path: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(path) in part for part in p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            pass
    return found


def test_gateway_user_on_a_local_stack_started_and_stopped_by_the_command(
    fresh_repository: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    args = ["--target", "gateway", "--repository", str(fresh_repository), *LOAD, "--video-share", "0.2"]
    proc, summary = _loadtest(args, reports)
    _assert_clean_run(proc, summary, kinds=frozenset({"fresh", "repeat", "video"}))  # videos mixed in, all checked
    assert "starting the local stack" in proc.stdout
    time.sleep(1)
    assert _processes_using(fresh_repository) == []  # up, the gateway, tritonserver and its stubs are gone


def test_wrong_answers_count_as_failures(triton: TritonServer, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    for name in load_catalog().names:  # every label off by one: each answer is now wrong
        (labels / name).mkdir(parents=True)
        (labels / name / "labels.txt").write_text("\n".join(f"not class {i + 1}" for i in range(1000)) + "\n")
    args = ["--target", "http", "--host", triton.http_url, "--labels-dir", str(labels), "--users", "1",
            "--spawn-rate", "1", "--duration", "3s"]  # fmt: skip
    proc, summary = _loadtest(args, tmp_path / "reports")
    assert proc.returncode == 1
    total = next(r for r in summary["rows"] if r["name"] == "Aggregated")
    assert total["requests"] > 0 and total["failures"] == total["requests"]
    assert all("wrong answer" in f["error"] for f in summary["failures"])
    assert "FAILED: error rate 100.00%" in proc.stderr


def test_p95_over_the_threshold_fails_the_run(triton: TritonServer, tmp_path: Path) -> None:
    args = ["--target", "grpc", "--host", triton.grpc_url, "--users", "1", "--spawn-rate", "1",
            "--duration", "3s", "--max-p95-ms", "0.01"]  # fmt: skip
    proc, summary = _loadtest(args, tmp_path)
    assert proc.returncode == 1 and not summary["passed"]
    assert "exceeds --max-p95-ms 0.01" in proc.stderr


def test_ui_serves_locusts_web_ui_and_stops_on_sigterm(triton: TritonServer, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "visionserve", "loadtest", "--ui", "--target", "grpc", "--host", triton.grpc_url,
         "--web-port", str(port), "--report-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 60, b""
        while time.monotonic() < deadline and not page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    page = resp.read()
            except OSError:
                time.sleep(0.5)
        assert b"Locust" in page
        locust = psutil.Process(proc.pid).children(recursive=True)  # Locust runs in a group of its own
        assert locust
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    gone, alive = psutil.wait_procs(locust, timeout=10)
    assert alive == []


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP port that accepts connections and reads requests but never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_http_users_give_up_after_the_request_timeout(silent_server: str, tmp_path: Path) -> None:
    args = ["--target", "http", "--host", silent_server, "--users", "2", "--spawn-rate", "2", "--duration", "5s",
            "--request-timeout-s", "1"]  # fmt: skip
    proc, summary = _loadtest(args, tmp_path)
    assert proc.returncode == 1  # every request failed
    total = next(r for r in summary["rows"] if r["name"] == "Aggregated")
    # two users for 5 s, each request abandoned after 1 s (Locust's own default would wait 60 s)
    assert 4 <= total["failures"] == total["requests"] <= 12, summary
    assert summary["failures"] and all("timed out" in f["error"].lower() for f in summary["failures"]), summary
