"""TritonServer's checks before it starts anything, and the numbers it derives (no server)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from serving import install as install_module
from serving.launcher import (
    MIN_SHM_BYTES,
    TritonServer,
    default_models,
    free_port,
    free_ports,
    shm_byte_sizes,
)
from serving.model_config import VARIABLE_DIM_BUDGET, item_bytes, read_model_config
from visionserve.catalog import PLATFORMS, PREPROCESSED, PROBABILITIES, load_catalog
from visionserve.errors import RepositoryError, ServerError


def _write(repository: Path, name: str, text: str) -> None:
    (repository / name / "1").mkdir(parents=True, exist_ok=True)
    (repository / name / "config.pbtxt").write_text(text)


def _backbone_config(name: str, fmt: str, input_shape: tuple[int, ...], max_batch_size: int) -> str:
    """A backbone config as docs/repository.md specifies it, from catalog values."""
    dims = ", ".join(map(str, input_shape))
    return (
        f'name: "{name}"\nplatform: "{PLATFORMS[fmt]}"\nmax_batch_size: {max_batch_size}\n'
        f'input [ {{ name: "{PREPROCESSED}" data_type: TYPE_FP32 dims: [ {dims} ] }} ]\n'
        f'output [ {{ name: "{PROBABILITIES}" data_type: TYPE_FP32 dims: [ -1 ] }} ]\n'
    )


def _server(repository: Path, **kwargs: object) -> TritonServer:
    http, grpc, metrics = free_ports(3)
    return TritonServer(repository, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)  # type: ignore[arg-type]


def test_default_models_are_each_ensemble_its_preprocess_and_its_serve_format_backbone() -> None:
    catalog = load_catalog()
    names = default_models(catalog, Path("unused"))
    assert len(names) == 3 * len(catalog.models)
    for spec in catalog.models.values():
        assert {spec.ensemble, spec.preprocess_model, spec.backbone_model(spec.serve_format)} <= set(names)
        twins = [spec.backbone_model(f) for f in spec.formats if f != spec.serve_format]
        assert not set(twins) & set(names)


def test_shm_region_holds_a_full_batch_of_the_largest_model(tmp_path: Path) -> None:
    catalog = load_catalog()
    names = []
    for spec in catalog.models.values():
        name = spec.backbone_model()
        _write(tmp_path, name, _backbone_config(name, spec.serve_format, spec.input_shape, spec.max_batch_size))
        names.append(name)
    _write(tmp_path, "ens", 'name: "ens"\nplatform: "ensemble"\nmax_batch_size: 512\n')  # not a python model
    default, growth = shm_byte_sizes(tmp_path, [*names, "ens"])

    batch_bytes = [
        spec.max_batch_size * (math.prod(spec.input_shape) * 4 + VARIABLE_DIM_BUDGET * 4)
        for spec in catalog.models.values()
    ]
    assert default >= max(batch_bytes)  # a full preprocessed batch never waits on growth
    assert default - max(batch_bytes) <= 2 * 2**20  # ... without wasting more than ~2 MiB
    assert default % 2**20 == 0 and growth == default


def test_shm_has_a_floor(tmp_path: Path) -> None:
    _write(tmp_path, "small", _backbone_config("small", "onnx", (2,), 1))
    assert shm_byte_sizes(tmp_path, ["small"]) == (MIN_SHM_BYTES + 2**20, MIN_SHM_BYTES + 2**20)


def test_item_bytes_counts_inputs_and_outputs(tmp_path: Path) -> None:
    _write(tmp_path, "m", _backbone_config("m", "onnx", (3, 4, 5), 8))
    assert item_bytes(read_model_config(tmp_path / "m")) == 3 * 4 * 5 * 4 + VARIABLE_DIM_BUDGET * 4


def test_invalid_config_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "m", 'name: "m"\nplatfrom: "onnxruntime_onnx"\n')
    with pytest.raises(RepositoryError, match=r"m/config\.pbtxt: not a valid Triton model configuration"):
        read_model_config(tmp_path / "m")


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    with socket.socket() as sock:
        sock.bind(("", free_port()))


def test_empty_repository_tells_the_user_to_export(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="is empty: run `make export`"):
        _server(tmp_path).start()
    with pytest.raises(RepositoryError, match="is empty"):
        _server(tmp_path / "does-not-exist").start()


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "present", _backbone_config("present", "onnx", (2,), 1))
    with pytest.raises(RepositoryError, match=r"not in the model repository .*: absent \(it has: present\)"):
        _server(tmp_path, models=["present", "absent"]).start()


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    _write(tmp_path, "m", _backbone_config("m", "onnx", (2,), 1))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = _server(tmp_path)
        server.grpc_port = port
        with pytest.raises(ServerError, match=f"gRPC port {port} is already in use"):
            server.start()
    assert server.pid is None


def test_equal_ports_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "m", _backbone_config("m", "onnx", (2,), 1))
    port = free_port()
    with pytest.raises(ServerError, match="must differ"):
        TritonServer(tmp_path, http_port=port, grpc_port=port, metrics_port=free_port()).start()


def test_missing_wheel_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "m", _backbone_config("m", "onnx", (2,), 1))
    monkeypatch.setattr(install_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ServerError, match="nvidia-pytriton is not installed"):
        _server(tmp_path).start()


def test_urls_and_properties(tmp_path: Path) -> None:
    server = TritonServer(tmp_path, http_port=1, grpc_port=2, metrics_port=3)
    assert (server.http_url, server.grpc_url) == ("127.0.0.1:1", "127.0.0.1:2")
    assert server.metrics_url == "http://127.0.0.1:3/metrics"
    assert server.repository == tmp_path.resolve() and server.pid is None and not server.running
    server.stop()  # stopping a server that never started is a no-op
