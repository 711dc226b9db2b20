"""How the CLI shows results: rich tables for people, JSON documents for programs.

The JSON documents are built from the same dataclasses the library returns, so a script
reading ``--json`` sees the library's field names (``label``, ``index``, ``score``…).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rich.table import Table
from rich.text import Text

from client._batch import FileResult
from client._types import ModelStatus
from client._video import VideoClassification

__all__ = [
    "DEMO_NOTE",
    "classification_document",
    "classification_table",
    "health_document",
    "health_table",
    "models_document",
    "models_table",
    "video_document",
    "video_table",
]

#: Shown with every result of a model whose config says ``weights: demo``.
DEMO_NOTE = "DEMO WEIGHTS — not a trained model: these labels are meaningless"
_STATE_STYLE = {"READY": "green", "LOADING": "yellow", "UNLOADING": "yellow"}


def _plain(text: str, style: str = "") -> Text:
    """Text shown verbatim.

    Rich would otherwise read ``[...]`` as markup and ``:b:`` in a label like ``a:b:c`` as an
    emoji code.
    """
    return Text(text, style=style)


def _yes_no(flag: bool) -> Text:
    return Text("yes", style="green") if flag else Text("no", style="bold red")


# -- classify -------------------------------------------------------------------------------
def classification_document(
    results: Sequence[FileResult], *, model: str, protocol: str, url: str, top_k: int, weights: str
) -> dict[str, Any]:
    """The ``classify --json`` document."""
    rows = []
    for result in results:
        c = result.classification
        rows.append(
            {
                "file": str(result.path),
                "model": c.model if c else model,
                "version": c.version if c else None,
                "predictions": [asdict(p) for p in c.predictions] if c else [],
                "error": result.error,
                "error_type": result.error_type,
            }
        )
    document: dict[str, Any] = {
        "model": model,
        "protocol": protocol,
        "url": url,
        "top_k": top_k,
        "weights": weights,
        "demo_weights": weights == "demo",
        "results": rows,
        "failed": sum(not r.ok for r in results),
    }
    if weights == "demo":
        document["note"] = DEMO_NOTE
    return document


def classification_table(results: Sequence[FileResult], *, model: str, protocol: str, url: str, weights: str) -> Table:
    """One section per file: rank, class index, label and score of each prediction."""
    versions = sorted({r.classification.version for r in results if r.classification})
    served = f" v{', v'.join(versions)}" if versions else ""
    failed = sum(not r.ok for r in results)
    caption = Text(f"{len(results) - failed} classified, {failed} failed")
    if weights == "demo":
        caption = Text.assemble(Text(f"⚠ {DEMO_NOTE}", style="bold yellow"), "\n", caption)
    table = Table(title=_plain(f"{model}{served} · {protocol}://{url}"), caption=caption, caption_justify="left")
    table.add_column("File", overflow="fold")
    table.add_column("Version", justify="right")
    table.add_column("#", justify="right")
    table.add_column("Class", justify="right")
    table.add_column("Label", overflow="fold")
    table.add_column("Score", justify="right")
    for result in results:
        c = result.classification
        if c is None:
            table.add_row(
                _plain(str(result.path)),
                "",
                "",
                "",
                _plain(f"{result.error_type}: {result.error_detail}", style="red"),
                "",
                end_section=True,
            )
            continue
        for rank, p in enumerate(c.predictions, 1):
            last = rank == len(c.predictions)
            first = rank == 1
            table.add_row(
                _plain(str(result.path)) if first else "",
                _plain(c.version) if first else "",
                str(rank),
                str(p.index),
                _plain(p.label) if p.label else _plain("—", style="dim"),
                f"{p.score:.4f}",
                end_section=last,
            )
        if not c.predictions:
            table.add_row(
                _plain(str(result.path)),
                _plain(c.version),
                "",
                "",
                _plain("no predictions", "dim"),
                "",
                end_section=True,
            )
    return table


# -- models ---------------------------------------------------------------------------------
def models_document(statuses: Sequence[ModelStatus], weights: Mapping[str, str], *, url: str) -> dict[str, Any]:
    """The ``models --json`` document."""
    return {
        "url": url,
        "models": [{**asdict(s), "weights": weights.get(s.name, "")} for s in statuses],
    }


def models_table(statuses: Sequence[ModelStatus], weights: Mapping[str, str], *, title: str) -> Table:
    """Model, version, state, readiness, weights and Triton's reason per index row."""
    table = Table(title=_plain(title))
    for name in ("Model", "Version", "State", "Ready", "Weights", "Reason"):
        table.add_column(name, overflow="fold")
    for s in statuses:
        w = weights.get(s.name, "")
        table.add_row(
            _plain(s.name),
            _plain(s.version or "—"),
            _plain(s.state, style=_STATE_STYLE.get(s.state, "dim")),
            _yes_no(s.ready),
            _plain(f"{w} (not trained)", style="bold yellow") if w == "demo" else _plain(w),
            _plain(s.reason),
        )
    return table


# -- health ---------------------------------------------------------------------------------
def health_document(
    *,
    url: str,
    protocol: str,
    live: bool,
    ready: bool,
    models: Sequence[tuple[str, str, bool]],
    healthy: bool,
) -> dict[str, Any]:
    """The ``health --json`` document."""
    return {
        "url": url,
        "protocol": protocol,
        "live": live,
        "ready": ready,
        "healthy": healthy,
        "models": [{"name": n, "version": v, "ready": r} for n, v, r in models],
    }


def health_table(models: Sequence[tuple[str, str, bool]], *, title: str) -> Table:
    """Per-model readiness."""
    table = Table(title=_plain(title))
    for name in ("Model", "Version", "Ready"):
        table.add_column(name)
    for name, version, ready in models:
        table.add_row(_plain(name), _plain(version or "(any)"), _yes_no(ready))
    return table


# -- classify-video -------------------------------------------------------------------------
def video_document(result: VideoClassification, *, path: str, protocol: str, url: str, weights: str) -> dict[str, Any]:
    """The ``classify-video --json`` document: the library's ``VideoClassification`` fields."""
    document: dict[str, Any] = {
        "file": path,
        "protocol": protocol,
        "url": url,
        "weights": weights,
        "demo_weights": weights == "demo",
        **asdict(result),
    }
    if weights == "demo":
        document["note"] = DEMO_NOTE
    return document


def _score(p: Any) -> str:
    return f"{p.score:.4f}"


def video_table(result: VideoClassification, *, path: str, protocol: str, url: str, weights: str) -> Table:
    """The aggregate first (mean over frames), then each sampled frame's top-k, then the segments."""
    caption = Text(
        f"{len(result.frames)} frames of {result.duration_s:g} s; segments: "
        + "; ".join(f"{g.start_s:g}-{g.end_s:g} s {g.label}" for g in result.segments)
    )
    if weights == "demo":
        caption = Text.assemble(Text(f"⚠ {DEMO_NOTE}", style="bold yellow"), "\n", caption)
    title = _plain(f"{path} · {result.model} v{result.version} · {protocol}://{url}")
    table = Table(title=title, caption=caption, caption_justify="left")
    table.add_column("Frame", justify="right")
    table.add_column("#", justify="right")
    table.add_column("Class", justify="right")
    table.add_column("Label", overflow="fold")
    table.add_column("Score", justify="right")
    sections = [(Text("mean", style="bold"), result.aggregate)]
    sections += [(_plain(f"{f.t_s:g} s" + (" key" if f.keyframe else "")), f.predictions) for f in result.frames]
    for head, predictions in sections:
        for rank, p in enumerate(predictions, 1):
            table.add_row(
                head if rank == 1 else "",
                str(rank),
                str(p.index),
                _plain(p.label, style="bold" if rank == 1 else ""),
                _score(p),
                end_section=rank == len(predictions),
            )
    return table
