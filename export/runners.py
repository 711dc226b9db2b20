"""Run an exported artifact in process: the reference for parity checks and the benchmark ceiling."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from visionserve.catalog import PREPROCESSED, PROBABILITIES, Format

__all__ = ["Runner", "load_runner"]

Runner = Callable[[np.ndarray], np.ndarray]


def load_runner(fmt: Format, artifact: Path, *, threads: int | None = None) -> Runner:
    """A function batch -> probabilities over the artifact, on the CPU, with ``threads`` threads."""
    threads = threads or os.cpu_count() or 1
    if fmt in {"onnx", "onnx_int8"}:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(artifact), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: batch})[0]
    if fmt == "torchscript":
        import warnings

        import torch

        torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(artifact), map_location="cpu").eval()

        def run_torch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

        return run_torch
    if fmt == "savedmodel":
        import tensorflow as tf

        fn = tf.saved_model.load(str(artifact)).signatures["serving_default"]
        return lambda batch: fn(**{PREPROCESSED: tf.constant(batch)})[PROBABILITIES].numpy()
    raise ValueError(f"unknown format {fmt!r}")
