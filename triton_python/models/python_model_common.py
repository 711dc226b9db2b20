"""What visionserve's python-backend models share: their config, and the errors they answer with.

Copied beside each of ``preprocess_model.py``, ``gpu_model.py`` and ``mean_model.py`` (as
``<model>/<version>/python_model_common.py``; ``visionserve.triton_sources`` decides), so the
three read their parameters and word their failures one way. Imports only the stub's own
``triton_python_backend_utils``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import triton_python_backend_utils as pb_utils

__all__ = ["failure", "invalid_argument", "read_config"]


def read_config(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The model config Triton passes to ``initialize``, and its ``parameters`` as plain strings."""
    config = json.loads(args["model_config"])
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    return config, params


def invalid_argument(message: str) -> Any:
    """A per-request error with INVALID_ARG status (HTTP 400), where the python backend supports codes."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)


def failure(step: str, exc: BaseException) -> Any:
    """The error of a request that ``step`` could not serve for a reason other than its input."""
    return pb_utils.TritonError(f"{step} failed: {type(exc).__name__}: {exc}")
