"""The catalog loads into typed objects and names the bad field when it cannot."""

from pathlib import Path

import pytest
import yaml

from visionserve.catalog import PROBABILITIES, load_catalog
from visionserve.errors import CatalogError
from visionserve.settings import PROJECT_ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_real_catalog_has_the_three_models() -> None:
    catalog = load_catalog()
    assert catalog.names == ["mobilenet_v2", "resnet50", "resnet18"]
    r18 = catalog.get("resnet18")
    assert r18.layout == "NCHW" and r18.input_shape == (3, 224, 224)
    assert catalog.get("resnet50").input_shape == (224, 224, 3)
    assert r18.triton_models == [
        "resnet18",
        "resnet18_preprocess",
        "resnet18_onnx",
        "resnet18_onnx_int8",
        "resnet18_torchscript",
        "resnet18_gpu",
        "resnet18_hflip_mean",
        "resnet18_hflip",
    ]
    assert r18.tta == ("hflip",) and r18.views_output("hflip") == "preprocessed_image_hflip"
    assert r18.gpu is not None and r18.gpu.precision == "fp16"
    assert r18.tensor_names("torchscript") == ("preprocessed_image__0", f"{PROBABILITIES}__0")
    assert r18.tensor_names("onnx")[1] == PROBABILITIES


def test_gpu_profile_defaults_and_per_model_overrides(tmp_path: Path, raw: dict) -> None:
    raw["profiles"]["gpu"]["instances"] = 3
    raw["models"]["resnet50"]["gpu"] = {"instances": 5, "max_batch_size": 64}
    catalog = load_catalog(_write(tmp_path, raw))
    assert catalog.get("resnet18").gpu.instances == 3
    assert (catalog.get("resnet50").gpu.instances, catalog.get("resnet50").gpu.max_batch_size) == (5, 64)
    preferred = tuple(raw["profiles"]["gpu"]["preferred_batch_sizes"])
    assert catalog.get("resnet50").gpu.preferred_batch_sizes == preferred
    raw["models"]["resnet50"]["gpu"] = {"precision": "int4"}
    with pytest.raises(CatalogError, match=r"models\.resnet50\.gpu\.precision"):
        load_catalog(_write(tmp_path, raw))


def test_bad_field_is_named(tmp_path: Path, raw: dict) -> None:
    raw["models"]["resnet18"]["input_size"] = "big"
    with pytest.raises(CatalogError, match=r"models\.resnet18\.input_size"):
        load_catalog(_write(tmp_path, raw))


def test_unknown_field_is_rejected(tmp_path: Path, raw: dict) -> None:
    raw["models"]["resnet50"]["colour"] = "blue"
    with pytest.raises(CatalogError, match=r"models\.resnet50\.colour"):
        load_catalog(_write(tmp_path, raw))


def test_serve_format_must_be_exported(tmp_path: Path, raw: dict) -> None:
    raw["models"]["mobilenet_v2"]["serve_format"] = "torchscript"
    with pytest.raises(CatalogError, match="serve_format"):
        load_catalog(_write(tmp_path, raw))


def test_keras_cannot_export_torchscript(tmp_path: Path, raw: dict) -> None:
    raw["models"]["resnet50"]["formats"] = ["onnx", "torchscript"]
    with pytest.raises(CatalogError, match="cannot export"):
        load_catalog(_write(tmp_path, raw))


def test_geometry_must_match_input_size(tmp_path: Path, raw: dict) -> None:
    raw["models"]["resnet18"]["preprocessing"]["crop"] = 200
    with pytest.raises(CatalogError, match="input_size"):
        load_catalog(_write(tmp_path, raw))


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(CatalogError, match="unknown model 'vgg16'.*resnet18"):
        load_catalog().get("vgg16")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("defaults: {}\n")
    with pytest.raises(CatalogError, match="models"):
        load_catalog(empty)


def test_int8_needs_the_fp32_onnx(tmp_path: Path, raw: dict) -> None:
    raw["models"]["resnet18"]["formats"] = ["onnx_int8", "torchscript"]
    raw["models"]["resnet18"]["serve_format"] = "torchscript"
    with pytest.raises(CatalogError, match="onnx_int8 is quantized from the fp32 ONNX"):
        load_catalog(_write(tmp_path, raw))


def test_quantization_defaults_and_overrides(tmp_path: Path, raw: dict) -> None:
    raw["quantization"] = {"min_agreement": 0.99, "op_types": ["Conv", "MatMul"]}
    raw["models"]["resnet50"]["quantization"] = {"min_agreement": 0.95}
    catalog = load_catalog(_write(tmp_path, raw))
    assert catalog.get("resnet18").quantization.min_agreement == 0.99
    assert catalog.get("resnet50").quantization.min_agreement == 0.95
    assert catalog.get("resnet50").quantization.op_types == ("Conv", "MatMul")


def test_holdout_below_200_images_is_refused(tmp_path: Path, raw: dict) -> None:
    raw["quantization"] = {"holdout_images": 50}
    with pytest.raises(CatalogError, match="holdout_images"):
        load_catalog(_write(tmp_path, raw))


def test_served_gflops_charges_int8_its_relative_cost(tmp_path: Path, raw: dict) -> None:
    raw["quantization"] = {"relative_cost": 0.4}
    raw["models"]["resnet50"]["serve_format"] = "onnx_int8"
    catalog = load_catalog(_write(tmp_path, raw))
    r50, r18 = catalog.get("resnet50"), catalog.get("resnet18")
    assert r50.served_gflops == pytest.approx(r50.gflops * 0.4)
    assert r18.served_gflops == r18.gflops
    assert r50.backbone_model() == "resnet50_onnx_int8"


def test_committee_resolves_members_and_sums_their_cost() -> None:
    catalog = load_catalog()
    committee = catalog.committee("committee")
    assert [m.name for m in committee.member_specs] == ["mobilenet_v2", "resnet50", "resnet18"]
    assert committee.weights == pytest.approx([1 / 3] * 3)
    assert committee.gflops == pytest.approx(sum(m.gflops for m in committee.member_specs))
    assert committee.top1_accuracy is None  # `auto` never picks it without a measured accuracy
    assert catalog.served_names == [*catalog.names, "committee"] and "committee" not in catalog.models
    assert committee.triton_models == ["committee", "committee_mean"]


@pytest.mark.parametrize(
    ("committee", "message"),
    [
        ({"members": {"resnet18": 1, "nope": 1}}, "unknown members ['nope']"),
        ({"members": {"resnet18": 1, "resnet50": 0}}, "weights must be positive"),
        ({"members": {"resnet18": 1}}, "members"),
        ({"weights": 1}, "expected a mapping with members"),
    ],
)
def test_bad_committees_are_refused_by_name(tmp_path: Path, committee: dict, message: str) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())
    data["committees"] = {"jury": committee}
    with pytest.raises(CatalogError, match="committees.jury") as err:
        load_catalog(_write(tmp_path, data))
    assert message in str(err.value)


def test_a_committee_may_not_reuse_a_model_name(tmp_path: Path) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "models.yaml").read_text())
    data["committees"] = {"resnet18": {"members": {"resnet50": 1, "mobilenet_v2": 1}}}
    with pytest.raises(CatalogError, match="already a model"):
        load_catalog(_write(tmp_path, data))
