"""The chart agrees with the catalog, settings, CLI and Dockerfiles; each check catches drift."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from helm.chart import Rendered
from helm.consistency import (
    check_adapter_rule,
    check_dockerfiles,
    check_gateway_env,
    check_render,
    check_values,
    gateway_env_names,
)
from helm.dockerfiles import DOCKER_DIR
from helm.schema import CHART_DIR
from tests.helm.conftest import VALUE_SETS
from visionserve import settings


def test_default_values_agree_with_catalog_and_ports(chart_defaults, catalog) -> None:
    assert check_values(chart_defaults, catalog) == []
    assert set(chart_defaults["triton"]["models"]) == {s.ensemble for s in catalog.models.values()}
    assert chart_defaults["triton"]["ports"] == {
        "http": settings.DEFAULT_HTTP_PORT,
        "grpc": settings.DEFAULT_GRPC_PORT,
        "metrics": settings.DEFAULT_METRICS_PORT,
    }
    assert chart_defaults["gateway"]["port"] == settings.DEFAULT_GATEWAY_PORT


def test_check_values_catches_a_missing_model_and_a_wrong_port(chart_defaults, catalog) -> None:
    values = copy.deepcopy(chart_defaults)
    values["triton"]["models"] = values["triton"]["models"][:-1]
    values["triton"]["ports"]["grpc"] = 9001
    values["gateway"]["port"] = 8080
    problems = " | ".join(check_values(values, catalog))
    assert "must list every catalog ensemble" in problems
    assert "triton.ports.grpc=9001" in problems
    assert "gateway.port=8080" in problems


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_render_agrees(name, rendered_sets, merged_values, catalog) -> None:
    assert check_render(rendered_sets[name], merged_values[name], catalog) == []


def _mutated(rendered: Rendered) -> Rendered:
    return Rendered(rendered.value_set, dict(rendered.templates), copy.deepcopy(rendered.manifests))


def test_check_render_catches_wrong_probe_port_model_and_url(default_render, merged_values, catalog) -> None:
    rendered = _mutated(default_render)
    triton = rendered.one("Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    triton["readinessProbe"]["httpGet"]["path"] = "/healthz"
    triton["args"] = [a if a != "--load-model=resnet50" else "--load-model=resnet51" for a in triton["args"]]
    triton["ports"][1]["containerPort"] = 9001
    gateway = rendered.one("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    gateway["livenessProbe"]["httpGet"]["path"] = "/health"
    for env in gateway["env"]:
        if env["name"] == "TRITON_URL":
            env["value"] = "demo-visionserve-triton:8000"
    problems = " | ".join(check_render(rendered, merged_values["default"], catalog))
    assert "readinessProbe is /healthz" in problems
    assert "resnet51" in problems and "not catalog ensembles" in problems
    assert "container port 'grpc' is 9001" in problems
    assert "gateway livenessProbe is /health" in problems
    assert "TRITON_URL" in problems


def test_gateway_env_names_come_from_the_gateway_settings() -> None:
    names = gateway_env_names()
    assert "TRITON_URL" in names["triton_url"]
    assert "DATABASE_URL" in names["database_url"]
    assert (
        check_gateway_env(
            {"TRITON_URL", "DATABASE_URL", "GATEWAY_API_KEY_PEPPER", "GATEWAY_HOST", "GATEWAY_PORT"}
        )
        == []
    )
    problems = check_gateway_env(
        {"TRITON_URL", "DATABASE_URL", "GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_PEPER"}
    )
    assert any("GATEWAY_PEPER is read by no field" in p for p in problems)
    assert any("api_key_pepper" in p for p in problems)


def test_dockerfiles_agree_with_the_chart(chart_defaults) -> None:
    assert check_dockerfiles(chart_defaults) == []


def test_check_dockerfiles_catches_tag_package_and_port_drift(chart_defaults, tmp_path: Path) -> None:
    for path in DOCKER_DIR.glob("*.Dockerfile"):
        shutil.copy(path, tmp_path / path.name)
    triton = tmp_path / "triton.Dockerfile"
    triton.write_text(triton.read_text().replace("26.07-py3", "25.01-py3").replace("pillow==", "pillow>="))
    gateway = tmp_path / "gateway.Dockerfile"
    gateway.write_text(gateway.read_text().replace("GATEWAY_PORT=3000", "GATEWAY_PORT=8080"))
    problems = " | ".join(check_dockerfiles(chart_defaults, docker_dir=tmp_path))
    assert "derives nvcr.io/nvidia/tritonserver:25.01-py3" in problems
    assert "triton.pythonPackages.packages" in problems
    assert "GATEWAY_PORT=8080" in problems


def test_adapter_rule_serves_the_hpa_metric(chart_defaults, tmp_path: Path) -> None:
    assert check_adapter_rule(chart_defaults) == []
    (tmp_path / "files").mkdir()
    rules = (CHART_DIR / "files" / "prometheus-adapter-rules.yaml").read_text()
    (tmp_path / "files" / "prometheus-adapter-rules.yaml").write_text(
        rules.replace("as: triton_queue_time_per_request_us", "as: avg_time_queue_us")
    )
    assert "no rule exposes" in check_adapter_rule(chart_defaults, chart_dir=tmp_path)[0]
    (tmp_path / "files" / "prometheus-adapter-rules.yaml").write_text(
        rules.replace("clamp_min(rate(nv_inference_request_success", "(1 + rate(nv_inference_request_success")
    )
    assert "under-reports" in check_adapter_rule(chart_defaults, chart_dir=tmp_path)[0]
