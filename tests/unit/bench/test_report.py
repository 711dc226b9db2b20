"""Report writing: markdown tables, the docs block, JSON, ratios and the bench summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import fmt_ms, fmt_ratio, markdown_table, replace_block, write_json
from bench.stats import summarize
from bench.suite import PATHS, bench_markdown, bench_ratios


def _cell(label: str, throughput: float, model: str = "resnet18") -> object:
    # throughput images in a 1 s window, 10 ms each
    return summarize([0.01] * int(throughput), 1.0, label=label, model=model, concurrency=4)


def test_ratios_divide_the_right_paths() -> None:
    cells = {"in_process": _cell("in_process", 100), "triton_grpc": _cell("triton_grpc", 90),
             "gateway_miss": _cell("gateway_miss", 81), "gateway_hit": _cell("gateway_hit", 400),
             "naive": _cell("naive", 27)}  # fmt: skip
    r = bench_ratios(cells)
    assert r["served_over_ceiling"] == pytest.approx(0.9)
    assert r["gateway_over_direct"] == pytest.approx(0.9)
    assert r["stack_over_naive"] == pytest.approx(3.0)
    assert r["cached_stack_over_naive"] == pytest.approx(400 / 27)


def test_a_missing_path_gives_no_ratio_instead_of_a_crash() -> None:
    r = bench_ratios({"triton_grpc": _cell("triton_grpc", 50)})
    assert r["served_over_ceiling"] is None and r["stack_over_naive"] is None


def test_markdown_table_aligns_columns() -> None:
    table = markdown_table(["model", "img/s"], [["a", "1.0"], ["b", "2.0"]])
    assert table.splitlines() == ["| model | img/s |", "| :--- | ---: |", "| a | 1.0 |", "| b | 2.0 |"]


def test_replace_block_keeps_the_rest_of_the_document() -> None:
    doc = "# title\nintro\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nafter\n"
    new = replace_block(doc, "| new | table |")
    assert new == "# title\nintro\n<!-- bench:begin -->\n| new | table |\n<!-- bench:end -->\nafter\n"
    assert replace_block(new, "x") == replace_block(doc, "x")  # idempotent


def test_replace_block_refuses_a_document_without_markers() -> None:
    with pytest.raises(ValueError):
        replace_block("no markers here", "x")


def test_formatters() -> None:
    assert fmt_ms(12.345) == "12.3" and fmt_ms(1234.5) == "1234" and fmt_ms(float("nan")) == "–"
    assert fmt_ratio(None) == "–" and fmt_ratio(0.904) == "0.90"


def test_write_json_keeps_a_dated_copy_and_the_latest(tmp_path: Path) -> None:
    dated, latest = write_json({"cell": _cell("naive", 3), "path": tmp_path}, tmp_path, "bench")
    assert dated != latest and dated.read_text() == latest.read_text()
    data = json.loads(latest.read_text())
    assert data["cell"]["label"] == "naive" and data["cell"]["requests"] == 3
    assert data["path"] == str(tmp_path)


def test_bench_markdown_states_conditions_and_every_path() -> None:
    cells = {key: _cell(key, 10 * (i + 1)) for i, (key, _) in enumerate(PATHS)}
    report = {
        "machine": {"date": "2026-01-01T00:00:00+00:00", "cores": 2, "cpu": "test cpu", "memory_gib": 8,
                    "load_average_1m": 0.1, "load_average_1m_after": 0.2},
        "settings": {"concurrency": 4, "duration_s": 10, "warmup_s": 3, "ceiling_batch_sizes": [1, 8],
                     "images": 48, "image_formats": ["JPEG", "PNG"], "gateway_cache": "in-process LRU", "top_k": 5},
        "models": {"resnet18": {"cells": cells, "ratios": bench_ratios(cells), "weights": "demo"}},
    }  # fmt: skip
    md = bench_markdown(report)
    for _, label in PATHS:
        assert f"| resnet18 | {label} |" in md
    assert "concurrency 4" in md and "2 cores" in md and "warm-up that is not counted" in md
    assert "| resnet18 | 2.00 | 1.50 | 0.60 | 0.80 |" in md  # 20/10, 30/20, 30/50, 40/50
