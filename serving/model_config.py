"""Read ``config.pbtxt`` files with Triton's own protobuf schema, and size tensors from them.

Parsing with ``tritonclient``'s ``model_config_pb2`` (the server's schema) means a field the
server would reject is rejected here too, with the file named.
"""

from __future__ import annotations

import math
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from visionserve.errors import RepositoryError

__all__ = [
    "CONFIG_FILENAME",
    "STRING_ELEMENT_BUDGET_BYTES",
    "VARIABLE_DIM_BUDGET",
    "ModelConfig",
    "ensemble_steps",
    "item_bytes",
    "list_models",
    "read_model_config",
]

CONFIG_FILENAME = "config.pbtxt"
#: Bytes budgeted per TYPE_STRING element (an encoded image is typically 20-200 KiB).
STRING_ELEMENT_BUDGET_BYTES = 256 * 2**10
#: Elements budgeted for a variable (-1) dimension, e.g. ``probabilities`` dims [-1].
VARIABLE_DIM_BUDGET = 1024

ModelConfig = model_config_pb2.ModelConfig
_DT = model_config_pb2.DataType
_ELEMENT_BYTES: dict[int, int] = {
    _DT.TYPE_BOOL: 1,
    _DT.TYPE_UINT8: 1,
    _DT.TYPE_UINT16: 2,
    _DT.TYPE_UINT32: 4,
    _DT.TYPE_UINT64: 8,
    _DT.TYPE_INT8: 1,
    _DT.TYPE_INT16: 2,
    _DT.TYPE_INT32: 4,
    _DT.TYPE_INT64: 8,
    _DT.TYPE_FP16: 2,
    _DT.TYPE_FP32: 4,
    _DT.TYPE_FP64: 8,
    _DT.TYPE_BF16: 2,
    _DT.TYPE_STRING: STRING_ELEMENT_BUDGET_BYTES,
}


def read_model_config(model_dir: Path) -> ModelConfig:
    """Parse ``<model_dir>/config.pbtxt``.

    Raises:
        RepositoryError: the file is missing or not a valid Triton model configuration.
    """
    path = Path(model_dir) / CONFIG_FILENAME
    try:
        return text_format.Parse(path.read_text(), ModelConfig())
    except FileNotFoundError:
        raise RepositoryError(f"{path} does not exist: run `make export`") from None
    except text_format.ParseError as exc:
        raise RepositoryError(f"{path}: not a valid Triton model configuration: {exc}") from None


def ensemble_steps(repository: Path, name: str) -> list[str]:
    """The models an ensemble's steps run, in order, as its config.pbtxt names them.

    The served version decides them (a CPU-profile version runs preprocess -> backbone, a
    GPU-profile version one GPU model), so the server loads what the repository says.
    """
    return [step.model_name for step in read_model_config(Path(repository) / name).ensemble_scheduling.step]


def list_models(repository: Path) -> list[str]:
    """Names of the model directories (those holding a config.pbtxt) in ``repository``, sorted."""
    repository = Path(repository)
    if not repository.is_dir():
        return []
    return sorted(p.name for p in repository.iterdir() if (p / CONFIG_FILENAME).is_file())


def item_bytes(config: ModelConfig) -> int:
    """Bytes of all inputs and outputs of ONE batch item (the whole request when unbatched).

    Strings count ``STRING_ELEMENT_BUDGET_BYTES`` per element, variable dimensions
    ``VARIABLE_DIM_BUDGET`` elements: both are budgets, not limits.
    """
    total = 0
    for tensor in [*config.input, *config.output]:
        elements = math.prod(d if d > 0 else VARIABLE_DIM_BUDGET for d in tensor.dims)
        total += elements * _ELEMENT_BYTES.get(tensor.data_type, 8)
    return total
