"""``visionserve serve`` argument handling (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.cli import parse_bytes, select_models
from visionserve.catalog import load_catalog
from visionserve.cli import main as visionserve_main
from visionserve.errors import CatalogError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 2**20),
        ("256MiB", 256 * 2**20),
        ("1GB", 10**9),
        ("512k", 512_000),
        ("1.5GiB", 3 * 2**29),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "12 parsecs", "-1"])
def test_parse_bytes_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes(text)


def test_select_models_default_and_all_formats(tmp_path: Path) -> None:
    catalog = load_catalog()
    spec = next(iter(catalog.models.values()))
    assert select_models(catalog, spec.name, all_formats=False, repository=tmp_path) == [
        spec.ensemble,
        spec.preprocess_model,
        spec.backbone_model(),
    ]
    everything = select_models(catalog, spec.name, all_formats=True, repository=tmp_path)
    assert {spec.backbone_model(f) for f in spec.formats} <= set(everything)
    assert len(select_models(catalog, None, all_formats=False, repository=tmp_path)) == 3 * len(catalog.models)


def test_select_models_follows_the_served_versions_steps(tmp_path: Path) -> None:
    """A GPU-profile version's ensemble runs <name>_gpu: that is what the server must load."""
    from google.protobuf import text_format

    from export.repository import VersionInfo, ensemble_config

    catalog = load_catalog()
    spec = catalog.get("resnet18")
    info = VersionInfo(version=3, weights="demo", num_classes=1000, formats=list(spec.formats), profile="gpu")
    (tmp_path / spec.ensemble).mkdir()
    (tmp_path / spec.ensemble / "config.pbtxt").write_text(text_format.MessageToString(ensemble_config(spec, info)))
    assert select_models(catalog, spec.name, all_formats=False, repository=tmp_path) == [spec.ensemble, spec.gpu_model]


def test_select_models_unknown_entry(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="unknown model 'nope'"):
        select_models(load_catalog(), "nope", all_formats=False, repository=tmp_path)


def test_serve_on_an_empty_repository_exits_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert visionserve_main(["serve", "--repository", str(tmp_path), "--log-file", str(tmp_path / "log")]) == 1
    assert "run `make export`" in capsys.readouterr().err
