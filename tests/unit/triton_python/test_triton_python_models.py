"""The preprocessing and averaging models, in-process with their copied companions (no server).

Extra unit tests beside the integration tests that serve them from a real tritonserver: they
pin what ``python_model_common`` gives the models (the parameters, an INVALID_ARG error for a
bad image, a plain error naming the step otherwise), on real image bytes.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.triton_tree import fake_pb_utils, load_model_files
from visionserve.catalog import PREPROCESSED, PROBABILITIES, load_catalog
from visionserve.imaging import Pipeline
from visionserve.triton_sources import sources

SPEC = load_catalog().models["resnet18"]


class Request(dict):
    """A request as the models read it: tensors by name, and the outputs it asks for."""

    def __init__(self, tensors: dict[str, np.ndarray], wanted: tuple[str, ...] = ()) -> None:
        super().__init__(tensors)
        self.wanted = wanted

    def requested_output_names(self) -> list[str]:
        return list(self.wanted)


def _model(kind: str, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    model = load_model_files(sources(kind), f"vs_{kind}_model", monkeypatch).TritonPythonModel()
    model.initialize({"model_config": json.dumps(config)})
    return model


def _params(**values: str) -> dict[str, dict[str, str]]:
    return {key: {"string_value": value} for key, value in values.items()}


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def preprocess(monkeypatch: pytest.MonkeyPatch) -> Any:
    config = {
        "input": [{"name": "image", "data_type": "TYPE_STRING"}],
        "output": [{"name": PREPROCESSED, "data_type": "TYPE_FP32"}],
        "parameters": _params(preprocessing=json.dumps(SPEC.pipeline_params())),
    }
    return _model("preprocess", config, monkeypatch)


def test_preprocessing_serves_the_catalog_pipeline(preprocess: Any) -> None:
    images = [_jpeg(1), _jpeg(2)]
    [response] = preprocess.execute([Request({"image": np.array(images, dtype=np.object_).reshape(2, 1)})])
    assert response.error is None
    expected = np.stack([Pipeline.from_params(SPEC.pipeline_params())(data) for data in images])
    np.testing.assert_array_equal(response.output_tensors[0].array, expected)
    assert response.output_tensors[0].array.std() > 0.1  # real pixels, not a constant


def test_a_bad_image_fails_its_own_request_with_invalid_arg(preprocess: Any) -> None:
    good = Request({"image": np.array([[_jpeg(3)]], dtype=np.object_)})
    bad = Request({"image": np.array([[b"not an image"]], dtype=np.object_)})
    wrong_type = Request({"image": np.zeros((1, 1), np.float32)})
    first, second, third = preprocess.execute([good, bad, wrong_type])
    assert first.error is None and first.output_tensors[0].array.shape == (1, *SPEC.input_shape)
    assert second.error.code == 3 and second.error.message.startswith("invalid image: ")
    assert third.error.code == 3 and "must be TYPE_STRING" in third.error.message


def test_the_averaging_model_weighs_inputs_and_means_view_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "input": [{"name": "a"}, {"name": "b"}],
        "output": [{"name": PROBABILITIES}],
        "parameters": _params(weights="[0.25, 0.75]", views="2"),
    }
    model = _model("mean", config, monkeypatch)
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 3), dtype=np.float32), rng.random((4, 3), dtype=np.float32)
    ok, uneven = model.execute([Request({"a": a, "b": b}), Request({"a": a[:3], "b": b[:3]})])
    expected = 0.25 * a.reshape(2, 2, 3).mean(axis=1) + 0.75 * b.reshape(2, 2, 3).mean(axis=1)
    np.testing.assert_allclose(ok.output_tensors[0].array, expected, rtol=1e-6)
    assert uneven.error.code == 0  # not the caller's input: a plain error naming the step
    assert uneven.error.message == "averaging failed: ValueError: a: 3 rows is not a multiple of 2 views"
