"""``visionserve bench gpu`` / ``make bench-gpu``: the GPU profile against its ceilings, in one run.

Run on a GPU machine after ``make export PROFILE=gpu``. For each model, side by side:

1. **raw ceiling** — the backbone the GPU model builds (onnx2torch, fp16, channels-last),
   replayed as a CUDA graph at batch 32 and 256 on random input;
2. **in-process pipeline** — 640x480 JPEG bytes -> top-5 with the GPU model's own classes
   (``Preprocessor`` + ``Backbone``), decode and preprocessing in two threads on side streams
   overlapped with inference in the main thread: what one process can do without serving;
3. **served** — the ensemble over gRPC (KServe v2, ``class_count=5``), closed loop at several
   concurrencies, with 1-image and 16-image requests; every request's bytes are unique
   (``make_unique``), so Triton's response cache never answers;
4. **naive** — a FastAPI server running the same ONNX as a torch module on the same GPU,
   one request at a time (``bench.naive`` with ``NAIVE_DEVICE=cuda``).

The load generator runs in several processes; their CPU time is reported beside the
throughput, so it can be seen not to be the limit. Parity of the GPU path with the CPU path
(top-1 agreement, max |Δp|) on the sample images of every format is measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing as mp
import os
import resource
import threading
import time
from pathlib import Path
from queue import Queue
from typing import Any

import numpy as np

from bench.report import machine, markdown_table, replace_block
from bench.stats import percentile_ms
from visionserve.catalog import Catalog, ModelSpec, load_catalog
from visionserve.settings import PROJECT_ROOT, repository_path

__all__ = ["main", "photo_jpegs"]

DOC = PROJECT_ROOT / "docs" / "benchmarks-gpu.md"
BEGIN, END = "<!-- bench-gpu:begin -->", "<!-- bench-gpu:end -->"


def photo_jpegs(count: int = 256, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """Distinct 640x480 crops of the sample photograph, quality 83-90 (~70 KB each)."""
    from PIL import Image

    from visionserve.samples import base_photos

    base = base_photos()[0].resize((1024, 1200))
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        x0, y0 = int(rng.integers(0, 1024 - size[0])), int(rng.integers(0, 1200 - size[1]))
        buf = io.BytesIO()
        crop: Image.Image = base.crop((x0, y0, x0 + size[0], y0 + size[1]))
        crop.save(buf, "JPEG", quality=90 - (i % 8))
        out.append(buf.getvalue())
    return out


# -- in-process -----------------------------------------------------------------------------------
def _preprocessor(spec: ModelSpec, dtype: Any, decoder: str | None = None) -> Any:
    """The GPU model's preprocessing with the catalog's JPEG decoder (or ``decoder``)."""
    import torch

    from visionserve.gpu_pipeline import Preprocessor, jpeg_decoder

    assert spec.gpu is not None
    device = torch.device("cuda")
    jpeg, fallback = jpeg_decoder(decoder or spec.gpu.jpeg_decoder, device, spec.gpu.hardware_decode_share)
    if fallback:
        print(f"bench gpu: JPEG decoder {jpeg.name}, because {fallback}", flush=True)
    return Preprocessor(spec.pipeline(), device, dtype, jpeg)


def _parts(spec: ModelSpec, repo: Path, decoder: str | None = None) -> tuple[Any, Any]:
    import torch

    from export.repository import served_version
    from visionserve.gpu_pipeline import Backbone, load_onnx_module

    version = served_version(repo, spec)
    dtype = torch.float16
    module = load_onnx_module(str(repo / spec.gpu_model / str(version) / "model.onnx"))
    graphs = spec.gpu.graph_batch_sizes if spec.gpu else ()
    net = Backbone(module, torch.device("cuda"), dtype, spec.input_shape, graphs)
    return _preprocessor(spec, dtype, decoder), net


def raw_ceiling(net: Any, batch: int, seconds: float = 2.0) -> float:
    """Images/s of the backbone alone on random input (CUDA graph replay when captured)."""
    import torch

    x = torch.randn((batch, *net.input_shape), device="cuda").to(net.dtype)
    for _ in range(3):
        net(x)
    torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        net(x)
        n += batch
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def in_process(pre: Any, net: Any, images: list[bytes], batch: int = 256, workers: int = 2, rounds: int = 6) -> float:
    """JPEG bytes -> top-5 indices; preprocessing threads on side streams overlap inference."""
    import torch

    chunks = [images[i : i + batch] for i in range(0, len(images), batch)] * rounds
    queue: Queue[Any] = Queue(maxsize=4)

    def produce(mine: list[list[bytes]]) -> None:
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for chunk in mine:
                x = pre(chunk).batch
                event = torch.cuda.Event()
                event.record(stream)
                queue.put((x, event))
        queue.put(None)

    torch.cuda.synchronize()
    start = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(chunks[i::workers],)) for i in range(workers)]
    for t in threads:
        t.start()
    done = n = 0
    while done < workers:
        item = queue.get()
        if item is None:
            done += 1
            continue
        x, event = item
        torch.cuda.current_stream().wait_event(event)
        torch.topk(net(x), 5).indices.cpu()
        n += x.shape[0]
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def stages(pre: Any, net: Any, images: list[bytes], hardware_share: float, batch: int = 256) -> dict[str, float | None]:
    """Milliseconds per batch of each stage, one thread, synchronised: where a batch's time goes."""
    import torch

    from visionserve.gpu_pipeline import TorchvisionJpeg, exif_orientation, jpeg_decoder, nvjpeg_decodable
    from visionserve.imaging import open_image

    chunk = images[:batch]
    nvimgcodec, missing = jpeg_decoder("nvimgcodec", torch.device("cuda"), hardware_share)

    def timed(fn: Any, reps: int = 5) -> float:
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / reps * 1000

    x = pre(chunk).batch
    return {
        "headers": timed(lambda: [(exif_orientation(h), nvjpeg_decodable(h)) for h in map(open_image, chunk)]),
        "nvjpeg decode": timed(lambda: TorchvisionJpeg(torch.device("cuda"))(chunk)),
        "nvimgcodec decode": None if missing else timed(lambda: nvimgcodec(chunk)),
        "whole preprocessing": timed(lambda: pre(chunk)),
        "backbone": timed(lambda: net(x)),
    }


def parity(spec: ModelSpec, repo: Path, pre16: Any, net16: Any) -> dict[str, float]:
    """The GPU path against the CPU path (Pillow + ONNX Runtime fp32) on images of every format.

    Three comparisons separate the two causes of difference: GPU preprocessing into the very
    same CPU backbone (decoders and resampling alone), fp16 against true fp32 (TF32 off) on the
    GPU with the same preprocessing (precision alone), and the whole GPU path.
    """
    import torch

    from bench.ceiling import artifact_path
    from export.runners import load_runner
    from visionserve.gpu_pipeline import Backbone, Preprocessor, load_onnx_module
    from visionserve.samples import sample_images

    images = [s.data for s in sample_images(200, seed=909)] + photo_jpegs(56)
    cpu_net = load_runner("onnx", artifact_path(repo, spec))
    cpu = cpu_net(spec.pipeline().batch(images))
    pre32 = Preprocessor(spec.pipeline(), torch.device("cuda"), torch.float32, pre16.jpeg)
    pre_gpu = np.concatenate([pre32(images[i : i + 64]).batch.cpu().numpy() for i in range(0, len(images), 64)])
    gpu_pre_cpu_net = cpu_net(np.ascontiguousarray(pre_gpu))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        module = load_onnx_module(str(artifact_path(repo, spec)))
        net32 = Backbone(module, torch.device("cuda"), torch.float32, spec.input_shape, ())
        gpu32 = np.concatenate([net32(torch.from_numpy(pre_gpu[i : i + 64]).cuda()).cpu().numpy()
                                for i in range(0, len(images), 64)])  # fmt: skip
    finally:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    gpu16 = np.concatenate([net16(pre16(images[i : i + 64]).batch).cpu().numpy() for i in range(0, len(images), 64)])

    def agree(a: np.ndarray, b: np.ndarray) -> float:
        return float((a.argmax(1) == b.argmax(1)).mean())

    return {
        "images": len(images),
        "top1 gpu path vs cpu path": agree(gpu16, cpu),
        "max dp gpu path vs cpu path": float(np.abs(gpu16 - cpu).max()),
        "top1 gpu preprocessing vs cpu": agree(gpu_pre_cpu_net, cpu),
        "max dp gpu preprocessing vs cpu": float(np.abs(gpu_pre_cpu_net - cpu).max()),
        "top1 fp16 vs fp32": agree(gpu16, gpu32),
        "max dp fp16 vs fp32": float(np.abs(gpu16 - gpu32).max()),
    }


def split_variant(repo: Path, spec: ModelSpec, dest: Path) -> Path:
    """A copy of ``repo`` whose ensemble runs the GPU model as two steps handing a GPU tensor over.

    ``<name>_gpu_preprocess`` (stage ``preprocess``) decodes and preprocesses; ``<name>_gpu``
    (stage ``backbone``) receives the batch as a GPU tensor through DLPack
    (``FORCE_CPU_ONLY_INPUT_TENSORS=no``). Same files, same version: only the configs differ,
    so ``bench gpu --layout split`` measures the hand-over against the fused model.
    """
    import shutil

    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from export.repository import served_version
    from serving.model_config import read_model_config
    from visionserve.catalog import IMAGE_INPUT, PREPROCESSED

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(repo, dest, symlinks=True, copy_function=os.link)
    version = served_version(repo, spec)
    fused = read_model_config(repo / spec.gpu_model)
    pre = mc.ModelConfig()
    pre.CopyFrom(fused)
    pre.name = f"{spec.gpu_model}_preprocess"
    del pre.output[:]
    pre.output.add(name=PREPROCESSED, data_type=mc.TYPE_FP16, dims=list(spec.input_shape))
    pre.parameters["stage"].string_value = "preprocess"
    back = mc.ModelConfig()
    back.CopyFrom(fused)
    del back.input[:]
    back.input.add(name=PREPROCESSED, data_type=mc.TYPE_FP16, dims=list(spec.input_shape))
    back.parameters["stage"].string_value = "backbone"
    back.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value = "no"
    (dest / pre.name).mkdir()
    os.symlink(dest / spec.gpu_model / str(version), dest / pre.name / str(version))
    ensemble = read_model_config(repo / spec.ensemble)
    step = ensemble.ensemble_scheduling.step[0]
    step.output_map.clear()
    step.output_map[PREPROCESSED] = PREPROCESSED
    step.model_name = pre.name
    second = ensemble.ensemble_scheduling.step.add(model_name=spec.gpu_model, model_version=version)
    second.input_map[PREPROCESSED] = PREPROCESSED
    second.output_map["probabilities"] = "probabilities"
    step.input_map.clear()
    step.input_map[IMAGE_INPUT] = IMAGE_INPUT
    for cfg in (pre, back, ensemble):
        _write(dest / cfg.name / "config.pbtxt", text_format.MessageToString(cfg))
    return dest


def _write(path: Path, text: str) -> None:
    """Replace a file that may be a hard link into the source repository, leaving the source alone."""
    path.unlink(missing_ok=True)
    path.write_text(text)


# -- served over gRPC ---------------------------------------------------------------------------
def _grpc_worker(url: str, model: str, conc: int, per: int, warm: float, secs: float, seed: int, out: Any) -> None:
    import tritonclient.grpc as g
    import tritonclient.grpc.aio as ga

    from visionserve.samples import make_unique

    images = photo_jpegs(128)
    counter = [0]

    async def run() -> tuple[list[float], int]:
        client = ga.InferenceServerClient(url)
        lat: list[float] = []
        errors = [0]
        t0 = time.perf_counter()
        stop, measure = t0 + warm + secs, t0 + warm

        async def loop(k: int) -> None:
            i = k * 13 + seed
            while time.perf_counter() < stop:
                batch = []
                for _ in range(per):
                    counter[0] += 1
                    batch.append(make_unique(images[i % len(images)], "JPEG", f"{seed}.{counter[0]}"))
                    i += 7
                inp = g.InferInput("image", [per, 1], "BYTES")
                inp.set_data_from_numpy(np.array(batch, dtype=object).reshape(per, 1))
                start = time.perf_counter()
                try:
                    await client.infer(model, [inp], outputs=[g.InferRequestedOutput("probabilities", class_count=5)])
                    if start >= measure:
                        lat.append(time.perf_counter() - start)
                except Exception:  # noqa: BLE001 - counted, and the loop goes on
                    if start >= measure:
                        errors[0] += 1

        await asyncio.gather(*(loop(k) for k in range(conc)))
        await client.close()
        return lat, errors[0]

    before = resource.getrusage(resource.RUSAGE_SELF)
    lat, errors = asyncio.run(run())
    after = resource.getrusage(resource.RUSAGE_SELF)
    out.put((lat, errors, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)))


def _gpu_busy(stop: threading.Event, samples: list[float]) -> None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        while not stop.wait(0.25):
            samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # noqa: BLE001 - utilisation is a nice-to-have column
        return


def served(url: str, model: str, concurrency: int, per: int, seconds: float, procs: int, warm: float = 3.0) -> dict:
    """Closed-loop gRPC load from ``procs`` processes; images/s, p50/p99 and the generator's CPU."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = max(1, min(procs, concurrency))
    workers = [
        ctx.Process(
            target=_grpc_worker,
            args=(url, model, concurrency // procs + (i < concurrency % procs), per, warm, seconds, i, out),
        )  # fmt: skip
        for i in range(procs)
    ]
    busy: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_gpu_busy, args=(stop, busy), daemon=True)
    for w in workers:
        w.start()
    time.sleep(warm)
    sampler.start()
    results = [out.get() for _ in workers]
    stop.set()
    for w in workers:
        w.join()
    lat = [x for r in results for x in r[0]]
    cpu_s = sum(r[2] for r in results)
    return {
        "images_s": len(lat) * per / seconds,
        "p50_ms": percentile_ms(lat, 50) if lat else None,
        "p99_ms": percentile_ms(lat, 99) if lat else None,
        "errors": sum(r[1] for r in results),
        "loadgen_cores": cpu_s / (seconds + warm),
        "gpu_busy_pct": float(np.mean(busy)) if busy else None,
    }


def naive(repo: Path, spec: ModelSpec, concurrency: int, seconds: float, log: Path, device: str = "cuda") -> dict:
    """The naive FastAPI baseline on the GPU: images/s and latency at ``concurrency``."""
    import httpx

    from bench.naive import NaiveServer

    images = photo_jpegs(64)

    async def run(url: str) -> list[float]:
        lat: list[float] = []
        stop = time.perf_counter() + seconds
        async with httpx.AsyncClient(timeout=60) as client:

            async def loop(k: int) -> None:
                i = k
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    r = await client.post(f"{url}/predict", files={"image": images[i % 64]}, data={"model": spec.name})
                    if r.status_code == 200:
                        lat.append(time.perf_counter() - start)
                    i += 1

            await asyncio.gather(*(loop(k) for k in range(concurrency)))
        return lat

    with NaiveServer(repo, [spec.name], log, device=device) as server:
        asyncio.run(run(server.url))  # warm-up: model load, cuDNN autotuning
        lat = asyncio.run(run(server.url))
    return {"images_s": len(lat) / seconds, "p50_ms": percentile_ms(lat, 50), "p99_ms": percentile_ms(lat, 99)}


# -- the run --------------------------------------------------------------------------------------
def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="visionserve bench gpu", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="catalog models (default: all)")
    p.add_argument("--repository", type=Path, default=None)
    p.add_argument("--concurrency", default="16,64,256", help="closed-loop concurrencies")
    p.add_argument("--per-request", default="1,16", help="images per request")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per cell")
    p.add_argument("--procs", type=int, default=8, help="load-generator processes")
    p.add_argument("--naive-concurrency", type=int, default=16)
    p.add_argument(
        "--layout",
        choices=("fused", "split", "both"),
        default="fused",
        help="serve the GPU model fused (as exported), split in two steps, or both side by side",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=None,
        help="rewrite the GPU model's instance count in the repository before serving (tuning)",
    )
    p.add_argument(
        "--jpeg-decoders",
        default="",
        help="serve with each of these JPEG decoders in turn, e.g. nvimgcodec,torchvision (default: the catalog's)",
    )
    p.add_argument(
        "--pipeline-chunks",
        default="",
        help="serve with each of these pipeline_chunk values in turn, e.g. 0,128 (0: no overlap; default: catalog)",
    )
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--skip-parity", action="store_true", help="e.g. for weights that are not the exported ones")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "bench-gpu.json")
    p.add_argument("--update-docs", action="store_true", help=f"write the tables into {DOC.relative_to(PROJECT_ROOT)}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """Measure every model; print and save the tables."""
    import torch

    args = _args(argv)
    if not torch.cuda.is_available():
        print("bench gpu: no CUDA device visible to torch; run it on a GPU machine")
        return 2
    catalog = load_catalog()
    repo = (args.repository or repository_path()).resolve()
    specs = catalog.select(args.models or None)
    report: dict[str, Any] = {"machine": {**machine(), "gpu": torch.cuda.get_device_name(0)}, "models": {}}
    images = photo_jpegs(1024)
    for spec in specs:
        row = _in_process_row(spec, repo, images, args)
        print(spec.name, json.dumps(row), flush=True)
        row["served"] = _served_cells(catalog, spec, repo, args)
        if not args.skip_naive:
            log = args.out.parent / "bench-gpu-naive.log"
            row["naive"] = naive(repo, spec, args.naive_concurrency, args.seconds, log)
            print(spec.name, "naive", json.dumps(row["naive"]), flush=True)
        report["models"][spec.name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    text = render(report)
    print(text)
    if args.update_docs:
        doc = DOC.read_text() if DOC.exists() else f"# GPU benchmarks\n\n{BEGIN}\n{END}\n"
        DOC.write_text(replace_block(doc, text, BEGIN, END))
    return 0


def _in_process_row(spec: ModelSpec, repo: Path, images: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """The raw and in-process ceilings, the stage times and (unless skipped) parity; the GPU freed after."""
    import torch

    row: dict[str, Any] = {}
    pre, net = _parts(spec, repo)
    row["graphs"] = sorted(net.graphs)
    row["raw b32"], row["raw b256"] = raw_ceiling(net, 32), raw_ceiling(net, 256)
    row["in-process"] = in_process(pre, net, images)
    row["stages ms/256"] = stages(pre, net, images, spec.gpu.hardware_decode_share)
    if not args.skip_parity:
        row["parity"] = parity(spec, repo, pre, net)
    del pre, net
    torch.cuda.empty_cache()
    return row


def _served_cells(catalog: Catalog, spec: ModelSpec, repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Served over gRPC per layout, JPEG decoder, images per request and concurrency; the repository restored."""
    from export.repository import tuning_params
    from serving.launcher import TritonServer, default_models, free_ports

    levels = [int(c) for c in args.concurrency.split(",")]
    pers = [int(p) for p in args.per_request.split(",")]
    cells: dict[str, Any] = {}
    decoders = args.jpeg_decoders.split(",") if args.jpeg_decoders else [spec.gpu.jpeg_decoder]
    chunks = [int(c) for c in args.pipeline_chunks.split(",")] if args.pipeline_chunks else [None]
    layouts = ("fused", "split") if args.layout == "both" else (args.layout,)
    for layout, decoder, chunk in ((lay, dec, ch) for lay in layouts for dec in decoders for ch in chunks):
        served_repo = repo if layout == "fused" else split_variant(repo, spec, args.out.parent / "split-repository")
        params = tuning_params(spec.gpu, decoder, chunk)
        for name in (spec.gpu_model, f"{spec.gpu_model}_preprocess"):  # the split layout decodes in the 2nd
            if (served_repo / name / "config.pbtxt").exists():
                count = args.instances if name == spec.gpu_model else None
                _rewrite_config(served_repo / name / "config.pbtxt", count, params)
        http, grpc, metrics = free_ports(3)
        variant = f"{layout}-{decoder}-chunk{'catalog' if chunk is None else chunk}"
        log = args.out.parent / f"bench-gpu-{spec.name}-{variant}-triton.log"
        models = default_models(catalog, served_repo, spec.name)
        with TritonServer(served_repo, http_port=http, grpc_port=grpc, metrics_port=metrics,
                          models=models, log_path=log) as server:  # fmt: skip
            for per in pers:
                for c in levels:
                    key = f"c{c} x{per}" + ("" if layout == "fused" else f" {layout}")
                    key += "" if len(decoders) == 1 else f" {decoder}"
                    key += "" if len(chunks) == 1 else f" chunk{chunk}"
                    cell = served(server.grpc_url, spec.ensemble, c, per, args.seconds, args.procs)
                    cells[key] = cell
                    print(spec.name, key, json.dumps(cell), flush=True)
    _rewrite_config(repo / spec.gpu_model / "config.pbtxt", None, tuning_params(spec.gpu))  # as exported again
    return cells


def _rewrite_config(config: Path, instances: int | None, params: dict[str, str]) -> None:
    """Set the GPU model's instance count and string parameters in its config (tuning runs)."""
    from google.protobuf import text_format

    from serving.model_config import read_model_config

    cfg = read_model_config(config.parent)
    if instances:
        cfg.instance_group[0].count = instances
    for key, value in params.items():  # (the split layout's backbone step ignores a decoder)
        cfg.parameters[key].string_value = value
    _write(config, text_format.MessageToString(cfg))


def render(report: dict[str, Any]) -> str:
    """The markdown tables of one run."""

    def rate(v: float | None) -> str:
        return "–" if v is None else f"{v:,.0f}"

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}"

    served_rows, summary_rows, parity_rows, stage_rows = [], [], [], []
    for name, row in report["models"].items():
        best = max(row["served"].values(), key=lambda c: c["images_s"])
        for key, cell in row["served"].items():
            served_rows.append([name, key, rate(cell["images_s"]), ms(cell["p50_ms"]), ms(cell["p99_ms"]),
                                str(cell["errors"]), f"{cell['loadgen_cores']:.1f}",
                                "–" if cell["gpu_busy_pct"] is None else f"{cell['gpu_busy_pct']:.0f}"])  # fmt: skip
        top, naive_rate = best["images_s"], row.get("naive", {}).get("images_s")
        summary_rows.append([name, rate(row["raw b32"]), rate(row["raw b256"]), rate(row["in-process"]),
                             rate(top), f"{top / row['in-process']:.2f}", rate(naive_rate),
                             "–" if naive_rate is None else f"{top / naive_rate:.1f}"])  # fmt: skip
        stage_rows.append([name, *("-" if v is None else f"{v:.1f}" for v in row["stages ms/256"].values())])
        if "parity" not in row:
            continue
        p = row["parity"]
        pairs = [("top1 gpu path vs cpu path", "max dp gpu path vs cpu path"),
                 ("top1 gpu preprocessing vs cpu", "max dp gpu preprocessing vs cpu"),
                 ("top1 fp16 vs fp32", "max dp fp16 vs fp32")]  # fmt: skip
        parity_rows.append([name, str(p["images"]), *(f"{p[k]:.3f}" for pair in pairs for k in pair)])
    m = report["machine"]
    return "\n\n".join([
        f"Measured {m['date']} on {m['gpu']}, {m['cores']} cores.",
        "### Ceilings, served, naive (images/s)",
        markdown_table(["model", "raw fp16 b32", "raw fp16 b256", "in-process JPEG→top-5", "served (best)",
                        "served / in-process", "naive", "served / naive"], summary_rows, "l" + "r" * 7),
        "### Served ensemble over gRPC (closed loop; cX = concurrency, xN = images per request)",
        markdown_table(["model", "load", "images/s", "p50 ms", "p99 ms", "errors", "load-gen cores", "GPU busy %"],
                       served_rows, "ll" + "r" * 6),
        "### Where a batch of 256 JPEGs spends its time (ms, one thread, synchronised)",
        markdown_table(
            ["model", "headers (Pillow)", "nvJPEG decode (SMs)", "nvImageCodec decode (NVJPG)", "whole preprocessing",
             "backbone"],
            stage_rows,
        ),  # fmt: skip
        "### Parity of the GPU path with the CPU path (sample images of every format + 640x480 JPEGs)",
        markdown_table(["model", "images", "top-1 GPU path vs CPU path", "max |Δp|",
                        "top-1 GPU preprocessing vs CPU (same CPU backbone)", "max |Δp|",
                        "top-1 fp16 vs fp32 (GPU, same input)", "max |Δp|"], parity_rows, "l" + "r" * 7),
    ])  # fmt: skip
