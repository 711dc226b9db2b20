"""The chart values models.yaml decides are written into values.yaml by ``python -m helm.schema``."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from helm.catalog_values import catalog_values, sync_values
from helm.schema import CHART_DIR
from visionserve.catalog import load_catalog

VALUES = (CHART_DIR / "values.yaml").read_text()


def test_the_shipped_values_hold_what_the_catalog_says() -> None:
    assert sync_values(VALUES, load_catalog()) == VALUES


def test_a_new_catalog_model_reaches_the_chart_without_a_chart_edit(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "models.yaml"
    catalog_text = yaml.safe_load(source.read_text())
    first = next(iter(catalog_text["models"]))
    catalog_text["models"]["resnet18_finetuned"] = dict(catalog_text["models"]["resnet18"])
    catalog_text["profiles"]["gpu"]["instances"] = 3
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog_text, sort_keys=False))
    catalog = load_catalog(path)
    synced = sync_values(VALUES, catalog)
    values = yaml.safe_load(synced)
    assert values["triton"]["models"] == catalog_values(catalog)["triton.models"]
    assert values["triton"]["models"][0] == first and values["triton"]["models"][-1] == "resnet18_finetuned"
    assert values["triton"]["gpu"]["instancesPerGpu"] == 3
    assert {"resnet18_finetuned_hflip", "resnet18_finetuned_canary"} <= set(values["triton"]["optionalModels"])
    # everything else, comments included, is untouched
    diff = difflib.ndiff(VALUES.splitlines(), synced.splitlines())
    changed = [line[2:] for line in diff if line[:2] in ("- ", "+ ")]
    assert changed == [
        "    - resnet18_finetuned",
        "    - resnet18_finetuned_hflip",
        "    - resnet18_finetuned_canary",
        "    instancesPerGpu: 8",
        "    instancesPerGpu: 3",
    ]
    assert synced.count("## @param") == VALUES.count("## @param")
    assert sync_values(synced, catalog) == synced  # idempotent
