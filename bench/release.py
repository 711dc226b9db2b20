"""``visionserve bench release``: what shadow mode costs the stable path, side by side.

One stack (``visionserve up``) on a private copy of the repository, where version N+1 of the
model is an identical copy of the served version N. A release of N+1 runs throughout with
weight 0 (every request answered by stable); the phases alternate shadow off / shadow on
(``shadow=1``: every request also goes to the canary after it is answered), ``--rounds`` times,
so drift of a shared machine falls on both. Each phase sends ``--rate`` requests per second
(open loop: a request is sent on schedule whether or not the last one returned) of images
never sent before (cache misses), and the client-side latency of each is kept. Prints p50 and
p99 per phase kind and the on/off ratios; the bar is ≤ 1.05.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.stats import percentile
from export.publish import TritonControl, commit_staged, next_version, stage_copy
from export.release import abort_release, start_release
from export.repository import served_version
from serving.stack import GatewayStack
from visionserve.catalog import load_catalog
from visionserve.files import copy_repository
from visionserve.samples import make_unique, sample_images
from visionserve.settings import repository_path

__all__ = ["main"]


def _stage_identical(repo: Path, model: str) -> int:
    spec = load_catalog().get(model)
    version = next_version(repo, spec)
    commit_staged(stage_copy(repo, spec, served_version(repo, spec), version), repo, spec, version)
    return version


def _phase(url: str, key: str, model: str, rate: float, seconds: float, base: bytes) -> list[float]:
    """Open-loop load: one request every 1/rate s on its own thread; latencies in ms."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def one(image: bytes) -> None:
        started = time.perf_counter()
        r = client.post("/v1/classify", files={"image": ("x.jpg", image)}, data={"model": model})
        elapsed = (time.perf_counter() - started) * 1000.0
        with lock:
            (latencies.append(elapsed) if r.status_code == 200 else failures.append(r.status_code))

    threads = []
    count = int(rate * seconds)
    tag = f"{time.time_ns()}"
    images = [make_unique(base, "JPEG", f"{tag}-{i}") for i in range(count)]
    start = time.perf_counter()
    for i, image in enumerate(images):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one, args=(image,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(60)
    client.close()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[:5]}")
    return latencies


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionserve bench release", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--repository", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=6.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    args = parser.parse_args(argv)
    spec = load_catalog().get(args.model)
    with tempfile.TemporaryDirectory(prefix="vs-bench-release-") as tmp:
        repo = copy_repository(
            args.repository or repository_path(),
            Path(tmp) / "model_repository",
            ignore=shutil.ignore_patterns("release.json", "*_canary"),
        )
        canary = _stage_identical(repo, args.model)
        stack = GatewayStack(repo, log_path=Path(tmp) / "up.log", models=[args.model]).start()
        control = TritonControl(stack.triton_grpc_url)
        base = next(iter(sample_images(1, seed=77))).data
        results: dict[str, list[float]] = {"off": [], "on": []}
        try:
            _phase(stack.gateway_url, stack.api_key, args.model, args.rate, 5.0, base)  # warm-up
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    start_release(repo, spec, canary, weight=0.0, shadow=1.0 if mode == "on" else 0.0,
                                  control=control, log=lambda _m: None)  # fmt: skip
                    time.sleep(1.0)  # every gateway poll has seen it
                    results[mode] += _phase(stack.gateway_url, stack.api_key, args.model, args.rate, args.seconds, base)
                    abort_release(repo, spec, control, log=lambda _m: None)
        finally:
            control.close()
            stack.stop()
    off, on = results["off"], results["on"]
    print(f"shadow cost on the stable path ({args.model}, {args.rate:g} req/s open loop, {args.rounds} rounds):")
    for q in (0.5, 0.99):
        a, b = percentile(off, q * 100), percentile(on, q * 100)
        print(f"  p{int(q * 100)}: shadow off {a:.1f} ms, shadow on {b:.1f} ms, ratio {b / a:.3f}")
    print(f"  requests: {len(off)} off, {len(on)} on")
    return 0
