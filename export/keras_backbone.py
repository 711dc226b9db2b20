"""Keras applications → SavedModel (named signature) → ONNX with tf2onnx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from export.backbone import Backbone, resolve_builder
from export.demo import DEMO_RESIDUAL_GAMMA, demo_head
from export.weights import DEMO_SEED, WeightsChoice
from visionserve.catalog import PREPROCESSED, PROBABILITIES, Format
from visionserve.errors import ExportError, WeightsError

__all__ = ["KerasBackbone", "checkpoint_classes"]

ONNX_OPSET = 17


def checkpoint_classes(path: Path) -> int | None:
    """Class count of a Keras weights file's head (last layer's bias), or None if unknown."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            biases: list[int] = []

            def visit(name: str, obj) -> None:  # noqa: ANN001
                if isinstance(obj, h5py.Dataset) and obj.ndim == 1 and "predictions" in name:
                    biases.append(int(obj.shape[0]))

            f.visititems(visit)
            return biases[-1] if biases else None
    except OSError:
        raise WeightsError(f"{path} is not a Keras weights file (.weights.h5)") from None


class KerasBackbone(Backbone):
    def build(self, choice: WeightsChoice, num_classes: int | None, calibration: np.ndarray) -> None:
        import keras

        builder = resolve_builder(self.spec.builder)
        if choice.kind == "imagenet":
            self.model = self.imagenet_model(
                lambda: builder(weights="imagenet"),
                "use WEIGHTS=demo, or a checkpoint, or warm ~/.keras/models on a machine with internet",
            )
            return
        if choice.kind == "checkpoint":
            n = self.checkpoint_classes(choice.checkpoint, checkpoint_classes(choice.checkpoint), num_classes)
            self.model = builder(weights=None, classes=n)
            try:
                self.model.load_weights(str(choice.checkpoint))
            except Exception as exc:
                raise WeightsError(
                    f"checkpoint {choice.checkpoint} does not fit {self.spec.builder} with {n} classes: {exc}"
                ) from None
            self.num_classes, self.weights = n, "checkpoint"
            return
        keras.utils.set_random_seed(DEMO_SEED)
        n = num_classes or self.spec.num_classes
        self.model = builder(weights=None, classes=n)
        self._damp_residual_branches()
        self._calibrate_batchnorm(calibration)
        head = self.model.layers[-1]
        features = keras.Model(self.model.inputs, head.input).predict(calibration, verbose=0)
        head.set_weights(list(demo_head(features, n, DEMO_SEED)))
        self.num_classes, self.weights = n, "demo"

    def _damp_residual_branches(self) -> None:
        """γ := DEMO_RESIDUAL_GAMMA on the batch norm ending each residual branch (export/demo.py).

        Keras applications add the branch last (``Add()([shortcut, x])``), so the branch's
        batch norm is the layer producing an ``Add``'s last input.
        """
        import keras

        for layer in self.model._flatten_layers():
            if not isinstance(layer, keras.layers.Add):
                continue
            inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
            source = inputs[-1]._keras_history.operation
            if isinstance(source, keras.layers.BatchNormalization):
                source.gamma.assign(np.full(source.gamma.shape, DEMO_RESIDUAL_GAMMA, dtype="float32"))

    def _calibrate_batchnorm(self, calibration: np.ndarray) -> None:
        """Moving statistics := batch statistics of real images (one training-mode pass, momentum 0).

        Without this, activations of a random network collapse layer by layer and the demo
        head sees near-constant features (a near-uniform softmax).
        """
        import keras

        layers = [layer for layer in self.model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
        saved = [layer.momentum for layer in layers]
        for layer in layers:
            layer.momentum = 0.0
        self.model(calibration, training=True)
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False))

    def _export(self, fmt: Format, artifact: Path) -> None:
        if fmt == "savedmodel":
            self._savedmodel(artifact)
        elif fmt == "onnx":
            self._onnx(artifact)
        else:
            raise ExportError(f"a Keras model cannot be exported as {fmt}")

    def _savedmodel(self, path: Path) -> None:
        """SavedModel whose serving_default signature names its tensors after the catalog."""
        import keras
        import tensorflow as tf

        if path.exists():
            return
        model = self.model
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda x: {PROBABILITIES: model(x, training=False)},
            input_signature=[tf.TensorSpec((None, *self.spec.input_shape), tf.float32, name=PREPROCESSED)],
        )
        archive.write_out(str(path), verbose=False)

    def _onnx(self, path: Path) -> None:
        """tf2onnx over the SavedModel (written first to a scratch dir if not exported too)."""
        saved = path.parent / "model.savedmodel"
        scratch = not saved.exists()
        if scratch:
            saved = path.parent / ".onnx-source.savedmodel"
            self._savedmodel(saved)
        cmd = [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(saved),
            "--output",
            str(path),
            "--opset",
            str(ONNX_OPSET),
            "--signature_def",
            "serving_default",
            "--rename-inputs",
            PREPROCESSED,
            "--rename-outputs",
            PROBABILITIES,
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if scratch:
            import shutil

            shutil.rmtree(saved, ignore_errors=True)
        if proc.returncode != 0 or not path.exists():
            raise ExportError(f"tf2onnx failed for {self.spec.name}:\n{proc.stderr[-2000:]}")
