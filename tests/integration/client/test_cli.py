"""``visionserve classify | models | health`` end to end: the installed console script, a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving.launcher import TritonServer
from tests.integration.client.test_library import expected_top
from tests.integration.client.toy_model.toy_scores import UNDECODABLE_PREFIX
from tests.integration.client.toy_repository import ToyRepository
from visionserve.catalog import load_catalog

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 60


def visionserve(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script of the interpreter running the tests (the project's venv)."""
    script = Path(sys.executable).with_name("visionserve")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "visionserve"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}  # wide tables: no wrapped labels
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env, check=False
    )


def assert_clean_failure(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"first image")
    (root / "sub" / "b.png").write_bytes(b"second image")
    (root / "broken.jpg").write_bytes(UNDECODABLE_PREFIX + b" - truncated")
    (root / "empty.webp").write_bytes(b"")
    (root / "notes.txt").write_bytes(b"not picked up: not an image extension")
    return root


def test_classify_directory_json_reports_each_file(
    toy_triton: TritonServer, toy_repo: ToyRepository, image_dir: Path
) -> None:
    missing = image_dir / "missing.jpg"
    run = visionserve(
        "classify", str(image_dir), str(missing), "--url", toy_triton.grpc_url, "--model", toy_repo.labelled,
        "--top-k", "3", "--json",
    )  # fmt: skip
    assert_clean_failure(run)  # some files failed -> exit 1, the others still classified
    doc = json.loads(run.stdout)
    by_name = {Path(r["file"]).name: r for r in doc["results"]}
    assert list(by_name) == ["a.jpg", "broken.jpg", "empty.webp", "b.png", "missing.jpg"]
    for name, data in (("a.jpg", b"first image"), ("b.png", b"second image")):
        row = by_name[name]
        assert row["error"] is None and row["version"] == "2"
        got = [(p["label"], p["index"], p["score"]) for p in row["predictions"]]
        expected = expected_top(toy_repo, data, 2, 3)
        assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert by_name["broken.jpg"]["error_type"] == "InferenceError"
    assert "cannot decode image" in by_name["broken.jpg"]["error"]
    assert by_name["empty.webp"]["error_type"] == "ImageFileError"
    assert by_name["missing.jpg"]["error_type"] == "ImageFileError"
    assert doc["failed"] == 3
    assert doc["demo_weights"] is True and "DEMO WEIGHTS" in doc["note"]


def test_classify_http_pinned_version(
    toy_triton: TritonServer, toy_repo: ToyRepository, image_dir: Path
) -> None:
    run = visionserve(
        "classify", str(image_dir / "a.jpg"), "--protocol", "http", "--url", toy_triton.http_url,
        "--model", toy_repo.labelled, "--model-version", "1", "--top-k", "2", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)["results"]
    assert row["version"] == "1"
    assert [p["index"] for p in row["predictions"]] == [
        e[1] for e in expected_top(toy_repo, b"first image", 1, 2)
    ]


def test_classify_table_shows_version_labels_and_demo_note(
    toy_triton: TritonServer, toy_repo: ToyRepository, image_dir: Path
) -> None:
    run = visionserve(
        "classify", str(image_dir / "a.jpg"), "--url", toy_triton.grpc_url, "--model", toy_repo.labelled,
        "--top-k", str(toy_repo.num_classes),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"{toy_repo.labelled} v2" in run.stdout
    for label in toy_repo.labels:  # every label, ':' and non-ASCII included
        assert label in run.stdout
    assert "DEMO WEIGHTS — not a trained model" in run.stdout


def test_trained_model_has_no_demo_note(
    toy_triton: TritonServer, toy_repo: ToyRepository, image_dir: Path
) -> None:
    run = visionserve(
        "classify", str(image_dir / "a.jpg"), "--url", toy_triton.grpc_url, "--model", toy_repo.plain
    )
    assert run.returncode == 0, run.stderr
    assert "DEMO" not in run.stdout and "1 classified, 0 failed" in run.stdout


def test_many_files_concurrently(toy_triton: TritonServer, toy_repo: ToyRepository, tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"{i:02d}.jpg").write_bytes(f"many {i}".encode())
    run = visionserve(
        "classify", str(tmp_path), "--url", toy_triton.grpc_url, "--model", toy_repo.labelled,
        "--top-k", "1", "--concurrency", "5", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["failed"] == 0 and len(doc["results"]) == 30
    for i, row in enumerate(doc["results"]):
        assert row["predictions"][0]["index"] == expected_top(toy_repo, f"many {i}".encode(), 2, 1)[0][1]


def test_classify_server_down(dead_url: str, image_dir: Path) -> None:
    run = visionserve("classify", str(image_dir / "a.jpg"), "--url", dead_url, "--model", "m", "--top-k", "1")
    assert_clean_failure(run)
    assert dead_url in run.stderr and "make serve" in run.stderr


def test_classify_unknown_model_and_default_model(toy_triton: TritonServer, image_dir: Path) -> None:
    unknown = visionserve(
        "classify", str(image_dir / "a.jpg"), "--url", toy_triton.grpc_url, "--model", "nope"
    )
    assert_clean_failure(unknown)
    assert "'nope'" in unknown.stderr
    # No --model: the catalog's first entry is asked (the toy server does not serve it).
    default = visionserve("classify", str(image_dir / "a.jpg"), "--url", toy_triton.grpc_url)
    assert_clean_failure(default)
    assert f"'{load_catalog().names[0]}'" in default.stderr


def test_models(toy_triton: TritonServer, toy_repo: ToyRepository) -> None:
    run = visionserve("models", "--protocol", "http", "--url", toy_triton.http_url, "--json")
    assert run.returncode == 0, run.stderr
    rows = {(m["name"], m["version"]): m for m in json.loads(run.stdout)["models"]}
    assert rows[(toy_repo.labelled, "1")]["ready"] and rows[(toy_repo.labelled, "2")]["state"] == "READY"
    assert rows[(toy_repo.labelled, "2")]["weights"] == "demo"
    assert rows[(toy_repo.spare, "")]["reason"] == "not loaded"
    table = visionserve("models", "--url", toy_triton.grpc_url)
    assert table.returncode == 0, table.stderr
    assert "demo (not trained)" in table.stdout and toy_repo.spare in table.stdout


def test_health(toy_triton: TritonServer, toy_repo: ToyRepository, dead_url: str) -> None:
    ok = visionserve("health", "--url", toy_triton.grpc_url, "--model", toy_repo.labelled, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["live"] and doc["ready"] and doc["healthy"]
    assert {(m["name"], m["version"], m["ready"]) for m in doc["models"]} >= {
        (toy_repo.labelled, "1", True),
        (toy_repo.labelled, "2", True),
        (toy_repo.labelled, "", True),
    }
    not_loaded = visionserve(
        "health", "--protocol", "http", "--url", toy_triton.http_url, "--model", toy_repo.spare
    )
    assert_clean_failure(not_loaded)
    assert f"not ready: {toy_repo.spare}" in not_loaded.stdout
    down = visionserve("health", "--url", dead_url)
    assert_clean_failure(down)
    assert "live no" in down.stdout and "make serve" in down.stdout
