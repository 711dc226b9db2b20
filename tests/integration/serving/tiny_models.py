"""Tiny seeded models in all three formats, with hand-written configs, for backend tests.

Each model maps 4 features to 3 classes. The configs are written the way a user would for
Triton's native backends; the tests serve them through visionserve's Python-based backends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = 4
CLASSES = 3
MAX_BATCH = 8
#: Long enough that concurrent requests always meet in the dynamic batcher.
QUEUE_DELAY_US = 100_000


@dataclass(frozen=True)
class TinyModel:
    """A served model and the framework call that is its reference."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


ONNX = TinyModel("tiny_onnx", ("x",), ("y",))
#: Same ONNX graph, config dims [-1]: a wrong-length row reaches onnxruntime and fails there.
ONNX_LOOSE = TinyModel("tiny_onnx_loose", ("x",), ("y",))
#: libtorch naming: outputs listed in the config in reverse order of their index.
TORCHSCRIPT = TinyModel("tiny_torchscript", ("INPUT__0",), ("LOGITS__1", "PROBS__0"))
SAVEDMODEL = TinyModel("tiny_savedmodel", ("x",), ("y",))


def _config(
    name: str,
    platform: str,
    inputs: list[tuple[str, list[int]]],
    outputs: list[tuple[str, list[int]]],
    extra: str = "",
) -> str:
    def tensors(items: list[tuple[str, list[int]]]) -> str:
        return ",\n".join(f'  {{ name: "{n}" data_type: TYPE_FP32 dims: {d} }}' for n, d in items)

    return (
        f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {MAX_BATCH}\n'
        f"input [\n{tensors(inputs)}\n]\noutput [\n{tensors(outputs)}\n]\n"
        f"instance_group [ {{ kind: KIND_CPU count: 1 }} ]\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {QUEUE_DELAY_US} }}\n{extra}"
    )


def _torch_module():  # noqa: ANN202 - torch imported lazily
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(FEATURES, CLASSES)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.linear(x)
            return torch.softmax(logits, dim=1), logits

    torch.manual_seed(0)
    return Net().eval()


def write_onnx(repository: Path) -> None:
    """``tiny_onnx`` (custom default_model_filename) and ``tiny_onnx_loose`` (dims [-1])."""
    import torch

    class ProbsOnly(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[0]

    model = ProbsOnly(_torch_module())
    for name, filename, dims, extra in (
        (ONNX.name, "classifier.onnx", [FEATURES], 'default_model_filename: "classifier.onnx"\n'),
        (ONNX_LOOSE.name, "model.onnx", [-1], ""),
    ):
        (repository / name / "1").mkdir(parents=True)
        torch.onnx.export(
            model,
            (torch.zeros(1, FEATURES),),
            str(repository / name / "1" / filename),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        config = _config(name, "onnxruntime_onnx", [("x", dims)], [("y", [CLASSES])], extra)
        (repository / name / "config.pbtxt").write_text(config)


def write_torchscript(repository: Path) -> None:
    """``tiny_torchscript``: traced module returning (probabilities, logits)."""
    import torch

    (repository / TORCHSCRIPT.name / "1").mkdir(parents=True)
    traced = torch.jit.trace(_torch_module(), torch.zeros(2, FEATURES))
    traced.save(str(repository / TORCHSCRIPT.name / "1" / "model.pt"))
    config = _config(
        TORCHSCRIPT.name,
        "pytorch_libtorch",
        [("INPUT__0", [FEATURES])],
        [("LOGITS__1", [CLASSES]), ("PROBS__0", [CLASSES])],
    )
    (repository / TORCHSCRIPT.name / "config.pbtxt").write_text(config)


def write_savedmodel(repository: Path) -> None:
    """``tiny_savedmodel``: a Keras model saved with a ``serving_default`` signature x -> y."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES), keras.layers.Softmax()])

    class Serving(tf.Module):
        def __init__(self, net: keras.Model) -> None:
            super().__init__()
            self.net = net

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.net(x)}

    module = Serving(model)
    (repository / SAVEDMODEL.name / "1").mkdir(parents=True)
    tf.saved_model.save(
        module,
        str(repository / SAVEDMODEL.name / "1" / "model.savedmodel"),
        signatures={"serving_default": module.serve},
    )
    config = _config(SAVEDMODEL.name, "tensorflow_savedmodel", [("x", [FEATURES])], [("y", [CLASSES])])
    (repository / SAVEDMODEL.name / "config.pbtxt").write_text(config)


def reference(repository: Path, model: TinyModel, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The framework's own outputs for ``batch``, keyed by the served output names."""
    if model in (ONNX, ONNX_LOOSE):
        import onnxruntime as ort

        filename = "classifier.onnx" if model is ONNX else "model.onnx"
        session = ort.InferenceSession(str(repository / model.name / "1" / filename))
        return {"y": session.run(["y"], {"x": batch})[0]}
    if model is TORCHSCRIPT:
        import torch

        module = torch.jit.load(str(repository / model.name / "1" / "model.pt"))
        with torch.inference_mode():
            probs, logits = module(torch.from_numpy(batch))
        return {"PROBS__0": probs.numpy(), "LOGITS__1": logits.numpy()}
    import tensorflow as tf

    loaded = tf.saved_model.load(str(repository / model.name / "1" / "model.savedmodel"))
    return {"y": loaded.signatures["serving_default"](x=tf.constant(batch))["y"].numpy()}


def write_all(repository: Path) -> list[TinyModel]:
    """Write every tiny model into ``repository``; return them."""
    repository.mkdir(parents=True, exist_ok=True)
    write_onnx(repository)
    write_torchscript(repository)
    write_savedmodel(repository)
    return [ONNX, ONNX_LOOSE, TORCHSCRIPT, SAVEDMODEL]
