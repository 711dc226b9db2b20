"""Writing benchmark results: JSON (full detail), markdown tables, the machine they came from.

Every report states where and how it was measured — cores, CPU model, load average before
the run, concurrency, window and warm-up, the image set — because a figure without those is
not comparable to anything.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from visionserve.settings import PROJECT_ROOT

__all__ = [
    "BEGIN_MARK",
    "DEFAULT_REPORT_DIR",
    "END_MARK",
    "fmt_ms",
    "fmt_ratio",
    "fmt_rate",
    "machine",
    "mark_load_after",
    "markdown_table",
    "replace_block",
    "write_json",
]

DEFAULT_REPORT_DIR = PROJECT_ROOT / "reports"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Where a benchmark runs: cores usable, CPU model, memory, load average, time, versions."""
    import onnxruntime

    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dependency
        memory_gib = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "memory_gib": memory_gib,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def mark_load_after(report: dict[str, Any]) -> None:
    """Record the load average at the end of the run beside the one ``machine()`` took before it."""
    report["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)


def write_json(data: dict[str, Any], directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>-<timestamp>.json`` and copy it to ``<name>.json`` (the latest); both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dated = directory / f"{name}-{stamp}.json"
    dated.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    latest = directory / f"{name}.json"
    shutil.copyfile(dated, latest)
    return dated, latest


def _json_default(value: object) -> object:
    if hasattr(value, "to_dict"):
        return value.to_dict()  # type: ignore[no-any-return]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def fmt_rate(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def fmt_ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A GitHub markdown table; ``align`` gives one of ``l``/``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


BEGIN_MARK = "<!-- bench:begin -->"
END_MARK = "<!-- bench:end -->"


def replace_block(text: str, block: str, begin: str = BEGIN_MARK, end: str = END_MARK) -> str:
    """``text`` with what lies between the ``begin`` and ``end`` markers replaced by ``block``.

    Raises:
        ValueError: the markers are missing or out of order (nothing is guessed).
    """
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"markers {begin} … {end} not found (in that order)")
    return text[: start + len(begin)] + "\n" + block.strip() + "\n" + text[stop:]
