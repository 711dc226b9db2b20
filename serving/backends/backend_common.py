"""Shared machinery of visionserve's Python-based backends (onnxruntime, pytorch, tensorflow).

Each backend's ``model.py`` supplies only "load the artifact" and "run one batch"; this module
turns Triton's ``execute(requests)`` into exactly one runtime call per scheduled batch:

1. read every request's inputs by the names in config.pbtxt and check dtype and shape against
   the config (a bad request gets its own error response, the others still run);
2. concatenate the good requests along the batch axis (``max_batch_size`` > 0) — the dynamic
   batcher already capped their sum at ``max_batch_size``;
3. run the model once, check each configured output, cast it to the configured type;
4. split the outputs back, one response per request, in request order.

If the batched call itself fails, every request is retried alone so that only the request that
breaks the model gets an error. Nothing here raises out of ``execute``: the stub survives.

Thread rule (documented in docs/serving.md): each instance gets
``threads = max(1, cores // instance_count)`` compute threads, where ``cores`` is the CPUs this
process may run on and ``instance_count`` the model's total instances, so N instances of one
model never ask for more threads than there are cores. A native backend's own parameter
(e.g. ``intra_op_thread_count`` for onnxruntime, ``INTRA_OP_THREAD_COUNT`` for pytorch) wins.

This file is copied next to each backend's model.py (the stub puts that directory on
``sys.path``), so the backends need nothing from visionserve at run time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NUMPY_DTYPES",
    "BackendSettings",
    "RequestError",
    "TensorSpec",
    "cpu_count",
    "execute_requests",
    "run_batched",
    "threads_per_instance",
    "torch_tensor_order",
    "warm_up",
]

#: Triton data type -> numpy dtype (strings travel as numpy object arrays of bytes).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "TYPE_BOOL": np.dtype(np.bool_),
    "TYPE_UINT8": np.dtype(np.uint8),
    "TYPE_UINT16": np.dtype(np.uint16),
    "TYPE_UINT32": np.dtype(np.uint32),
    "TYPE_UINT64": np.dtype(np.uint64),
    "TYPE_INT8": np.dtype(np.int8),
    "TYPE_INT16": np.dtype(np.int16),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP64": np.dtype(np.float64),
    "TYPE_STRING": np.dtype(np.object_),
}


class RequestError(Exception):
    """One request cannot be served; becomes that request's error response."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of config.pbtxt.

    Args:
        name: tensor name in the config.
        dtype: numpy dtype of ``data_type``.
        dims: shape without the batch axis; -1 is any size.
    """

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> TensorSpec:
        data_type = entry["data_type"]
        if data_type not in NUMPY_DTYPES:
            raise ValueError(f"tensor {entry['name']!r}: data_type {data_type} is not supported")
        return cls(
            name=entry["name"], dtype=NUMPY_DTYPES[data_type], dims=tuple(int(d) for d in entry["dims"])
        )

    def shape_matches(self, shape: Sequence[int], batched: bool) -> bool:
        """Whether ``shape`` fits dims (after a leading batch axis when batched)."""
        body = tuple(shape[1:]) if batched else tuple(shape)
        if batched and len(shape) < 1:
            return False
        return len(body) == len(self.dims) and all(
            d < 0 or d == s for d, s in zip(self.dims, body, strict=True)
        )

    def expected(self, batched: bool) -> str:
        dims = ["-1" if d < 0 else str(d) for d in self.dims]
        return "[" + ", ".join((["batch"] if batched else []) + dims) + "]"


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware, unlike os.cpu_count in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_instance(instance_count: int, cores: int | None = None) -> int:
    """Compute threads for one instance: ``max(1, cores // instance_count)``."""
    cores = cpu_count() if cores is None else cores
    return max(1, cores // max(1, instance_count))


@dataclass(frozen=True)
class BackendSettings:
    """What a backend needs from Triton's ``initialize(args)``.

    Args:
        model_name: the Triton model name.
        model_version: the version being loaded.
        model_dir: ``<repository>/<model>`` (``args["model_repository"]``).
        artifact: ``<model_dir>/<version>/<default_model_filename>``.
        max_batch_size: 0 means the model is not batched.
        inputs: the configured inputs, in config order.
        outputs: the configured outputs, in config order.
        instance_kind: ``"CPU"`` or ``"GPU"``, as Triton resolved it for this instance.
        device_id: GPU index for a GPU instance.
        instance_count: instances of this model in all instance groups.
        parameters: the config's ``parameters`` as plain strings.
    """

    model_name: str
    model_version: str
    model_dir: Path
    artifact: Path
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    instance_kind: str = "CPU"
    device_id: int = 0
    instance_count: int = 1
    parameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Mapping[str, str], default_filename: str) -> BackendSettings:
        """Parse Triton's ``initialize`` args; ``default_filename`` applies when the config has none."""
        config = json.loads(args["model_config"])
        model_dir = Path(args["model_repository"])
        version = str(args["model_version"])
        filename = config.get("default_model_filename") or default_filename
        count = sum(int(g.get("count", 1) or 1) for g in config.get("instance_group", [])) or 1
        kind = str(args.get("model_instance_kind", "CPU")).upper()
        params = {k: str(v.get("string_value", "")) for k, v in (config.get("parameters") or {}).items()}
        return cls(
            model_name=str(args.get("model_name", config.get("name", ""))),
            model_version=version,
            model_dir=model_dir,
            artifact=model_dir / version / filename,
            max_batch_size=int(config.get("max_batch_size", 0)),
            inputs=tuple(TensorSpec.from_config(t) for t in config.get("input", [])),
            outputs=tuple(TensorSpec.from_config(t) for t in config.get("output", [])),
            instance_kind="GPU" if kind.endswith("GPU") else "CPU",
            device_id=int(args.get("model_instance_device_id", 0) or 0),
            instance_count=count,
            parameters=params,
        )

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def threads(self, parameter: str | None = None) -> int:
        """Intra-op threads: the native backend's ``parameter`` if the config sets it, else the rule."""
        if parameter and self.parameters.get(parameter, "").strip():
            value = int(self.parameters[parameter])
            if value > 0:
                return value
        return threads_per_instance(self.instance_count)

    def require_artifact(self) -> Path:
        """The artifact path, or a clear error naming it and the config field that chose it."""
        if not self.artifact.exists():
            raise FileNotFoundError(
                f"model {self.model_name!r} version {self.model_version}: {self.artifact} does not exist "
                f"(default_model_filename picks the file name)"
            )
        return self.artifact


_TORCH_NAME = re.compile(r"^(?P<base>.+)__(?P<index>\d+)$")


def torch_tensor_order(specs: Sequence[TensorSpec]) -> list[int]:
    """Positional index of each tensor for TorchScript (libtorch's ``<name>__<index>`` rule).

    Names ending in ``__<index>`` take that position; otherwise the config order is the
    position (libtorch's other rule maps input names to forward() arguments, which are
    positional too once traced).
    """
    indices = []
    for position, spec in enumerate(specs):
        match = _TORCH_NAME.match(spec.name)
        indices.append(int(match["index"]) if match else position)
    if sorted(indices) != list(range(len(specs))):
        names = [s.name for s in specs]
        raise ValueError(f"tensor names {names} do not give the positions 0..{len(specs) - 1}")
    return indices


Batch = dict[str, np.ndarray]
Runner = Callable[[Batch], Mapping[str, Any]]


def _check_inputs(item: Mapping[str, np.ndarray | None], settings: BackendSettings) -> int:
    """Validate one request's inputs; return its batch size (1 when unbatched)."""
    sizes = set()
    for spec in settings.inputs:
        array = item.get(spec.name)
        if array is None:
            raise RequestError(f"input {spec.name!r} is missing")
        if spec.dtype == np.object_:
            if array.dtype != np.object_ and array.dtype.kind not in "SU":
                raise RequestError(f"input {spec.name!r} must be bytes (TYPE_STRING), got {array.dtype}")
        elif array.dtype != spec.dtype:
            raise RequestError(f"input {spec.name!r} must be {spec.dtype} but is {array.dtype}")
        if not spec.shape_matches(array.shape, settings.batched):
            raise RequestError(
                f"input {spec.name!r} has shape {list(array.shape)}, "
                f"expected {spec.expected(settings.batched)}"
            )
        sizes.add(int(array.shape[0]) if settings.batched else 1)
    if len(sizes) > 1:
        raise RequestError(f"inputs disagree on the batch size: {sorted(sizes)}")
    size = sizes.pop() if sizes else 1
    if settings.batched and size > settings.max_batch_size:
        raise RequestError(f"batch of {size} exceeds max_batch_size {settings.max_batch_size}")
    return size


def _check_outputs(raw: Mapping[str, Any], settings: BackendSettings, total: int) -> Batch:
    """The configured outputs of one run, cast to their configured type, shapes checked."""
    outputs: Batch = {}
    for spec in settings.outputs:
        if spec.name not in raw:
            raise RuntimeError(f"the model produced no output {spec.name!r} (it produced {sorted(raw)})")
        array = np.asarray(raw[spec.name])
        if array.dtype != spec.dtype:
            try:
                array = array.astype(spec.dtype, casting="same_kind")
            except TypeError as exc:
                raise RuntimeError(
                    f"output {spec.name!r} is {array.dtype}, config says {spec.dtype}"
                ) from exc
        if not spec.shape_matches(array.shape, settings.batched) or (
            settings.batched and array.shape[0] != total
        ):
            raise RuntimeError(
                f"output {spec.name!r} has shape {list(array.shape)}, "
                f"expected {spec.expected(settings.batched)}"
                + (f" with batch {total}" if settings.batched else "")
            )
        outputs[spec.name] = array
    return outputs


def _run_group(items: list[Batch], sizes: list[int], settings: BackendSettings, run: Runner) -> list[Batch]:
    if settings.batched:
        batch = {
            spec.name: items[0][spec.name]
            if len(items) == 1
            else np.concatenate([i[spec.name] for i in items])
            for spec in settings.inputs
        }
        outputs = _check_outputs(run(batch), settings, sum(sizes))
        results, start = [], 0
        for size in sizes:
            results.append({name: array[start : start + size] for name, array in outputs.items()})
            start += size
        return results
    return [_check_outputs(run(dict(item)), settings, 1) for item in items]


def run_batched(
    items: Sequence[Mapping[str, np.ndarray | None]], settings: BackendSettings, run: Runner
) -> list[Batch | Exception]:
    """Serve a list of requests (input name -> array) with one runtime call.

    Args:
        items: each request's inputs.
        settings: the parsed model config.
        run: the backend's runtime call: input name -> array in, output name -> array out.

    Returns:
        Per request, in order: its outputs, or the exception explaining its failure
        (RequestError for a bad request, anything else for a model failure).
    """
    results: list[Batch | Exception] = [RequestError("not run")] * len(items)
    good: list[int] = []
    sizes: list[int] = []
    for index, item in enumerate(items):
        try:
            sizes.append(_check_inputs(item, settings))
            good.append(index)
        except RequestError as exc:
            results[index] = exc
    if not good:
        return results
    group = [dict(items[i]) for i in good]  # type: ignore[arg-type]
    try:
        for index, out in zip(good, _run_group(group, sizes, settings, run), strict=True):
            results[index] = out
    except Exception as exc:  # noqa: BLE001 - reported per request, never raised into the stub
        if len(good) == 1:
            results[good[0]] = exc
        else:  # find the culprit: run each request alone
            for index, item, size in zip(good, group, sizes, strict=True):
                try:
                    results[index] = _run_group([item], [size], settings, run)[0]
                except Exception as single_exc:  # noqa: BLE001
                    results[index] = single_exc
    return results


def warm_up(settings: BackendSettings, run: Runner, times: int = 2) -> bool:
    """Run a batch of one all-zeros item ``times`` times while loading, off the request path.

    First calls pay for allocator arenas, kernel selection and TorchScript's profiling runs;
    this moves that cost to load time. Skipped (False) when an input has a variable dimension
    or is a string, since no zeros batch is then known to be valid. A failure is not fatal:
    the model may still serve real inputs, and a broken one fails its requests with a reason.
    """
    if any(spec.dtype == np.object_ or any(d < 0 for d in spec.dims) for spec in settings.inputs):
        return False
    lead = (1,) if settings.batched else ()
    batch = {spec.name: np.zeros(lead + spec.dims, spec.dtype) for spec in settings.inputs}
    try:
        for _ in range(times):
            _check_outputs(run(dict(batch)), settings, 1)
    except Exception:  # noqa: BLE001 - reported by the caller's log line
        return False
    return True


def execute_requests(
    requests: Sequence[Any], settings: BackendSettings, run: Runner, pb_utils: Any
) -> list[Any]:
    """``TritonPythonModel.execute`` for a Python-based backend: one response per request.

    Args:
        requests: Triton's ``pb_utils.InferenceRequest`` list.
        settings: the parsed model config.
        run: the backend's runtime call.
        pb_utils: the ``triton_python_backend_utils`` module (passed in so tests can fake it).

    Returns:
        ``pb_utils.InferenceResponse`` per request; failures carry a ``TritonError``.
    """
    items: list[dict[str, np.ndarray | None]] = []
    for request in requests:
        item: dict[str, np.ndarray | None] = {}
        for spec in settings.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            item[spec.name] = None if tensor is None else tensor.as_numpy()
        items.append(item)
    try:
        results = run_batched(items, settings, run)
    except Exception as exc:  # noqa: BLE001 - last line of defence for the stub
        results = [exc] * len(items)
    responses = []
    for result in results:
        if isinstance(result, Exception):
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[], error=_triton_error(result, settings, pb_utils))
            )
        else:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(array)) for name, array in result.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
    return responses


def _triton_error(exc: Exception, settings: BackendSettings, pb_utils: Any) -> Any:
    invalid = isinstance(exc, RequestError)
    message = (
        f"{settings.model_name}: {exc}" if invalid else f"{settings.model_name}: inference failed: {exc}"
    )
    code_name = "INVALID_ARG" if invalid else "INTERNAL"
    error_cls = pb_utils.TritonError
    code = getattr(error_cls, code_name, None)
    return error_cls(message, code) if code is not None else error_cls(message)
