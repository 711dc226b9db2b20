"""The chart renders for its defaults and each ci/ value set, and each set does what it says."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm.chart import Rendered, render
from helm.schema import CHART_DIR
from tests.helm.conftest import VALUE_SETS
from visionserve.catalog import load_catalog

GATEWAY_PEER = {"podSelector": {"matchLabels": {
    "app.kubernetes.io/name": "visionserve",
    "app.kubernetes.io/instance": "demo",
    "app.kubernetes.io/component": "gateway",
}}}  # fmt: skip
PUBLISHER_PEER = {"podSelector": {"matchLabels": {"visionserve.io/publisher": "true"}}}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in _pod_spec(doc)["containers"] if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _volumes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _pod_spec(doc).get("volumes", [])}


def _workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.find("Deployment") + rendered.find("StatefulSet")


def test_there_are_at_least_four_ci_value_sets() -> None:
    assert {"gpu", "external", "s3", "ingress-networkpolicy"} <= set(VALUE_SETS)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_value_set_renders_triton_and_gateway(name: str, rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets[name]
    assert rendered.one("Deployment", "triton")
    assert rendered.one("Deployment", "gateway")
    assert {s["metadata"]["name"] for s in rendered.find("Service")} >= {
        "demo-visionserve-triton",
        "demo-visionserve-gateway",
    }
    assert all(
        doc["metadata"]["namespace"] == "visionserve" for _, doc in rendered.manifests if doc["kind"] != "Namespace"
    )


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_container_is_locked_down_and_limited(name: str, rendered_sets: dict[str, Rendered]) -> None:
    for workload in _workloads(rendered_sets[name]):
        pod = _pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{workload['metadata']['name']}/{container['name']}"
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where


def test_default_triton_loads_the_catalog_ensembles_explicitly(default_render: Rendered, catalog) -> None:
    args = _container(default_render.one("Deployment", "triton"), "tritonserver")["args"]
    assert "--model-control-mode=explicit" in args
    assert [a.split("=", 1)[1] for a in args if a.startswith("--load-model=")] == [
        spec.ensemble for spec in catalog.models.values()
    ]
    assert "--model-repository=/models" in args
    assert "--cache-config=local,size=268435456" in args
    assert "--backend-config=python,shm-default-byte-size=16777216" in args
    assert "--backend-config=python,shm-growth-byte-size=16777216" in args


def test_default_triton_has_sized_memory_shm_probes_and_pvc(default_render: Rendered) -> None:
    triton = default_render.one("Deployment", "triton")
    volumes = _volumes(triton)
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1073741824"}
    assert volumes["model-repository"]["persistentVolumeClaim"]["claimName"] == "demo-visionserve-models"
    mount = next(m for m in _container(triton, "tritonserver")["volumeMounts"] if m["name"] == "model-repository")
    # A sub-directory: publishing stages beside the repository, on the same filesystem.
    assert mount == {
        "name": "model-repository",
        "mountPath": "/models",
        "readOnly": True,
        "subPath": "model_repository",
    }
    container = _container(triton, "tritonserver")
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    budget_s = container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"]
    assert budget_s >= 300, "model loading needs minutes, not the liveness budget"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    pvc = default_render.one("PersistentVolumeClaim", "models")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "replicas" in triton["spec"] and not default_render.find("HorizontalPodAutoscaler")
    # The stock image gets Pillow from the init container: a venv first on Triton's PATH
    # (tests/helm/test_python_packages.py runs these commands on a real tritonserver).
    init = _pod_spec(triton)["initContainers"][0]
    assert init["name"] == "python-packages" and "pillow==13.0.0" in init["command"]
    script = container["command"][2]
    assert script.startswith('PATH="/opt/visionserve/venv/bin:$PATH"; ') and script.endswith('exec tritonserver "$@"')
    assert {"name": "python-packages", "mountPath": "/opt/visionserve/venv", "readOnly": True} in container[
        "volumeMounts"
    ]


def test_default_gateway_reaches_triton_postgres_and_redis(default_render: Rendered) -> None:
    env = _env(_container(default_render.one("Deployment", "gateway"), "gateway"))
    assert env["TRITON_URL"]["value"] == "demo-visionserve-triton:8001"
    assert env["DATABASE_URL"]["value"] == (
        "postgresql://visionserve:$(POSTGRES_PASSWORD)@demo-visionserve-postgresql:5432/visionserve"
    )
    assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@demo-visionserve-redis:6379/0"
    # $(VAR) expansion only sees variables defined earlier in the list.
    names = list(env)
    assert names.index("POSTGRES_PASSWORD") < names.index("DATABASE_URL")
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
    assert env["GATEWAY_API_KEY_PEPPER"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-visionserve-gateway",
        "key": "api-key-pepper",
    }
    assert default_render.one("StatefulSet", "redis")["spec"]["volumeClaimTemplates"]
    assert default_render.one("StatefulSet", "postgresql")["spec"]["volumeClaimTemplates"]


def test_generated_secrets_are_random_url_safe_and_kept(default_render: Rendered) -> None:
    pepper_secret = default_render.one("Secret", "gateway")
    pepper = base64.b64decode(pepper_secret["data"]["api-key-pepper"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", pepper)
    assert pepper_secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = base64.b64decode(default_render.one("Secret", "postgresql")["data"]["postgres-password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    again = render()
    assert base64.b64decode(again.one("Secret", "gateway")["data"]["api-key-pepper"]).decode() != pepper


def test_service_monitor_only_when_the_cluster_has_the_crd() -> None:
    with_crd = render(api_versions=("monitoring.coreos.com/v1",))
    without = render(api_versions=())
    assert {m["metadata"]["name"] for m in with_crd.find("ServiceMonitor")} == {
        "demo-visionserve-triton",
        "demo-visionserve-gateway",
    }
    assert without.find("ServiceMonitor") == []
    disabled = render({"metrics": {"serviceMonitor": {"enabled": False}}})
    assert disabled.find("ServiceMonitor") == []


def test_grafana_dashboard_is_valid_json_with_triton_and_gateway_panels(default_render: Rendered) -> None:
    import json

    config_map = default_render.one("ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["visionserve.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "nv_inference_queue_duration_us",
        "nv_inference_request_success",
        "bentoml_service_request_total",
    ):
        assert metric in exprs


def test_gpu_values(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["gpu"]
    triton = rendered.one("Deployment", "triton")
    container = _container(triton, "tritonserver")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["memory"] == "48Gi"
    # The GPU profile's image (docker/triton-gpu.Dockerfile; tests/helm/test_gpu.py covers the rest).
    assert container["image"] == "registry.example.com/visionserve/tritonserver:26.07-py3-visionserve-gpu"
    assert "initContainers" not in _pod_spec(triton) and "venv" not in container["command"][2]
    assert _pod_spec(triton)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert _pod_spec(triton)["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert _pod_spec(triton)["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert "replicas" not in triton["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler", "triton")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    pods_metric = next(m for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    rules = yaml.safe_load((CHART_DIR / "files" / "prometheus-adapter-rules.yaml").read_text())
    assert pods_metric["pods"]["metric"]["name"] == rules["rules"]["custom"][0]["name"]["as"]
    assert pods_metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "20000"}
    assert rendered.one("HorizontalPodAutoscaler", "gateway")["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_external_redis_and_postgres(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["external"]
    assert rendered.find("StatefulSet") == []
    env = _env(_container(rendered.one("Deployment", "gateway"), "gateway"))
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "visionserve-database", "key": "url"}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-visionserve-external",
        "key": "redis-url",
    }
    assert env["GATEWAY_API_KEY_PEPPER"]["valueFrom"]["secretKeyRef"] == {
        "name": "visionserve-pepper",
        "key": "pepper",
    }
    assert "POSTGRES_PASSWORD" not in env and "REDIS_PASSWORD" not in env
    external = rendered.one("Secret", "external")
    assert base64.b64decode(external["data"]["redis-url"]).decode().startswith("rediss://")
    assert "database-url" not in external["data"]
    assert rendered.find("Secret", "gateway") == [], "an existing pepper secret must not be shadowed"
    policies = {p["metadata"]["name"] for p in rendered.find("NetworkPolicy")}
    assert policies == {"demo-visionserve-triton", "demo-visionserve-gateway"}


def test_s3_repository(rendered_sets: dict[str, Rendered]) -> None:
    triton = rendered_sets["s3"].one("Deployment", "triton")
    container = _container(triton, "tritonserver")
    assert "--model-repository=s3://visionserve-models/production/model_repository" in container["args"]
    assert container["envFrom"] == [{"secretRef": {"name": "visionserve-s3"}}]
    assert "model-repository" not in _volumes(triton)
    assert _volumes(triton)["tmp"]["emptyDir"]["sizeLimit"] == "30Gi"
    assert rendered_sets["s3"].find("PersistentVolumeClaim") == []
    annotations = triton["metadata"]["annotations"]
    assert any(v.startswith("CKV_K8S_35=") for v in annotations.values())


def test_gcs_repository(rendered_sets: dict[str, Rendered]) -> None:
    triton = rendered_sets["gcs"].one("Deployment", "triton")
    container = _container(triton, "tritonserver")
    assert "--model-repository=gs://visionserve-models/model_repository" in container["args"]
    assert (
        _env(container)["GOOGLE_APPLICATION_CREDENTIALS"]["value"]
        == "/var/run/secrets/visionserve/gcs/credentials.json"
    )
    secret = _volumes(triton)["gcs-credentials"]["secret"]
    assert secret == {
        "secretName": "visionserve-gcs",
        "items": [{"key": "key.json", "path": "credentials.json"}],
    }


def test_init_container_repository(rendered_sets: dict[str, Rendered]) -> None:
    triton = rendered_sets["init-container"].one("Deployment", "triton")
    init = next(c for c in _pod_spec(triton)["initContainers"] if c["name"] == "model-repository")
    assert init["image"] == "docker.io/amazon/aws-cli:2.22.35"
    assert init["command"][:3] == ["aws", "s3", "sync"]
    assert {"name": "model-repository", "mountPath": "/models"} in init["volumeMounts"]
    assert _volumes(triton)["model-repository"]["emptyDir"] == {"sizeLimit": "30Gi"}
    mount = next(m for m in _container(triton, "tritonserver")["volumeMounts"] if m["name"] == "model-repository")
    assert mount["readOnly"] is True


def test_ingress_and_network_policy(rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets["ingress-networkpolicy"]
    ingress = rendered.one("Ingress", "gateway")
    assert ingress["spec"]["rules"][0]["host"] == "vision.example.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "demo-visionserve-tls"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "demo-visionserve-gateway", "port": {"name": "http"}}
    triton_np = rendered.one("NetworkPolicy", "triton")
    serving, metrics = triton_np["spec"]["ingress"]
    assert {p["port"] for p in serving["ports"]} == {8000, 8001}
    assert serving["from"] == [GATEWAY_PEER, PUBLISHER_PEER]
    assert metrics["ports"] == [{"port": 8002, "protocol": "TCP"}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    gateway_rules = rendered.one("NetworkPolicy", "gateway")["spec"]["ingress"]
    assert gateway_rules[0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert gateway_rules[1]["from"] == metrics["from"], "the gateway's /metrics must stay scrapeable"
    for component in ("redis", "postgresql"):
        rule = rendered.one("NetworkPolicy", component)["spec"]["ingress"][0]
        assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    assert "https://vision.example.com/" in rendered.notes


def test_default_network_policy_lets_only_the_gateway_and_publishers_reach_triton(default_render: Rendered) -> None:
    # Issue 12: a caller who reaches Triton directly skips keys, limits and upload checks.
    serving, metrics = default_render.one("NetworkPolicy", "triton")["spec"]["ingress"]
    assert {p["port"] for p in serving["ports"]} == {8000, 8001}
    assert serving["from"] == [GATEWAY_PEER, PUBLISHER_PEER]
    assert metrics["ports"] == [{"port": 8002, "protocol": "TCP"}]
    assert "only the gateway" in default_render.notes
    assert "WARNING: Triton's HTTP/gRPC ports are open" not in default_render.notes


def test_triton_opened_to_the_cluster_on_purpose_renders_no_peer_list_and_warns() -> None:
    rendered = render({"networkPolicy": {"tritonFromGatewayOnly": False}})
    serving = rendered.one("NetworkPolicy", "triton")["spec"]["ingress"][0]
    assert "from" not in serving
    assert "WARNING: Triton's HTTP/gRPC ports are open to every pod" in rendered.notes


def test_publishers_can_be_replaced_or_removed() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci"}}}
    custom = render({"networkPolicy": {"tritonPublishersFrom": [peer]}})
    assert custom.one("NetworkPolicy", "triton")["spec"]["ingress"][0]["from"] == [GATEWAY_PEER, peer]
    none = render({"networkPolicy": {"tritonPublishersFrom": []}})
    assert none.one("NetworkPolicy", "triton")["spec"]["ingress"][0]["from"] == [GATEWAY_PEER]


def test_notes_tell_how_to_reach_everything_and_create_the_first_key(default_render: Rendered) -> None:
    notes = default_render.notes
    assert "port-forward svc/demo-visionserve-triton 8000:8000 8001:8001 8002:8002" in notes
    assert "port-forward svc/demo-visionserve-gateway 3000:3000" in notes
    assert "exec -it deploy/demo-visionserve-gateway -- visionserve keys create --name admin --role admin" in notes
    assert "/v2/models/mobilenet_v2/ready" in notes


def test_fullname_override_and_long_release_names_stay_dns_labels() -> None:
    rendered = render({"fullnameOverride": "vs"})
    assert rendered.one("Deployment", "triton")["metadata"]["name"] == "vs-triton"
    long_release = render(release="a" * 53)  # Helm's longest release name
    names: dict[str, set[str]] = {}
    for _, doc in long_release.manifests:
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        assert name not in names.setdefault(doc["kind"], set()), f"two {doc['kind']}s named {name}"
        names[doc["kind"]].add(name)
    for statefulset in long_release.find("StatefulSet"):
        # Its pods get a controller-revision-hash label "<name>-<10 chars>", at most 63 long.
        assert len(statefulset["metadata"]["name"]) <= 52
        assert statefulset["spec"]["serviceName"] in names["Service"]


def _ingress_paths(values: dict[str, Any]) -> list[tuple[str, str]]:
    ingress = render({"ingress": {"enabled": True, "hostname": "vs.example.com", **values}}).one("Ingress", "gateway")
    return [(p["path"], p["pathType"]) for p in ingress["spec"]["rules"][0]["http"]["paths"]]


def test_ingress_routes_the_public_api_only_unless_told_otherwise() -> None:
    """/metrics, /readyz and /livez stay inside the cluster (issue 12: they were public)."""
    public = _ingress_paths({})
    assert public == [("/v1", "Prefix"), ("/docs.json", "Exact"), ("/ui", "Prefix"), ("/", "Exact")]
    assert not any(path.startswith(("/metrics", "/readyz", "/livez")) for path, _ in public)
    assert _ingress_paths({"path": "/vs/"})[0] == ("/vs/v1", "Prefix")
    assert _ingress_paths({"exposeOperations": True}) == [("/", "Prefix")]


def test_a_restarted_triton_pod_loads_the_optional_ensembles_the_repository_holds(
    default_render: Rendered, tmp_path: Path
) -> None:
    """The rendered start command, run by sh: a running release's canary, TTA ensembles, committees."""
    container = _container(default_render.one("Deployment", "triton"), "tritonserver")
    catalog = load_catalog()
    repository = tmp_path / "models"
    present = [catalog.models["resnet18"].tta_ensemble("hflip"), "resnet18_canary", *catalog.committees]
    for name in ["resnet18", *present]:  # a release of resnet18 running, its TTA and the committee exported
        (repository / name).mkdir(parents=True)
    fake = tmp_path / "bin" / "tritonserver"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    command = [part.replace("/models/", f"{repository}/") for part in container["command"]]
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}

    def loaded() -> list[str]:
        args = subprocess.run(command + container["args"], env=env, capture_output=True, text=True, check=True)
        return [a.removeprefix("--load-model=") for a in args.stdout.splitlines() if a.startswith("--load-model=")]

    assert catalog.committees and loaded() == [*catalog.models, *present]
    (repository / "resnet18_canary").rmdir()  # the release ended
    assert loaded() == [*catalog.models, present[0], *present[2:]]
