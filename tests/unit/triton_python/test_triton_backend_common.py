"""Config-driven behaviour of the Python-based backends' shared machinery (no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from tests.fixtures.triton_tree import TRITON_TREE, load_module

#: Imported as the backends import it: the plain module ``backend_common``.
backend_common = load_module(TRITON_TREE / "backends" / "backend_common.py", "backend_common")
BackendSettings = backend_common.BackendSettings
RequestError = backend_common.RequestError
TensorSpec = backend_common.TensorSpec
execute_requests = backend_common.execute_requests
require_tensor_names = backend_common.require_tensor_names
run_batched = backend_common.run_batched
threads_per_instance = backend_common.threads_per_instance
torch_tensor_order = backend_common.torch_tensor_order
warm_up = backend_common.warm_up

CONFIG = """
name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU count: 2 }, { kind: KIND_CPU count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""


def _args(pbtxt: str = CONFIG, repository: Path = Path("/repo"), **extra: str) -> dict[str, str]:
    """initialize() args as Triton builds them: the config as JSON of the server's schema."""
    config = text_format.Parse(pbtxt, model_config_pb2.ModelConfig())
    as_dict = json_format.MessageToDict(config, preserving_proto_field_name=True)
    return {
        "model_config": json.dumps(as_dict),
        "model_repository": str(repository / config.name),
        "model_version": "3",
        "model_name": config.name,
        "model_instance_kind": "CPU",
        "model_instance_device_id": "0",
        **extra,
    }


def _settings(pbtxt: str = CONFIG, **extra: str) -> BackendSettings:
    return BackendSettings.from_args(_args(pbtxt, **extra), "model.onnx")


class Recorder:
    """A runtime that doubles ``x`` into ``y`` and records each call's batch."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[np.ndarray] = []
        self.fail_on = fail_on

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(batch["x"])
        if self.fail_on is not None and (batch["x"] == self.fail_on).any():
            raise RuntimeError("poisoned row")
        return {"y": batch["x"] * 2}


def test_settings_follow_the_config() -> None:
    s = _settings()
    assert s.model_name == "m" and s.model_version == "3"
    assert s.artifact == Path("/repo/m/3/model.onnx")  # the native default file name
    assert s.max_batch_size == 8 and s.batched
    assert s.inputs == (TensorSpec("x", np.dtype(np.float32), (2,)),)
    assert s.outputs[0].dims == (-1,)
    assert s.instance_count == 3  # summed over instance groups
    assert s.instance_kind == "CPU"


def test_default_model_filename_wins_over_the_backend_default() -> None:
    s = _settings(CONFIG + 'default_model_filename: "other.onnx"\n')
    assert s.artifact.name == "other.onnx"


def test_missing_artifact_names_the_path() -> None:
    with pytest.raises(FileNotFoundError, match=r"/repo/m/3/model\.onnx"):
        _settings().require_artifact()


def test_tensor_names_the_artifact_lacks_fail_the_load_with_both_lists() -> None:
    settings = _settings()
    require_tensor_names(settings, {"x"}, ["y", "extra"], "the ONNX model")  # a superset is fine
    with pytest.raises(ValueError) as raised:
        require_tensor_names(settings, ["input_1"], ["y"], "signature 'serving_default'")
    assert str(raised.value) == (
        "/repo/m/3/model.onnx: config names inputs ['x'] / outputs [] that signature 'serving_default' lacks; "
        "it has inputs ['input_1'] and outputs ['y']"
    )


def test_gpu_instance_kind_and_device() -> None:
    s = _settings(model_instance_kind="GPU", model_instance_device_id="1")
    assert (s.instance_kind, s.device_id) == ("GPU", 1)


@pytest.mark.parametrize(("instances", "cores", "threads"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (4, 6, 1)])
def test_thread_rule_never_oversubscribes(instances: int, cores: int, threads: int) -> None:
    assert threads_per_instance(instances, cores) == threads
    assert threads * instances <= max(cores, instances)


def test_native_thread_parameter_overrides_the_rule() -> None:
    params = 'parameters { key: "intra_op_thread_count" value { string_value: "5" } }\n'
    assert _settings(CONFIG + params).threads("intra_op_thread_count") == 5
    assert _settings(CONFIG).threads("intra_op_thread_count") == threads_per_instance(3)


def test_requests_are_concatenated_into_one_call_and_split_back() -> None:
    s = _settings()
    run = Recorder()
    items = [{"x": np.full((n, 2), i, np.float32)} for i, n in enumerate([1, 3, 2], start=1)]
    results = run_batched(items, s, run)
    assert len(run.calls) == 1 and run.calls[0].shape == (6, 2)
    for i, (item, result) in enumerate(zip(items, results, strict=True), start=1):
        assert isinstance(result, dict)
        np.testing.assert_array_equal(result["y"], item["x"] * 2)
        assert (result["y"] == 2 * i).all()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"x": np.zeros((1, 3), np.float32)}, r"shape \[1, 3\], expected \[batch, 2\]"),
        ({"x": np.zeros((1, 2), np.float64)}, "must be float32 but is float64"),
        ({"x": np.zeros((9, 2), np.float32)}, "exceeds max_batch_size 8"),
        ({"x": None}, "'x' is missing"),
    ],
    ids=["shape", "dtype", "too-big", "missing"],
)
def test_a_bad_request_gets_its_own_error_and_the_rest_still_run(bad: dict[str, Any], message: str) -> None:
    run = Recorder()
    good = {"x": np.ones((2, 2), np.float32)}
    results = run_batched([good, bad, good], _settings(), run)
    assert isinstance(results[1], RequestError)
    assert re.search(message, str(results[1])), str(results[1])
    assert len(run.calls) == 1 and run.calls[0].shape == (4, 2)
    assert all(isinstance(r, dict) for r in (results[0], results[2]))


def test_a_runtime_failure_is_retried_alone_to_find_the_culprit() -> None:
    run = Recorder(fail_on=7.0)
    items = [{"x": np.full((1, 2), v, np.float32)} for v in (1.0, 7.0, 3.0)]
    results = run_batched(items, _settings(), run)
    assert len(run.calls) == 4  # one batched call, then each request alone
    assert isinstance(results[1], RuntimeError) and "poisoned" in str(results[1])
    np.testing.assert_array_equal(results[0]["y"], [[2.0, 2.0]])  # type: ignore[index]
    np.testing.assert_array_equal(results[2]["y"], [[6.0, 6.0]])  # type: ignore[index]


def test_outputs_are_checked_and_cast_to_the_configured_type() -> None:
    s = _settings()
    [result] = run_batched([{"x": np.ones((2, 2), np.float32)}], s, lambda b: {"y": b["x"].astype(np.float64)})
    assert isinstance(result, dict) and result["y"].dtype == np.float32
    [missing] = run_batched([{"x": np.ones((2, 2), np.float32)}], s, lambda b: {"z": b["x"]})
    assert isinstance(missing, RuntimeError) and "no output 'y'" in str(missing)
    [short] = run_batched([{"x": np.ones((2, 2), np.float32)}], s, lambda b: {"y": b["x"][:1]})
    assert isinstance(short, RuntimeError) and "with batch 2" in str(short)
    [wrong_kind] = run_batched([{"x": np.ones((2, 2), np.float32)}], s, lambda b: {"y": np.array([["a"], ["b"]])})
    assert isinstance(wrong_kind, RuntimeError) and "config says float32" in str(wrong_kind)


def test_unbatched_model_runs_each_request_on_its_own() -> None:
    s = _settings(CONFIG.replace("max_batch_size: 8", "max_batch_size: 0"))
    run = Recorder()
    results = run_batched([{"x": np.ones((2,), np.float32)}, {"x": np.ones((2,), np.float32)}], s, run)
    assert len(run.calls) == 2 and all(isinstance(r, dict) for r in results)


def test_torch_names_map_by_index() -> None:
    f32 = np.dtype(np.float32)
    specs = [TensorSpec("LOGITS__1", f32, (3,)), TensorSpec("PROBS__0", f32, (3,))]
    assert torch_tensor_order(specs) == [1, 0]
    assert torch_tensor_order([TensorSpec("a", f32, ()), TensorSpec("b", f32, ())]) == [0, 1]
    with pytest.raises(ValueError, match="positions"):
        torch_tensor_order([TensorSpec("a__0", f32, ()), TensorSpec("b__2", f32, ())])


class FakePbUtils:
    """In-process stand-in for triton_python_backend_utils (fast unit test only)."""

    class TritonError:
        """pb_utils.TritonError with its codes."""

        INVALID_ARG = 3
        INTERNAL = 13

        def __init__(self, message: str, code: int = 0) -> None:
            self.message, self.code = message, code

    class InferenceResponse:
        """pb_utils.InferenceResponse."""

        def __init__(self, output_tensors: list[Any], error: Any = None) -> None:
            self.output_tensors, self.error = output_tensors, error

    class Tensor:
        """pb_utils.Tensor."""

        def __init__(self, name: str, array: np.ndarray) -> None:
            self.name, self.array = name, array

    @staticmethod
    def get_input_tensor_by_name(request: dict[str, np.ndarray], name: str) -> Any:
        return SimpleNamespace(as_numpy=lambda: request[name]) if name in request else None


def test_execute_requests_builds_one_response_per_request() -> None:
    requests = [{"x": np.ones((1, 2), np.float32)}, {"x": np.ones((1, 5), np.float32)}, {}]
    responses = execute_requests(requests, _settings(), Recorder(), FakePbUtils)
    assert len(responses) == 3
    assert responses[0].error is None and responses[0].output_tensors[0].name == "y"
    assert responses[1].error.code == FakePbUtils.TritonError.INVALID_ARG
    assert responses[1].error.message.startswith("m: input 'x' has shape [1, 5]")
    assert responses[2].error.code == FakePbUtils.TritonError.INVALID_ARG


def test_execute_requests_never_raises() -> None:
    def explode(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise MemoryError("out of memory")

    [response] = execute_requests([{"x": np.ones((1, 2), np.float32)}], _settings(), explode, FakePbUtils)
    assert response.error.code == FakePbUtils.TritonError.INTERNAL
    assert "m: inference failed: out of memory" in response.error.message


def test_warm_up_runs_a_zeros_batch_of_one() -> None:
    run = Recorder()
    assert warm_up(_settings(CONFIG.replace("dims: [ -1 ]", "dims: [ 2 ]")), run, times=2)
    assert [c.shape for c in run.calls] == [(1, 2), (1, 2)] and not run.calls[0].any()


def test_warm_up_skips_variable_or_string_inputs_and_survives_failures() -> None:
    assert not warm_up(_settings(CONFIG.replace("dims: [ 2 ]", "dims: [ -1 ]")), Recorder())
    assert not warm_up(
        _settings(CONFIG.replace("data_type: TYPE_FP32 dims: [ 2 ]", "data_type: TYPE_STRING dims: [ 1 ]")),
        Recorder(),
    )
    assert not warm_up(_settings(), Recorder(fail_on=0.0))
