"""The PNG of ``make bench``: throughput and p99 per model and path, side by side (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["bench_chart"]


def bench_chart(
    cells: Mapping[str, Mapping[str, Mapping[str, float]]],
    paths: Sequence[tuple[str, str]],
    title: str,
    out: Path,
) -> Path:
    """Two panels of grouped bars: images/s (higher is better) and p99 ms (lower is better).

    Args:
        cells: model -> path key -> {"throughput": …, "p99_ms": …}.
        paths: (path key, legend label) in display order.
        title: the figure title (machine, concurrency).
        out: the PNG file to write.

    Returns:
        ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(cells)
    x = np.arange(len(models))
    width = 0.8 / max(1, len(paths))
    fig, (ax_rate, ax_p99) = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, (key, label) in enumerate(paths):
        rates = [cells[m].get(key, {}).get("throughput", np.nan) for m in models]
        p99s = [cells[m].get(key, {}).get("p99_ms", np.nan) for m in models]
        offset = (i - (len(paths) - 1) / 2) * width
        bars = ax_rate.bar(x + offset, rates, width, label=label)
        ax_rate.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax_p99.bar(x + offset, p99s, width, label=label)
    ax_rate.set(title="throughput (images/s, higher is better)", xticks=x, xticklabels=models)
    ax_p99.set(title="p99 latency (ms, log scale, lower is better)", xticks=x, xticklabels=models, yscale="log")
    ax_rate.legend(fontsize=8)
    for ax in (ax_rate, ax_p99):
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
