"""The pytorch backend puts a GPU instance on CUDA, a CPU instance on the CPU.

No tritonserver here: the backend's model.py is loaded in-process with a stand-in for
``triton_python_backend_utils``, so the device choice is checked on any CUDA machine (the
GPU case is skipped elsewhere).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.triton_tree import TRITON_TREE, fake_pb_utils, load_model_files

torch = pytest.importorskip("torch")

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


@pytest.fixture
def pytorch_backend(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pytorch backend's model.py as the stub imports it, backend_common beside it.

    The files are found by path (not through visionserve.triton_sources): this test needs only
    numpy and torch (GPU images lack the rest).
    """
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    backends = TRITON_TREE / "backends"
    files = {"model.py": backends / "pytorch" / "model.py", "backend_common.py": backends / "backend_common.py"}
    return load_model_files(files, "vs_pytorch_backend", monkeypatch)


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
