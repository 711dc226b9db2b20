"""Concurrent per-file classification (with an in-process fake server) and the CLI's renderings.

The fake stands in for Triton only to pin down ordering, the concurrency bound and per-file
error handling fast; tests/integration/client runs the same code against a real tritonserver.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rich.console import Console

from client import Classification, InferenceError, InvalidRequest, ModelStatus, Prediction
from client._batch import FileResult, classify_files
from client._render import (
    DEMO_NOTE,
    classification_document,
    classification_table,
    health_document,
    models_document,
    models_table,
)


class FakeClient:
    """Answers after a short sleep, records the most requests ever in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0

    async def classify(self, image: bytes, model: str, *, top_k: int, version: str) -> Classification:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01 if image != b"slow" else 0.05)
            if image == b"bad":
                raise InferenceError(
                    "Triton rejected it: invalid image: truncated", detail="invalid image: truncated"
                )
            prediction = Prediction(label=image.decode(), index=len(image), score=1.0)
            return Classification(model=model, version=version or "2", predictions=(prediction,) * top_k)
        finally:
            self.in_flight -= 1


def _files(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(contents):
        path = tmp_path / f"{i:02d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_results_in_input_order_with_per_file_errors(tmp_path: Path) -> None:
    paths = _files(tmp_path, [b"slow", b"bad", b"ok", b""]) + [tmp_path / "missing.jpg"]
    done: list[FileResult] = []
    fake = FakeClient()
    results = asyncio.run(classify_files(fake, paths, "m", top_k=2, on_done=done.append))  # type: ignore[arg-type]
    assert [r.path for r in results] == paths
    assert len(done) == len(paths)
    assert results[0].ok and results[0].classification.predictions[0].label == "slow"  # type: ignore[union-attr]
    assert len(results[2].classification.predictions) == 2  # type: ignore[union-attr]
    assert (results[1].error_type, results[1].error_detail) == ("InferenceError", "invalid image: truncated")
    assert (results[3].error_type, results[3].error_detail) == ("ImageFileError", "the file is empty")
    assert results[4].error_type == "ImageFileError" and "missing.jpg" in results[4].error  # type: ignore[operator]
    assert not any(r.ok for r in (results[1], results[3], results[4]))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_bound(tmp_path: Path, concurrency: int) -> None:
    fake = FakeClient()
    paths = _files(tmp_path, [b"img"] * 12)
    results = asyncio.run(classify_files(fake, paths, "m", concurrency=concurrency))  # type: ignore[arg-type]
    assert all(r.ok for r in results)
    assert fake.max_in_flight == concurrency


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="concurrency"):
        asyncio.run(classify_files(FakeClient(), [], "m", concurrency=0))  # type: ignore[arg-type]


def _results() -> list[FileResult]:
    good = Classification("m", "3", (Prediction("a:b", 4, 0.75), Prediction("", 1, 0.25)))
    return [
        FileResult(Path("x.jpg"), good),
        FileResult(
            Path("y.jpg"), error="full message", error_type="InferenceError", error_detail="bad pixels"
        ),
    ]


def _text(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_classification_document() -> None:
    doc = classification_document(_results(), model="m", protocol="grpc", url="h:1", top_k=2, weights="demo")
    json.dumps(doc)  # serialisable
    assert doc["failed"] == 1 and doc["demo_weights"] is True and doc["note"] == DEMO_NOTE
    ok, bad = doc["results"]
    assert ok["version"] == "3"
    assert ok["predictions"][0] == {"label": "a:b", "index": 4, "score": 0.75}
    assert (bad["error"], bad["error_type"], bad["predictions"], bad["version"]) == (
        "full message",
        "InferenceError",
        [],
        None,
    )
    trained = classification_document(
        _results(), model="m", protocol="grpc", url="h:1", top_k=2, weights="imagenet"
    )
    assert trained["demo_weights"] is False and "note" not in trained


def test_classification_table_marks_demo_weights() -> None:
    text = _text(classification_table(_results(), model="m", protocol="http", url="h:1", weights="demo"))
    assert "DEMO WEIGHTS" in text and "m v3 · http://h:1" in text
    assert "a:b" in text and "0.7500" in text and "InferenceError: bad pixels" in text
    assert "1 classified, 1 failed" in text
    trained = _text(
        classification_table(_results(), model="m", protocol="http", url="h:1", weights="imagenet")
    )
    assert "DEMO" not in trained


def test_models_rendering() -> None:
    statuses = [
        ModelStatus("m", "1", "READY", True),
        ModelStatus("spare", "", "UNAVAILABLE", False, "not loaded"),
    ]
    doc = models_document(statuses, {"m": "demo"}, url="h:1")
    assert doc["models"][0] == {
        "name": "m",
        "version": "1",
        "state": "READY",
        "ready": True,
        "reason": "",
        "weights": "demo",
    }
    text = _text(models_table(statuses, {"m": "demo"}, title="t"))
    assert "demo (not trained)" in text and "not loaded" in text


def test_health_document() -> None:
    doc = health_document(
        url="h:1", protocol="grpc", live=True, ready=False, models=[("m", "1", False)], healthy=False
    )
    assert doc["models"] == [{"name": "m", "version": "1", "ready": False}]
    assert (doc["live"], doc["ready"], doc["healthy"]) == (True, False, False)


def test_labels_are_shown_verbatim() -> None:
    """``:b:`` is an emoji code and ``[red]`` markup to rich: labels must not be interpreted."""
    odd = Classification("m", "1", (Prediction("a:b:c", 0, 0.5), Prediction("[red]x[/red] :smile:", 1, 0.5)))
    results = [FileResult(Path("[b].jpg"), odd)]
    text = _text(classification_table(results, model="m", protocol="grpc", url="h:1", weights=""))
    assert "a:b:c" in text and "[red]x[/red] :smile:" in text and "[b].jpg" in text
