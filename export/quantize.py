"""The ``onnx_int8`` format: static QDQ quantization of the fp32 ONNX, gated on top-1 agreement.

``onnxruntime.quantization.quantize_static`` inserts QuantizeLinear/DequantizeLinear pairs
(QDQ format, a standard ONNX graph: it loads on stock NGC Triton's onnxruntime backend as it
does on ours) around the catalog's ``quantization.op_types``; activation ranges come from
real sample images run through the model's own preprocessing, weights get one INT8 scale per
output channel. ONNX Runtime's CPU provider then fuses each QDQ Conv into an integer
convolution (uint8 activations × int8 weights: the AVX-512 VNNI ``vpdpbusd`` path on CPUs
that have it).

Before anything is published the INT8 model is run beside its fp32 source on
``holdout_images`` held-out images (a seed the calibration never saw) and the share of images
whose top-1 class is the same is the figure the export is judged by.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.backbone import Exported, artifact_size
from export.runners import Runner, load_runner
from visionserve.catalog import INT8_FORMAT, ModelSpec, Quantization
from visionserve.errors import ParityError

__all__ = [
    "CALIBRATION_SEED",
    "HOLDOUT_SEED",
    "Agreement",
    "QuantizationRefused",
    "quantize_onnx",
    "top1_agreement",
]

#: Seed of the calibration images (the demo heads are calibrated on the same ones).
CALIBRATION_SEED = 101
#: Seed of the held-out agreement images: never used for calibration.
HOLDOUT_SEED = 909
#: Images per calibration / agreement step (bounded memory whatever the counts).
CHUNK = 16


class QuantizationRefused(ParityError):
    """The INT8 artifact agrees with its fp32 source on fewer images than the catalog allows."""


@dataclass(frozen=True)
class Agreement:
    """How an INT8 artifact compares with its fp32 source on the held-out images.

    Args:
        agreement: share of images with the same top-1 class.
        images: held-out images compared.
        max_abs_diff: largest |Δp| over all probabilities.
        min_agreement: the catalog threshold it was judged by.
    """

    agreement: float
    images: int
    max_abs_diff: float
    min_agreement: float

    @property
    def accepted(self) -> bool:
        return self.agreement >= self.min_agreement

    def as_metadata(self) -> dict[str, float | int | bool]:
        """What ``version.json`` records under ``quantization``."""
        return {
            "top1_agreement": round(self.agreement, 4),
            "images": self.images,
            "max_abs_diff": round(self.max_abs_diff, 6),
            "min_agreement": self.min_agreement,
            "accepted": self.accepted,
        }


def _chunks(batch: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(batch), CHUNK):
        yield batch[start : start + CHUNK]


class _Calibration:
    """onnxruntime's CalibrationDataReader over a preprocessed batch, CHUNK images at a time."""

    def __init__(self, input_name: str, batch: np.ndarray) -> None:
        self._input_name = input_name
        self._chunks = _chunks(batch)

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {self._input_name: np.ascontiguousarray(chunk)}

    def rewind(self) -> None:  # the reader protocol; one pass is all static calibration needs
        pass


def quantize_onnx(source: Path, target: Path, calibration: np.ndarray, settings: Quantization, input_name: str) -> None:
    """Write the QDQ INT8 model of ``source`` at ``target``, calibrated on ``calibration``.

    Args:
        source: the fp32 ONNX artifact.
        target: where the INT8 ONNX goes (its directory exists).
        calibration: preprocessed real images (the model's own layout and scale).
        settings: the catalog's quantization settings of this model.
        input_name: the model's input tensor.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    quantize_static(  # calibration scratch files go to a temporary directory it removes
        str(source),
        str(target),
        _Calibration(input_name, calibration),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(settings.op_types),
        per_channel=settings.per_channel,
        activation_type=QuantType.QUInt8,  # u8 × s8: what the VNNI kernels take
        weight_type=QuantType.QInt8,
        calibrate_method=methods[settings.calibration_method],
        calibration_providers=["CPUExecutionProvider"],
    )


def _run(runner: Runner, batch: np.ndarray) -> np.ndarray:
    return np.concatenate([runner(np.ascontiguousarray(chunk)) for chunk in _chunks(batch)])


def top1_agreement(fp32: Runner, int8: Runner, holdout: np.ndarray, min_agreement: float) -> Agreement:
    """Top-1 agreement of ``int8`` with ``fp32`` on the preprocessed ``holdout`` images."""
    expected, got = _run(fp32, holdout), _run(int8, holdout)
    same = float(np.mean(expected.argmax(axis=1) == got.argmax(axis=1)))
    return Agreement(same, len(holdout), float(np.max(np.abs(expected - got))), min_agreement)


def export_int8(
    spec: ModelSpec, fp32_artifact: Path, version_dir: Path, calibration: np.ndarray, holdout: np.ndarray
) -> tuple[Exported, Agreement]:
    """Quantize the fp32 ONNX into ``version_dir`` and measure its agreement (not yet judged).

    Returns:
        The artifact (``max_abs_diff`` over the held-out images) and its agreement figure.
    """
    from visionserve.catalog import ARTIFACTS

    start = time.perf_counter()
    version_dir.mkdir(parents=True, exist_ok=True)
    artifact = version_dir / ARTIFACTS[INT8_FORMAT]
    input_name, _ = spec.tensor_names(INT8_FORMAT)
    quantize_onnx(fp32_artifact, artifact, calibration, spec.quantization, input_name)
    agreement = top1_agreement(
        load_runner("onnx", fp32_artifact), load_runner(INT8_FORMAT, artifact), holdout, spec.quantization.min_agreement
    )
    seconds = time.perf_counter() - start
    return Exported(INT8_FORMAT, artifact, agreement.max_abs_diff, artifact_size(artifact), seconds), agreement


def refusal(spec: ModelSpec, agreement: Agreement) -> str:
    """The message of a refused INT8 artifact."""
    return (
        f"{spec.name} {INT8_FORMAT}: top-1 agreement with the fp32 ONNX is {agreement.agreement:.3f} on "
        f"{agreement.images} held-out images, below the catalog's min_agreement {agreement.min_agreement:g}"
    )
