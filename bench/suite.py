"""``visionserve bench all`` / ``make bench``: every way to serve a model, side by side, in one run.

For each catalog model, on the same image set and the same machine, at one stated concurrency:

1. ``in_process``   — the ceiling: decode + preprocess + ONNX Runtime in this process (best batch);
2. ``triton_grpc``  — the ensemble over gRPC, never-seen images (cache misses);
3. ``gateway_miss`` — the gateway (auth, upload checks, history) with never-seen images;
4. ``gateway_hit``  — the gateway answering images it has already answered (its cache);
5. ``naive``        — a FastAPI + uvicorn server with the model in process, one request at a time.

Ratios: served/ceiling (Triton ÷ in-process), gateway/direct (gateway miss ÷ Triton), and
stack/naive (gateway miss ÷ naive; with its cache the stack does better still, shown apart).
Each cell excludes a warm-up; the closed-loop concurrency is the same for every served path.
Writes ``reports/bench.json``, ``reports/bench.md`` and ``reports/bench.png``; ``--update-docs``
puts the markdown into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.ceiling import DEFAULT_BATCH_SIZES, measure_ceiling
from bench.chart import bench_chart
from bench.driver import run_closed_loop
from bench.inputs import bench_inputs, image_settings
from bench.report import (
    DEFAULT_REPORT_DIR,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine,
    mark_load_after,
    markdown_table,
    replace_block,
    write_json,
)
from bench.stats import Measurement, ratio
from bench.targets import http_classify_sender, triton_sender
from client import AsyncTritonClient, TritonClient
from serving.stack import GatewayStack
from visionserve.catalog import ModelSpec
from visionserve.samples import DEFAULT_IMAGE_COUNT, DistinctImages, SampleImage
from visionserve.settings import PROJECT_ROOT

__all__ = ["PATHS", "bench_markdown", "bench_ratios", "main"]

#: (key, label) of every path, in display order.
PATHS: tuple[tuple[str, str], ...] = (
    ("in_process", "in-process ceiling"),
    ("triton_grpc", "Triton gRPC (miss)"),
    ("gateway_miss", "gateway, cache miss"),
    ("gateway_hit", "gateway, cache hit"),
    ("naive", "naive FastAPI"),
)
DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
README = PROJECT_ROOT / "README.md"
DOCS_CHART = PROJECT_ROOT / "docs" / "bench.png"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve bench all", description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", default=None, help="model repository (default: model_repository/)")
    p.add_argument("--models", default="", help="comma-separated catalog models (default: all)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight for every served path")
    p.add_argument("--duration-s", type=float, default=10.0, help="measurement window per cell")
    p.add_argument("--warmup-s", type=float, default=3.0, help="discarded warm-up per cell")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGE_COUNT, help="images in the set")
    p.add_argument("--top-k", type=int, default=0, help="classes per image (default: the catalog's)")
    p.add_argument("--out", default=str(DEFAULT_REPORT_DIR), help="report directory")
    p.add_argument("--update-docs", action="store_true",
                   help="write the summary into docs/benchmarks.md (chart: docs/bench.png) and README.md")  # fmt: skip
    return p


def bench_ratios(cells: dict[str, Measurement]) -> dict[str, float | None]:
    """The headline ratios of one model's cells (throughput over throughput)."""

    def rate(key: str) -> float | None:
        m = cells.get(key)
        return m.throughput if m is not None else None

    return {
        "served_over_ceiling": ratio(rate("triton_grpc"), rate("in_process")),
        "gateway_over_direct": ratio(rate("gateway_miss"), rate("triton_grpc")),
        "stack_over_naive": ratio(rate("gateway_miss"), rate("naive")),
        "cached_stack_over_naive": ratio(rate("gateway_hit"), rate("naive")),
    }


async def _gateway_cells(
    stack: GatewayStack, specs: Sequence[ModelSpec], images: Sequence[SampleImage], args: argparse.Namespace,
    top_k: int,
) -> dict[str, dict[str, Measurement]]:  # fmt: skip
    url = f"{stack.gateway_url}/v1/classify"
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    cells: dict[str, dict[str, Measurement]] = {s.name: {} for s in specs}
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with AsyncTritonClient(stack.triton_grpc_url) as triton, aiohttp.ClientSession(
        timeout=timeout, connector=connector
    ) as session:  # fmt: skip
        for spec in specs:
            common = {"model": spec.name, "concurrency": args.concurrency, "duration_s": args.duration_s,
                      "warmup_s": args.warmup_s}  # fmt: skip
            print(f"{spec.name}: Triton gRPC …", flush=True)
            cells[spec.name]["triton_grpc"] = await run_closed_loop(
                triton_sender(triton, spec.ensemble, DistinctImages(images), top_k), label="triton_grpc", **common
            )
            print(f"{spec.name}: gateway, cache miss …", flush=True)
            miss = http_classify_sender(session, url, spec.name, DistinctImages(images), top_k, headers=headers,
                                        expect_cached=False)  # fmt: skip
            cells[spec.name]["gateway_miss"] = await run_closed_loop(miss, label="gateway_miss", **common)
            print(f"{spec.name}: gateway, cache hit …", flush=True)
            repeats = DistinctImages(images, distinct=False)
            prime = http_classify_sender(session, url, spec.name, repeats, top_k, headers=headers)
            await asyncio.gather(*(prime(i) for i in range(len(images))))  # every image answered once
            hit = http_classify_sender(session, url, spec.name, repeats, top_k, headers=headers, expect_cached=True)
            cells[spec.name]["gateway_hit"] = await run_closed_loop(hit, label="gateway_hit", **common)
    return cells


async def _naive_cells(
    base_url: str, specs: Sequence[ModelSpec], images: Sequence[SampleImage], args: argparse.Namespace, top_k: int
) -> dict[str, Measurement]:
    cells = {}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300), connector=connector) as session:
        for spec in specs:
            print(f"{spec.name}: naive baseline …", flush=True)
            send = http_classify_sender(session, f"{base_url}/predict", spec.name, DistinctImages(images), top_k,
                                        versioned=False)  # fmt: skip
            cells[spec.name] = await run_closed_loop(
                send, label="naive", model=spec.name, concurrency=args.concurrency, duration_s=args.duration_s,
                warmup_s=args.warmup_s,
            )  # fmt: skip
    return cells


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every path for every selected model; returns the report."""
    from bench.naive import NaiveServer

    inputs = bench_inputs(args)
    specs, repository, top_k, images = inputs.specs, inputs.repository, inputs.top_k, inputs.images
    out = Path(args.out)
    report: dict[str, Any] = {
        "benchmark": "all",
        "machine": machine(),
        "settings": {
            "repository": str(repository),
            "concurrency": args.concurrency,
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            **image_settings(images),
            "ceiling_batch_sizes": list(DEFAULT_BATCH_SIZES),
            "top_k": top_k,
            "gateway_cache": "redis" if os.environ.get("REDIS_URL") else "in-process LRU",
        },  # fmt: skip
        "models": {s.name: {"cells": {}} for s in specs},
    }
    print(f"bench all: {len(specs)} models, {len(images)} images, concurrency {args.concurrency}, window "
          f"{args.duration_s:g} s after {args.warmup_s:g} s warm-up, {report['machine']['cores']} cores, "
          f"load average {report['machine']['load_average_1m']}", flush=True)  # fmt: skip
    for spec in specs:
        print(f"{spec.name}: in-process ceiling …", flush=True)
        ceiling = measure_ceiling(spec, repository, images, duration_s=args.duration_s, warmup_s=args.warmup_s,
                                  top_k=top_k)  # fmt: skip
        report["models"][spec.name]["ceiling_batches"] = ceiling
        report["models"][spec.name]["cells"]["in_process"] = max(ceiling, key=lambda m: m.throughput)
    with GatewayStack(repository, log_path=out / "bench-stack.log", models=[s.name for s in specs]) as stack:
        with TritonClient(stack.triton_grpc_url) as client:
            for spec in specs:
                report["models"][spec.name]["weights"] = client.weights(spec.ensemble)
        for name, cells in asyncio.run(_gateway_cells(stack, specs, images, args, top_k)).items():
            report["models"][name]["cells"].update(cells)
    with NaiveServer(repository, [s.name for s in specs], out / "bench-naive.log") as naive:
        for name, m in asyncio.run(_naive_cells(naive.url, specs, images, args, top_k)).items():
            report["models"][name]["cells"]["naive"] = m
    for entry in report["models"].values():
        entry["ratios"] = bench_ratios(entry["cells"])
    mark_load_after(report)
    return report


def bench_markdown(report: dict[str, Any], chart_name: str | None = "bench.png") -> str:
    """The summary ``docs/benchmarks.md`` embeds: conditions, the table, the ratios (and the chart)."""
    m, s = report["machine"], report["settings"]
    rows = []
    for name, entry in report["models"].items():
        for key, label in PATHS:
            cell: Measurement | None = entry["cells"].get(key)
            if cell is None:
                continue
            rows.append([name, label, fmt_rate(cell.throughput), fmt_ms(cell.p50_ms), fmt_ms(cell.p99_ms),
                         str(cell.requests), str(cell.errors)])  # fmt: skip
    ratio_rows = [
        [name, fmt_ratio(e["ratios"]["served_over_ceiling"]), fmt_ratio(e["ratios"]["gateway_over_direct"]),
         fmt_ratio(e["ratios"]["stack_over_naive"]), fmt_ratio(e["ratios"]["cached_stack_over_naive"])]
        for name, e in report["models"].items()
    ]  # fmt: skip
    weights = sorted({str(e.get("weights", "")) for e in report["models"].values()} - {""})
    notes = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}, {m['memory_gib']} GiB), load average "
        f"{m['load_average_1m']} before and {m.get('load_average_1m_after', '?')} after; client, servers "
        "and ceiling share those cores.",
        f"Closed loop, concurrency {s['concurrency']} for every served path; each cell is a "
        f"{s['duration_s']:g} s window after a {s['warmup_s']:g} s warm-up that is not counted. The ceiling is "
        f"the best of batch sizes {', '.join(map(str, s['ceiling_batch_sizes']))}, back to back in one process.",
        f"Images: {s['images']} generated ({', '.join(s['image_formats'])}, 224×224 to 1024×768); every miss "
        "sends never-seen bytes (same pixels), hits repeat the set after one pass. Gateway cache: "
        f"{s['gateway_cache']}; top-{s['top_k']}.",
    ]
    if weights:
        notes.append(f"Weights: {', '.join(weights)} (speed does not depend on the weights' values).")
    return "\n".join(
        [
            "### Throughput and latency",
            "",
            markdown_table(
                ["model", "path", "images/s", "p50 ms", "p99 ms", "requests", "errors"], rows, align="llrrrrr"
            ),  # fmt: skip
            "",
            "### Ratios (throughput)",
            "",
            markdown_table(
                ["model", "served / ceiling", "gateway / direct", "stack / naive", "stack with cache hits / naive"],
                ratio_rows,
            ),  # fmt: skip
            "",
            *[f"- {n}" for n in notes],
            *(["", f"![throughput and p99 per model and path]({chart_name})"] if chart_name else []),
        ]
    )


def main(argv: list[str]) -> int:
    """Run every benchmark path, print the tables, write the reports."""
    args = _parser().parse_args(argv)
    if args.duration_s <= 0 or args.warmup_s < 0 or args.concurrency < 1:
        print("bench all: --duration-s must be > 0, --warmup-s >= 0, --concurrency >= 1", file=sys.stderr)
        return 2
    report = run_suite(args)
    out = Path(args.out)
    dated, latest = write_json(report, out, "bench")
    cells = {
        name: {key: {"throughput": c.throughput, "p99_ms": c.p99_ms} for key, c in e["cells"].items()}
        for name, e in report["models"].items()
    }
    title = (f"visionserve bench — {report['machine']['cores']} cores, concurrency {args.concurrency}, "
             f"{report['machine']['date']}")  # fmt: skip
    chart = bench_chart(cells, PATHS, title, out / "bench.png")
    markdown = bench_markdown(report)
    (out / "bench.md").write_text(markdown + "\n")
    print()
    print(markdown)
    print(f"\nsaved {latest}, {out / 'bench.md'}, {chart} (and {dated.name})")
    if args.update_docs:  # the published figures are versioned with the docs that show them
        shutil.copyfile(chart, DOCS_CHART)
        DOCS.write_text(replace_block(DOCS.read_text(), bench_markdown(report, DOCS_CHART.name)))
        README.write_text(replace_block(README.read_text(), bench_markdown(report, None)))
        print(f"updated {DOCS}, {DOCS_CHART.name} and {README.name}")
    return 0
