"""The pytorch backend puts a GPU instance on CUDA, a CPU instance on the CPU.

No tritonserver here: the backend's model.py is loaded in-process with a stand-in for
``triton_python_backend_utils``, so the device choice is checked on any CUDA machine (the
GPU case is skipped elsewhere).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

#: serving/backends, found by path: this test needs only numpy and torch (GPU images lack the rest).
BACKEND_SOURCES = Path(__file__).resolve().parents[3] / "serving" / "backends"
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


def _load(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _fake_pb_utils() -> ModuleType:
    fake = ModuleType("triton_python_backend_utils")

    class TritonError:
        INVALID_ARG, INTERNAL = 3, 13

        def __init__(self, message: str, code: int = 0) -> None:
            self.message, self.code = message, code

    fake.TritonError = TritonError  # type: ignore[attr-defined]
    fake.Tensor = lambda name, array: SimpleNamespace(name=name, array=array)  # type: ignore[attr-defined]
    fake.InferenceResponse = lambda output_tensors, error=None: SimpleNamespace(  # type: ignore[attr-defined]
        output_tensors=output_tensors, error=error
    )
    fake.get_input_tensor_by_name = lambda request, name: (  # type: ignore[attr-defined]
        SimpleNamespace(as_numpy=lambda: request[name]) if name in request else None
    )
    fake.Logger = SimpleNamespace(log_info=lambda message: None)  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def pytorch_backend(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    _load("backend_common", BACKEND_SOURCES / "backend_common.py", monkeypatch)
    return _load("vs_pytorch_backend", BACKEND_SOURCES / "pytorch" / "model.py", monkeypatch)


@pytest.mark.parametrize(
    ("kind", "device"), [("CPU", "cpu"), pytest.param("GPU", "cuda", marks=[pytest.mark.gpu, needs_gpu])]
)
def test_instance_kind_picks_the_device(pytorch_backend: Any, tmp_path: Path, kind: str, device: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval()
    (tmp_path / "m" / "1").mkdir(parents=True)
    torch.jit.trace(net, torch.zeros(2, 4)).save(str(tmp_path / "m" / "1" / "model.pt"))
    config = {
        "name": "m",
        "platform": "pytorch_libtorch",
        "max_batch_size": 8,
        "input": [{"name": "INPUT__0", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "OUTPUT__0", "data_type": "TYPE_FP32", "dims": [3]}],
        "instance_group": [{"kind": f"KIND_{kind}", "count": 1}],
    }
    model = pytorch_backend.TritonPythonModel()
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_repository": str(tmp_path / "m"),
            "model_version": "1",
            "model_name": "m",
            "model_instance_kind": kind,
            "model_instance_device_id": "0",
        }
    )
    assert model.device.type == device
    rows = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    responses = model.execute([{"INPUT__0": rows[:1]}, {"INPUT__0": rows[1:]}])
    served = np.concatenate([r.output_tensors[0].array for r in responses])
    with torch.inference_mode():
        expected = net(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)
