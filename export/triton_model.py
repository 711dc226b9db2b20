"""The python-backend preprocessing model; copied into ``<model>_preprocess/<version>/model.py``.

It reads its tensor names and preprocessing constants from its own config (written from the
catalog), so nothing here is model-specific. One response per request; an undecodable image
fails only its own request, with a message the caller can act on.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imaging import InvalidImage, Pipeline  # noqa: E402  (copied beside this file)


def _invalid(message):
    """A per-request error with INVALID_ARG status (HTTP 400), where the python backend supports codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.pipeline = Pipeline.from_params(json.loads(params["preprocessing"]))
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.output_dtype = pb_utils.triton_string_to_numpy(config["output"][0]["data_type"])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                images = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
                if images.dtype != np.object_:
                    raise InvalidImage(f"input '{self.input_name}' must be TYPE_STRING (encoded image bytes)")
                batch = np.stack([self.pipeline(bytes(item)) for item in images.reshape(-1)])
                out = pb_utils.Tensor(self.output_name, batch.astype(self.output_dtype, copy=False))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except InvalidImage as exc:
                responses.append(pb_utils.InferenceResponse(error=_invalid(f"invalid image: {exc}")))
            except Exception as exc:  # never let one request take the stub down
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"preprocessing failed: {type(exc).__name__}: {exc}")))
        return responses
