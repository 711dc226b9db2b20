"""Python-based ``pytorch`` backend: serves ``platform: "pytorch_libtorch"`` (TorchScript) models.

Stands in for Triton's native libtorch backend where the server has none. Tensors follow
libtorch's naming rule: ``<name>__<index>`` is the index-th forward() argument / output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from backend_common import BackendSettings, execute_requests, torch_tensor_order

#: The native backend's default file name, and its thread-count parameter names.
DEFAULT_MODEL_FILENAME = "model.pt"
INTRA_OP_PARAMETER = "INTRA_OP_THREAD_COUNT"
INTER_OP_PARAMETER = "INTER_OP_THREAD_COUNT"


def device_for(settings: BackendSettings) -> torch.device:
    """``cuda:<device_id>`` for a GPU instance when torch sees CUDA, else the CPU."""
    if settings.instance_kind == "GPU" and torch.cuda.is_available():
        return torch.device(f"cuda:{settings.device_id}")
    return torch.device("cpu")


class TritonPythonModel:
    """One TorchScript module per instance; one forward() per scheduled batch."""

    def initialize(self, args: dict[str, str]) -> None:
        self.settings = BackendSettings.from_args(args, DEFAULT_MODEL_FILENAME)
        path = self.settings.require_artifact()
        threads = self.settings.threads(INTRA_OP_PARAMETER)
        torch.set_num_threads(threads)
        try:  # allowed once per process, before any inter-op work
            torch.set_num_interop_threads(int(self.settings.parameters.get(INTER_OP_PARAMETER) or 1))
        except RuntimeError:
            pass
        self.device = device_for(self.settings)
        self.module = torch.jit.load(str(path), map_location=self.device).eval()
        self.input_order = torch_tensor_order(self.settings.inputs)
        self.output_order = torch_tensor_order(self.settings.outputs)
        pb_utils.Logger.log_info(
            f"{self.settings.model_name} v{self.settings.model_version}: torch {torch.__version__} "
            f"device={self.device} intra_op_threads={threads}"
        )

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args: list[torch.Tensor | None] = [None] * len(self.settings.inputs)
        for spec, position in zip(self.settings.inputs, self.input_order, strict=True):
            args[position] = torch.from_numpy(batch[spec.name]).to(self.device)
        with torch.inference_mode():
            result = self.module(*args)
        values = [result] if isinstance(result, torch.Tensor) else list(result)
        if len(values) < len(self.settings.outputs):
            raise RuntimeError(
                f"the module returned {len(values)} tensors, config expects {len(self.settings.outputs)}"
            )
        return {
            spec.name: values[position].detach().cpu().numpy()
            for spec, position in zip(self.settings.outputs, self.output_order, strict=True)
        }

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_requests(requests, self.settings, self._run, pb_utils)

    def finalize(self) -> None:
        self.module = None
