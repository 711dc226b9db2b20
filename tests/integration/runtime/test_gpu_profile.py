"""The GPU profile end to end on the real tritonserver, on a CPU device (CI has no GPU).

``make export PROFILE=gpu`` publishes a version whose ensemble runs ``<name>_gpu``: decode,
preprocess and backbone in one python model. Here the catalog's ``profiles.gpu.device`` is
set to ``cpu`` (and ``pipeline_chunk`` to 3, so batches take the overlapped route), so the
very same model file runs with KIND_CPU: the JPEG route is torchvision's CPU decoder instead
of nvJPEG and there are no CUDA graphs; everything else — routing, fallbacks, batching across
requests, errors, the ensemble contract — is what a GPU serves.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from client import InferenceError, TritonClient
from export.repository import read_config, read_version
from export.runners import load_runner
from serving.launcher import TritonServer, default_models
from tests.fixtures.repository import copy_repository
from tests.fixtures.triton import serving
from visionserve.catalog import ARTIFACTS, load_catalog
from visionserve.samples import base_photos, sample_images
from visionserve.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
SPEC = CATALOG.get("resnet18")


def _jpeg(**kw: object) -> bytes:
    buf = io.BytesIO()
    base_photos()[0].resize((400, 300)).convert(str(kw.pop("mode", "RGB"))).save(buf, "JPEG", **kw)
    return buf.getvalue()


IMAGES = [s.data for s in sample_images(20, seed=77)] + [_jpeg(progressive=True), _jpeg(mode="CMYK"), _jpeg()]


@pytest.fixture(scope="module")
def gpu_repository(exported_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 2 of resnet18, published with the GPU profile on a CPU device, beside version 1."""
    root = tmp_path_factory.mktemp("gpu-profile")
    raw = yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())
    # chunks of 3: served batches (up to 12 concurrent requests here) run through Overlapped
    raw["profiles"]["gpu"].update(device="cpu", instances=1, pipeline_chunk=3)
    catalog = root / "models.yaml"
    catalog.write_text(yaml.safe_dump(raw))
    repo = copy_repository(exported_repository, root / "model_repository")
    cmd = [sys.executable, "-m", "visionserve", "export", "--model", SPEC.name, "--weights", "demo",
           "--profile", "gpu", "--repository", str(repo), "--server-url", ""]  # fmt: skip
    env = {**os.environ, "VISIONSERVE_CATALOG": str(catalog), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "gpu: parity max |Δp|" in proc.stdout
    return repo


@pytest.fixture(scope="module")
def gpu_triton(gpu_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    models = default_models(CATALOG, gpu_repository, SPEC.name)
    with serving(gpu_repository, tmp_path_factory.mktemp("gpu-triton"), models) as server:
        yield server


def test_the_gpu_version_is_one_gpu_model_behind_the_same_ensemble(gpu_repository: Path) -> None:
    assert read_version(gpu_repository, SPEC, 2).profile == "gpu"
    ensemble = read_config(gpu_repository / SPEC.ensemble / "config.pbtxt")
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [SPEC.gpu_model]
    assert [s.model_version for s in ensemble.ensemble_scheduling.step] == [2]
    assert ensemble.output[0].label_filename == "labels.txt" and ensemble.response_cache.enable
    gpu = read_config(gpu_repository / SPEC.gpu_model / "config.pbtxt")
    assert gpu.max_batch_size == SPEC.gpu.max_batch_size
    assert list(gpu.dynamic_batching.preferred_batch_size) == list(SPEC.gpu.preferred_batch_sizes)
    assert gpu.parameters["precision"].string_value == SPEC.gpu.precision
    assert gpu.parameters["pipeline_chunk"].string_value == "3"
    onnx_file = gpu_repository / SPEC.backbone_model("onnx") / "2" / ARTIFACTS["onnx"]
    assert (gpu_repository / SPEC.gpu_model / "2" / "model.onnx").samefile(onnx_file)  # one file, hard-linked


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_gpu_pipeline_is_the_in_process_pipeline_and_near_the_cpu_path(
    gpu_triton: TritonServer, gpu_repository: Path, protocol: str
) -> None:
    """Serving adds nothing: the answers are the GPU pipeline's own, run in this process.

    Against the CPU path (Pillow + ONNX Runtime) top-1 agreement is reported, not pinned:
    these demo weights flip near-ties under ±0.5-level noise (1 in 23 here), and the two paths
    differ by up to 2 levels of resampling and JPEG decoding (pinned in pixel levels by
    tests/unit/export/test_gpu_pipeline.py; bench gpu measures it on real decoders).
    """
    import torch

    from visionserve.gpu_pipeline import Backbone, Preprocessor, load_onnx_module

    onnx_file = gpu_repository / SPEC.gpu_model / "2" / ARTIFACTS["onnx"]
    cpu = torch.device("cpu")
    net = Backbone(load_onnx_module(str(onnx_file)), cpu, torch.float32, SPEC.input_shape)
    expected = net(Preprocessor(SPEC.pipeline(), cpu)(IMAGES).batch).numpy()
    url = gpu_triton.grpc_url if protocol == "grpc" else gpu_triton.http_url
    with TritonClient(url, protocol=protocol) as client:
        served = [client.classify(data, SPEC.ensemble, top_k=5) for data in IMAGES]
    assert {s.version for s in served} == {"2"}
    for answer, probs in zip(served, expected, strict=True):
        top = np.argsort(-probs)[:5].tolist()
        assert [p.index for p in answer.predictions] == top
        np.testing.assert_allclose([p.score for p in answer.predictions], probs[top], atol=1e-4)
    reference = load_runner("onnx", onnx_file)(SPEC.pipeline().batch(IMAGES))
    agree = np.mean(expected.argmax(1) == reference.argmax(1))
    assert agree >= 0.8, f"top-1 agreement with the CPU path {agree:.3f}"


def _stubs(server: TritonServer) -> set[int]:
    return {p.pid for p in psutil.Process(server.pid).children(recursive=True)}


def test_bad_images_fail_alone_while_batched_with_good_ones(gpu_triton: TritonServer) -> None:
    stubs = _stubs(gpu_triton)
    good = IMAGES[:8]
    bad = {b"": "empty image", b"GIF89a-not-really": "invalid image", _jpeg()[:900]: "truncated or corrupt"}
    oblong = io.BytesIO()
    Image.new("L", (1, 4000)).save(oblong, "PNG")
    bad[oblong.getvalue()] = "aspect ratio"

    def call(data: bytes) -> object:
        with TritonClient(gpu_triton.grpc_url) as client:
            try:
                return client.classify(data, SPEC.ensemble, top_k=3)
            except InferenceError as exc:
                return exc

    with ThreadPoolExecutor(12) as pool:  # concurrent: the dynamic batcher puts them in one batch
        results = list(pool.map(call, [*good, *bad] * 2))
    for data, result in zip([*good, *bad] * 2, results, strict=True):
        if data in bad:
            assert isinstance(result, InferenceError) and result.error_code == 400, result
            assert bad[data] in str(result)
        else:
            assert not isinstance(result, InferenceError), result
    assert _stubs(gpu_triton) == stubs, "the GPU model's stub died or was replaced"
