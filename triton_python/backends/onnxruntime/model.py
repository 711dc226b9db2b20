"""Python-based ``onnxruntime`` backend: serves ``platform: "onnxruntime_onnx"`` models.

Stands in for Triton's native onnxruntime backend where the server has none (the
nvidia-pytriton wheel). Tensors are matched by name, like the native backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from backend_common import BackendSettings, execute_requests, require_tensor_names, warm_up

#: The native backend's default file name, and its thread-count parameter names.
DEFAULT_MODEL_FILENAME = "model.onnx"
INTRA_OP_PARAMETER = "intra_op_thread_count"
INTER_OP_PARAMETER = "inter_op_thread_count"


def session_options(settings: BackendSettings) -> ort.SessionOptions:
    """One intra-op pool sized by the thread rule; sequential execution (no inter-op pool).

    The pool's threads sleep between runs instead of spinning (ORT's default): a spinning pool
    burns the cores that the preprocessing instances and Triton itself need between batches.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads(INTRA_OP_PARAMETER)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = int(settings.parameters.get(INTER_OP_PARAMETER) or 1)
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def providers(settings: BackendSettings) -> list[Any]:
    """CUDA for a GPU instance when this onnxruntime build has it, else CPU."""
    if settings.instance_kind == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": settings.device_id}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class TritonPythonModel:
    """One ONNX Runtime session per instance; one ``session.run`` per scheduled batch."""

    def initialize(self, args: dict[str, str]) -> None:
        self.settings = BackendSettings.from_args(args, DEFAULT_MODEL_FILENAME)
        path = self.settings.require_artifact()
        self.session = ort.InferenceSession(
            str(path), sess_options=session_options(self.settings), providers=providers(self.settings)
        )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        require_tensor_names(self.settings, [i.name for i in inputs], [o.name for o in outputs], "the ONNX model")
        self.output_names = [s.name for s in self.settings.outputs]
        warmed = warm_up(self.settings, self._run)
        pb_utils.Logger.log_info(
            f"{self.settings.model_name} v{self.settings.model_version}: onnxruntime {ort.__version__} "
            f"providers={self.session.get_providers()} warmed_up={warmed} intra_op_threads="
            f"{self.settings.threads(INTRA_OP_PARAMETER)}"
        )

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, batch)
        return dict(zip(self.output_names, values, strict=True))

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_requests(requests, self.settings, self._run, pb_utils)

    def finalize(self) -> None:
        self.session = None
