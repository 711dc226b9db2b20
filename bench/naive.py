"""The naive baseline: the server the tutorials build, to compare the stack against.

FastAPI + uvicorn, one process, the models loaded in it, and an ``async def`` endpoint that
decodes, preprocesses and runs ONNX Runtime inline — so the event loop serves exactly one
request at a time, with no batching, no cache and no queue. It uses the catalog's own
preprocessing and the same exported artifacts as the ensembles, so it returns the same
answers and the comparison is about serving, not about models. ONNX Runtime keeps its
defaults, as a tutorial would. With ``NAIVE_DEVICE=cuda`` it runs the same ONNX as a torch
module on the GPU instead (float32, one request at a time): the GPU benchmark's baseline.

    NAIVE_REPOSITORY=model_repository uvicorn bench.naive:app --port 8080
    curl -F image=@cat.jpg -F model=resnet18 -F top_k=5 localhost:8080/predict

``NaiveServer`` runs it in its own process group for the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException

from serving.launcher import free_port
from serving.processes import Lifecycle, http_ok, spawn, stop_group, wait_until_ready

__all__ = ["NaiveServer", "app"]

_MODELS: dict[str, tuple[Any, Any, list[str]]] = {}  # name -> (pipeline, session, labels)


def _load(repository: Path, names: list[str]) -> None:
    import onnxruntime as ort

    from bench.ceiling import artifact_path
    from visionserve.catalog import load_catalog

    catalog = load_catalog()
    device = os.environ.get("NAIVE_DEVICE", "cpu")
    for spec in catalog.select(names or None):
        if device == "cpu":
            session = ort.InferenceSession(str(artifact_path(repository, spec)), providers=["CPUExecutionProvider"])
            run = partial(_run_session, session)
        else:
            run = _torch_runner(artifact_path(repository, spec), device)
        labels_file = repository / spec.ensemble / "labels.txt"
        labels = labels_file.read_text().splitlines() if labels_file.exists() else []
        _MODELS[spec.name] = (spec.pipeline(), run, labels)


def _run_session(session: Any, batch: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def _torch_runner(artifact: Path, device: str) -> Any:
    import torch

    from visionserve.gpu_pipeline import load_onnx_module

    module = load_onnx_module(str(artifact)).to(device)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch).to(device)).cpu().numpy()

    return run


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    from visionserve.settings import repository_path

    repository = Path(os.environ.get("NAIVE_REPOSITORY") or repository_path())
    _load(repository, [n for n in os.environ.get("NAIVE_MODELS", "").split(",") if n])
    yield
    _MODELS.clear()


app = FastAPI(title="naive baseline", lifespan=_lifespan)


@app.get("/health")
async def health() -> dict[str, object]:
    return {"ok": True, "models": sorted(_MODELS)}


@app.post("/predict")
async def predict(
    image: Annotated[bytes, File()], model: Annotated[str, Form()], top_k: Annotated[int, Form()] = 5
) -> dict[str, object]:
    """Decode, preprocess, infer, top-k — inline on the event loop, one request at a time."""
    if model not in _MODELS:
        raise HTTPException(404, f"unknown model {model!r}")
    pipeline, run, labels = _MODELS[model]
    try:
        batch = pipeline(image)[None]
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    probabilities = run(batch)[0]
    top = np.argsort(-probabilities)[:top_k]
    return {
        "model": model,
        "predictions": [
            {"label": labels[i] if i < len(labels) else "", "index": int(i), "score": float(probabilities[i])}
            for i in top
        ],
    }


class NaiveServer(Lifecycle):
    """``uvicorn bench.naive:app`` on a free port, in its own process group.

    Args:
        repository: the model repository (artifacts and labels).
        models: catalog models to load (all when empty).
        log_path: where uvicorn's output goes.
    """

    def __init__(self, repository: Path, models: list[str], log_path: Path, device: str = "cpu") -> None:
        self.repository = Path(repository)
        self.device = device
        self.models = models
        self.log_path = Path(log_path)
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> NaiveServer:
        env = {**os.environ, "NAIVE_REPOSITORY": str(self.repository), "NAIVE_MODELS": ",".join(self.models),
               "NAIVE_DEVICE": self.device}  # fmt: skip
        cmd = [sys.executable, "-m", "uvicorn", "bench.naive:app", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
        self._proc = spawn(cmd, log_path=self.log_path, env=env)
        try:
            wait_until_ready(
                self._proc, lambda: http_ok(f"{self.url}/health"), timeout_s=timeout_s,
                what="the naive baseline server", log_tail=lambda: self.log_path.read_text(errors="replace")[-1500:],
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, timeout_s=15)
