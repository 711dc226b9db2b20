"""``visionserve models`` / ``health`` and the library against a Triton whose repository API is restricted.

What ``make up`` runs: the model-repository API (index, load, unload) answers only callers
carrying the key, which the launcher writes 0600 to a key file. The client reads the key the
way publishing (``TritonControl``) does: ``$VISIONSERVE_TRITON_REPOSITORY_KEY``, else the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import RepositoryRestricted, TritonClient
from serving.launcher import REPOSITORY_KEY_ENV, TritonServer, write_repository_key
from tests.fixtures.triton import serving
from tests.integration.client.test_cli import assert_clean_failure, visionserve
from tests.integration.client.toy_repository import ToyRepository

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "triton_repository_key"
    write_repository_key(path)
    return path


@pytest.fixture(scope="module")
def restricted(
    toy_repo: ToyRepository, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    log_dir = tmp_path_factory.mktemp("restricted_triton")
    key = key_file.read_text().strip()
    with serving(toy_repo.path, log_dir, toy_repo.loaded, cache_size_bytes=0, repository_api_key=key) as server:
        yield server


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPOSITORY_KEY_ENV, raising=False)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_models_lists_a_restricted_server_with_the_key_file(
    restricted: TritonServer, toy_repo: ToyRepository, key_file: Path, protocol: str
) -> None:
    url = restricted.grpc_url if protocol == "grpc" else restricted.http_url
    run = visionserve("models", "--protocol", protocol, "--url", url, "--repository-key-file", str(key_file), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {(m["name"], m["version"]): m for m in json.loads(run.stdout)["models"]}
    assert rows[(toy_repo.labelled, "2")]["ready"] and rows[(toy_repo.labelled, "2")]["weights"] == "demo"
    assert rows[(toy_repo.spare, "")]["reason"] == "not loaded"


def test_models_takes_the_key_from_the_environment_first(
    restricted: TritonServer, toy_repo: ToyRepository, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = tmp_path / "wrong_key"
    wrong.write_text("not-the-key")
    monkeypatch.setenv(REPOSITORY_KEY_ENV, key_file.read_text().strip())
    run = visionserve("models", "--url", restricted.grpc_url, "--repository-key-file", str(wrong), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert toy_repo.labelled in {m["name"] for m in json.loads(run.stdout)["models"]}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_without_the_key_models_says_the_api_is_restricted_not_that_the_server_is_down(
    restricted: TritonServer, tmp_path: Path, protocol: str
) -> None:
    url = restricted.grpc_url if protocol == "grpc" else restricted.http_url
    missing = tmp_path / "no_such_key_file"
    run = visionserve("models", "--protocol", protocol, "--url", url, "--repository-key-file", str(missing))
    assert_clean_failure(run)
    assert "restricted" in run.stderr and REPOSITORY_KEY_ENV in run.stderr, run.stderr
    assert "make serve" not in run.stderr  # it is running: starting it is not the advice


def test_health_shows_per_version_rows_of_a_restricted_server_with_the_key(
    restricted: TritonServer, toy_repo: ToyRepository, key_file: Path
) -> None:
    run = visionserve("health", "--url", restricted.grpc_url, "--repository-key-file", str(key_file), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {(m["name"], m["version"], m["ready"]) for m in json.loads(run.stdout)["models"]}
    assert {(toy_repo.labelled, "1", True), (toy_repo.labelled, "2", True)} <= rows


def test_library_sends_the_key_with_repository_calls_only(
    restricted: TritonServer, toy_repo: ToyRepository, key_file: Path
) -> None:
    with TritonClient(restricted.http_url, protocol="http") as bare:
        assert bare.is_ready(toy_repo.labelled)  # inference-side calls need no key
        with pytest.raises(RepositoryRestricted):
            bare.models()
        with pytest.raises(RepositoryRestricted):
            bare.unload(toy_repo.labelled)
    with TritonClient(restricted.grpc_url, repository_key=key_file.read_text().strip()) as keyed:
        keyed.load(toy_repo.spare)
        assert keyed.is_ready(toy_repo.spare)
        keyed.unload(toy_repo.spare)
        assert toy_repo.spare in {s.name for s in keyed.models()}
