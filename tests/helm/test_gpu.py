"""The chart's GPU profile (triton.gpu): what it renders, what the defaults keep out, what it refuses.

Rendered offline with Helm's own engine (helm-python-sdk), like every chart test. The GPU
profile serves a repository from `make export PROFILE=gpu`; its image, resources, shm and
startup budget replace the CPU ones only when `triton.gpu.enabled` is true.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from helm._errors import ChartError
from helm.chart import Rendered, render
from helm.consistency import GPU_ENCODED_IMAGE_BYTES, check_dockerfiles, check_values
from helm.dockerfiles import DOCKER_DIR
from tests.helm.conftest import VALUE_SETS

GPU_IMAGE = "registry.example.com/visionserve/tritonserver:26.07-py3-visionserve-gpu"
GPU_ON: dict[str, Any] = {"triton": {"gpu": {"enabled": True, "image": {"registry": "registry.example.com"}}}}


def _gpu(**gpu: Any) -> dict[str, Any]:
    """Values enabling the GPU profile with ``gpu`` merged into triton.gpu."""
    values = copy.deepcopy(GPU_ON)
    values["triton"]["gpu"].update(gpu)
    return values


def _triton(rendered: Rendered) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, tritonserver container) of the Triton Deployment."""
    pod = rendered.one("Deployment", "triton")["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "tritonserver")


def _shm(pod: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]


def _refused(values: dict[str, Any]) -> str:
    with pytest.raises(ChartError) as refused:
        render(values)
    return str(refused.value)


def test_gpu_profile_renders_the_gpu_image_resources_shm_args_and_startup_budget() -> None:
    rendered = render(GPU_ON)
    pod, container = _triton(rendered)
    assert container["image"] == GPU_IMAGE
    assert container["resources"] == {
        "requests": {"cpu": "12", "memory": "32Gi"},
        "limits": {"cpu": "16", "memory": "48Gi", "nvidia.com/gpu": 1},
    }
    args = container["args"]
    assert "--backend-config=python,shm-default-byte-size=134217728" in args
    assert "--backend-config=python,shm-growth-byte-size=67108864" in args
    assert not [a for a in args if a.endswith("byte-size=16777216")], "the CPU shm sizes must not leak in"
    assert _shm(pod) == {"medium": "Memory", "sizeLimit": "8589934592"}
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 1800
    # The GPU image carries torch: no pip init container, no venv on PATH.
    assert "initContainers" not in pod and "venv" not in container["command"][2]
    assert not [v for v in pod["volumes"] if v["name"] == "python-packages"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "nodeSelector" not in pod, "the GPU limit alone keeps the pod on GPU nodes"
    assert "make export PROFILE=gpu" in rendered.notes
    assert f"Triton image: {GPU_IMAGE}" in rendered.notes
    assert "--timeout=35m" in rendered.notes and "pip-install" not in rendered.notes
    digest_skip = [v for v in rendered.one("Deployment", "triton")["metadata"]["annotations"].values()]
    assert any(v.startswith("CKV_K8S_43=") for v in digest_skip)


def test_gpu_count_selectors_tolerations_and_digest_combine_with_the_triton_ones() -> None:
    toleration = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    values = _gpu(
        count=2,
        shm={"sizeLimitBytes": 10 * 2**30},  # 3 models x 8 instances x 2 GPUs x 192 MiB = 9 GiB
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H200"},
        image={"registry": "registry.example.com", "digest": "sha256:" + "a" * 64},
    )
    values["triton"].update(nodeSelector={"pool": "gpu"}, tolerations=[toleration])
    rendered = render(values)
    pod, container = _triton(rendered)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["image"] == "registry.example.com/visionserve/tritonserver@sha256:" + "a" * 64
    assert pod["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H200"}
    assert pod["tolerations"][0] == toleration and pod["tolerations"][1]["key"] == "nvidia.com/gpu"
    # Pinned by digest (and no init-container image): the digest finding is no longer skipped.
    annotations = rendered.one("Deployment", "triton")["metadata"]["annotations"].values()
    assert not any(v.startswith("CKV_K8S_43=") for v in annotations)
    assert "2 nvidia.com/gpu per pod" in rendered.notes


@pytest.mark.parametrize("name", [n for n in VALUE_SETS if n != "gpu"])
def test_cpu_value_sets_render_no_gpu_setting(name: str, rendered_sets: dict[str, Rendered]) -> None:
    rendered = rendered_sets[name]
    for kind in ("Deployment", "StatefulSet"):
        for workload in rendered.find(kind):
            pod = workload["spec"]["template"]["spec"]
            for c in pod["containers"] + pod.get("initContainers", []):
                assert "nvidia.com/gpu" not in c["resources"].get("limits", {}), c["name"]
                assert "visionserve-gpu" not in c["image"], c["name"]
            assert not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
    pod, container = _triton(rendered)
    assert not [a for a in container["args"] if "134217728" in a or "67108864" in a]
    assert _shm(pod)["sizeLimit"] == "1073741824"
    assert container["startupProbe"]["failureThreshold"] == 60
    assert "GPU profile" not in rendered.notes


def test_default_render_is_the_stock_ngc_image_with_its_cpu_shm(default_render: Rendered) -> None:
    pod, container = _triton(default_render)
    assert container["image"] == "nvcr.io/nvidia/tritonserver:26.07-py3"
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert "--backend-config=python,shm-default-byte-size=16777216" in container["args"]
    assert "tolerations" not in pod and "nodeSelector" not in pod
    assert pod["initContainers"][0]["name"] == "python-packages"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"triton": {"gpu": {"enabled": True}}},
            "triton.gpu.image.registry is required with triton.gpu.enabled",
        ),
        (
            _gpu(count=4),  # 3 models x 8 instances x 4 GPUs x (128 + 64) MiB > 8 GiB
            "triton.gpu.shm.sizeLimitBytes (8589934592) is below 19327352832 bytes: 96 python-backend regions "
            "(3 models x instancesPerGpu 8 x count 4)",
        ),
        (
            _gpu(resources={"limits": {"memory": "4Gi"}}),
            "triton.gpu.resources.limits.memory (4Gi) must be above triton.gpu.shm.sizeLimitBytes (8589934592)",
        ),
        (
            _gpu(resources={"limits": {"memory": "4096Mi"}}),
            "triton.gpu.resources.limits.memory (4096Mi) must be above",
        ),
        (
            _gpu(resources={"limits": {"memory": 4 * 2**30}}),  # a plain number of bytes
            "triton.gpu.resources.limits.memory (4294967296) must be above",
        ),
        (
            _gpu(resources={"limits": {"nvidia.com/gpu": 1}}),
            "triton.gpu.resources.limits must not set nvidia.com/gpu",
        ),
        (
            {"triton": {"resources": {"limits": {"cpu": "4", "memory": "1Gi"}}}},
            "triton.resources.limits.memory (1Gi) must be above triton.shm.sizeLimitBytes (1073741824)",
        ),
    ],
    ids=[
        "no-registry",
        "shm-below-regions",
        "memory-at-shm",
        "memory-in-Mi",
        "memory-in-bytes",
        "gpu-limit-set",
        "cpu-memory",
    ],
)
def test_inconsistent_gpu_settings_are_refused_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    refused = _refused(values)
    assert "VALUES VALIDATION" in refused
    assert message in refused


def test_every_gpu_problem_is_listed_at_once() -> None:
    refused = _refused({"triton": {"gpu": {"enabled": True, "count": 4, "resources": {"limits": {"memory": "2G"}}}}})
    for message in ("image.registry is required", "shm.sizeLimitBytes (8589934592) is below", "(2G) must be above"):
        assert message in refused


def test_what_is_enough_is_accepted() -> None:
    # Four GPUs with a /dev/shm that holds their regions, and a memory limit above it.
    values = _gpu(count=4, shm={"sizeLimitBytes": 20 * 2**30}, resources={"limits": {"memory": "1.5Ti"}})
    pod, container = _triton(render(values))
    assert _shm(pod)["sizeLimit"] == str(20 * 2**30)
    assert container["resources"]["limits"] == {"cpu": "16", "memory": "1.5Ti", "nvidia.com/gpu": 4}
    # CPU: the shm check of the CPU profile does not apply to the GPU profile's sizes, and back.
    render({"triton": {"shm": {"sizeLimitBytes": 67108864}, "gpu": {"shm": {"sizeLimitBytes": 67108864}}}})


@pytest.mark.parametrize(
    "gpu",
    [{"count": 0}, {"instancesPerGpu": 0}, {"imagee": {}}, {"shm": {"sizeLimitBytes": 1024}}],
    ids=["count-0", "instances-0", "typo", "shm-tiny"],
)
def test_schema_rejects_wrong_gpu_values(gpu: dict[str, Any]) -> None:
    refused = _refused({"triton": {"gpu": gpu}})
    assert "schema" in refused.lower()


def test_check_values_catches_gpu_drift_from_the_catalog(chart_defaults, catalog) -> None:
    values = copy.deepcopy(chart_defaults)
    values["triton"]["gpu"]["instancesPerGpu"] = 3
    values["triton"]["gpu"]["pythonBackend"]["shmDefaultByteSize"] = 32 * 2**20
    values["triton"]["gpu"]["image"]["tag"] = "25.01-py3-visionserve-gpu"
    problems = " | ".join(check_values(values, catalog))
    assert "triton.gpu.instancesPerGpu=3 but models.yaml's GPU profile runs 8" in problems
    batch = max(s.gpu.max_batch_size for s in catalog.models.values() if s.gpu)
    assert f"max_batch_size {batch} x {GPU_ENCODED_IMAGE_BYTES} bytes" in problems
    assert "is not built on triton.image.tag=26.07-py3" in problems


def test_check_dockerfiles_catches_gpu_image_drift(chart_defaults, tmp_path: Path) -> None:
    for path in DOCKER_DIR.glob("*.Dockerfile"):
        shutil.copy(path, tmp_path / path.name)
    gpu = tmp_path / "triton-gpu.Dockerfile"
    text = gpu.read_text()
    gpu.write_text(
        text.replace("numpy==1.26.4", "numpy==2.1.0")
        .replace("torch==2.15.0", "torch==2.11.0")
        .replace("        onnx2torch==1.5.15 \\\n", "")
        .replace("tritonserver:26.07-py3", "tritonserver:25.01-py3")
    )
    problems = " | ".join(check_dockerfiles(chart_defaults, docker_dir=tmp_path))
    assert "stub corrupts tensors under numpy 2" in problems
    assert "pins torch==2.11.0, pyproject.toml pins torch==2.15.0" in problems
    assert "does not pin ['onnx2torch']" in problems
    assert "triton-gpu.Dockerfile derives ('nvcr.io/nvidia/tritonserver:25.01-py3',)" in problems
    gpu.unlink()
    assert "triton-gpu.Dockerfile is missing" in " | ".join(check_dockerfiles(chart_defaults, docker_dir=tmp_path))
