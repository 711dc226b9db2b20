"""Load models.yaml into typed, validated objects.

Everything about a model — names of its Triton models and tensors, shapes, preprocessing
constants, formats — is derived from one entry here, so nothing is written twice.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from visionserve.errors import CatalogError
from visionserve.imaging import Pipeline
from visionserve.settings import catalog_path

__all__ = [
    "IMAGE_INPUT",
    "INT8_FORMAT",
    "PREPROCESSED",
    "PROBABILITIES",
    "TTA_VIEWS",
    "Catalog",
    "CommitteeSpec",
    "Format",
    "GpuProfile",
    "ModelSpec",
    "Profile",
    "Preprocessing",
    "Quantization",
    "ReleasePolicy",
    "Servable",
    "View",
    "load_catalog",
]

Format = Literal["onnx", "onnx_int8", "torchscript", "savedmodel"]
#: The INT8 format: static QDQ quantization of the ``onnx`` artifact (``export/quantize.py``).
INT8_FORMAT = "onnx_int8"
#: Deployment profiles: ``cpu`` (preprocess model -> backbone) or ``gpu`` (one GPU model).
Profile = Literal["cpu", "gpu"]
PROFILES: tuple[str, ...] = ("cpu", "gpu")

#: Ensemble input: encoded image bytes (TYPE_STRING), batched.
IMAGE_INPUT = "image"
#: Tensor between the preprocessing model and the backbone.
PREPROCESSED = "preprocessed_image"
#: Backbone and ensemble output: softmax probabilities (FP32).
PROBABILITIES = "probabilities"

#: Test-time augmentation view sets. Each adds rows to the backbone batch: the image itself
#: and its transforms (``hflip``: the image and its mirror), averaged by a mean model.
View = Literal["hflip"]
#: Backbone rows per image of each view set.
TTA_VIEWS: dict[str, int] = {"hflip": 2}

#: Triton platform name per exported format.
PLATFORMS: dict[str, str] = {
    "onnx": "onnxruntime_onnx",
    "onnx_int8": "onnxruntime_onnx",
    "torchscript": "pytorch_libtorch",
    "savedmodel": "tensorflow_savedmodel",
}
#: Backend directory name that serves each platform (native or Python-based).
BACKENDS: dict[str, str] = {
    "onnx": "onnxruntime",
    "onnx_int8": "onnxruntime",
    "torchscript": "pytorch",
    "savedmodel": "tensorflow",
}
#: File (or directory) name of the artifact inside a version directory.
ARTIFACTS: dict[str, str] = {
    "onnx": "model.onnx",
    "onnx_int8": "model.onnx",
    "torchscript": "model.pt",
    "savedmodel": "model.savedmodel",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resize(_Strict):
    """Geometry of the first resize."""

    mode: Literal["square", "shorter_side"]
    size: int = Field(gt=0)


class Preprocessing(_Strict):
    """Geometry then ``(pixel * scale - mean) / std`` per channel, in ``channel_order``."""

    family: Literal["tf", "caffe", "torch"]
    reference: str
    resize: Resize
    crop: int | None = Field(default=None, gt=0)
    channel_order: Literal["RGB", "BGR"]
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Instances(_Strict):
    """Triton instance counts of the preprocessing model and of each backbone."""

    preprocess: int = Field(default=1, ge=1)
    backbone: int = Field(default=1, ge=1)


class Quantization(_Strict):
    """How the ``onnx_int8`` format is made from the ``onnx`` one, and when it is refused.

    ``models.yaml``'s ``quantization:`` holds the defaults; an entry's ``quantization:``
    overrides single fields.

    Args:
        min_agreement: top-1 agreement with the fp32 ONNX on the held-out images below which
            the INT8 artifact is refused.
        holdout_images: held-out real-derived images the agreement is measured on (>= 200).
        calibration_images: sample images the activation ranges are calibrated on.
        calibration_method: onnxruntime's calibrator (``minmax``, ``percentile``, ``entropy``).
        per_channel: per-output-channel weight scales (else one per tensor).
        op_types: operator types quantized; the rest stays fp32 between Q/DQ pairs.
        relative_cost: INT8 compute per image as a share of fp32's: what ``auto`` expects of
            an ``onnx_int8`` model before it has measured it (from ``make bench-serving``).
    """

    min_agreement: float = Field(default=0.98, gt=0, le=1)
    holdout_images: int = Field(default=200, ge=200)
    calibration_images: int = Field(default=64, ge=8)
    calibration_method: Literal["minmax", "percentile", "entropy"] = "minmax"
    per_channel: bool = True
    op_types: tuple[str, ...] = ("Conv",)
    relative_cost: float = Field(default=0.5, gt=0, le=1)


class ReleasePolicy(_Strict):
    """When a canary's live figures say promote or roll back (``visionserve release status``).

    ``models.yaml``'s ``release:`` holds the defaults; an entry's ``release:`` overrides single
    fields, and ``release status`` flags override both.

    Args:
        min_agreement: top-1 agreement with stable the canary must show (its one-sided Wilson
            lower bound must reach it to promote; the upper bound below it rolls back).
        max_error_increase: how much the canary's error rate may exceed stable's (absolute),
            judged by Newcombe's score interval of the difference.
        max_p99_ratio: canary p99 over stable p99 of Triton round trips (cache misses).
        min_latency_samples: round trips per version before the p99 ratio is judged.
        confidence: one-sided confidence of every bound.
    """

    min_agreement: float = Field(default=0.95, gt=0, lt=1)
    max_error_increase: float = Field(default=0.005, ge=0, lt=1)
    max_p99_ratio: float = Field(default=1.2, gt=1)
    min_latency_samples: int = Field(default=200, ge=20)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class GpuProfile(_Strict):
    """How ``make export PROFILE=gpu`` serves a model.

    The ensemble's one step is ``<name>_gpu``, a python model that decodes, preprocesses and
    runs the backbone on the GPU (values chosen by measurement:
    docs/benchmarks-gpu.md). ``models.yaml``'s ``profiles.gpu`` holds them; an entry's ``gpu:``
    overrides single fields.

    Args:
        device: ``gpu`` (KIND_GPU); ``cpu`` runs the same model on a CPU device (tests, CI).
        precision: backbone and batch dtype on the GPU.
        max_batch_size: largest batch the dynamic batcher forms.
        preferred_batch_sizes: sizes the batcher aims for.
        batch_delay_us: how long a batch may wait for company.
        instances: model instances per GPU (each its own process, CUDA context and graphs).
        graph_batch_sizes: batch buckets captured as CUDA graphs.
        jpeg_decoder: ``torchvision`` (nvJPEG on the SMs: what the benchmarks measured) or
            ``nvimgcodec`` (the GPU's hardware JPEG engines, its CUDA decoder for the rest; a
            machine without nvImageCodec falls back to torchvision's, and says so in the log).
        hardware_decode_share: the share of each batch nvImageCodec gives its hardware engines.
        pipeline_chunk: split each batch into chunks of this many images and preprocess the
            next chunk while the backbone runs the current one (``gpu_pipeline.Overlapped``);
            null runs the whole batch's preprocessing, then its backbone.
    """

    device: Literal["gpu", "cpu"] = "gpu"
    precision: Literal["fp16", "fp32"]
    max_batch_size: int = Field(ge=1)
    preferred_batch_sizes: tuple[int, ...]
    batch_delay_us: int = Field(ge=0)
    instances: int = Field(ge=1)
    graph_batch_sizes: tuple[int, ...]
    jpeg_decoder: Literal["nvimgcodec", "torchvision"]
    hardware_decode_share: float = Field(default=1.0, ge=0, le=1)
    pipeline_chunk: int | None = Field(default=None, ge=1)


class _Served(_Strict):
    """What a catalog model and a committee share: a name users call, and the ensembles named after it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")

    @property
    def ensemble(self) -> str:
        """The ensemble users call: image bytes in, probabilities out."""
        return self.name

    @property
    def canary_ensemble(self) -> str:
        """The ensemble that serves the ``canary`` label during a release (steps pinned to it).

        Triton keeps one config per model, so one ensemble cannot pin different steps per
        version: the canary pipeline is a second ensemble over the same composing models.
        Committees have none served (a new committee version is a plain publish).
        """
        return f"{self.name}_canary"


def _sum_known(costs: list[float | None]) -> float | None:
    """The sum of ``costs``; None when any of them is unknown."""
    return None if any(c is None for c in costs) else sum(costs)  # type: ignore[arg-type]


class ModelSpec(_Served):
    """One catalog entry."""

    framework: Literal["keras", "torch"]
    builder: str
    input_size: int = Field(gt=0)
    layout: Literal["NHWC", "NCHW"]
    preprocessing: Preprocessing
    formats: tuple[Format, ...] = Field(min_length=1)
    serve_format: Format
    num_classes: int = Field(ge=2)
    labels: str = Field(description="'imagenet' or a path to a labels file, one per line")
    checkpoint: str | None = Field(default=None, description="default weights for `auto`")
    instances: Instances = Instances()
    max_batch_size: int = Field(default=32, ge=1)
    batch_delay_us: int = Field(default=2000, ge=0)
    top1_accuracy: float | None = Field(default=None, ge=0, le=1)
    gflops: float | None = Field(default=None, gt=0)
    gpu: GpuProfile | None = Field(default=None, description="the GPU profile (models.yaml profiles.gpu)")
    quantization: Quantization = Quantization()
    release: ReleasePolicy = ReleasePolicy()
    jpeg_decoder: Literal["pillow", "simplejpeg"] = Field(
        default="pillow", description="CPU JPEG decoder of the preprocessing (models.yaml defaults.jpeg_decoder)"
    )
    tta: tuple[View, ...] = Field(
        default=(), description="test-time augmentation view sets offered per request (models.yaml defaults.tta)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.serve_format not in self.formats:
            raise ValueError(f"serve_format {self.serve_format!r} is not in formats {list(self.formats)}")
        allowed = {"keras": {"onnx", "onnx_int8", "savedmodel"}, "torch": {"onnx", "onnx_int8", "torchscript"}}[
            self.framework
        ]
        bad = [f for f in self.formats if f not in allowed]
        if bad:
            raise ValueError(f"framework {self.framework!r} cannot export {bad}; choose from {sorted(allowed)}")
        if INT8_FORMAT in self.formats and "onnx" not in self.formats:
            raise ValueError(f"{INT8_FORMAT} is quantized from the fp32 ONNX: add onnx to formats")
        expected_layout = "NHWC" if self.framework == "keras" else "NCHW"
        if self.layout != expected_layout:
            raise ValueError(f"layout of a {self.framework} model is {expected_layout}, not {self.layout}")
        out = self.preprocessing.crop or self.preprocessing.resize.size
        if out != self.input_size:
            raise ValueError(f"preprocessing yields {out}x{out} but input_size is {self.input_size}")
        return self

    # -- names derived from the entry (the only place they are spelled; ensembles: _Served) --
    @property
    def preprocess_model(self) -> str:
        return f"{self.name}_preprocess"

    @property
    def gpu_model(self) -> str:
        """The GPU profile's one-step pipeline model (decode + preprocess + backbone)."""
        return f"{self.name}_gpu"

    def tta_ensemble(self, view: str) -> str:
        """The ensemble that answers with view set ``view`` averaged (one request, extra batch rows)."""
        return f"{self.name}_{view}"

    def tta_mean_model(self, view: str) -> str:
        """The step that averages the ``view`` rows of each image back into one answer."""
        return f"{self.name}_{view}_mean"

    @staticmethod
    def views_output(view: str) -> str:
        """The preprocessing output holding every image's ``view`` rows, image by image."""
        return f"{PREPROCESSED}_{view}"

    def backbone_model(self, fmt: Format | None = None) -> str:
        return f"{self.name}_{fmt or self.serve_format}"

    @property
    def served_gflops(self) -> float | None:
        """``gflops`` scaled by what the served format costs (``quantization.relative_cost`` for INT8).

        What ``model=auto`` expects of this model before it has measured it.
        """
        if self.gflops is None:
            return None
        factor = self.quantization.relative_cost if self.serve_format == INT8_FORMAT else 1.0
        return self.gflops * factor

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one preprocessed image (no batch axis), in the model's layout."""
        s = self.input_size
        return (s, s, 3) if self.layout == "NHWC" else (3, s, s)

    @staticmethod
    def tensor_names(fmt: Format) -> tuple[str, str]:
        """Backbone (input, output) names: libtorch requires ``<name>__<index>``."""
        if fmt == "torchscript":
            return f"{PREPROCESSED}__0", f"{PROBABILITIES}__0"
        return PREPROCESSED, PROBABILITIES

    def pipeline_params(self) -> dict[str, Any]:
        """Preprocessing constants + layout, as ``visionserve.imaging.Pipeline.from_params`` takes them."""
        return {**self.preprocessing.model_dump(mode="json"), "layout": self.layout, "jpeg_decoder": self.jpeg_decoder}

    def pipeline(self, **overrides: Any) -> Pipeline:
        """The in-process preprocessing pipeline of this model."""
        return Pipeline.from_params(self.pipeline_params(), **overrides)

    @property
    def triton_models(self) -> list[str]:
        """Every Triton model this entry produces, ensemble first."""
        return [
            self.ensemble,
            self.preprocess_model,
            *(self.backbone_model(f) for f in self.formats),
            self.gpu_model,
            *(self.tta_mean_model(v) for v in self.tta),
            *(self.tta_ensemble(v) for v in self.tta),
        ]


class CommitteeSpec(_Served):
    """A committee: one upload through several catalog backbones, their probabilities averaged.

    Each member keeps its own preprocessing; a mean model weights and averages their outputs.
    A committee version pins one version of every member (``export.committee``).

    Args:
        name: the name users call, like any model's.
        members: member model name -> weight (normalised to sum 1 when averaging).
        top1_accuracy: measured accuracy, if known: only then may ``model=auto`` pick it.
        member_specs: the members' catalog entries (filled in by ``load_catalog``).
    """

    members: dict[str, float] = Field(min_length=2)
    top1_accuracy: float | None = Field(default=None, ge=0, le=1)
    member_specs: tuple[ModelSpec, ...] = ()
    #: committees offer no TTA (their members' view rows would need a committee per view set)
    tta: tuple[View, ...] = ()
    framework: Literal["committee"] = "committee"

    @model_validator(mode="after")
    def _consistent(self) -> CommitteeSpec:
        bad = {m: w for m, w in self.members.items() if not w > 0}
        if bad:
            raise ValueError(f"member weights must be positive, got {bad}")
        if self.member_specs:
            classes = {s.num_classes for s in self.member_specs}
            if len(classes) != 1:
                raise ValueError(f"members must share one class count, got {sorted(classes)}")
        return self

    @property
    def mean_model(self) -> str:
        """The step that averages the members' probabilities with the committee's weights."""
        return f"{self.name}_mean"

    def member_output(self, member: str) -> str:
        """The ensemble tensor holding ``member``'s probabilities."""
        return f"{member}_{PROBABILITIES}"

    def member_input(self, member: str) -> str:
        """The ensemble tensor holding ``member``'s preprocessed batch."""
        return f"{member}_{PREPROCESSED}"

    @property
    def weights(self) -> list[float]:
        """Member weights in ``members`` order, summing to 1."""
        total = sum(self.members.values())
        return [w / total for w in self.members.values()]

    @property
    def num_classes(self) -> int:
        return self.member_specs[0].num_classes

    @property
    def input_size(self) -> int:
        return max(s.input_size for s in self.member_specs)

    @property
    def max_batch_size(self) -> int:
        return min(s.max_batch_size for s in self.member_specs)

    @property
    def gflops(self) -> float | None:
        """Every member runs on every image: the committee costs the sum of its members."""
        return _sum_known([s.gflops for s in self.member_specs])

    @property
    def served_gflops(self) -> float | None:
        return _sum_known([s.served_gflops for s in self.member_specs])

    @property
    def triton_models(self) -> list[str]:
        """The Triton models a committee version owns, ensemble first (members own theirs)."""
        return [self.ensemble, self.mean_model]


#: What the gateway serves by name: a backbone entry or a committee.
Servable = ModelSpec | CommitteeSpec


class Catalog(BaseModel):
    """All catalog entries, by name, plus catalog-wide defaults."""

    model_config = ConfigDict(frozen=True)

    models: dict[str, ModelSpec]
    committees: dict[str, CommitteeSpec] = Field(default_factory=dict)
    top_k: int = Field(ge=1)
    keep_versions: int = Field(ge=1)
    source: Path | None = None

    def get(self, name: str) -> ModelSpec:
        """The entry called ``name``, or a CatalogError listing the known names."""
        try:
            return self.models[name]
        except KeyError:
            raise CatalogError(f"unknown model {name!r}; the catalog has: {', '.join(self.names)}") from None

    @cached_property
    def names(self) -> list[str]:
        """The backbone models (what ``make export`` exports by default)."""
        return list(self.models)

    @cached_property
    def served_names(self) -> list[str]:
        """Every name a request may give: the models, then the committees."""
        return [*self.models, *self.committees]

    @cached_property
    def served(self) -> dict[str, Servable]:
        """Everything the gateway serves by name: models and committees."""
        return {**self.models, **self.committees}

    def committee(self, name: str) -> CommitteeSpec:
        """The committee called ``name``, or a CatalogError listing the known ones."""
        try:
            return self.committees[name]
        except KeyError:
            known = ", ".join(self.committees) or "none"
            raise CatalogError(f"unknown committee {name!r}; the catalog has: {known}") from None

    def select(self, names: str | list[str] | None) -> list[ModelSpec]:
        """Entries for a comma-separated list / list of names; all of them for None/'' /'all'."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if not names or names == ["all"]:
            return list(self.models.values())
        return [self.get(n) for n in names]


def _describe(err: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid model catalog"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def _committees(raw: Any, models: dict[str, ModelSpec], source: Path) -> dict[str, CommitteeSpec]:
    """The ``committees:`` section, each with its members' entries resolved."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{source}: committees: expected a mapping of name -> {{members: {{model: weight}}}}")
    committees: dict[str, CommitteeSpec] = {}
    for name, entry in raw.items():
        where = f"{source}: committees.{name}"
        if name in models:
            raise CatalogError(f"{where}: the name is already a model's")
        if not isinstance(entry, dict) or not isinstance(entry.get("members"), dict):
            raise CatalogError(f"{where}: expected a mapping with members: {{model: weight}}")
        unknown = [m for m in entry["members"] if m not in models]
        if unknown:
            raise CatalogError(f"{where}: unknown members {unknown}; models are: {', '.join(models)}")
        members = tuple(models[m] for m in entry["members"])
        try:
            committees[name] = CommitteeSpec.model_validate({**entry, "name": name, "member_specs": members})
        except ValidationError as err:
            lines = [f"{where}: invalid committee"]
            lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
            raise CatalogError("\n".join(lines)) from None
    return committees


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate the catalog; a CatalogError names the file and the bad field."""
    source = Path(path) if path else catalog_path()
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise CatalogError(f"model catalog not found: {source}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict) or not raw["models"]:
        raise CatalogError(f"{source}: expected a mapping with a non-empty 'models:' section")
    defaults = raw.get("defaults") or {}
    keys = ("max_batch_size", "batch_delay_us", "jpeg_decoder", "tta")
    entry_defaults = {k: defaults[k] for k in keys if k in defaults}
    gpu_defaults = (raw.get("profiles") or {}).get("gpu")
    quant_defaults = raw.get("quantization") or {}
    release_defaults = raw.get("release") or {}
    models: dict[str, ModelSpec] = {}
    try:
        for name, entry in raw["models"].items():
            if not isinstance(entry, dict):
                raise CatalogError(f"{source}: models.{name}: expected a mapping, got {type(entry).__name__}")
            data = {**entry_defaults, **entry, "name": name}
            if gpu_defaults is not None or "gpu" in entry:
                data["gpu"] = {**(gpu_defaults or {}), **(entry.get("gpu") or {})}
            data["quantization"] = {**quant_defaults, **(entry.get("quantization") or {})}
            data["release"] = {**release_defaults, **(entry.get("release") or {})}
            try:
                models[name] = ModelSpec.model_validate(data)
            except ValidationError as err:
                msgs = [f"{source}: invalid model catalog"]
                for e in err.errors():
                    where = ".".join(str(p) for p in ("models", name, *e["loc"]))
                    msgs.append(f"  {where}: {e['msg']}")
                raise CatalogError("\n".join(msgs)) from None
        return Catalog(
            models=models,
            committees=_committees(raw.get("committees") or {}, models, source),
            top_k=defaults.get("top_k"),
            keep_versions=defaults.get("keep_versions"),
            source=source,
        )
    except ValidationError as err:
        raise CatalogError(_describe(err, source)) from None
