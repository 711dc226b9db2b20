"""Read and write the Triton model repository: configs, labels and version metadata.

Configs are built as ``model_config_pb2.ModelConfig`` messages and printed with protobuf's
text format, so they are valid by construction. Every file is written to a temporary name and
renamed into place: a reader (Triton) never sees half a file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from visionserve.catalog import ARTIFACTS, IMAGE_INPUT, PLATFORMS, PREPROCESSED, PROBABILITIES, ModelSpec
from visionserve.errors import RepositoryError

__all__ = [
    "LABELS_FILE",
    "VERSION_FILE",
    "VersionInfo",
    "atomic_write",
    "committed_versions",
    "gpu_config",
    "pipeline_models",
    "read_config",
    "read_version",
    "served_version",
]

VERSION_FILE = "version.json"
LABELS_FILE = "labels.txt"


@dataclass
class VersionInfo:
    """What one published version of a model is (stored in ``<model>/<V>/version.json``)."""

    version: int
    weights: str
    num_classes: int
    formats: list[str]
    checkpoint: str | None = None
    parity: dict[str, float] = field(default_factory=dict)
    profile: str = "cpu"
    #: per INT8 format: its top-1 agreement with the fp32 ONNX (``export.quantize.Agreement``)
    quantization: dict[str, dict] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_config(path: Path) -> mc.ModelConfig:
    """Parse a config.pbtxt; a RepositoryError names the file when it is not valid."""
    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig())
    except FileNotFoundError:
        raise RepositoryError(f"missing {path}") from None
    except text_format.ParseError as exc:
        raise RepositoryError(f"{path}: invalid model config: {exc}") from None


def _write_config(repo: Path, cfg: mc.ModelConfig) -> None:
    atomic_write(repo / cfg.name / "config.pbtxt", text_format.MessageToString(cfg))


def committed_versions(repo: Path, spec: ModelSpec) -> list[int]:
    """Versions whose ensemble carries version.json: the commit marker of a publish."""
    root = repo / spec.ensemble
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / VERSION_FILE).is_file())


def read_version(repo: Path, spec: ModelSpec, version: int) -> VersionInfo:
    path = repo / spec.ensemble / str(version) / VERSION_FILE
    try:
        return VersionInfo(**json.loads(path.read_text()))
    except FileNotFoundError:
        have = committed_versions(repo, spec)
        raise RepositoryError(
            f"{spec.name} has no version {version} in {repo} (versions: {have or 'none — run `make export`'})"
        ) from None


def served_version(repo: Path, spec: ModelSpec) -> int | None:
    """The version the ensemble's config pins, or None before the first publish."""
    path = repo / spec.ensemble / "config.pbtxt"
    if not path.exists():
        return None
    versions = list(read_config(path).version_policy.specific.versions)
    return max(versions) if versions else None


def _weights_param(cfg: mc.ModelConfig, info: VersionInfo) -> None:
    cfg.parameters["weights"].string_value = info.weights


def _batching(cfg: mc.ModelConfig, spec: ModelSpec) -> None:
    cfg.dynamic_batching.max_queue_delay_microseconds = spec.batch_delay_us


def preprocess_config(spec: ModelSpec, versions: list[int], info: VersionInfo) -> mc.ModelConfig:
    cfg = mc.ModelConfig(name=spec.preprocess_model, backend="python", max_batch_size=spec.max_batch_size)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name=PREPROCESSED, data_type=mc.TYPE_FP32, dims=list(spec.input_shape))
    cfg.version_policy.specific.versions.extend(versions)
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=spec.instances.preprocess)
    _batching(cfg, spec)
    cfg.parameters["preprocessing"].string_value = json.dumps(spec.pipeline_params())
    _weights_param(cfg, info)
    return cfg


def backbone_config(spec: ModelSpec, fmt: str, versions: list[int], info: VersionInfo, classes: int) -> mc.ModelConfig:
    """A backbone; kind is left to Triton (GPU when present, else CPU), as native backends expect."""
    cfg = mc.ModelConfig(
        name=spec.backbone_model(fmt),
        platform=PLATFORMS[fmt],
        max_batch_size=spec.max_batch_size,
        default_model_filename=ARTIFACTS[fmt],
    )
    in_name, out_name = spec.tensor_names(fmt)
    cfg.input.add(name=in_name, data_type=mc.TYPE_FP32, dims=list(spec.input_shape))
    cfg.output.add(name=out_name, data_type=mc.TYPE_FP32, dims=[classes])
    cfg.version_policy.specific.versions.extend(versions)
    cfg.instance_group.add(count=spec.instances.backbone)
    _batching(cfg, spec)
    _weights_param(cfg, info)
    return cfg


def gpu_config(spec: ModelSpec, versions: list[int], info: VersionInfo, classes: int) -> mc.ModelConfig:
    """The GPU profile's one model: image bytes → probabilities, decoded and run on the GPU."""
    gpu = spec.gpu
    if gpu is None:
        raise RepositoryError(f"{spec.name}: the catalog has no GPU profile (models.yaml profiles.gpu)")
    cfg = mc.ModelConfig(name=spec.gpu_model, backend="python", max_batch_size=gpu.max_batch_size)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[classes])
    cfg.version_policy.specific.versions.extend(versions)
    kind = mc.ModelInstanceGroup.KIND_GPU if gpu.device == "gpu" else mc.ModelInstanceGroup.KIND_CPU
    cfg.instance_group.add(kind=kind, count=gpu.instances)
    cfg.dynamic_batching.max_queue_delay_microseconds = gpu.batch_delay_us
    cfg.dynamic_batching.preferred_batch_size.extend(b for b in gpu.preferred_batch_sizes if b <= gpu.max_batch_size)
    params = {
        "stage": "fused",
        "preprocessing": json.dumps(spec.pipeline_params()),
        "precision": gpu.precision,
        "graph_batch_sizes": json.dumps(list(gpu.graph_batch_sizes)),
        "jpeg_decoder": gpu.jpeg_decoder,
        "hardware_decode_share": str(gpu.hardware_decode_share),
        "backbone_file": ARTIFACTS["onnx"],
    }
    for key, value in params.items():
        cfg.parameters[key].string_value = value
    _weights_param(cfg, info)
    return cfg


def pipeline_models(spec: ModelSpec, info: VersionInfo) -> list[str]:
    """The models the ensemble's steps run for a version, in order."""
    if info.profile == "gpu":
        return [spec.gpu_model]
    return [spec.preprocess_model, spec.backbone_model()]


def ensemble_config(spec: ModelSpec, info: VersionInfo) -> mc.ModelConfig:
    """The user-facing model: image bytes → probabilities, every step pinned to one version."""
    batch = spec.gpu.max_batch_size if info.profile == "gpu" and spec.gpu else spec.max_batch_size
    cfg = mc.ModelConfig(name=spec.ensemble, platform="ensemble", max_batch_size=batch)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[info.num_classes], label_filename=LABELS_FILE)
    cfg.version_policy.specific.versions.append(info.version)
    cfg.response_cache.enable = True
    _weights_param(cfg, info)
    if info.profile == "gpu":
        step = cfg.ensemble_scheduling.step.add(model_name=spec.gpu_model, model_version=info.version)
        step.input_map[IMAGE_INPUT] = IMAGE_INPUT
        step.output_map[PROBABILITIES] = PROBABILITIES
        return cfg
    in_name, out_name = spec.tensor_names(spec.serve_format)
    pre = cfg.ensemble_scheduling.step.add(model_name=spec.preprocess_model, model_version=info.version)
    pre.input_map[IMAGE_INPUT] = IMAGE_INPUT
    pre.output_map[PREPROCESSED] = PREPROCESSED
    net = cfg.ensemble_scheduling.step.add(model_name=spec.backbone_model(), model_version=info.version)
    net.input_map[in_name] = PREPROCESSED
    net.output_map[out_name] = PROBABILITIES
    return cfg


def _class_count(infos: list[VersionInfo]) -> int:
    """Output size shared by these versions, or -1 (variable) when their class counts differ."""
    counts = {i.num_classes for i in infos}
    return counts.pop() if len(counts) == 1 else -1


def write_composing_configs(repo: Path, spec: ModelSpec, versions: list[int]) -> list[str]:
    """Configs of the preprocess model, every exported backbone and the GPU model, serving ``versions``."""
    infos = [read_version(repo, spec, v) for v in versions]
    newest = infos[-1]
    written = [spec.preprocess_model]
    _write_config(repo, preprocess_config(spec, versions, newest))
    for fmt in newest.formats:
        having = [i for i in infos if fmt in i.formats]  # a version without this format has no directory for it
        _write_config(repo, backbone_config(spec, fmt, [i.version for i in having], newest, _class_count(having)))
        written.append(spec.backbone_model(fmt))  # type: ignore[arg-type]
    gpu_infos = [i for i in infos if i.profile == "gpu"]  # only they have a <name>_gpu/V directory
    if gpu_infos:
        gpu_versions = [i.version for i in gpu_infos]
        _write_config(repo, gpu_config(spec, gpu_versions, gpu_infos[-1], _class_count(gpu_infos)))
        written.append(spec.gpu_model)
    return written


def write_ensemble_config(repo: Path, spec: ModelSpec, version: int) -> None:
    """Pin the ensemble (and its labels) to ``version``; labels first so they match when loaded."""
    info = read_version(repo, spec, version)
    labels = (repo / spec.ensemble / str(version) / LABELS_FILE).read_text()
    atomic_write(repo / spec.ensemble / LABELS_FILE, labels)
    _write_config(repo, ensemble_config(spec, info))


def write_version_files(version_dir: Path, info: VersionInfo, labels: list[str]) -> None:
    """The ensemble's version directory: labels and, last, the version.json commit marker."""
    version_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(version_dir / LABELS_FILE, "\n".join(labels) + "\n")
    atomic_write(version_dir / VERSION_FILE, json.dumps(asdict(info), indent=2) + "\n")


def remove_version(repo: Path, spec: ModelSpec, version: int) -> None:
    """Delete one version of every Triton model of ``spec`` (ensemble marker first)."""
    for name in spec.triton_models:
        shutil.rmtree(repo / name / str(version), ignore_errors=True)
