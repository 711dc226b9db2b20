"""values.schema.json rejects wrong values; it is generated from the documented values.yaml."""

from __future__ import annotations

from pathlib import Path

import helm_python
import pytest

from helm._errors import ChartError, SchemaError
from helm.chart import load_values, render
from helm.schema import CHART_DIR, build_schema, parse_params, render_schema


def _validate(values: dict) -> None:
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(values)


def test_a_values_file_with_a_wrong_type_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text('triton:\n  replicaCount: two\n  gpu:\n    enabled: "yes"\n')
    values = load_values(bad)
    with pytest.raises(helm_python.HelmValuesError) as err:
        _validate(values)
    assert "/triton/replicaCount" in str(err.value) and "want integer" in str(err.value)
    with pytest.raises(ChartError, match="replicaCount"):
        render(values)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"triton": {"replicaCoun": 2}}, "replicaCoun"),  # a typo is not silently ignored
        ({"modelRepository": {"type": "nfs"}}, "/modelRepository/type"),
        ({"triton": {"ports": {"grpc": 70000}}}, "/triton/ports/grpc"),
        ({"triton": {"models": []}}, "/triton/models"),
        ({"triton": {"models": "resnet50"}}, "/triton/models"),
        ({"triton": {"responseCache": {"sizeBytes": -1}}}, "/triton/responseCache/sizeBytes"),
        ({"redis": {"enabled": "false"}}, "/redis/enabled"),
        ({"triton": {"image": {"pullPolicy": "Sometimes"}}}, "/triton/image/pullPolicy"),
    ],
)
def test_schema_rejects(values: dict, fragment: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=fragment):
        _validate(values)


def test_schema_accepts_defaults_and_every_ci_values_file() -> None:
    _validate({})
    for path in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        _validate(load_values(path))


def test_validate_values_reports_every_inconsistency_at_once() -> None:
    bad = {
        "modelRepository": {"type": "cloud", "cloud": {"url": "ftp://x"}},
        "postgresql": {"enabled": False},
        "redis": {"enabled": True},
        "externalRedis": {"url": "redis://r:6379/0"},
        "ingress": {"enabled": True},
        "triton": {"shm": {"sizeLimitBytes": 67108864}, "pythonBackend": {"shmDefaultByteSize": 67108864}},
    }
    with pytest.raises(ChartError) as err:
        render(bad)
    message = str(err.value)
    for expected in (
        "modelRepository.cloud.url must be an s3://, gs:// or as:// URL",
        "postgresql.enabled=false needs externalDatabase",
        "set either redis.enabled or externalRedis, not both",
        "ingress.hostname is required",
        "triton.shm.sizeLimitBytes",
    ):
        assert expected in message


def test_init_container_repository_needs_an_image_and_a_command() -> None:
    with pytest.raises(ChartError) as err:
        render({"modelRepository": {"type": "initContainer"}})
    assert "modelRepository.initContainer.image.repository is required" in str(err.value)
    assert "modelRepository.initContainer.command" in str(err.value)


def test_committed_schema_is_generated_from_values_yaml() -> None:
    assert (CHART_DIR / "values.schema.json").read_text() == render_schema()


def test_every_value_is_documented_under_a_section() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    params = parse_params(text)
    assert all(p.section for p in params.values())
    assert len(params) > 150
    schema = build_schema(text)
    assert schema["properties"]["triton"]["properties"]["models"]["default"] == [
        "mobilenet_v2",
        "resnet50",
        "resnet18",
    ]


def test_generator_refuses_undocumented_and_phantom_values() -> None:
    with pytest.raises(SchemaError, match="replicas has no `## @param replicas` line"):
        build_schema("## @section S\n## @param name The name\nname: x\nreplicas: 1\n")
    with pytest.raises(SchemaError, match="documented but not a value: gone"):
        build_schema("## @section S\n## @param name The name\nname: x\n## @param gone Removed\n")
    with pytest.raises(SchemaError, match="before any @section"):
        build_schema("## @param name The name\nname: x\n")
    with pytest.raises(SchemaError, match=r"declared \[integer\] but defaults to 'x'"):
        build_schema("## @section S\n## @param name [integer] The name\nname: x\n")
    with pytest.raises(SchemaError, match="not in"):
        build_schema("## @section S\n## @param mode [enum:a|b] Mode\nmode: c\n")


def test_generated_schema_types_and_bounds() -> None:
    schema = build_schema(
        "## @section S\n"
        "## @param a.n [min:1] [max:9] Count\n"
        "## @param a.tags [array] Tags\n"
        "## @param a.extra [object] Free-form\n"
        "## @param a.s [nullable] Maybe\n"
        "a:\n  n: 2\n  tags: [x]\n  extra: {k: v}\n  s: ''\n"
    )
    a = schema["properties"]["a"]
    assert a["additionalProperties"] is False
    assert a["properties"]["n"] == {
        "type": "integer",
        "description": "Count",
        "default": 2,
        "minimum": 1,
        "maximum": 9,
    }
    assert a["properties"]["tags"]["items"] == {"type": "string"}
    assert a["properties"]["extra"]["type"] == "object" and "properties" not in a["properties"]["extra"]
    assert a["properties"]["s"]["type"] == ["string", "null"]
