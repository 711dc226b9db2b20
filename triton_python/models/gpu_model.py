"""The GPU profile's python-backend model; copied into ``<model>_gpu/<version>/model.py``.

Beside it lie ``imaging.py``, ``gpu_pipeline.py``, ``python_model_common.py`` (put there by
``visionserve.triton_sources``, imported as plain modules: the stub has that directory on
``sys.path``) and the backbone's ``model.onnx``. Its config says which stage it runs (``stage`` parameter):

- ``fused`` (what the ensemble serves): encoded images -> probabilities in one execute, the
  decoded and preprocessed batch never leaving the GPU;
- ``preprocess`` / ``backbone``: the same two halves as separate models, handing the batch
  over as a GPU tensor (DLPack). ``bench gpu`` measures this split against ``fused``.

One response per request; a request whose image cannot be decoded gets its own INVALID_ARG
error and the rest of the batch is served.
"""

import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from gpu_pipeline import Backbone, Overlapped, Preprocessor, jpeg_decoder, load_onnx_module
from imaging import Pipeline
from python_model_common import failure, invalid_argument, read_config
from torch.utils import dlpack

_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}
_CONFIG_DTYPES = {"TYPE_FP16": torch.float16, "TYPE_FP32": torch.float32}


class TritonPythonModel:
    def initialize(self, args):
        config, params = read_config(args)
        self.stage = params.get("stage", "fused")
        on_gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args.get('model_instance_device_id', '0')}" if on_gpu else "cpu")
        if on_gpu:
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        # fp16 is a GPU precision; on a CPU device the same model runs in float32
        dtype = _DTYPES[params.get("precision", "fp16")] if on_gpu else torch.float32
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.output_dtype = _CONFIG_DTYPES.get(config["output"][0]["data_type"], torch.float32)
        pipeline = Pipeline.from_params(json.loads(params["preprocessing"]))
        self.pre = None
        if self.stage != "backbone":
            instances = sum(int(g.get("count", 1)) for g in config.get("instance_group", [])) or 1
            decoder = params.get("jpeg_decoder", "torchvision")  # versions exported before it was a parameter
            jpeg, fallback = jpeg_decoder(
                decoder,
                self.device,
                float(params["hardware_decode_share"]) if decoder == "nvimgcodec" else 0.0,
                cpu_threads=max(1, (os.cpu_count() or 2) // instances),  # the instances share the cores
            )
            if fallback:
                pb_utils.Logger.log_warn(f"JPEG decoder: {jpeg.name}, because {fallback}")
            self.pre = Preprocessor(pipeline, self.device, dtype, jpeg)
        self.net = None
        if self.stage != "preprocess":
            here = os.path.join(args["model_repository"], args["model_version"])
            graphs = [int(b) for b in json.loads(params.get("graph_batch_sizes", "[]"))]
            graphs = [b for b in graphs if b <= max(1, config.get("max_batch_size", 1))]
            module = load_onnx_module(os.path.join(here, params.get("backbone_file", "model.onnx")))
            self.net = Backbone(module, self.device, dtype, pipeline.output_shape, graphs)
            if self.net.graph_error:
                pb_utils.Logger.log_warn(f"CUDA graphs unavailable, running eagerly: {self.net.graph_error}")
        chunk = int(params.get("pipeline_chunk", "0"))  # versions exported before it was a parameter: 0
        self.overlapped = Overlapped(self.pre, self.net, chunk) if self.stage == "fused" and chunk else None
        pb_utils.Logger.log_info(
            f"{args['model_name']} v{args['model_version']} stage={self.stage} device={self.device} "
            f"dtype={dtype} jpeg={self.pre.jpeg.name if self.pre else None} "
            f"graphs={sorted(self.net.graphs) if self.net else []} overlap_chunk={chunk or None}"
        )

    def _inputs(self, requests):
        """Every request's rows in one list, and each request's (start, count)."""
        rows, spans, start = [], [], 0
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
            if self.stage == "backbone":
                part = dlpack.from_dlpack(tensor.to_dlpack()).to(self.device)
                count = part.shape[0]
            else:
                part = [bytes(item) for item in tensor.as_numpy().reshape(-1)]
                count = len(part)
            spans.append((start, count))
            start += count
            rows.append(part)
        return rows, spans

    def execute(self, requests):
        try:
            rows, spans = self._inputs(requests)
            errors = [None] * sum(c for _, c in spans)
            if self.stage == "backbone":
                result = self.net(torch.cat(rows))
            else:
                images = [item for part in rows for item in part]
                if self.overlapped is not None:
                    result, errors = self.overlapped(images)
                else:
                    prepared = self.pre(images)
                    errors = prepared.errors
                    if self.stage == "preprocess":  # the config's type, whatever the device computes in
                        result = prepared.batch.to(self.output_dtype)
                    else:
                        result = self.net(prepared.batch)
            if self.stage != "preprocess":
                result = result.cpu().numpy()
        except Exception as exc:  # never let a batch take the stub down
            return [pb_utils.InferenceResponse(error=failure("GPU pipeline", exc)) for _ in requests]
        responses = []
        for start, count in spans:
            bad = [e for e in errors[start : start + count] if e is not None]
            if bad:
                responses.append(pb_utils.InferenceResponse(error=invalid_argument(f"invalid image: {bad[0]}")))
                continue
            part = result[start : start + count]
            if isinstance(part, np.ndarray):
                out = pb_utils.Tensor(self.output_name, np.ascontiguousarray(part, dtype=np.float32))
            else:
                out = pb_utils.Tensor.from_dlpack(self.output_name, dlpack.to_dlpack(part.contiguous()))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses

    def finalize(self):
        if self.overlapped is not None:
            self.overlapped.close()
        self.net = None
        self.pre = None
