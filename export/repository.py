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

from visionserve import triton_sources
from visionserve.catalog import (
    ARTIFACTS,
    IMAGE_INPUT,
    PLATFORMS,
    PREPROCESSED,
    PROBABILITIES,
    TTA_VIEWS,
    GpuProfile,
    ModelSpec,
)
from visionserve.errors import RepositoryError

__all__ = [
    "LABELS_FILE",
    "VERSION_FILE",
    "VersionInfo",
    "atomic_write",
    "committed_versions",
    "tuning_params",
    "gpu_config",
    "pinned_elsewhere",
    "pipeline_models",
    "tta_ensembles",
    "read_config",
    "read_version",
    "served_version",
    "stage_mean_model",
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
    #: TTA view sets this version serves (``<name>_<view>`` ensembles); older versions have none
    tta: list[str] = field(default_factory=list)
    #: a committee version: member -> {"version": pinned member version, "weight": normalised}
    members: dict[str, dict] = field(default_factory=dict)
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
    for view in info.tta:  # B x views rows per request: only the TTA ensembles ask for them
        cfg.output.add(name=spec.views_output(view), data_type=mc.TYPE_FP32, dims=list(spec.input_shape))
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


def tuning_params(gpu: GpuProfile, decoder: str | None = None, chunk: int | None = None) -> dict[str, str]:
    """The GPU model's decoder and overlap parameters: the profile's, or ``bench gpu``'s variants.

    ``chunk`` 0 turns the overlap off; None (like ``decoder`` None) keeps the profile's.
    """
    return {
        "jpeg_decoder": decoder or gpu.jpeg_decoder,
        "hardware_decode_share": str(gpu.hardware_decode_share),
        "pipeline_chunk": str(gpu.pipeline_chunk or 0 if chunk is None else chunk),
    }


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
        **tuning_params(gpu),
        "backbone_file": ARTIFACTS["onnx"],
    }
    for key, value in params.items():
        cfg.parameters[key].string_value = value
    _weights_param(cfg, info)
    return cfg


def mean_config(
    name: str, inputs: list[str], weights: list[float], views: int, versions: list[int], classes: int, batch: int
) -> mc.ModelConfig:
    """An averaging step (``triton_python/models/mean_model.py``): a committee's members, or TTA's view rows.

    No dynamic batching: each request is averaged on its own (its rows belong to its images).
    """
    cfg = mc.ModelConfig(name=name, backend="python", max_batch_size=batch)
    for tensor in inputs:
        cfg.input.add(name=tensor, data_type=mc.TYPE_FP32, dims=[classes])
    cfg.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[classes])
    cfg.version_policy.specific.versions.extend(versions)
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.parameters["weights"].string_value = json.dumps(weights)
    cfg.parameters["views"].string_value = str(views)
    return cfg


def tta_ensemble_config(spec: ModelSpec, view: str, info: VersionInfo) -> mc.ModelConfig:
    """``<name>_<view>``: image bytes -> the views' mean, in one request (extra batch rows)."""
    rows = TTA_VIEWS[view]
    cfg = mc.ModelConfig(name=spec.tta_ensemble(view), platform="ensemble", max_batch_size=spec.max_batch_size // rows)
    cfg.input.add(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1])
    cfg.output.add(name=PROBABILITIES, data_type=mc.TYPE_FP32, dims=[info.num_classes], label_filename=LABELS_FILE)
    cfg.version_policy.specific.versions.append(info.version)
    cfg.response_cache.enable = True
    _weights_param(cfg, info)
    in_name, out_name = spec.tensor_names(spec.serve_format)
    views, view_probs = f"{view}_views", f"{view}_{PROBABILITIES}"
    pre = cfg.ensemble_scheduling.step.add(model_name=spec.preprocess_model, model_version=info.version)
    pre.input_map[IMAGE_INPUT] = IMAGE_INPUT
    pre.output_map[spec.views_output(view)] = views
    net = cfg.ensemble_scheduling.step.add(model_name=spec.backbone_model(), model_version=info.version)
    net.input_map[in_name] = views
    net.output_map[out_name] = view_probs
    mean = cfg.ensemble_scheduling.step.add(model_name=spec.tta_mean_model(view), model_version=info.version)
    mean.input_map[PROBABILITIES] = view_probs
    mean.output_map[PROBABILITIES] = PROBABILITIES
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


def pinned_elsewhere(repo: Path, spec: ModelSpec) -> set[int]:
    """Versions of ``spec``'s composing models that another model's ensemble pins (a committee's).

    Read from the ensemble configs on disk, so whatever wrote them (``export.committee``) needs
    no say in how a member is published: the member's switch keeps those versions loaded.
    """
    own = {spec.ensemble, spec.canary_ensemble, *(spec.tta_ensemble(v) for v in spec.tta)}
    composing = {spec.preprocess_model, *(spec.backbone_model(f) for f in spec.formats)}
    committed = set(committed_versions(repo, spec))
    pinned: set[int] = set()
    for path in repo.glob("*/config.pbtxt"):
        if path.parent.name in own or 'platform: "ensemble"' not in path.read_text():
            continue
        for step in read_config(path).ensemble_scheduling.step:
            if step.model_name in composing and step.model_version in committed:
                pinned.add(step.model_version)
    return pinned


def write_composing_configs(repo: Path, spec: ModelSpec, versions: list[int]) -> list[str]:
    """Configs of the preprocess model, every exported backbone and the GPU model, serving ``versions``.

    Versions another ensemble pins (``pinned_elsewhere``) are served too.
    """
    versions = sorted(set(versions) | pinned_elsewhere(repo, spec))
    infos = [read_version(repo, spec, v) for v in versions]
    newest = infos[-1]
    written = [spec.preprocess_model]
    _write_config(repo, preprocess_config(spec, versions, newest))
    for fmt in newest.formats:
        having = [i for i in infos if fmt in i.formats]  # a version without this format has no directory for it
        _write_config(repo, backbone_config(spec, fmt, [i.version for i in having], newest, _class_count(having)))
        written.append(spec.backbone_model(fmt))  # type: ignore[arg-type]
    for view in spec.tta:
        having = [i for i in infos if view in i.tta]
        if having:
            classes = _class_count(having)
            cfg = mean_config(
                spec.tta_mean_model(view), [PROBABILITIES], [1.0], TTA_VIEWS[view], [i.version for i in having],
                classes, spec.max_batch_size,
            )  # fmt: skip
            _write_config(repo, cfg)
            written.append(spec.tta_mean_model(view))
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
    for view in spec.tta:
        name = spec.tta_ensemble(view)
        if view in info.tta:
            atomic_write(repo / name / LABELS_FILE, labels)
            _write_config(repo, tta_ensemble_config(spec, view, info))
        else:  # this version has no such ensemble: a restarted server must not load a stale one
            (repo / name / "config.pbtxt").unlink(missing_ok=True)


def tta_ensembles(repo: Path, spec: ModelSpec) -> list[str]:
    """The TTA ensembles the repository configures now (``write_ensemble_config`` wrote them)."""
    return [spec.tta_ensemble(v) for v in spec.tta if (repo / spec.tta_ensemble(v) / "config.pbtxt").is_file()]


def stage_mean_model(version_dir: Path) -> None:
    """An averaging step's version directory: ``mean_model.py`` as its ``model.py``, and its companion."""
    triton_sources.stage("mean", version_dir)


def write_version_files(version_dir: Path, info: VersionInfo, labels: list[str]) -> None:
    """The ensemble's version directory: labels and, last, the version.json commit marker."""
    version_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(version_dir / LABELS_FILE, "\n".join(labels) + "\n")
    atomic_write(version_dir / VERSION_FILE, json.dumps(asdict(info), indent=2) + "\n")


def remove_version(repo: Path, spec: ModelSpec, version: int) -> None:
    """Delete one version of every Triton model of ``spec`` (ensemble marker first)."""
    for name in spec.triton_models:
        shutil.rmtree(repo / name / str(version), ignore_errors=True)
