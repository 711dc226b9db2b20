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


def test_select_models_default_and_all_formats() -> None:
    catalog = load_catalog()
    spec = next(iter(catalog.models.values()))
    assert select_models(catalog, spec.name, all_formats=False) == [
        spec.ensemble,
        spec.preprocess_model,
        spec.backbone_model(),
    ]
    everything = select_models(catalog, spec.name, all_formats=True)
    assert {spec.backbone_model(f) for f in spec.formats} <= set(everything)
    assert len(select_models(catalog, None, all_formats=False)) == 3 * len(catalog.models)


def test_select_models_unknown_entry() -> None:
    with pytest.raises(CatalogError, match="unknown model 'nope'"):
        select_models(load_catalog(), "nope", all_formats=False)


def test_serve_on_an_empty_repository_exits_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert visionserve_main(["serve", "--repository", str(tmp_path), "--log-file", str(tmp_path / "log")]) == 1
    assert "run `make export`" in capsys.readouterr().err
