"""The exported repository: valid configs, naming rules, pinned versions, parity across formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.runners import load_runner
from visionserve.catalog import ARTIFACTS, PLATFORMS, load_catalog
from visionserve.samples import sample_images

pytestmark = pytest.mark.integration

CATALOG = load_catalog()


def _config(repo: Path, name: str) -> mc.ModelConfig:
    return text_format.Parse((repo / name / "config.pbtxt").read_text(), mc.ModelConfig())


@pytest.mark.parametrize("spec", CATALOG.models.values(), ids=CATALOG.names)
def test_configs_are_valid_and_follow_the_contract(exported_repository: Path, spec) -> None:  # noqa: ANN001
    repo = exported_repository
    ens = _config(repo, spec.ensemble)
    assert ens.name == spec.ensemble and ens.platform == "ensemble"
    assert list(ens.version_policy.specific.versions) == [1]
    assert ens.response_cache.enable
    assert ens.parameters["weights"].string_value == "demo"
    assert [s.model_version for s in ens.ensemble_scheduling.step] == [1, 1]
    assert ens.ensemble_scheduling.step[1].model_name == spec.backbone_model()
    (out,) = ens.output
    labels = (repo / spec.ensemble / out.label_filename).read_text().splitlines()
    assert len(labels) == out.dims[0] == spec.num_classes
    assert json.loads((repo / spec.ensemble / "1" / "version.json").read_text())["weights"] == "demo"

    pre = _config(repo, spec.preprocess_model)
    assert pre.backend == "python" and pre.input[0].data_type == mc.TYPE_STRING
    assert list(pre.output[0].dims) == list(spec.input_shape)
    assert (repo / spec.preprocess_model / "1" / "model.py").is_file()

    info = json.loads((repo / spec.ensemble / "1" / "version.json").read_text())
    refused = {f for f, q in info.get("quantization", {}).items() if not q["accepted"]}
    assert set(info["formats"]) == set(spec.formats) - refused  # a refused INT8 artifact is not published
    for fmt in info["formats"]:
        cfg = _config(repo, spec.backbone_model(fmt))
        assert cfg.name == spec.backbone_model(fmt) and cfg.platform == PLATFORMS[fmt]
        assert (repo / cfg.name / "1" / cfg.default_model_filename).exists()
        assert cfg.default_model_filename == ARTIFACTS[fmt]
        if fmt == "torchscript":  # libtorch naming rule
            assert cfg.input[0].name.endswith("__0") and cfg.output[0].name.endswith("__0")
        assert cfg.max_batch_size == spec.max_batch_size and cfg.dynamic_batching is not None


@pytest.mark.parametrize("spec", CATALOG.models.values(), ids=CATALOG.names)
def test_formats_agree_and_predictions_are_not_degenerate(exported_repository: Path, spec) -> None:  # noqa: ANN001
    batch = spec.pipeline().batch([s.data for s in sample_images(24, seed=77)])
    info = json.loads((exported_repository / spec.ensemble / "1" / "version.json").read_text())
    outputs = {
        fmt: load_runner(fmt, exported_repository / spec.backbone_model(fmt) / "1" / ARTIFACTS[fmt])(batch)
        for fmt in info["formats"]
    }
    quantized = {fmt: outputs.pop(fmt) for fmt in list(outputs) if fmt in info.get("quantization", {})}
    first, *others = outputs.values()
    for other in others:  # every float format computes the same function
        assert np.abs(first - other).max() < 1e-3
    for fmt, out in quantized.items():  # INT8: the top-1 the export's gate measured on 200 images, here on 24
        figures = info["quantization"][fmt]
        assert figures["accepted"] and figures["top1_agreement"] >= figures["min_agreement"]
        assert (out.argmax(axis=1) == first.argmax(axis=1)).mean() >= 0.9
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-4)  # softmax folded in
    top1 = first.argmax(axis=1)
    assert len(set(top1.tolist())) >= 8, "different images must give different top-1 classes"
    assert first.max(axis=1).mean() > 50 / spec.num_classes, "top-1 must be far above uniform"
