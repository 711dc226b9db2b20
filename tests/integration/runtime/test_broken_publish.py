"""A version that fails to load in Triton is never served, and leaves a repository that still starts.

Finding (issue 12 drills): switching to a committed version whose artifact is corrupt (truncated
model.onnx: staging and the commit marker cannot see it) left the composing configs pinning the
broken version beside the good one, so the next Triton start failed to load the pipeline, and
the failed version's preprocess instances kept running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from client import TritonClient
from drills.publish import stage_broken_version
from export.repository import read_config, served_version
from serving.launcher import TritonServer, free_ports
from visionserve.catalog import load_catalog
from visionserve.samples import sample_images
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

SPEC = load_catalog().get("resnet18")
MODELS = [SPEC.ensemble, SPEC.preprocess_model, SPEC.backbone_model()]


def _server(repo: Path, log: Path) -> TritonServer:
    http, grpc, metrics = free_ports(3)
    return TritonServer(repo, http_port=http, grpc_port=grpc, metrics_port=metrics, models=MODELS,
                        exit_timeout_s=1, log_path=log)  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "visionserve", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)  # fmt: skip


def test_a_version_that_fails_to_load_is_not_published_and_the_repository_still_starts(
    fresh_repository: Path, tmp_path: Path
) -> None:
    image = next(iter(sample_images(1, seed=3))).data
    server = _server(fresh_repository, tmp_path / "triton.log")
    server.start(ready_timeout_s=180)
    try:
        broken = stage_broken_version(fresh_repository, SPEC)
        run = _cli("rollback", "--model", SPEC.name, "--version", str(broken),
                   "--repository", str(fresh_repository), "--server-url", server.grpc_url)  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"v{broken} failed to load" in run.stderr and "v1 keeps serving" in run.stderr, run.stderr
        with TritonClient(server.grpc_url) as triton:
            assert triton.classify(image, SPEC.ensemble, top_k=1).version == "1"
            assert not triton.is_ready(SPEC.preprocess_model, broken)  # its extra instances are gone
    finally:
        server.stop()
    assert served_version(fresh_repository, SPEC) == 1
    for name in MODELS:
        assert list(read_config(fresh_repository / name / "config.pbtxt").version_policy.specific.versions) == [1]
    restarted = _server(fresh_repository, tmp_path / "triton2.log")
    restarted.start(ready_timeout_s=180)  # raised "tritonserver exited with status 1" before the fix
    try:
        run = _cli("rollback", "--model", SPEC.name, "--version", "1",
                   "--repository", str(fresh_repository), "--server-url", restarted.grpc_url)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        with TritonClient(restarted.grpc_url) as triton:
            assert triton.classify(image, SPEC.ensemble, top_k=1).version == "1"
    finally:
        restarted.stop()
