"""``visionserve bench serving`` / ``make bench-serving``: each served ensemble vs. its in-process ceiling.

Per catalog model, on the same image set:

(a) the in-process ceiling — decode + preprocess + the served artifact through ONNX Runtime
    with every core, back to back (``bench.ceiling``), best of a few batch sizes;
(b) the served ensemble over gRPC at concurrency 1, 2, 4, 8, every request a never-seen image
    (the ensemble's response cache is on: a repeated image would be a cache hit).

A model whose served version has both an fp32 ``onnx`` and an ``onnx_int8`` backbone is
measured with each, in the same server (``bench.variants``: a second ensemble over the other
backbone), the two alternating cell by cell so that both see the same machine; the INT8/fp32
throughput ratios are printed per concurrency and at the best of each. The preprocessing's JPEG
decoders (Pillow + ``draft`` vs simplejpeg) are timed in process on the same images.

Composition (``--composition``, on by default): each plain ensemble, its ``<name>_hflip`` TTA
ensemble and the committee, alternating cell by cell in the same server: TTA/plain per model
and committee/member throughput ratios, and the committee against what running its members one
after another would give (``1 / sum(1 / member rate)``).

Printed side by side as served/ceiling ratios (goal ≥ 0.90 at the best concurrency) with the
Triton statistics of each run (mean batch, queue, compute per image, how busy each stage
was), and saved as JSON under ``reports/``. A benchmark, not a test: it takes minutes and its
figures depend on the machine and on what else runs on it (the load average is recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.ceiling import DEFAULT_BATCH_SIZES, measure_ceiling
from bench.driver import run_closed_loop
from bench.inputs import BenchInputs, bench_inputs, image_settings
from bench.profile import StageProfile, stage_profiles
from bench.report import DEFAULT_REPORT_DIR, fmt_ms, fmt_rate, fmt_ratio, machine, mark_load_after, write_json
from bench.stats import Measurement, ratio
from bench.targets import triton_sender
from bench.variants import Variant, compared_formats, variant_repository
from client import AsyncTritonClient, TritonClient
from serving.launcher import TritonServer, default_models
from visionserve.catalog import INT8_FORMAT, ModelSpec
from visionserve.imaging import JPEG_DECODERS
from visionserve.samples import DEFAULT_IMAGE_COUNT, DistinctImages

__all__ = ["GOAL", "INT8_GOAL", "format_serving", "main", "measure_decoders", "run_serving"]

#: served/ceiling throughput the served path should reach at its best concurrency.
GOAL = 0.90
#: INT8 served / fp32 served throughput ResNet50 should reach (issue 16).
INT8_GOAL = 2.0
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
    p.add_argument("--composition", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure TTA and committee cost beside the plain models")  # fmt: skip
    p.add_argument("--composition-only", action="store_true", help="skip the ceilings and formats: composition only")
    return p


def composition_names(repository: Path, specs: list, committees: list) -> list[str]:  # noqa: ANN001
    """Ensembles the composition run alternates: plain, ``_hflip`` where configured, committees."""
    names = []
    for spec in specs:
        names.append(spec.ensemble)
        tta = [spec.tta_ensemble(v) for v in spec.tta]
        names += [n for n in tta if (repository / n / "config.pbtxt").is_file()]
    names += [c.ensemble for c in committees if (repository / c.ensemble / "config.pbtxt").is_file()]
    return names


async def _composition(
    url: str, names: list[str], images: DistinctImages, args: argparse.Namespace, top_k: int
) -> dict[str, dict[int, Measurement]]:
    """Every concurrency, each ensemble in turn at it: the same minutes for all."""
    rows: dict[str, dict[int, Measurement]] = {n: {} for n in names}
    async with AsyncTritonClient(url, protocol="grpc") as client:
        for concurrency in args.concurrency:
            for name in names:
                m = await run_closed_loop(
                    triton_sender(client, name, images, top_k), label=SERVED, model=name,
                    concurrency=concurrency, duration_s=args.duration_s, warmup_s=args.warmup_s,
                )  # fmt: skip
                rows[name][concurrency] = m
                print(f"  {name:<18} c={concurrency}: {fmt_rate(m.throughput)} img/s, p50 {fmt_ms(m.p50_ms)} ms, "
                      f"errors {m.errors}", flush=True)  # fmt: skip
    return rows


def composition_report(rows: dict[str, dict[int, Measurement]], specs: list, committees: list) -> dict[str, Any]:  # noqa: ANN001
    """TTA/plain and committee/member ratios at each concurrency and at each one's best."""

    def best(name: str) -> float:
        return max(m.throughput for m in rows[name].values())

    tta = {}
    for spec in specs:
        for view in spec.tta:
            name = spec.tta_ensemble(view)
            if name in rows:
                per_c = {c: ratio(m.throughput, rows[spec.ensemble][c].throughput) for c, m in rows[name].items()}
                overall = ratio(best(name), best(spec.ensemble))
                tta[name] = {"plain": spec.ensemble, "by_concurrency": per_c, "best": overall}
    out: dict[str, Any] = {"tta_vs_plain": tta, "committee": {}}
    for committee in committees:
        members = [s.ensemble for s in committee.member_specs]
        if committee.ensemble not in rows or any(m not in rows for m in members):
            continue  # a run of some models only: no members to compare with
        serial = 1.0 / sum(1.0 / best(m) for m in members)
        out["committee"][committee.name] = {
            "best": best(committee.ensemble),
            "vs_member": {m: ratio(best(committee.ensemble), best(m)) for m in members},
            "vs_members_in_turn": ratio(best(committee.ensemble), serial),
        }
    out["throughput"] = {n: {c: m.throughput for c, m in by_c.items()} for n, by_c in rows.items()}
    return out


async def _served(
    url: str, variants: list[Variant], images: DistinctImages, args: argparse.Namespace, top_k: int
) -> dict[str, list[dict[str, Any]]]:
    """Every concurrency, each variant in turn at it (so fp32 and INT8 see the same minutes)."""
    rows: dict[str, list[dict[str, Any]]] = {v.ensemble: [] for v in variants}
    async with AsyncTritonClient(url, protocol="grpc") as client:
        for concurrency in args.concurrency:
            for variant in variants:
                stage_names = [variant.ensemble, variant.spec.preprocess_model, variant.backbone]
                before = {n: await client.statistics(n) for n in stage_names}
                started = time.perf_counter()
                m = await run_closed_loop(
                    triton_sender(client, variant.ensemble, images, top_k), label=SERVED,
                    model=variant.ensemble, concurrency=concurrency, duration_s=args.duration_s,
                    warmup_s=args.warmup_s,
                )  # fmt: skip
                elapsed = time.perf_counter() - started
                profiles: dict[str, StageProfile] = {}
                for n in stage_names:
                    profiles.update(stage_profiles(before[n], await client.statistics(n), elapsed))
                rows[variant.ensemble].append({"measurement": m, "profile": profiles})
                print(f"  {variant.fmt:<10} served c={concurrency}: {fmt_rate(m.throughput)} img/s, p50 "
                      f"{fmt_ms(m.p50_ms)} ms, p99 {fmt_ms(m.p99_ms)} ms, errors {m.errors}", flush=True)  # fmt: skip
    return rows


def measure_decoders(spec_pipeline_params: dict[str, Any], images: list[bytes], duration_s: float) -> dict[str, float]:
    """Preprocessing images/s (decode + resize + normalise, one thread) per JPEG decoder."""
    from visionserve.imaging import Pipeline

    rates = {}
    for decoder in JPEG_DECODERS:
        pipeline = Pipeline.from_params(spec_pipeline_params, jpeg_decoder=decoder)
        for data in images[:4]:
            pipeline(data)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration_s:
            for data in images:
                pipeline(data)
            count += len(images)
        rates[decoder] = count / (time.perf_counter() - started)
    return rates


def run_serving(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every selected model; returns the report (also what the JSON holds)."""
    inputs = bench_inputs(args)
    report = _new_report(args, inputs)
    specs = [] if args.composition_only else inputs.specs
    variants = {spec.name: _measure_in_process(args, inputs, spec, report) for spec in specs}
    server = None
    scratch = inputs.repository.resolve().parent / f".{inputs.repository.resolve().name}.bench-variants"
    try:
        url = args.url
        if not url:
            server = _start_server(args, inputs, variants, scratch)
            url = server.grpc_url
        with TritonClient(url) as sync_client:
            weights = {s.name: sync_client.weights(s.ensemble) for s in inputs.specs}
        for spec in specs:
            report["models"][spec.name]["weights"] = weights[spec.name]
            _measure_served(url, args, inputs, variants[spec.name], report["models"][spec.name])
        if args.composition:
            report["composition"] = _measure_composition(url, args, inputs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    mark_load_after(report)
    report["machine"]["cpu_features"] = cpu_features()
    return report


def _new_report(args: argparse.Namespace, inputs: BenchInputs) -> dict[str, Any]:
    """The report's conditions (machine, settings), printed as the run's first line; no models yet."""
    report: dict[str, Any] = {
        "benchmark": "serving",
        "machine": machine(),
        "settings": {
            "repository": str(inputs.repository),
            "duration_s": args.duration_s,
            "warmup_s": args.warmup_s,
            "concurrency": list(args.concurrency),
            "ceiling_batch_sizes": list(args.batch_sizes),
            **image_settings(inputs.images),
            "distinct_images": True,
            "top_k": inputs.top_k,
            "goal": GOAL,
        },  # fmt: skip
        "models": {},
    }
    host = report["machine"]
    print(
        f"bench serving: {len(inputs.images)} images, window {args.duration_s:g} s after {args.warmup_s:g} s "
        f"warm-up, {host['cores']} cores, load average {host['load_average_1m']}",
        flush=True,
    )
    return report


def _measure_in_process(
    args: argparse.Namespace, inputs: BenchInputs, spec: ModelSpec, report: dict[str, Any]
) -> list[Variant]:
    """The JPEG decoders and each backbone variant's in-process ceiling, into ``report``; the variants."""
    # a given server is measured as it serves
    formats = compared_formats(inputs.repository, spec) if not args.url else [spec.serve_format]
    variants = [Variant(spec, f) for f in formats]
    jpegs = [i.data for i in inputs.images if i.format == "JPEG"]
    rates = measure_decoders(spec.pipeline_params(), jpegs, duration_s=min(args.duration_s, 5.0))
    print(f"{spec.name}: preprocessing of {len(jpegs)} JPEGs, one thread: "
          + ", ".join(f"{d} {r:.0f} img/s" for d, r in rates.items()), flush=True)  # fmt: skip
    entry = report["models"][spec.name] = {
        "model": spec.name,
        "format": spec.serve_format,
        "decoders": {"jpeg_images": len(jpegs), "images_per_s": rates, "catalog": spec.jpeg_decoder},
        "formats": {},
    }
    for variant in variants:
        print(f"{spec.name} ({variant.fmt}): in-process ceiling …", flush=True)
        ceiling = measure_ceiling(variant.served_spec, inputs.repository, inputs.images, duration_s=args.duration_s,
                                  warmup_s=args.warmup_s, batch_sizes=args.batch_sizes, top_k=inputs.top_k)  # fmt: skip
        for m in ceiling:
            print(f"  ceiling batch {m.concurrency}: {fmt_rate(m.throughput)} img/s, p50 {fmt_ms(m.p50_ms)} ms")
        entry["formats"][variant.fmt] = {"ensemble": variant.ensemble, "ceiling": ceiling}
    return variants


def _start_server(
    args: argparse.Namespace, inputs: BenchInputs, variants: dict[str, list[Variant]], scratch: Path
) -> TritonServer:
    """A tritonserver on ``scratch``: the variants' repository, plus the composition's models when measured."""
    print("starting tritonserver …", flush=True)
    every = [v for vs in variants.values() for v in vs]
    models = variant_repository(inputs.repository, scratch, every)
    if args.composition:
        models += default_models(inputs.catalog, scratch)  # the TTA ensembles, committees and their steps
        models = list(dict.fromkeys(models))
    server = TritonServer.on_free_ports(scratch, models=models, exit_timeout_s=2)
    server.start(ready_timeout_s=600)
    return server


def _measure_served(
    url: str, args: argparse.Namespace, inputs: BenchInputs, variants: list[Variant], entry: dict[str, Any]
) -> None:
    """One model's variants over gRPC, judged against their ceilings, into its report ``entry``."""
    print(f"{entry['model']}: served ensembles over gRPC (distinct images) …", flush=True)
    rows = asyncio.run(_served(url, variants, DistinctImages(inputs.images), args, inputs.top_k))
    for variant in variants:
        _judge(entry["formats"][variant.fmt], rows[variant.ensemble])
    if INT8_FORMAT in entry["formats"] and "onnx" in entry["formats"]:
        entry["int8_vs_fp32"] = _int8_vs_fp32(entry["formats"]["onnx"], entry["formats"][INT8_FORMAT])


def _measure_composition(url: str, args: argparse.Namespace, inputs: BenchInputs) -> dict[str, Any]:
    """Plain, TTA and committee ensembles alternating over gRPC; the composition report."""
    committees = list(inputs.catalog.committees.values())
    names = composition_names(inputs.repository, inputs.specs, committees)
    print(f"composition: {', '.join(names)} over gRPC, alternating (distinct images) …", flush=True)
    rows = asyncio.run(_composition(url, names, DistinctImages(inputs.images), args, inputs.top_k))
    return composition_report(rows, inputs.specs, committees)


def _judge(fmt_entry: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    best_ceiling = max(fmt_entry["ceiling"], key=lambda m: m.throughput)
    fmt_entry["ceiling_best"] = best_ceiling
    for row in rows:
        row["ratio"] = ratio(row["measurement"].throughput, best_ceiling.throughput)
    fmt_entry["served"] = rows
    best = max(rows, key=lambda r: r["measurement"].throughput)
    fmt_entry["best_concurrency"] = best["measurement"].concurrency
    fmt_entry["best_served"] = best["measurement"].throughput
    fmt_entry["best_ratio"] = best["ratio"]
    fmt_entry["meets_goal"] = best["ratio"] is not None and best["ratio"] >= GOAL


def _int8_vs_fp32(fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, Any]:
    """INT8/fp32 throughput: served per concurrency, served best vs best, and the ceilings."""
    per_c = {
        a["measurement"].concurrency: ratio(b["measurement"].throughput, a["measurement"].throughput)
        for a, b in zip(fp32["served"], int8["served"], strict=True)
    }
    return {
        "served_by_concurrency": per_c,
        "served_best": ratio(int8["best_served"], fp32["best_served"]),
        "ceiling_best": ratio(int8["ceiling_best"].throughput, fp32["ceiling_best"].throughput),
        "goal": INT8_GOAL,
    }


def cpu_features() -> list[str]:
    """The CPU's vector/matrix features that the INT8 and fp32 kernels may use (``/proc/cpuinfo``)."""
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    have = set(flags.split(":", 1)[1].split())
    return [f for f in wanted if f in have]


def format_serving(report: dict[str, Any]) -> str:
    """The side-by-side table: per model and backbone format, ceiling then served per concurrency."""
    head = (f"{'model':<13} {'format':<10} {'path':<22} {'img/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}   "
            f"{'batch pre/net':>13} {'busy pre/net':>13} {'pre ms/img':>10} {'net ms/img':>10}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, entry in report["models"].items():
        for fmt, f in entry["formats"].items():
            lines += _format_lines(name, fmt, f, report["settings"]["goal"])
        lines += _comparison_lines(entry)
        lines.append("")
    comp = report.get("composition")
    if comp:
        lines += _composition_lines(comp)
        lines.append("")
    features = report["machine"].get("cpu_features")
    if features:
        lines.append(f"CPU features: {' '.join(features)}")
    return "\n".join(lines)


def _format_lines(name: str, fmt: str, f: dict[str, Any], goal: float) -> list[str]:
    """One backbone format of a model: its ceiling per batch size, served per concurrency, the verdict."""
    lines = []
    best: Measurement = f.get("ceiling_best") or max(f["ceiling"], key=lambda m: m.throughput)
    for m in f["ceiling"]:
        mark = " *" if m is best else ""
        lines.append(f"{name:<13} {fmt:<10} {f'in-process batch {m.concurrency}{mark}':<22} "
                     f"{fmt_rate(m.throughput):>7} {fmt_ms(m.p50_ms):>7} {fmt_ms(m.p99_ms):>7} "
                     f"{'1.00' if m is best else '':>6}")  # fmt: skip
    for row in f.get("served", []):
        m, prof = row["measurement"], row["profile"]
        pre = prof.get(f"{name}_preprocess")
        net = prof.get(f"{name}_{fmt}")
        stages = (
            f"{pre.mean_batch:>6.1f}/{net.mean_batch:<6.1f} {pre.busy:>6.0%}/{net.busy:<6.0%} "
            f"{pre.compute_ms_per_image:>10.1f} {net.compute_ms_per_image:>10.1f}"
            if pre and net else ""
        )  # fmt: skip
        lines.append(
            f"{name:<13} {fmt:<10} {f'triton gRPC c={m.concurrency}':<22} {fmt_rate(m.throughput):>7} "
            f"{fmt_ms(m.p50_ms):>7} {fmt_ms(m.p99_ms):>7} {fmt_ratio(row['ratio']):>6}   {stages}"
        )
    if "best_ratio" in f:
        verdict = "meets" if f["meets_goal"] else "BELOW"
        lines.append(
            f"{'':<13} {fmt:<10} best: c={f['best_concurrency']}, served/ceiling "
            f"{fmt_ratio(f['best_ratio'])} — {verdict} the {goal:.2f} goal"
        )
    return lines


def _comparison_lines(entry: dict[str, Any]) -> list[str]:
    """A model's INT8/fp32 ratios and its JPEG decoders' rates, where measured."""
    lines = []
    cmp = entry.get("int8_vs_fp32")
    if cmp:
        per_c = ", ".join(f"c={c} {fmt_ratio(r)}" for c, r in cmp["served_by_concurrency"].items())
        verdict = "meets" if (cmp["served_best"] or 0) >= cmp["goal"] else "below"
        lines.append(
            f"{'':<13} int8/fp32 served: best {fmt_ratio(cmp['served_best'])} ({verdict} {cmp['goal']:.1f}x); "
            f"{per_c}; in-process ceiling {fmt_ratio(cmp['ceiling_best'])}"
        )
    dec = entry.get("decoders")
    if dec:
        rates = dec["images_per_s"]
        speedup = ratio(rates.get("simplejpeg", 0.0), rates.get("pillow", 0.0))
        lines.append(
            f"{'':<13} preprocessing, {dec['jpeg_images']} JPEGs, one thread: "
            + ", ".join(f"{d} {r:.0f} img/s" for d, r in rates.items())
            + f" (simplejpeg/pillow {fmt_ratio(speedup)}; catalog uses {dec['catalog']})"
        )
    return lines


def _composition_lines(comp: dict[str, Any]) -> list[str]:
    """TTA/plain per TTA ensemble, and each committee against its members."""
    lines = []
    for name, t in comp["tta_vs_plain"].items():
        per_c = ", ".join(f"c={c} {fmt_ratio(r)}" for c, r in t["by_concurrency"].items())
        lines.append(f"{name:<18} TTA/plain throughput: best {fmt_ratio(t['best'])}; {per_c}")
    for name, c in comp["committee"].items():
        vs = ", ".join(f"{m} {fmt_ratio(r)}" for m, r in c["vs_member"].items())
        lines.append(f"{name:<18} {fmt_rate(c['best'])} img/s at best; committee/member: {vs}; "
                     f"vs the members in turn {fmt_ratio(c['vs_members_in_turn'])}")  # fmt: skip
    return lines


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
