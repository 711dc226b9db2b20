"""Export one catalog model end to end: weights → artifacts → parity → staged version → publish."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torchvision  # noqa: F401  (torchvision -> triton must load before TensorFlow runs: both bring LLVM, see docs/decisions.md)

from export.backbone import Backbone, Exported, artifact_size
from export.demo import CALIBRATION_IMAGES
from export.labels import read_labels, resolve_labels
from export.publish import (
    TritonControl,
    commit_staged,
    next_version,
    prune,
    remove_orphans,
    staging_dir,
    switch_version,
)
from export.quantize import CALIBRATION_SEED, HOLDOUT_SEED, QuantizationRefused, export_int8, refusal
from export.release import require_no_release, start_release
from export.repository import VersionInfo, stage_mean_model, write_version_files
from export.weights import WeightsChoice, warn_demo
from visionserve import triton_sources
from visionserve.catalog import ARTIFACTS, INT8_FORMAT, ModelSpec, Profile
from visionserve.errors import CatalogError, WeightsError
from visionserve.files import link_or_copy
from visionserve.samples import image_set, sample_images

__all__ = ["ExportResult", "export_model", "make_backbone"]

#: Real sample images each artifact is checked on before it is published.
CHECK_IMAGES = 16


@dataclass
class ExportResult:
    model: str
    version: int
    weights: str
    artifacts: list[Exported] = field(default_factory=list)
    seconds: float = 0.0


def make_backbone(spec: ModelSpec) -> Backbone:
    """The framework exporter for ``spec``; imports only that framework."""
    if spec.framework == "keras":
        from export.keras_backbone import KerasBackbone

        return KerasBackbone(spec)
    from export.torch_backbone import TorchBackbone

    return TorchBackbone(spec)


def _batch(spec: ModelSpec, count: int, seed: int) -> np.ndarray:
    pipeline = spec.pipeline()
    return pipeline.batch([s.data for s in sample_images(count, seed=seed)])


def _build(
    spec: ModelSpec,
    backbone: Backbone,
    choice: WeightsChoice,
    num_classes: int | None,
) -> None:
    """Load the weights ``choice`` names; ``auto`` falls back to seeded demo weights when ImageNet's cannot load."""
    calibration = _batch(spec, CALIBRATION_IMAGES, seed=CALIBRATION_SEED) if choice.kind in {"demo", "auto"} else None
    if choice.kind == "auto":
        try:
            backbone.build(WeightsChoice("imagenet"), num_classes, calibration)
            return
        except WeightsError as exc:
            warn_demo(spec.name, str(exc))
        choice = WeightsChoice("demo")
    elif choice.kind == "demo":
        warn_demo(spec.name, "WEIGHTS=demo was asked for")
    backbone.build(choice, num_classes, calibration)


def _stage_int8(
    spec: ModelSpec, staging: Path, version: int, step: Callable[[str], None]
) -> tuple[Exported | None, dict]:
    """Quantize the staged fp32 ONNX; the artifact, or None when its agreement is refused.

    Raises:
        QuantizationRefused: refused, and ``onnx_int8`` is the format the ensemble serves.
    """
    settings = spec.quantization
    calibration = _batch(spec, settings.calibration_images, seed=CALIBRATION_SEED)
    holdout = spec.pipeline().batch([s.data for s in image_set(settings.holdout_images, seed=HOLDOUT_SEED)])
    version_dir = staging / spec.backbone_model(INT8_FORMAT) / str(version)
    fp32 = staging / spec.backbone_model("onnx") / str(version) / ARTIFACTS["onnx"]
    exported, agreement = export_int8(spec, fp32, version_dir, calibration, holdout)
    metadata = agreement.as_metadata()
    step(
        f"{INT8_FORMAT}: {exported.size_bytes / 2**20:.1f} MiB, top-1 agreement with fp32 {agreement.agreement:.3f} "
        f"on {agreement.images} held-out images (min {agreement.min_agreement:g}), max |Δp| "
        f"{agreement.max_abs_diff:.2e} ({exported.seconds:.1f} s)"
    )
    if agreement.accepted:
        return exported, metadata
    shutil.rmtree(version_dir, ignore_errors=True)
    if spec.serve_format == INT8_FORMAT:
        raise QuantizationRefused(f"{refusal(spec, agreement)}; it is the served format, so nothing is published")
    step(f"warning: {refusal(spec, agreement)}; this version is published without {INT8_FORMAT}")
    return None, metadata


def _stage_gpu_model(spec: ModelSpec, backbone: Backbone, staging: Path, version: int, check: np.ndarray) -> Exported:
    """``<name>_gpu/V``: the GPU model, the modules it imports, and the ONNX backbone (hard-linked).

    The parity check runs the very module the GPU model builds from that ONNX (onnx2torch), in
    float32 on the CPU, against the source model; fp16 on the GPU is measured by ``bench gpu``.
    """
    import torch

    from visionserve import gpu_pipeline

    start = time.perf_counter()
    onnx_file = staging / spec.backbone_model("onnx") / str(version) / ARTIFACTS["onnx"]
    if not onnx_file.is_file():
        raise CatalogError(f"{spec.name}: the GPU profile runs the ONNX backbone: add onnx to its formats")
    gpu_dir = triton_sources.stage("gpu", staging / spec.gpu_model / str(version))
    artifact = gpu_dir / ARTIFACTS["onnx"]
    link_or_copy(onnx_file, artifact)  # one file on disk; publishing never rewrites a file in place
    module = gpu_pipeline.load_onnx_module(str(artifact))
    with torch.inference_mode():
        got = module(torch.from_numpy(np.ascontiguousarray(check))).numpy()
    diff = backbone.check_parity("gpu (onnx2torch)", got, check)
    return Exported("gpu", gpu_dir, diff, artifact_size(artifact), time.perf_counter() - start)


def _cuda_visible() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def export_model(
    spec: ModelSpec,
    choice: WeightsChoice,
    repo: Path,
    *,
    profile: Profile = "cpu",
    labels: str | None = None,
    control: TritonControl | None = None,
    keep_versions: int = 3,
    canary_weight: float | None = None,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Export every format of ``spec``, check each, publish version N+1 and switch to it.

    Nothing reaches the repository unless every artifact passed its parity check. With
    ``canary_weight`` the new version starts a release instead (``export.release``): it serves
    that share of API keys beside the stable version until promoted or aborted.
    """
    start = time.perf_counter()
    if canary_weight is None:
        require_no_release(repo, spec)  # before minutes of export, not after

    def step(msg: str) -> None:
        log(f"[{spec.name} {time.perf_counter() - start:6.1f}s] {msg}")

    repo.mkdir(parents=True, exist_ok=True)
    remove_orphans(repo, spec, log=step)
    backbone, label_list = _built_backbone(spec, choice, labels, step)
    version = next_version(repo, spec)
    staging = staging_dir(repo, spec, version)
    shutil.rmtree(staging, ignore_errors=True)
    result = ExportResult(spec.name, version, backbone.weights)
    try:
        info = _stage_version(spec, backbone, choice, staging, result, profile, step)
        write_version_files(staging / spec.ensemble / str(version), info, label_list)
        commit_staged(staging, repo, spec, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(repo, spec, version, control, canary_weight, step)
    prune(repo, spec, keep_versions, log=step)
    result.seconds = time.perf_counter() - start
    step(f"done: {spec.ensemble} v{version} ({backbone.weights} weights)")
    return result


def _built_backbone(
    spec: ModelSpec, choice: WeightsChoice, labels: str | None, step: Callable[[str], None]
) -> tuple[Backbone, list[str]]:
    """The backbone with its weights loaded, and the class labels of the version (given or resolved)."""
    given_labels = read_labels(Path(labels)) if labels else None
    num_classes = len(given_labels) if given_labels else None
    step(f"building {spec.builder} (weights: {choice.describe()})")
    backbone = make_backbone(spec)
    _build(spec, backbone, choice, num_classes)
    label_list = given_labels or resolve_labels(spec.labels, backbone.num_classes)
    step(f"weights: {backbone.weights}, {backbone.num_classes} classes")
    return backbone, label_list


def _stage_version(
    spec: ModelSpec,
    backbone: Backbone,
    choice: WeightsChoice,
    staging: Path,
    result: ExportResult,
    profile: Profile,
    step: Callable[[str], None],
) -> VersionInfo:
    """Stage every model of version ``result.version`` (each artifact parity-checked); what ``version.json`` records.

    Checked artifacts are appended to ``result.artifacts`` as they pass.
    """
    version = result.version
    check = _batch(spec, CHECK_IMAGES, seed=202)
    published, quantization = _stage_backbones(spec, backbone, staging, version, check, result, step)
    tta = _stage_preprocess(spec, staging, version, profile)
    if profile == "gpu":
        result.artifacts.append(_stage_gpu(spec, backbone, staging, version, check, step))
    return VersionInfo(
        version=version,
        weights=backbone.weights,
        num_classes=backbone.num_classes,
        formats=[f for f in spec.formats if f in published],
        checkpoint=str(choice.checkpoint) if choice.checkpoint else None,
        parity={e.fmt: e.max_abs_diff for e in result.artifacts},
        profile=profile,
        quantization=quantization,
        tta=tta,
    )


def _stage_backbones(
    spec: ModelSpec,
    backbone: Backbone,
    staging: Path,
    version: int,
    check: np.ndarray,
    result: ExportResult,
    step: Callable[[str], None],
) -> tuple[list[str], dict[str, dict]]:
    """Export and check every backbone format; the formats published and the INT8 agreement figures."""
    # SavedModel first: tf2onnx then converts it instead of writing a scratch copy; INT8 is quantized
    # from the ONNX after the loop
    published = [f for f in spec.formats if f != INT8_FORMAT]
    quantization: dict[str, dict] = {}
    for fmt in sorted(published, key=lambda f: f != "savedmodel"):
        step(f"exporting {fmt} …")
        exported = backbone.export(fmt, staging / spec.backbone_model(fmt) / str(version), check)
        result.artifacts.append(exported)
        step(
            f"{fmt}: {exported.size_bytes / 2**20:.1f} MiB, parity max |Δp| = {exported.max_abs_diff:.2e} "
            f"on {CHECK_IMAGES} real images ({exported.seconds:.1f} s)"
        )
    if INT8_FORMAT in spec.formats:
        step(f"quantizing {INT8_FORMAT} (static QDQ, {spec.quantization.calibration_images} calibration images) …")
        int8, quantization[INT8_FORMAT] = _stage_int8(spec, staging, version, step)
        if int8 is not None:
            result.artifacts.append(int8)
            published.append(INT8_FORMAT)
    return published, quantization


def _stage_preprocess(spec: ModelSpec, staging: Path, version: int, profile: Profile) -> list[str]:
    """The preprocessing model and, on the CPU profile, each TTA view's mean model and ensemble; the views."""
    triton_sources.stage("preprocess", staging / spec.preprocess_model / str(version))
    tta = list(spec.tta) if profile == "cpu" else []  # the GPU model has no view rows
    for view in tta:
        stage_mean_model(staging / spec.tta_mean_model(view) / str(version))
        (staging / spec.tta_ensemble(view) / str(version)).mkdir(parents=True, exist_ok=True)
    return tta


def _stage_gpu(
    spec: ModelSpec, backbone: Backbone, staging: Path, version: int, check: np.ndarray, step: Callable[[str], None]
) -> Exported:
    """Stage the GPU model with its log lines; warns when this machine could not load it."""
    step("staging the GPU model (nvJPEG decode, fp16 backbone from the ONNX) …")
    gpu = _stage_gpu_model(spec, backbone, staging, version, check)
    step(f"gpu: parity max |Δp| = {gpu.max_abs_diff:.2e} (onnx2torch, float32) ({gpu.seconds:.1f} s)")
    if spec.gpu and spec.gpu.device == "gpu" and not _cuda_visible():
        step(
            "note: no GPU here; this version's <name>_gpu is KIND_GPU and loads only on a GPU machine "
            "(models.yaml profiles.gpu.device: cpu runs the same model on a CPU device)"
        )
    return gpu


def _publish(
    repo: Path,
    spec: ModelSpec,
    version: int,
    control: TritonControl | None,
    canary_weight: float | None,
    step: Callable[[str], None],
) -> None:
    """Serve the committed version: switch to it, or start a release with it as the canary."""
    if canary_weight is not None:
        step(f"published version {version} — starting a release with it as the canary ({canary_weight:.0%})")
        start_release(repo, spec, version, weight=canary_weight, shadow=0.0, control=control, log=step)
    else:
        step(f"published version {version}" + (" — switching the running server" if control else ""))
        switch_version(repo, spec, version, control, log=step)
