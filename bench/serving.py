"""``visionserve bench serving`` / ``make bench-serving``: each served ensemble vs. its in-process ceiling.

Per catalog model, on the same image set:

(a) the in-process ceiling — decode + preprocess + the served artifact through ONNX Runtime
    with every core, back to back (``bench.ceiling``), best of a few batch sizes;
(b) the served ensemble over gRPC at concurrency 1, 2, 4, 8, every request a never-seen image
    (the ensemble's response cache is on: a repeated image would be a cache hit).

Printed side by side as served/ceiling ratios (goal ≥ 0.90 at the best concurrency) with the
Triton statistics of each run (mean batch, queue, compute per image, how busy each stage
was), and saved as JSON under ``reports/``. A benchmark, not a test: it takes minutes and its
figures depend on the machine and on what else runs on it (the load average is recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.ceiling import DEFAULT_BATCH_SIZES, measure_ceiling
from bench.driver import run_closed_loop
from bench.profile import StageProfile, stage_profiles
from bench.report import DEFAULT_REPORT_DIR, fmt_ms, fmt_rate, fmt_ratio, machine, write_json
from bench.stats import Measurement, ratio
from bench.targets import triton_sender
from client import AsyncTritonClient, TritonClient
from serving.stack import start_triton
from visionserve.catalog import ModelSpec, load_catalog
from visionserve.samples import DEFAULT_IMAGE_COUNT, DEFAULT_IMAGE_SEED, DistinctImages, image_set
from visionserve.settings import repository_path

__all__ = ["GOAL", "format_serving", "main", "run_serving"]

#: served/ceiling throughput the served path should reach at its best concurrency.
GOAL = 0.90
DEFAULT_CONCURRENCY = (1, 2, 4, 8)
SERVED = "triton_grpc"


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve bench serving", description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", default=None, help="model repository (default: model_repository/)")
    p.add_argument("--url", default="", help="gRPC host:port of a running Triton (default: start one)")
    p.add_argument("--models", default="", help="comma-separated catalog models (default: all)")
    p.add_argument("--concurrency", type=_ints, default=DEFAULT_CONCURRENCY, help="e.g. 1,2,4,8")
    p.add_argument("--batch-sizes", type=_ints, default=DEFAULT_BATCH_SIZES, help="ceiling batch sizes")
    p.add_argument("--duration-s", type=float, default=10.0, help="measurement window per cell")
    p.add_argument("--warmup-s", type=float, default=3.0, help="discarded warm-up per cell")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGE_COUNT, help="images in the set")
    p.add_argument("--top-k", type=int, default=0, help="classes per image (default: the catalog's)")
    p.add_argument("--out", default=str(DEFAULT_REPORT_DIR), help="report directory")
    return p


async def _served(
    url: str, spec: ModelSpec, images: DistinctImages, args: argparse.Namespace, top_k: int
) -> list[dict[str, Any]]:
    stage_names = [spec.ensemble, spec.preprocess_model, spec.backbone_model()]
    rows = []
    async with AsyncTritonClient(url, protocol="grpc") as client:
        for concurrency in args.concurrency:
            before = {n: await client.statistics(n) for n in stage_names}
            started = time.perf_counter()
            m = await run_closed_loop(
                triton_sender(client, spec.ensemble, images, top_k), label=SERVED, model=spec.name,
                concurrency=concurrency, duration_s=args.duration_s, warmup_s=args.warmup_s,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            profiles: dict[str, StageProfile] = {}
            for n in stage_names:
                profiles.update(stage_profiles(before[n], await client.statistics(n), elapsed))
            rows.append({"measurement": m, "profile": profiles})
            print(f"  served c={concurrency}: {fmt_rate(m.throughput)} img/s, p50 {fmt_ms(m.p50_ms)} ms, "
                  f"p99 {fmt_ms(m.p99_ms)} ms, errors {m.errors}", flush=True)  # fmt: skip
    return rows


def run_serving(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every selected model; returns the report (also what the JSON holds)."""
    catalog = load_catalog()
    specs = catalog.select(args.models)
    repository = Path(args.repository) if args.repository else repository_path()
    top_k = args.top_k or catalog.top_k
    images = image_set(args.images, seed=DEFAULT_IMAGE_SEED)
    report: dict[str, Any] = {
        "benchmark": "serving",
        "machine": machine(),
        "settings": {
            "repository": str(repository),
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "concurrency": list(args.concurrency),
            "ceiling_batch_sizes": list(args.batch_sizes),
            "images": len(images),
            "image_formats": sorted({i.format for i in images}),
            "distinct_images": True,
            "top_k": top_k,
            "goal": GOAL,
        },  # fmt: skip
        "models": {},
    }
    host = report["machine"]
    print(
        f"bench serving: {len(images)} images, window {args.duration_s:g} s after {args.warmup_s:g} s warm-up, "
        f"{host['cores']} cores, load average {host['load_average_1m']}",
        flush=True,
    )
    for spec in specs:
        print(f"{spec.name}: in-process ceiling …", flush=True)
        ceiling = measure_ceiling(spec, repository, images, duration_s=args.duration_s, warmup_s=args.warmup_s,
                                  batch_sizes=args.batch_sizes, top_k=top_k)  # fmt: skip
        for m in ceiling:
            print(f"  ceiling batch {m.concurrency}: {fmt_rate(m.throughput)} img/s, p50 {fmt_ms(m.p50_ms)} ms")
        report["models"][spec.name] = {"ceiling": ceiling}
    server = None
    try:
        url = args.url
        if not url:
            print("starting tritonserver …", flush=True)
            server = start_triton(repository, [s.name for s in specs])
            url = server.grpc_url
        with TritonClient(url) as sync_client:
            weights = {s.name: sync_client.weights(s.ensemble) for s in specs}
        for spec in specs:
            print(f"{spec.name}: served ensemble over gRPC (distinct images) …", flush=True)
            rows = asyncio.run(_served(url, spec, DistinctImages(images), args, top_k))
            entry = report["models"][spec.name]
            entry["weights"] = weights[spec.name]
            best_ceiling = max(entry["ceiling"], key=lambda m: m.throughput)
            entry["ceiling_best"] = best_ceiling
            for row in rows:
                row["ratio"] = ratio(row["measurement"].throughput, best_ceiling.throughput)
            entry["served"] = rows
            best = max(rows, key=lambda r: r["measurement"].throughput)
            entry["best_concurrency"] = best["measurement"].concurrency
            entry["best_ratio"] = best["ratio"]
            entry["meets_goal"] = best["ratio"] is not None and best["ratio"] >= GOAL
    finally:
        if server is not None:
            server.stop()
    report["machine"]["load_average_1m_after"] = round(__import__("os").getloadavg()[0], 2)
    return report


def format_serving(report: dict[str, Any]) -> str:
    """The side-by-side table: ceiling, then served per concurrency with ratio and stage profile."""
    lines = []
    head = (f"{'model':<13} {'path':<22} {'img/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}   "
            f"{'batch pre/net':>13} {'busy pre/net':>13} {'pre ms/img':>10} {'net ms/img':>10}")  # fmt: skip
    lines += [head, "-" * len(head)]
    for name, entry in report["models"].items():
        best: Measurement = entry.get("ceiling_best") or max(entry["ceiling"], key=lambda m: m.throughput)
        for m in entry["ceiling"]:
            mark = " *" if m is best else ""
            lines.append(f"{name:<13} {f'in-process batch {m.concurrency}{mark}':<22} {fmt_rate(m.throughput):>7} "
                         f"{fmt_ms(m.p50_ms):>7} {fmt_ms(m.p99_ms):>7} {'1.00' if m is best else '':>6}")  # fmt: skip
        for row in entry.get("served", []):
            m, prof = row["measurement"], row["profile"]
            pre = prof.get(f"{name}_preprocess")
            net = next((p for k, p in prof.items() if k.startswith(f"{name}_") and k != f"{name}_preprocess"), None)
            stages = (
                f"{pre.mean_batch:>6.1f}/{net.mean_batch:<6.1f} {pre.busy:>6.0%}/{net.busy:<6.0%} "
                f"{pre.compute_ms_per_image:>10.1f} {net.compute_ms_per_image:>10.1f}"
                if pre and net else ""
            )  # fmt: skip
            path = f"triton gRPC c={m.concurrency}"
            lines.append(
                f"{name:<13} {path:<22} {fmt_rate(m.throughput):>7} {fmt_ms(m.p50_ms):>7} "
                f"{fmt_ms(m.p99_ms):>7} {fmt_ratio(row['ratio']):>6}   {stages}"
            )
        if "best_ratio" in entry:
            verdict = "meets" if entry["meets_goal"] else "BELOW"
            lines.append(
                f"{'':<13} best: c={entry['best_concurrency']}, served/ceiling {fmt_ratio(entry['best_ratio'])} "
                f"— {verdict} the {report['settings']['goal']:.2f} goal"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the serving benchmark, print the table, write ``reports/bench-serving.json``."""
    args = _parser().parse_args(argv)
    if args.duration_s <= 0 or args.warmup_s < 0:
        print("bench serving: --duration-s must be > 0 and --warmup-s >= 0", file=sys.stderr)
        return 2
    report = run_serving(args)
    print()
    print(format_serving(report))
    dated, latest = write_json(report, Path(args.out), "bench-serving")
    print(f"saved {latest} (and {dated.name})")
    return 0
