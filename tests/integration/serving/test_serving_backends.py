"""The Python-based backends under the real bundled tritonserver, on tiny seeded models.

Proves: outputs equal each framework's own, over HTTP and gRPC; libtorch's ``<name>__<index>``
outputs map by index; ``default_model_filename`` is honoured; concurrent requests are served
in batches (statistics: executions < inferences) and each request gets its own rows back; a
bad request gets a clear error of its own while the server, its stubs and the other requests
in the same batch carry on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from serving.launcher import TritonServer, free_ports
from tests.integration.serving.tiny_models import (
    FEATURES,
    MAX_BATCH,
    ONNX,
    ONNX_LOOSE,
    SAVEDMODEL,
    TORCHSCRIPT,
    TinyModel,
    reference,
    write_all,
)

pytestmark = pytest.mark.integration

CONCURRENT_REQUESTS = 16


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("tiny_repository")
    write_all(repository)
    return repository


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    http_port, grpc_port, metrics_port = free_ports(3)
    with TritonServer(
        tiny_repository,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        exit_timeout_s=2,
        log_path=tmp_path_factory.mktemp("logs") / "tritonserver.log",
    ) as started:
        yield started


def _rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, FEATURES)).astype(np.float32)


def _infer(protocol: str, server: TritonServer, model: TinyModel, batch: np.ndarray) -> dict[str, np.ndarray]:
    lib = httpclient if protocol == "http" else grpcclient
    url = server.http_url if protocol == "http" else server.grpc_url
    client = lib.InferenceServerClient(url)
    try:
        tensor = lib.InferInput(model.inputs[0], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        outputs = [lib.InferRequestedOutput(name) for name in model.outputs]
        result = client.infer(model.name, [tensor], outputs=outputs)
        return {name: result.as_numpy(name) for name in model.outputs}
    finally:
        client.close()


def _counts(server: TritonServer, model: TinyModel, at_least: int = 0) -> tuple[int, int]:
    """(inference_count, execution_count), once ``at_least`` inferences are counted.

    Triton records statistics just after it sends the responses, so a count read right
    after the last response may lag by one.
    """
    client = httpclient.InferenceServerClient(server.http_url)
    deadline = time.monotonic() + 10
    try:
        while True:
            stats = client.get_inference_statistics(model.name)["model_stats"][0]
            if int(stats["inference_count"]) >= at_least or time.monotonic() > deadline:
                return int(stats["inference_count"]), int(stats["execution_count"])
            time.sleep(0.05)
    finally:
        client.close()


def _stubs(server: TritonServer) -> set[int]:
    assert server.pid is not None
    return {p.pid for p in psutil.Process(server.pid).children(recursive=True)}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", [ONNX, TORCHSCRIPT, SAVEDMODEL], ids=lambda m: m.name)
def test_outputs_equal_the_frameworks_own(
    server: TritonServer, tiny_repository: Path, model: TinyModel, protocol: str
) -> None:
    batch = _rows(5, seed=1)
    served = _infer(protocol, server, model, batch)
    expected = reference(tiny_repository, model, batch)
    assert set(served) == set(expected)
    for name, array in expected.items():
        assert served[name].shape == array.shape
        np.testing.assert_allclose(served[name], array, rtol=1e-5, atol=1e-6, err_msg=name)


def test_torchscript_outputs_map_by_index_not_config_order(server: TritonServer) -> None:
    served = _infer("http", server, TORCHSCRIPT, _rows(3, seed=2))
    # PROBS__0 is forward()'s first output (softmax), LOGITS__1 the second, whatever the config order.
    np.testing.assert_allclose(served["PROBS__0"].sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(served["LOGITS__1"].sum(axis=1), 1.0)


@pytest.mark.parametrize("model", [ONNX, TORCHSCRIPT, SAVEDMODEL], ids=lambda m: m.name)
def test_concurrent_requests_run_in_batches(server: TritonServer, tiny_repository: Path, model: TinyModel) -> None:
    rows = _rows(CONCURRENT_REQUESTS, seed=3)
    inferences_before, executions_before = _counts(server, model)
    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        results = list(pool.map(lambda i: _infer("grpc", server, model, rows[i : i + 1]), range(len(rows))))
    inferences_after, executions_after = _counts(server, model, inferences_before + CONCURRENT_REQUESTS)
    inferences, executions = inferences_after - inferences_before, executions_after - executions_before
    assert inferences == CONCURRENT_REQUESTS
    assert executions < inferences, f"{executions} executions for {inferences} requests: no batching"
    assert executions >= CONCURRENT_REQUESTS // MAX_BATCH
    expected = reference(tiny_repository, model, rows)
    for i, result in enumerate(results):  # every request got its own rows back
        for name in model.outputs:
            np.testing.assert_allclose(result[name], expected[name][i : i + 1], rtol=1e-5, atol=1e-6)


def test_bad_request_fails_alone_and_the_server_keeps_serving(server: TritonServer, tiny_repository: Path) -> None:
    stubs_before = _stubs(server)
    good = _rows(6, seed=4)
    bad = np.zeros((1, FEATURES - 1), np.float32)  # config dims [-1] let it through to onnxruntime

    def send(i: int) -> dict[str, np.ndarray] | Exception:
        try:
            return _infer("http", server, ONNX_LOOSE, bad if i == len(good) else good[i : i + 1])
        except InferenceServerException as exc:
            return exc

    inferences_before, executions_before = _counts(server, ONNX_LOOSE)
    with ThreadPoolExecutor(len(good) + 1) as pool:
        results = list(pool.map(send, range(len(good) + 1)))
    error = results[-1]
    assert isinstance(error, InferenceServerException)
    assert "tiny_onnx_loose: inference failed" in str(error) and "dimension" in str(error).lower()
    expected = reference(tiny_repository, ONNX_LOOSE, good)["y"]
    for i, result in enumerate(results[:-1]):
        assert isinstance(result, dict), f"good request {i} failed: {result}"
        np.testing.assert_allclose(result["y"], expected[i : i + 1], rtol=1e-5, atol=1e-6)
    _, executions = _counts(server, ONNX_LOOSE, inferences_before + len(results))
    assert executions - executions_before < len(results), "the bad request was not batched with good ones"
    assert _stubs(server) == stubs_before, "a stub process died or was restarted"
    assert _infer("grpc", server, ONNX_LOOSE, good[:2])["y"].shape == (2, 3)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((1, FEATURES), np.float64), "data-type"),
        (np.zeros((1, FEATURES + 1), np.float32), "unexpected shape"),
    ],
    ids=["wrong-dtype", "wrong-shape"],
)
def test_wrong_dtype_or_shape_is_a_clear_error(server: TritonServer, batch: np.ndarray, message: str) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        tensor = httpclient.InferInput("x", list(batch.shape), "FP64" if batch.dtype == np.float64 else "FP32")
        tensor.set_data_from_numpy(batch)
        with pytest.raises(InferenceServerException) as err:
            client.infer(ONNX.name, [tensor])
        assert message in str(err.value) and "tiny_onnx" in str(err.value)
        assert client.is_model_ready(ONNX.name)
    finally:
        client.close()
