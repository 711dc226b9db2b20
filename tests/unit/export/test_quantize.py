"""The onnx_int8 format: static QDQ quantization of a real (small) ONNX model, and its agreement figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.quantize import Agreement, QuantizationRefused, quantize_onnx, refusal, top1_agreement
from export.runners import load_runner
from visionserve.catalog import PREPROCESSED, PROBABILITIES, Quantization, load_catalog
from visionserve.errors import ParityError
from visionserve.samples import sample_images


def _tiny_onnx(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=4), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, stride=4), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10), torch.nn.Softmax(dim=1),
    ).eval()  # fmt: skip
    torch.onnx.export(net, (torch.zeros(2, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                      input_names=[PREPROCESSED], output_names=[PROBABILITIES],
                      dynamic_axes={PREPROCESSED: {0: "b"}, PROBABILITIES: {0: "b"}})  # fmt: skip


@pytest.fixture(scope="module")
def batches() -> tuple[np.ndarray, np.ndarray]:
    pipeline = load_catalog().get("resnet18").pipeline()
    cal = pipeline.batch([s.data for s in sample_images(16, seed=1)])
    hold = pipeline.batch([s.data for s in sample_images(24, seed=2)])
    return cal, hold


def test_quantized_model_is_qdq_int8_and_agrees(tmp_path: Path, batches: tuple[np.ndarray, np.ndarray]) -> None:
    import onnx

    cal, hold = batches
    _tiny_onnx(tmp_path / "fp32.onnx")
    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", cal, Quantization(), PREPROCESSED)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weights = [
        t for t in onnx.load(str(tmp_path / "int8.onnx")).graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights, "no INT8 weights"
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size
    fp32, int8 = load_runner("onnx", tmp_path / "fp32.onnx"), load_runner("onnx_int8", tmp_path / "int8.onnx")
    result = top1_agreement(fp32, int8, hold, min_agreement=0.5)
    assert result.images == len(hold) and 0.5 <= result.agreement <= 1.0 and result.accepted
    assert 0 < result.max_abs_diff < 0.5


def test_agreement_is_the_share_of_equal_top1() -> None:
    probs = np.eye(4, dtype=np.float32)
    flipped = probs[[0, 1, 3, 2]]
    result = top1_agreement(lambda b: probs, lambda b: flipped, np.zeros((4, 1)), min_agreement=0.98)
    assert result.agreement == 0.5 and not result.accepted
    assert result.as_metadata() == {
        "top1_agreement": 0.5, "images": 4, "max_abs_diff": 1.0, "min_agreement": 0.98, "accepted": False,
    }  # fmt: skip


def test_refusal_names_the_figure_and_the_threshold() -> None:
    spec = load_catalog().get("resnet50")
    message = refusal(spec, Agreement(0.9512, 200, 0.3, 0.98))
    assert "0.951" in message and "200 held-out images" in message and "0.98" in message
    assert issubclass(QuantizationRefused, ParityError)
