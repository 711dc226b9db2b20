"""A toy python-backend classifier: encoded bytes in (``image``), probabilities out.

Stands in for a catalog ensemble in the client's integration tests, so they need no exported
weights: same tensor names, types and batching, deterministic answers per version.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the python backend stub
from toy_scores import ToyImageError, toy_scores  # copied beside this file


class TritonPythonModel:
    """One response per request; a bad payload fails its request, not the model."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.version = int(args["model_version"])
        # Tensor names come from config.pbtxt, which the test derives from visionserve.catalog.
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.num_classes = int(config["output"][0]["dims"][-1])

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                probs = np.stack([toy_scores(item[0], self.version, self.num_classes) for item in images])
            except ToyImageError as exc:
                # INVALID_ARG: the caller's fault, as a real preprocess model should report it.
                error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, probs)]))
        return responses
