"""Python-based ``tensorflow`` backend: serves ``platform: "tensorflow_savedmodel"`` models.

Stands in for Triton's native TensorFlow backend where the server has none. Like the native
backend it calls the ``serving_default`` signature, matching inputs and outputs by name.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from backend_common import BackendSettings, execute_requests, require_tensor_names, warm_up  # noqa: E402

#: The native backend's default directory name and signature.
DEFAULT_MODEL_FILENAME = "model.savedmodel"
SIGNATURE = "serving_default"


def device_for(settings: BackendSettings) -> str:
    """``/GPU:<id>`` for a GPU instance when TensorFlow sees one, else ``/CPU:0``."""
    if settings.instance_kind == "GPU" and tf.config.list_physical_devices("GPU"):
        return f"/GPU:{settings.device_id}"
    return "/CPU:0"


class TritonPythonModel:
    """One loaded SavedModel per instance; one signature call per scheduled batch."""

    def initialize(self, args: dict[str, str]) -> None:
        self.settings = BackendSettings.from_args(args, DEFAULT_MODEL_FILENAME)
        path = self.settings.require_artifact()
        threads = self.settings.threads()
        try:  # only before the TF runtime starts; a second instance in this stub keeps the first
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        self.device = device_for(self.settings)
        with tf.device(self.device):
            self.loaded = tf.saved_model.load(str(path))
        if SIGNATURE not in self.loaded.signatures:
            raise ValueError(f"{path}: no {SIGNATURE!r} signature (it has {sorted(self.loaded.signatures)})")
        self.signature = self.loaded.signatures[SIGNATURE]
        require_tensor_names(
            self.settings,
            self.signature.structured_input_signature[1],
            self.signature.structured_outputs,
            f"signature {SIGNATURE!r}",
        )
        warmed = warm_up(self.settings, self._run)
        pb_utils.Logger.log_info(
            f"{self.settings.model_name} v{self.settings.model_version}: tensorflow {tf.__version__} "
            f"device={self.device} warmed_up={warmed} intra_op_threads={threads}"
        )

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tf.device(self.device):
            result = self.signature(**{name: tf.constant(array) for name, array in batch.items()})
        return {spec.name: result[spec.name].numpy() for spec in self.settings.outputs}

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_requests(requests, self.settings, self._run, pb_utils)

    def finalize(self) -> None:
        self.signature = None
        self.loaded = None
