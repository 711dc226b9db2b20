"""The exported repository, every model of every format, on the bundled tritonserver.

Each backbone answers tensors over HTTP and gRPC with what its artifact gives in-process
through the framework itself; each preprocessing model returns exactly the tensor its
backbone takes; a full ``max_batch_size`` batch fits the python backend's shared memory;
concurrent requests to a backbone are batched. (Ensemble top-k parity is the client's suite.)
"""

from __future__ import annotations

import functools
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image

from serving.launcher import TritonServer
from serving.model_config import list_models, read_model_config
from visionserve.catalog import ARTIFACTS, PREPROCESSED, ModelSpec, load_catalog

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
BACKBONES = [(spec, fmt) for spec in CATALOG.models.values() for fmt in spec.formats]


def _ids(item: tuple[ModelSpec, str]) -> str:
    return item[0].backbone_model(item[1])  # type: ignore[arg-type]


def _served_version(repository: Path, model: str) -> int:
    config = read_model_config(repository / model)
    if config.version_policy.HasField("specific"):
        return max(config.version_policy.specific.versions)
    return max(int(p.name) for p in (repository / model).iterdir() if p.name.isdigit())


def _published(repository: Path, spec: ModelSpec) -> set[str]:
    """The formats the served version published (a refused INT8 artifact is not among them)."""
    version = _served_version(repository, spec.ensemble)
    return set(json.loads((repository / spec.ensemble / str(version) / "version.json").read_text())["formats"])


@functools.cache
def _reference(repository: Path, spec: ModelSpec, fmt: str) -> np.ndarray:
    """The artifact's output for ``_batch(spec)``, computed by the framework in this process (once)."""
    batch = _batch(spec)
    model = spec.backbone_model(fmt)  # type: ignore[arg-type]
    artifact = repository / model / str(_served_version(repository, model)) / ARTIFACTS[fmt]
    in_name, out_name = spec.tensor_names(fmt)  # type: ignore[arg-type]
    if fmt in ("onnx", "onnx_int8"):
        import onnxruntime as ort

        return ort.InferenceSession(str(artifact)).run([out_name], {in_name: batch})[0]
    if fmt == "torchscript":
        import torch

        with torch.inference_mode():
            result = torch.jit.load(str(artifact))(torch.from_numpy(batch))
        return (result if isinstance(result, torch.Tensor) else result[0]).numpy()
    import tensorflow as tf

    signature = tf.saved_model.load(str(artifact)).signatures["serving_default"]
    return signature(**{in_name: tf.constant(batch)})[out_name].numpy()


def _batch(spec: ModelSpec) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(2, *spec.input_shape)).astype(np.float32)


def _infer_tensor(protocol: str, server: TritonServer, model: str, name: str, batch: np.ndarray, out: str):  # noqa: ANN202
    lib = httpclient if protocol == "http" else grpcclient
    client = lib.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url)
    try:
        tensor = lib.InferInput(name, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        return client.infer(model, [tensor]).as_numpy(out)
    finally:
        client.close()


def _jpeg(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((300, 400, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _counts_after(client: httpclient.InferenceServerClient, model: str, before: dict, expected: int) -> tuple[int, int]:
    """(inferences, executions) since ``before``; statistics land just after the responses do."""
    deadline = time.monotonic() + 10
    while True:
        after = client.get_inference_statistics(model)["model_stats"][0]
        inferences = int(after["inference_count"]) - int(before["inference_count"])
        if inferences >= expected or time.monotonic() > deadline:
            return inferences, int(after["execution_count"]) - int(before["execution_count"])
        time.sleep(0.05)


def test_every_model_in_the_repository_is_ready(triton: TritonServer, exported_repository: Path) -> None:
    client = httpclient.InferenceServerClient(triton.http_url)
    try:
        index = {m["name"]: m.get("state") for m in client.get_model_repository_index()}
    finally:
        client.close()
    expected = list_models(exported_repository)
    for spec in CATALOG.models.values():
        unpublished = {spec.backbone_model(f) for f in set(spec.formats) - _published(exported_repository, spec)}
        assert set(spec.triton_models) - {spec.gpu_model} - unpublished <= set(expected)  # a CPU-profile export
        assert not unpublished & set(expected)
    assert {name: index.get(name) for name in expected} == dict.fromkeys(expected, "READY")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("backbone", BACKBONES, ids=_ids)
def test_backbone_answers_what_its_artifact_gives_in_process(
    triton: TritonServer, exported_repository: Path, backbone: tuple[ModelSpec, str], protocol: str
) -> None:
    spec, fmt = backbone
    if fmt not in _published(exported_repository, spec):  # refused by the export's INT8 gate
        version = _served_version(exported_repository, spec.ensemble)
        info = json.loads((exported_repository / spec.ensemble / str(version) / "version.json").read_text())
        assert info["quantization"][fmt]["accepted"] is False
        assert not (exported_repository / spec.backbone_model(fmt)).exists()  # type: ignore[arg-type]
        return
    in_name, out_name = spec.tensor_names(fmt)  # type: ignore[arg-type]
    served = _infer_tensor(protocol, triton, spec.backbone_model(fmt), in_name, _batch(spec), out_name)  # type: ignore[arg-type]
    assert served.shape == (2, spec.num_classes) and served.dtype == np.float32
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(served, _reference(exported_repository, spec, fmt), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("spec", list(CATALOG.models.values()), ids=lambda s: s.name)
def test_preprocess_returns_the_backbone_input(triton: TritonServer, spec: ModelSpec) -> None:
    client = httpclient.InferenceServerClient(triton.http_url)
    try:
        images = np.array([[_jpeg(1)], [_jpeg(2)]], dtype=np.object_)
        tensor = httpclient.InferInput("image", list(images.shape), "BYTES")
        tensor.set_data_from_numpy(images)
        out = client.infer(spec.preprocess_model, [tensor]).as_numpy(PREPROCESSED)
    finally:
        client.close()
    assert out is not None and out.shape == (2, *spec.input_shape) and out.dtype == np.float32
    assert not np.array_equal(out[0], out[1])


def test_a_full_batch_fits_shared_memory(triton: TritonServer) -> None:
    spec = next(iter(CATALOG.models.values()))
    in_name, out_name = spec.tensor_names(spec.serve_format)
    batch = np.random.default_rng(3).normal(size=(spec.max_batch_size, *spec.input_shape)).astype(np.float32)
    served = _infer_tensor("grpc", triton, spec.backbone_model(), in_name, batch, out_name)
    assert served.shape == (spec.max_batch_size, spec.num_classes)


def test_concurrent_backbone_requests_are_batched(triton: TritonServer) -> None:
    spec = next(iter(CATALOG.models.values()))
    model = spec.backbone_model()
    in_name, out_name = spec.tensor_names(spec.serve_format)
    rows = np.random.default_rng(5).normal(size=(8, *spec.input_shape)).astype(np.float32)
    client = httpclient.InferenceServerClient(triton.http_url)
    try:
        before = client.get_inference_statistics(model)["model_stats"][0]
        with ThreadPoolExecutor(len(rows)) as pool:
            outs = list(
                pool.map(
                    lambda i: _infer_tensor("grpc", triton, model, in_name, rows[i : i + 1], out_name),
                    range(8),
                )
            )
        inferences, executions = _counts_after(client, model, before, len(rows))
    finally:
        client.close()
    assert inferences == len(rows) and executions < inferences
    assert all(o.shape == (1, spec.num_classes) for o in outs)
