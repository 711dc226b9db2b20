"""Check that the chart, the Dockerfiles and the code agree on names, ports and paths.

The chart repeats facts owned elsewhere: model names and the GPU profile's instances and
batch size (models.yaml through ``visionserve.catalog``), ports
(``visionserve.settings.DEFAULT_*_PORT``), Triton's health endpoints (KServe v2 protocol),
the gateway's endpoints and CLI (``visionserve.cli``), the image tags and Python packages
(``docker/``; the GPU image's pins also against ``pyproject.toml``) and the HPA's custom
metric name (the prometheus-adapter rule in ``files/``). Each check returns messages; empty means agreement.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from helm._errors import ChartError
from helm.chart import Rendered
from helm.dockerfiles import DOCKER_DIR, parse_dockerfile
from helm.schema import CHART_DIR
from visionserve import settings
from visionserve.catalog import Catalog
from visionserve.cli import COMMANDS

__all__ = [
    "GATEWAY_LIVE_PATH",
    "GPU_ENCODED_IMAGE_BYTES",
    "GATEWAY_METRICS_PATH",
    "GATEWAY_READY_PATH",
    "TRITON_LIVE_PATH",
    "TRITON_READY_PATH",
    "check_adapter_rule",
    "check_dockerfiles",
    "check_render",
    "check_gateway_env",
    "check_values",
    "gateway_env_names",
]

#: KServe v2 health endpoints Triton serves on its HTTP port.
TRITON_LIVE_PATH = "/v2/health/live"
TRITON_READY_PATH = "/v2/health/ready"
#: The gateway's endpoints (ARCHITECTURE.md, "Gateway").
GATEWAY_LIVE_PATH = "/livez"
GATEWAY_READY_PATH = "/readyz"
GATEWAY_METRICS_PATH = "/metrics"

#: The encoded image size the GPU profile's python-backend shm is sized for (640x480 photos
#: are ~74 KB; 256 KiB leaves room): one region holds a whole max_batch_size batch of them.
GPU_ENCODED_IMAGE_BYTES = 256 * 1024
#: What the ``<name>_gpu`` models import, besides the stub's own modules (triton_python/models/gpu_model.py,
#: visionserve/gpu_pipeline.py, visionserve/imaging.py).
GPU_PACKAGES = ("numpy", "nvidia-nvimgcodec-cu13", "onnx", "onnx2torch", "pillow", "torch", "torchvision")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

_TRITON_PORTS = {
    "http": settings.DEFAULT_HTTP_PORT,
    "grpc": settings.DEFAULT_GRPC_PORT,
    "metrics": settings.DEFAULT_METRICS_PORT,
}


def check_values(values: dict[str, Any], catalog: Catalog) -> list[str]:
    """The chart's default values against the catalog and the servers' default ports."""
    problems: list[str] = []
    ensembles = {spec.ensemble for spec in catalog.models.values()}
    models = list(values["triton"]["models"])
    if set(models) != ensembles:
        problems.append(
            f"values.yaml triton.models {models} must list every catalog ensemble "
            f"{sorted(ensembles)} (models.yaml is the source of truth: run python -m helm.schema)"
        )
    for name, port in _TRITON_PORTS.items():
        if values["triton"]["ports"][name] != port:
            problems.append(
                f"values.yaml triton.ports.{name}={values['triton']['ports'][name]} but "
                f"visionserve.settings.DEFAULT_{name.upper()}_PORT={port}"
            )
    if values["gateway"]["port"] != settings.DEFAULT_GATEWAY_PORT:
        problems.append(
            f"values.yaml gateway.port={values['gateway']['port']} but "
            f"visionserve.settings.DEFAULT_GATEWAY_PORT={settings.DEFAULT_GATEWAY_PORT}"
        )
    return problems + _check_gpu_values(values, catalog)


def _check_gpu_values(values: dict[str, Any], catalog: Catalog) -> list[str]:
    """triton.gpu against models.yaml's GPU profile: instances per GPU, one batch per shm region."""
    gpu = values["triton"]["gpu"]
    profiles = [spec.gpu for spec in catalog.models.values() if spec.gpu is not None]
    if not profiles:
        return ["models.yaml has no GPU profile (profiles.gpu), but the chart has triton.gpu values"]
    problems: list[str] = []
    instances = max(p.instances for p in profiles)
    if gpu["instancesPerGpu"] != instances:
        problems.append(
            f"values.yaml triton.gpu.instancesPerGpu={gpu['instancesPerGpu']} but models.yaml's GPU "
            f"profile runs {instances} instances per GPU (the shm checks count them; run python -m helm.schema)"
        )
    batch = max(p.max_batch_size for p in profiles)
    needed = batch * GPU_ENCODED_IMAGE_BYTES
    if gpu["pythonBackend"]["shmDefaultByteSize"] < needed:
        problems.append(
            f"values.yaml triton.gpu.pythonBackend.shmDefaultByteSize={gpu['pythonBackend']['shmDefaultByteSize']} "
            f"cannot hold one batch of the GPU profile: max_batch_size {batch} x "
            f"{GPU_ENCODED_IMAGE_BYTES} bytes = {needed}"
        )
    tag, triton_tag = str(gpu["image"]["tag"]), str(values["triton"]["image"]["tag"])
    if not tag.startswith(f"{triton_tag}-"):
        problems.append(
            f"values.yaml triton.gpu.image.tag={tag} is not built on triton.image.tag={triton_tag} "
            "(docker/triton-gpu.Dockerfile derives the same NGC release)"
        )
    return problems


#: Variables the chart sets on the gateway that are not gateway settings (helpers, runtime).
_GATEWAY_HELPER_ENV = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "HOME", "BENTOML_HOME"}
#: Gateway settings the chart must always set (the rest keep the gateway's defaults).
_GATEWAY_REQUIRED = ("triton_url", "database_url", "api_key_pepper", "host", "port")


def gateway_env_names() -> dict[str, set[str]]:
    """Environment names each field of ``gateway.settings.GatewaySettings`` accepts (upper case).

    Raises:
        ChartError: the gateway's settings cannot be imported.
    """
    try:
        from gateway.settings import GatewaySettings
    except ImportError as exc:
        raise ChartError(f"cannot import gateway.settings to check the gateway's environment: {exc}") from None
    prefix = str(GatewaySettings.model_config.get("env_prefix", ""))
    names: dict[str, set[str]] = {}
    for field_name, info in GatewaySettings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            accepted = {str(choice) for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            accepted = {alias}
        else:
            accepted = {f"{prefix}{field_name}"}
        names[field_name] = {n.upper() for n in accepted}
    return names


def check_gateway_env(env_names: set[str]) -> list[str]:
    """The gateway's environment (names) against what GatewaySettings reads."""
    accepted = gateway_env_names()
    known = set().union(*accepted.values())
    problems = [
        f"gateway env {name} is read by no field of gateway.settings.GatewaySettings"
        for name in sorted(env_names - known - _GATEWAY_HELPER_ENV)
    ]
    for field_name in _GATEWAY_REQUIRED:
        if not accepted.get(field_name, set()) & env_names:
            wanted = sorted(accepted.get(field_name, {"?"}))
            problems.append(f"the chart does not set the gateway's {field_name} (one of {wanted})")
    return problems


def _container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    containers = pod_owner["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container["name"] == name:
            return container
    raise KeyError(f"{pod_owner['metadata']['name']} has no container {name!r}")


def _probe(container: dict[str, Any], kind: str) -> tuple[str, Any]:
    get = (container.get(kind) or {}).get("httpGet") or {}
    return get.get("path", ""), get.get("port")


def _port_numbers(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def _args(container: dict[str, Any], flag: str) -> list[str]:
    prefix = f"--{flag}="
    return [a[len(prefix) :] for a in container.get("args", []) if a.startswith(prefix)]


def _check_triton(rendered: Rendered, values: dict[str, Any], catalog: Catalog) -> list[str]:
    problems: list[str] = []
    label = rendered.value_set.name
    triton = _container(rendered.one("Deployment", "triton"), "tritonserver")
    loaded = _args(triton, "load-model")
    if loaded != list(values["triton"]["models"]):
        problems.append(f"{label}: Triton loads {loaded}, values say {values['triton']['models']}")
    unknown = [m for m in loaded if m not in {s.ensemble for s in catalog.models.values()}]
    if unknown:
        problems.append(f"{label}: Triton would load {unknown}, which are not catalog ensembles ({catalog.names})")
    if _args(triton, "model-control-mode") != ["explicit"]:
        problems.append(f"{label}: Triton must run with --model-control-mode=explicit")
    ports = _port_numbers(triton)
    for name, number in values["triton"]["ports"].items():
        if ports.get(name) != number:
            problems.append(f"{label}: Triton container port {name!r} is {ports.get(name)}, values say {number}")
        if _args(triton, f"{name}-port") != [str(number)]:
            problems.append(
                f"{label}: Triton runs with --{name}-port={_args(triton, f'{name}-port')}, expected {number}"
            )
    problems += _probe_problems(f"{label}: Triton", triton, TRITON_LIVE_PATH, TRITON_READY_PATH)
    if not any(a.startswith("python,shm-default-byte-size=") for a in _args(triton, "backend-config")):
        problems.append(f"{label}: Triton lacks --backend-config=python,shm-default-byte-size=")
    mounts = {m["mountPath"]: m["name"] for m in triton.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in rendered.one("Deployment", "triton")["spec"]["template"]["spec"]["volumes"]}
    shm = volumes.get(mounts.get("/dev/shm", ""), {}).get("emptyDir", {})
    if shm.get("medium") != "Memory":
        problems.append(f"{label}: Triton's /dev/shm must be a memory-backed emptyDir")
    service = rendered.one("Service", "triton")
    for port in service["spec"]["ports"]:
        if port["targetPort"] not in ports or port["port"] != ports[port["targetPort"]]:
            problems.append(f"{label}: Triton Service port {port['name']} does not match a container port")
    return problems


def _probe_problems(who: str, container: dict[str, Any], live_path: str, ready_path: str) -> list[str]:
    """The startup and liveness probes must ask ``live_path``, the readiness probe ``ready_path``, on port 'http'."""
    expected = {"startupProbe": live_path, "livenessProbe": live_path, "readinessProbe": ready_path}
    problems = []
    for kind, path in expected.items():
        got_path, got_port = _probe(container, kind)
        if (got_path, got_port) != (path, "http"):
            problems.append(f"{who} {kind} is {got_path} on {got_port!r}, expected {path} on 'http'")
    return problems


def _check_gateway(rendered: Rendered, values: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    label = rendered.value_set.name
    gateway = _container(rendered.one("Deployment", "gateway"), "gateway")
    env = {e["name"]: e for e in gateway.get("env", [])}
    if _port_numbers(gateway).get("http") != values["gateway"]["port"]:
        problems.append(f"{label}: gateway container port is not gateway.port={values['gateway']['port']}")
    if env.get("GATEWAY_PORT", {}).get("value") != str(values["gateway"]["port"]):
        problems.append(f"{label}: gateway GATEWAY_PORT is not gateway.port={values['gateway']['port']}")
    if gateway.get("args") != ["gateway"]:
        problems.append(f"{label}: the gateway container must run `visionserve gateway` (args {gateway.get('args')})")
    problems += _probe_problems(f"{label}: gateway", gateway, GATEWAY_LIVE_PATH, GATEWAY_READY_PATH)
    triton_service = rendered.one("Service", "triton")["metadata"]["name"]
    expected_url = f"{triton_service}:{values['triton']['ports']['grpc']}"
    if env.get("TRITON_URL", {}).get("value") != expected_url:
        problems.append(
            f"{label}: gateway TRITON_URL is {env.get('TRITON_URL')}, expected {expected_url} (Triton gRPC)"
        )
    problems += [f"{label}: {p}" for p in check_gateway_env(set(env))]
    for monitor in rendered.find("ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
            ports = {p["name"] for p in rendered.one("Service", component)["spec"]["ports"]}
            if endpoint["port"] not in ports:
                problems.append(f"{label}: ServiceMonitor {component} scrapes unknown port {endpoint['port']}")
            if component == "gateway" and endpoint.get("path") != GATEWAY_METRICS_PATH:
                problems.append(f"{label}: gateway metrics are on {GATEWAY_METRICS_PATH}")
    return problems


def check_render(rendered: Rendered, values: dict[str, Any], catalog: Catalog) -> list[str]:
    """A rendered value set against its merged values, the catalog and the fixed endpoints."""
    problems = _check_triton(rendered, values, catalog) + _check_gateway(rendered, values)
    notes = rendered.notes
    for needed in ("visionserve keys create --name", "--role admin"):
        if needed not in notes:
            problems.append(f"{rendered.value_set.name}: NOTES.txt does not tell `{needed}`")
    return problems


def check_dockerfiles(values: dict[str, Any], docker_dir: Path = DOCKER_DIR) -> list[str]:
    """docker/*.Dockerfile against the chart's default values and the CLI."""
    problems: list[str] = []
    triton = parse_dockerfile(docker_dir / "triton.Dockerfile")
    image = values["triton"]["image"]
    expected_base = f"{image['registry']}/{image['repository']}:{image['tag']}"
    if triton.base_images[-1] != expected_base:
        problems.append(f"triton.Dockerfile derives {triton.base_images[-1]}, the chart runs {expected_base}")
    if set(triton.exposed_ports) != set(_TRITON_PORTS.values()):
        problems.append(f"triton.Dockerfile exposes {triton.exposed_ports}, expected {sorted(_TRITON_PORTS.values())}")
    pins = {p.lower() for p in triton.pip_pins}
    packages = {p.lower() for p in values["triton"]["pythonPackages"]["packages"]}
    if pins != packages:
        problems.append(
            f"triton.Dockerfile installs {sorted(pins)}, triton.pythonPackages.packages is {sorted(packages)}"
        )
    problems += _check_gpu_dockerfile(values, docker_dir, expected_base)
    gateway = parse_dockerfile(docker_dir / "gateway.Dockerfile")
    if settings.DEFAULT_GATEWAY_PORT not in gateway.exposed_ports:
        problems.append(f"gateway.Dockerfile does not EXPOSE {settings.DEFAULT_GATEWAY_PORT}")
    if gateway.entrypoint != ("visionserve",):
        problems.append(f"gateway.Dockerfile ENTRYPOINT is {list(gateway.entrypoint)}, expected ['visionserve']")
    if list(gateway.cmd) != ["gateway"] or "gateway" not in COMMANDS:
        problems.append(f"gateway.Dockerfile CMD {list(gateway.cmd)} must run the `gateway` subcommand")
    if gateway.env.get("GATEWAY_PORT") != str(settings.DEFAULT_GATEWAY_PORT):
        problems.append(
            f"gateway.Dockerfile sets GATEWAY_PORT={gateway.env.get('GATEWAY_PORT')}, "
            f"expected DEFAULT_GATEWAY_PORT={settings.DEFAULT_GATEWAY_PORT}"
        )
    gateway_vars = {name for name in gateway.env if name.startswith("GATEWAY_")}
    problems += [f"gateway.Dockerfile: {p}" for p in check_gateway_env(gateway_vars) if p.startswith("gateway env ")]
    if "keys" not in COMMANDS:
        problems.append("visionserve.cli has no `keys` subcommand, which NOTES.txt tells users to run")
    if not gateway.base_images or not gateway.base_images[-1].startswith("python:3.11"):
        problems.append(f"gateway.Dockerfile must run on python:3.11 (got {gateway.base_images})")
    return problems


def _pyproject_pins(path: Path = PYPROJECT) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` requirement in pyproject.toml."""
    project = tomllib.loads(path.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        if m := re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([A-Za-z0-9_.\-]+)\s*", requirement):
            pins[m[1].lower()] = m[2]
    return pins


def _check_gpu_dockerfile(values: dict[str, Any], docker_dir: Path, expected_base: str) -> list[str]:
    """docker/triton-gpu.Dockerfile against the chart and pyproject.toml.

    The chart's NGC release, every package the GPU models import pinned, numpy below 2 (the
    stub corrupts tensors under numpy 2) and torch as the exporter pins it (parity).
    """
    path = docker_dir / "triton-gpu.Dockerfile"
    if not path.is_file():
        return [f"{path.name} is missing: triton.gpu.image is built from it"]
    gpu = parse_dockerfile(path)
    problems: list[str] = []
    if not gpu.base_images or gpu.base_images[-1] != expected_base:
        problems.append(f"{path.name} derives {gpu.base_images}, the chart runs {expected_base}")
    if set(gpu.exposed_ports) != set(_TRITON_PORTS.values()):
        problems.append(f"{path.name} exposes {gpu.exposed_ports}, expected {sorted(_TRITON_PORTS.values())}")
    pins = dict(p.lower().split("==", 1) for p in gpu.pip_pins)
    missing = [name for name in GPU_PACKAGES if name not in pins]
    if missing:
        problems.append(f"{path.name} does not pin {missing} (the GPU python models import them)")
    numpy = pins.get("numpy", "")
    major = numpy.split(".")[0]
    if numpy and (not major.isdigit() or int(major) >= 2):
        problems.append(f"{path.name} pins numpy=={numpy}: the python backend's stub corrupts tensors under numpy 2")
    for name, version in _pyproject_pins().items():
        if name in pins and pins[name] != version:
            problems.append(f"{path.name} pins {name}=={pins[name]}, pyproject.toml pins {name}=={version}")
    pillow = {p.lower() for p in values["triton"]["pythonPackages"]["packages"] if p.lower().startswith("pillow==")}
    if pillow and f"pillow=={pins.get('pillow')}" not in pillow:
        problems.append(
            f"{path.name} pins pillow=={pins.get('pillow')}, triton.pythonPackages.packages has {sorted(pillow)}"
        )
    return problems


def check_adapter_rule(values: dict[str, Any], chart_dir: Path = CHART_DIR) -> list[str]:
    """files/prometheus-adapter-rules.yaml serves the metric the Triton HPA asks for."""
    path = chart_dir / "files" / "prometheus-adapter-rules.yaml"
    rules = (yaml.safe_load(path.read_text()) or {}).get("rules", {}).get("custom", [])
    wanted = values["triton"]["autoscaling"]["queueTime"]["metricName"]
    matching = [r for r in rules if r.get("name", {}).get("as") == wanted]
    if not matching:
        return [f"{path.name}: no rule exposes {wanted!r} (triton.autoscaling.queueTime.metricName)"]
    query = matching[0].get("metricsQuery", "")
    missing = [m for m in ("nv_inference_queue_duration_us", "nv_inference_request_success") if m not in query]
    if missing:
        return [f"{path.name}: the {wanted} rule does not use {missing}"]
    if re.search(r"\(\s*1\s*\+", query):
        return [f"{path.name}: the {wanted} rule divides by 1 + requests, which under-reports (triton issue 8979)"]
    return []
