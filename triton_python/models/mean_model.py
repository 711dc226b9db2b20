"""The python-backend averaging model: ``model.py`` of ``<model>_hflip_mean/V/`` and ``<committee>_mean/V/``.

Beside it lies ``python_model_common.py`` (``visionserve.triton_sources`` puts it there).

One model file does both kinds of averaging, read from its config: ``weights`` (one per input,
summing to 1: a committee's member weights, or ``[1]`` for TTA) and ``views`` (rows per image
in each input: 1 for a committee, the view count for TTA, whose rows come image by image).
Output row i is ``sum_j weights[j] * mean(input_j rows of image i)``. Why a python model:
Triton has no averaging step of its own, and ONNX or another framework backend would batch
requests along the first axis, which TTA's B x views rows do not fit.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from python_model_common import failure, read_config


class TritonPythonModel:
    def initialize(self, args):
        config, params = read_config(args)
        self.inputs = [i["name"] for i in config["input"]]
        self.weights = np.asarray(json.loads(params["weights"]), dtype=np.float64)
        self.views = int(params.get("views", "1"))
        self.output_name = config["output"][0]["name"]
        if len(self.weights) != len(self.inputs):
            raise ValueError(f"{len(self.weights)} weights for {len(self.inputs)} inputs")

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                total = None
                for name, weight in zip(self.inputs, self.weights, strict=True):
                    rows = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                    if rows.shape[0] % self.views:
                        raise ValueError(f"{name}: {rows.shape[0]} rows is not a multiple of {self.views} views")
                    grouped = rows.reshape(rows.shape[0] // self.views, self.views, *rows.shape[1:])
                    part = grouped.astype(np.float64).mean(axis=1) * weight
                    total = part if total is None else total + part
                out = pb_utils.Tensor(self.output_name, total.astype(np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except Exception as exc:  # one bad request never takes the stub down
                responses.append(pb_utils.InferenceResponse(error=failure("averaging", exc)))
        return responses
