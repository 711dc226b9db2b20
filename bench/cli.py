"""``visionserve bench all | serving | gateway | video``: the benchmark entry point.

``all`` is ``make bench`` (every path side by side, one report), ``serving`` is ``make
bench-serving`` (served ensembles vs. the in-process ceiling), ``gateway`` is ``make
bench-gateway`` (``bench.gateway``). Each module is imported only when its benchmark runs.
"""

from __future__ import annotations

import importlib

from visionserve.cli import subcommand

__all__ = ["BENCHMARKS", "main"]

#: name -> (module, help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "all": ("bench.suite", "every path side by side for each model: ceiling, Triton, gateway miss/hit, naive"),
    "serving": ("bench.serving", "served ensembles over gRPC vs. the in-process ceiling, concurrency 1-8"),
    "gateway": ("bench.gateway", "gateway (cache miss / hit) vs. Triton direct"),
    "video": ("bench.video", "frames/s through POST /v1/classify/video vs. the same frames to Triton direct"),
    "release": ("bench.release", "what shadow mode costs the stable path: p50/p99 with shadow off vs on, alternating"),
    "gpu": ("bench.gpu", "GPU profile on a GPU machine: raw and in-process ceilings, served, naive, parity"),
}


def _usage() -> str:
    rows = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in BENCHMARKS.items())
    return f"usage: visionserve bench <benchmark> [options]\n\nbenchmarks:\n{rows}"


def main(argv: list[str]) -> int:
    """Dispatch to a benchmark's ``main(rest)``."""
    chosen = subcommand(argv, BENCHMARKS, _usage(), "visionserve bench: unknown benchmark")
    if isinstance(chosen, int):
        return chosen
    name, rest = chosen
    module = importlib.import_module(BENCHMARKS[name][0])
    return int(module.main(rest) or 0)
