"""Zero-downtime publish and rollback against a real tritonserver, and no stale cached answer.

A client loops on the ensemble (one repeated image, so Triton's response cache is hit, and
fresh images) while `visionserve export` publishes version 2 and `visionserve rollback` goes
back to 1. Not one request may fail, and once the command returns, every answer — cached or
not — must be the new version's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from client import TritonClient
from export.runners import load_runner
from serving.launcher import TritonServer
from visionserve.catalog import load_catalog
from visionserve.samples import sample_images
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

SPEC = load_catalog().get("resnet18")
IMAGES = [s.data for s in sample_images(6, seed=4242)]
REPEATED = IMAGES[0]


class Loop(threading.Thread):
    """Classify continuously; record (time, version, top-5 indices) or the error."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop_flag = url, threading.Event()
        self.results: list[tuple[float, str, tuple[int, ...], bool]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with TritonClient(self.url, protocol="grpc") as triton:
            i = 0
            while not self.stop_flag.is_set():
                image = REPEATED if i % 2 == 0 else IMAGES[1 + i % 5]
                try:
                    result = triton.classify(image, SPEC.ensemble, top_k=5)
                    self.results.append(
                        (
                            time.monotonic(),
                            result.version,
                            tuple(p.index for p in result.predictions),
                            image is REPEATED,
                        )
                    )
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                i += 1

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(timeout=30)


def _reference_top5(repo: Path, version: int) -> tuple[int, ...]:
    run = load_runner("onnx", repo / SPEC.backbone_model("onnx") / str(version) / "model.onnx")
    probs = run(SPEC.pipeline().batch([REPEATED]))[0]
    return tuple(int(i) for i in np.argsort(-probs)[:5])


def _cli(*args: str) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "visionserve", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture
def server(fresh_repository: Path, tmp_path: Path):  # noqa: ANN201
    models = [SPEC.ensemble, SPEC.preprocess_model, SPEC.backbone_model()]
    srv = TritonServer.on_free_ports(
        fresh_repository, models=models, exit_timeout_s=2, log_path=tmp_path / "triton.log"
    )
    srv.start(ready_timeout_s=180)
    yield srv
    srv.stop()


def _switch_under_load(srv: TritonServer, *cli_args: str) -> tuple[Loop, float]:
    loop = Loop(srv.grpc_url)
    loop.start()
    time.sleep(1.0)
    _cli(*cli_args, "--repository", str(srv.repository), "--server-url", srv.grpc_url)
    done = time.monotonic()
    time.sleep(1.5)
    loop.finish()
    return loop, done


def test_publish_and_rollback_without_failures_or_stale_answers(server: TritonServer, tmp_path: Path) -> None:
    import torch
    import torchvision

    repo = server.repository
    v1 = _reference_top5(repo, 1)
    torch.manual_seed(99)  # a different, real checkpoint: v2 must answer differently
    ckpt = tmp_path / "v2.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt)

    loop, done = _switch_under_load(server, "export", "--model", SPEC.name, "--weights", str(ckpt))
    v2 = _reference_top5(repo, 2)
    assert v2 != v1, "the test needs a version whose answer differs"
    assert loop.errors == [], loop.errors[:3]
    before = [r for r in loop.results if r[0] < done - 5]
    after = [r for r in loop.results if r[0] > done]
    assert before and all(r[1] == "1" for r in before[:3])
    assert len(after) > 5 and any(r[3] for r in after)
    assert {r[1] for r in after} == {"2"}
    assert {r[2] for r in after if r[3]} == {v2}, "a cached answer of version 1 survived the publish"

    loop, done = _switch_under_load(server, "rollback", "--model", SPEC.name, "--version", "1")
    assert loop.errors == [], loop.errors[:3]
    after = [r for r in loop.results if r[0] > done]
    assert len(after) > 5 and {r[1] for r in after} == {"1"}
    assert {r[2] for r in after if r[3]} == {v1}

    with TritonClient(server.grpc_url) as triton:
        assert triton.is_ready(SPEC.ensemble)
        assert triton.classify(REPEATED, SPEC.ensemble, top_k=5).version == "1"
