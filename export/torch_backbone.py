"""torchvision models → TorchScript and ONNX, with softmax folded in."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from export.backbone import Backbone, resolve_builder
from export.demo import DEMO_RESIDUAL_GAMMA, demo_head
from export.weights import DEMO_SEED, WeightsChoice
from visionserve.catalog import Format, ModelSpec
from visionserve.errors import ExportError, WeightsError

__all__ = ["TorchBackbone"]

ONNX_OPSET = 17


def _head(model):  # noqa: ANN001, ANN202
    """The last nn.Linear: the classifier head of every torchvision classification model."""
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ExportError("the torch model has no nn.Linear classifier head")
    return linears[-1]


def _load_state_dict(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path} is not a torch checkpoint (state dict): {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


class TorchBackbone(Backbone):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))

    def build(self, choice: WeightsChoice, num_classes: int | None, calibration: np.ndarray) -> None:
        import torch

        builder = resolve_builder(self.spec.builder)
        if choice.kind == "imagenet":
            model = self.imagenet_model(
                lambda: builder(weights="DEFAULT"),
                "use WEIGHTS=demo, a checkpoint, "
                "or warm the torch hub cache (~/.cache/torch/hub/checkpoints) on a machine with internet",
            )
        elif choice.kind == "checkpoint":
            state = _load_state_dict(choice.checkpoint)
            matrices = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
            found = int(matrices[-1].shape[0]) if matrices else None
            n = self.checkpoint_classes(choice.checkpoint, found, num_classes)
            model = builder(weights=None, num_classes=n)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()
                raise WeightsError(
                    f"checkpoint {choice.checkpoint} does not fit {self.spec.builder} with {n} classes: "
                    + " ".join(first[:3])[:600]
                ) from None
            self.num_classes, self.weights = n, "checkpoint"
        else:
            torch.manual_seed(DEMO_SEED)
            n = num_classes or self.spec.num_classes
            model = builder(weights=None, num_classes=n)
            self._calibrate_demo(model, calibration, n)
            self.num_classes, self.weights = n, "demo"
        self.model = torch.nn.Sequential(model.eval(), torch.nn.Softmax(dim=1)).eval()

    @staticmethod
    def _calibrate_demo(model, calibration: np.ndarray, num_classes: int) -> None:  # noqa: ANN001
        """Damped residual branches, batch-norm statistics from real images, then a demo head."""
        import torch
        from torchvision.models.resnet import BasicBlock, Bottleneck

        batch = torch.from_numpy(calibration)
        for m in model.modules():  # damped residual branches (export/demo.py)
            last_bn = m.bn2 if isinstance(m, BasicBlock) else m.bn3 if isinstance(m, Bottleneck) else None
            if last_bn is not None:
                torch.nn.init.constant_(last_bn.weight, DEMO_RESIDUAL_GAMMA)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration pass
        head = _head(model)
        captured: list[torch.Tensor] = []
        hook = head.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach()))
        with torch.no_grad():
            model.train()
            model(batch)
            model.eval()
            captured.clear()
            model(batch)
        hook.remove()
        kernel, bias = demo_head(captured[-1].numpy(), num_classes, DEMO_SEED)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(kernel.T))
            head.bias.copy_(torch.from_numpy(bias))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

    def _export(self, fmt: Format, artifact: Path) -> None:
        import torch

        example = torch.zeros((2, *self.spec.input_shape), dtype=torch.float32)
        in_name, out_name = self.spec.tensor_names(fmt)
        if fmt == "torchscript":
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is what libtorch serves
                torch.jit.trace(self.model, example).save(str(artifact))
        elif fmt == "onnx":
            torch.onnx.export(
                self.model,
                (example,),
                str(artifact),
                dynamo=False,
                opset_version=ONNX_OPSET,
                input_names=[in_name],
                output_names=[out_name],
                dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
            )
        else:
            raise ExportError(f"a torch model cannot be exported as {fmt}")
