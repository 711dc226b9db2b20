"""The benchmark's moving parts against real servers (a smoke run, not a timed test).

The naive baseline must give the answers the in-process reference gives (same pipeline,
same artifact) — otherwise "stack vs naive" compares different work — and refuse bad input
with a 4xx; `bench serving` must measure a real Triton end to end and write its report.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import onnxruntime as ort
import pytest

from bench.ceiling import artifact_path
from bench.naive import NaiveServer
from serving.launcher import TritonServer
from visionserve.catalog import load_catalog
from visionserve.samples import sample_images
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

MODEL = "mobilenet_v2"


async def _post(url: str, data: bytes, model: str) -> tuple[int, dict]:
    form = aiohttp.FormData()
    form.add_field("model", model)
    form.add_field("top_k", "5")
    form.add_field("image", data, filename="x")
    async with aiohttp.ClientSession() as session, session.post(f"{url}/predict", data=form) as resp:
        return resp.status, await resp.json()


def test_naive_baseline_answers_like_the_in_process_reference(exported_repository: Path, tmp_path: Path) -> None:
    spec = load_catalog().get(MODEL)
    session = ort.InferenceSession(str(artifact_path(exported_repository, spec)), providers=["CPUExecutionProvider"])
    pipeline = spec.pipeline()
    with NaiveServer(exported_repository, [MODEL], tmp_path / "naive.log") as naive:
        for image in sample_images(5, seed=42):  # one of every format
            status, body = asyncio.run(_post(naive.url, image.data, MODEL))
            assert status == 200, body
            probabilities = session.run(None, {session.get_inputs()[0].name: pipeline(image.data)[None]})[0][0]
            expected = np.argsort(-probabilities)[:5].tolist()
            assert [p["index"] for p in body["predictions"]] == expected
            assert body["predictions"][0]["score"] == pytest.approx(float(probabilities[expected[0]]), rel=1e-5)
        assert asyncio.run(_post(naive.url, b"not an image", MODEL))[0] == 400
        assert asyncio.run(_post(naive.url, image.data, "nosuchmodel"))[0] == 404


def test_bench_serving_measures_a_real_server(triton: TritonServer, exported_repository: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "visionserve", "bench", "serving", "--url", triton.grpc_url, "--repository",
           str(exported_repository), "--models", MODEL, "--concurrency", "1,2", "--batch-sizes", "1",
           "--duration-s", "1.5", "--warmup-s", "0.5", "--images", "10", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "bench-serving.json").read_text())
    entry = report["models"][MODEL]["formats"]["onnx"]
    assert set(report["models"][MODEL]["decoders"]["images_per_s"]) == {"pillow", "simplejpeg"}
    assert entry["ceiling"][0]["requests"] > 0
    assert [row["measurement"]["concurrency"] for row in entry["served"]] == [1, 2]
    for row in entry["served"]:
        assert row["measurement"]["requests"] > 0 and row["measurement"]["errors"] == 0
        assert row["ratio"] > 0
        backbone = row["profile"][f"{MODEL}_onnx"]
        assert backbone["executions"] > 0 and 0 < backbone["busy"]
    assert entry["best_ratio"] == max(row["ratio"] for row in entry["served"])
    assert "served/ceiling" in proc.stdout and report["machine"]["cores"] >= 1


def test_bench_gateway_measures_the_three_paths_and_their_cpu(exported_repository: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "visionserve", "bench", "gateway", "--repository", str(exported_repository),
           "--model", MODEL, "--concurrency", "1,2", "--duration-s", "1.2", "--warmup-s", "0.3", "--rounds", "2",
           "--images", "6", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "bench-gateway.json").read_text())
    assert sorted(report["cells"]) == ["1", "2"]
    for cell in report["cells"].values():
        for phase in ("direct", "miss", "hit"):
            assert cell[phase]["requests"] > 0 and cell[phase]["errors"] == 0, (phase, cell[phase])
            assert set(cell[phase]["cpu_ms"]) == {"triton", "gateway", "load generator"}
        direct, miss, hit = (cell[p]["cpu_ms"] for p in ("direct", "miss", "hit"))
        assert direct["triton"] > 1.0 and miss["triton"] > 1.0  # both ran the model
        assert hit["triton"] < 0.2 * miss["triton"]  # a hit never reaches Triton
        assert miss["gateway"] > hit["gateway"] > 0  # checks and the Triton call cost the gateway more
        assert direct["gateway"] < 0.5 * miss["gateway"]  # the idle gateway costs next to nothing
    spaced = report["cells"]["1"]["spaced hit"]  # hits paced like misses, at concurrency 1 only
    assert spaced["requests"] > 0 and spaced["errors"] == 0 and "spaced hit" not in report["cells"]["2"]
    assert spaced["cpu_ms"]["triton"] < 0.2 * report["cells"]["1"]["miss"]["cpu_ms"]["triton"]
    # paced one direct latency apart: far fewer per second than back-to-back hits
    assert spaced["throughput"] < 0.5 * report["cells"]["1"]["hit"]["throughput"]
    ratios = report["ratios"]["1"]
    assert ratios["gateway_cpu_ms_per_miss"] == report["cells"]["1"]["miss"]["cpu_ms"]["gateway"]
    assert ratios["gateway_cpu_ms_per_spaced_hit"] == spaced["cpu_ms"]["gateway"]
    assert ratios["cpu_direct_over_miss"] > 0
    assert "CPU per request" in proc.stdout and "gateway CPU ms / miss" in proc.stdout and "Idle cost:" in proc.stdout
    assert not (tmp_path / "bench-gateway-stack.log").read_text().count("Traceback")
