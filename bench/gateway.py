"""``visionserve bench gateway`` / ``make bench-gateway``: what the gateway costs and what its cache buys.

In one run, for one model, at each concurrency (default 1, 2, 4, 8), closed loop:

1. ``direct`` — Triton over gRPC with the client library (what the gateway itself does), with
   never-seen bytes (every request misses Triton's response cache);
2. ``miss``   — the gateway with never-seen bytes: auth, rate limit, upload checks (the full
   decode-verify included), the Triton call, the cache write and a history row (``direct`` and
   ``miss`` alternate in ``--rounds`` windows, so the machine's drift hits both alike);
3. ``hit``    — the gateway answering bytes it answered before: auth, rate limit, SHA-256,
   cache lookup, history row; Triton is not called;
4. ``spaced hit`` (concurrency 1 only, alternating with ``hit`` in ``--rounds`` windows) — the
   same hits, each sent after a pause as long as a direct request took: the gateway idles
   between them as it does while Triton computes a miss. Its CPU per request next to the
   back-to-back hits' is what idling costs the next request on this machine, apart from
   anything a miss does.

Ratios and the goals this machine is held to: miss throughput ≥ 0.90 × direct, added p50
(miss − direct) ≤ 2 ms, hit p99 ≤ 5 ms with ≥ 1000 req/s. Results go to
``reports/bench-gateway.json`` (and a dated copy).

When the benchmark starts the stack itself, it also reads the CPU time of Triton, the gateway
and the load generator at the edges of every window (``bench.cpu``) and prints what one
request cost each of them. Client, gateway and Triton share the cores, so once they are busy
the throughput ratio follows the ratio of those costs: the table says how much of the miss
path's cost is the gateway's, in CPU milliseconds per request. ``--isolate`` pins Triton to
half of the cores and the gateway and the load generator to the other half, which measures
the gateway as it is deployed (pods of its own) rather than as it competes for Triton's CPU.

The HTTP load generator is a minimal keep-alive HTTP/1.1 client over asyncio streams with
each request's bytes built up front: client, gateway and Triton share the machine's cores,
and a general-purpose client (aiohttp) spends more CPU per request than a cache hit costs
the gateway, which would then measure the client. Every answer is still checked (status, then
``client.check_gateway_answer``: model, version, a valid top-k, and the ``cached`` flag each
phase expects).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.cpu import LOAD_GENERATOR, ROLES, CpuMeter, Meter, isolate
from bench.driver import run_closed_loop, run_interleaved
from bench.inputs import image_settings
from bench.report import (
    DEFAULT_REPORT_DIR,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    machine,
    mark_load_after,
    markdown_table,
    write_json,
)
from bench.stats import Measurement, ratio
from bench.targets import BenchError, triton_sender
from client import CLASSIFY_PATH, AsyncTritonClient, check_gateway_answer, classify_form
from serving.stack import GatewayStack
from visionserve.catalog import load_catalog
from visionserve.samples import DEFAULT_IMAGE_SEED, DistinctImages, SampleImage, image_set, mime_type
from visionserve.settings import repository_path

__all__ = ["GOALS", "HttpSender", "evaluate", "main"]

#: The goals of issue 5 on this machine.
GOALS = {"miss_over_direct_min": 0.90, "added_p50_ms_max": 2.0, "hit_p99_ms_max": 5.0, "hit_rps_min": 1000.0}
SPACED_HIT = "spaced hit"
#: Cells in the order tables show them (``spaced hit`` at concurrency 1 only).
PHASES = ("direct", "miss", "hit", SPACED_HIT)


@dataclass(frozen=True)
class _Url:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> _Url:
        rest = url.split("://", 1)[-1].rstrip("/")
        host, _, port = rest.partition(":")
        return cls(host or "127.0.0.1", int(port or 80))


class HttpSender:
    """``send(i)`` for the driver: POST image ``i`` to ``/v1/classify`` over kept-alive connections.

    Args:
        base_url: the gateway, ``http://host:port``.
        api_key: sent as ``Authorization: Bearer``.
        model: asked for; the answer must name it.
        images: what request ``i`` carries.
        top_k: predictions asked (and expected).
        expect_cached: the ``cached`` flag every answer must have.
        connections: size of the pool (the phase's concurrency).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        images: DistinctImages,
        top_k: int,
        *,
        expect_cached: bool | None,
        connections: int,
    ) -> None:
        self._url = _Url.parse(base_url)
        self._model = model
        self._images = images
        self._top_k = top_k
        self._expect_cached = expect_cached
        self._boundary = uuid.uuid4().hex
        self._head = (
            f"POST {CLASSIFY_PATH} HTTP/1.1\r\nHost: {self._url.host}:{self._url.port}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
        ).encode()
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._size = connections
        self._opened = 0

    def request_bytes(self, i: int) -> bytes:
        image: SampleImage = self._images.image(i)
        body, content_type = classify_form(
            self._images(i), model=self._model, top_k=self._top_k, filename=image.name,
            content_type=mime_type(image.format), boundary=self._boundary,
        )  # fmt: skip
        return self._head + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._pool.empty() and self._opened < self._size:
            self._opened += 1
            return await asyncio.open_connection(self._url.host, self._url.port)
        return await self._pool.get()

    async def __call__(self, i: int) -> dict[str, Any]:
        payload = self.request_bytes(i)
        reader, writer = await self._connection()
        try:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        self._pool.put_nowait((reader, writer))
        if status != 200:
            raise BenchError(f"HTTP {status}: {body[:200]!r}")
        answer = orjson.loads(body)
        check_gateway_answer(answer, model=self._model, top_k=self._top_k, cached=self._expect_cached)
        return answer

    async def close(self) -> None:
        while not self._pool.empty():
            _, writer = self._pool.get_nowait()
            writer.close()


def _cpu_total(m: Measurement | None) -> float | None:
    return sum(m.cpu_ms.values()) if m is not None and m.cpu_ms else None


def evaluate(cells: dict[int, dict[str, Measurement]]) -> dict[str, Any]:
    """Ratios per concurrency and whether each goal is met.

    The miss goals must hold at every concurrency; the hit goal pairs a latency bound with a
    rate, so it is met where some concurrency satisfies both. Where the runs were metered,
    ``cpu_direct_over_miss`` is the CPU a direct request cost everything on the machine over
    what a miss cost: the throughput ratio the shared cores allow once they are saturated.
    """
    per: dict[int, dict[str, Any]] = {}
    for conc, c in sorted(cells.items()):
        direct, miss, hit = c.get("direct"), c.get("miss"), c.get("hit")
        added = miss.p50_ms - direct.p50_ms if miss and direct else None
        per[conc] = {
            "miss_over_direct": ratio(miss.throughput if miss else None, direct.throughput if direct else None),
            "added_p50_ms": added,
            "hit_p99_ms": hit.p99_ms if hit else None,
            "hit_rps": hit.throughput if hit else None,
            "hit_over_direct": ratio(hit.throughput if hit else None, direct.throughput if direct else None),
            "gateway_cpu_ms_per_miss": miss.cpu_ms.get("gateway") if miss else None,
            "gateway_cpu_ms_per_hit": hit.cpu_ms.get("gateway") if hit else None,
            "gateway_cpu_ms_per_spaced_hit": c[SPACED_HIT].cpu_ms.get("gateway") if SPACED_HIT in c else None,
            "cpu_direct_over_miss": ratio(_cpu_total(direct), _cpu_total(miss)),
        }
    g = GOALS
    miss_ok = all(v["miss_over_direct"] is not None and v["miss_over_direct"] >= g["miss_over_direct_min"]
                  for v in per.values())  # fmt: skip
    added_ok = all(v["added_p50_ms"] is not None and v["added_p50_ms"] <= g["added_p50_ms_max"] for v in per.values())
    hit_at = [
        conc for conc, v in per.items()
        if v["hit_p99_ms"] is not None and v["hit_p99_ms"] <= g["hit_p99_ms_max"] and v["hit_rps"] >= g["hit_rps_min"]
    ]  # fmt: skip
    return {
        "per_concurrency": per,
        "goals": dict(g),
        "met": {
            "miss_throughput": miss_ok,
            "added_p50": added_ok,
            "hit": bool(hit_at),
            "hit_met_at_concurrency": hit_at,
        },
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve bench gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet18", help="catalog model (default resnet18)")
    p.add_argument("--concurrency", default="1,2,4,8", help="comma-separated concurrency levels")
    p.add_argument("--duration-s", type=float, default=12.0, help="measurement window per cell (split into the rounds)")
    p.add_argument("--warmup-s", type=float, default=2.0, help="discarded warm-up per cell")
    p.add_argument("--rounds", type=int, default=4, help="alternating direct/miss rounds the window is split into")
    p.add_argument("--images", type=int, default=48, help="images drawn from the shared load-test set")
    p.add_argument("--formats", default="JPEG", help="image formats to use (comma-separated, or 'all')")
    p.add_argument("--top-k", type=int, default=0, help="classes per image (default: the catalog's)")
    p.add_argument("--workers", type=int, default=None, help="gateway workers (default: GATEWAY_WORKERS or 1)")
    p.add_argument("--isolate", action="store_true",
                   help="pin Triton to the first half of the cores, the gateway and this benchmark to the rest "
                        "(the gateway on machines of its own, as the Helm chart deploys it)")  # fmt: skip
    p.add_argument("--repository", default=None, help="model repository (default: model_repository/)")
    p.add_argument("--gateway-url", default=None, help="use this running gateway (with --api-key, --triton-url)")
    p.add_argument("--api-key", default=None, help="API key for --gateway-url")
    p.add_argument("--triton-url", default=None, help="Triton gRPC host:port for --gateway-url")
    p.add_argument("--out", default=str(DEFAULT_REPORT_DIR), help="report directory")
    return p


def _images(count: int, formats: str) -> tuple[SampleImage, ...]:
    wanted = None if formats.strip().lower() == "all" else {f.strip().upper() for f in formats.split(",")}
    pool = image_set(max(count * 5, count), seed=DEFAULT_IMAGE_SEED)
    chosen = tuple(img for img in pool if wanted is None or img.format in wanted)[:count]
    if not chosen:
        raise SystemExit(f"bench gateway: no image of formats {formats!r} in the set")
    return chosen


async def _measure(
    gateway_url: str, api_key: str, triton_url: str, model: str, levels: Sequence[int],
    images: Sequence[SampleImage], top_k: int, args: argparse.Namespace, meter: Meter | None = None,
) -> dict[int, dict[str, Measurement]]:  # fmt: skip
    cells: dict[int, dict[str, Measurement]] = {}
    common = {"model": model, "duration_s": args.duration_s, "warmup_s": args.warmup_s, "meter": meter}
    async with AsyncTritonClient(triton_url) as triton:
        for conc in levels:
            cells[conc] = {}
            print(f"concurrency {conc}: Triton direct and gateway cache miss, {args.rounds} alternating rounds …",
                  flush=True)  # fmt: skip
            direct = triton_sender(triton, model, DistinctImages(images), top_k)
            miss = HttpSender(gateway_url, api_key, model, DistinctImages(images), top_k, expect_cached=False,
                              connections=conc)  # fmt: skip
            cells[conc].update(
                await run_interleaved({"direct": direct, "miss": miss}, concurrency=conc, rounds=args.rounds, **common)
            )
            await miss.close()
            repeats = DistinctImages(images, distinct=False)
            prime = HttpSender(gateway_url, api_key, model, repeats, top_k, expect_cached=None, connections=1)
            for _ in range(max(2, args.workers or 1) * 2):  # every worker's cache (in-process LRU) sees each image
                for i in range(len(images)):
                    await prime(i)
            await prime.close()
            hit = HttpSender(gateway_url, api_key, model, repeats, top_k, expect_cached=True, connections=conc)
            pause_s = cells[conc]["direct"].p50_ms / 1000  # NaN if every direct request failed: no pause to copy
            if conc == 1 and math.isfinite(pause_s):
                print(f"concurrency 1: back-to-back hits and hits {pause_s * 1000:.0f} ms apart, {args.rounds} "
                      "alternating rounds …", flush=True)  # fmt: skip
                spaced = HttpSender(gateway_url, api_key, model, repeats, top_k, expect_cached=True, connections=1)
                cells[conc].update(
                    await run_interleaved(
                        {"hit": hit, SPACED_HIT: spaced},
                        concurrency=1,
                        rounds=args.rounds,
                        pauses={SPACED_HIT: pause_s},
                        **common,
                    )  # fmt: skip
                )
                await spaced.close()
            else:
                print(f"concurrency {conc}: gateway, cache hit …", flush=True)
                cells[conc]["hit"] = await run_closed_loop(hit, label="hit", concurrency=conc, **common)
            await hit.close()
    return cells


def _fmt_cpu(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.2f}"


def _phases(cell: dict[str, Measurement]) -> list[tuple[str, Measurement]]:
    return [(phase, cell[phase]) for phase in PHASES if phase in cell]


def _idle_cost(cells: dict[int, dict[str, Measurement]]) -> str:
    """One sentence: what a hit costs the gateway back to back and when it follows an idle wait."""
    c = cells.get(1, {})
    hit, spaced, direct = c.get("hit"), c.get(SPACED_HIT), c.get("direct")
    if not (hit and spaced and direct and all("gateway" in m.cpu_ms for m in (hit, spaced, direct))):
        return ""  # not metered, or the gateway's processes were not
    return (
        f"Idle cost: a cache hit cost the gateway {hit.cpu_ms['gateway']:.2f} ms of CPU back to back and "
        f"{spaced.cpu_ms['gateway']:.2f} ms when each followed {direct.p50_ms:.0f} ms of idling, as a miss "
        f"follows Triton's compute (same requests, same answers); {direct.cpu_ms['gateway']:.2f} ms of that is "
        "the idle gateway's own background work (its CPU per direct request)."
    )


def _cpu_table(cells: dict[int, dict[str, Measurement]]) -> str:
    """CPU milliseconds per request by role, and how many cores were busy, per cell."""
    rows = []
    for conc, c in sorted(cells.items()):
        for phase, m in _phases(c):
            total = _cpu_total(m)
            if total is None:  # not metered
                continue
            costs = [_fmt_cpu(m.cpu_ms.get(role)) for role in ROLES]
            rows.append([str(conc), phase, *costs, f"{total:.2f}", f"{total * m.requests / m.window_s / 1000:.2f}"])
    if not rows:
        return ""
    heads = ["conc.", "path", *(f"{role} ms" for role in ROLES), "total ms", "cores busy"]
    return markdown_table(heads, rows, "ll" + "r" * (len(heads) - 2))


def _table(cells: dict[int, dict[str, Measurement]], verdict: dict[str, Any]) -> str:
    rows = []
    for conc, c in sorted(cells.items()):
        for phase, m in _phases(c):
            rows.append([str(conc), phase, fmt_rate(m.throughput), fmt_ms(m.p50_ms), fmt_ms(m.p99_ms),
                         str(m.requests), str(m.errors)])  # fmt: skip
    metered = any(v["cpu_direct_over_miss"] is not None for v in verdict["per_concurrency"].values())
    ratios = []
    for conc, v in verdict["per_concurrency"].items():
        row = [str(conc), fmt_ratio(v["miss_over_direct"]),
               "–" if v["added_p50_ms"] is None else f"{v['added_p50_ms']:+.2f}",
               fmt_ms(v["hit_p99_ms"]), fmt_rate(v["hit_rps"]), fmt_ratio(v["hit_over_direct"])]  # fmt: skip
        if metered:
            row += [fmt_ratio(v["cpu_direct_over_miss"]), _fmt_cpu(v["gateway_cpu_ms_per_miss"]),
                    _fmt_cpu(v["gateway_cpu_ms_per_hit"])]  # fmt: skip
        ratios.append(row)
    heads = ["conc.", "miss / direct", "added p50 ms", "hit p99 ms", "hit req/s", "hit / direct"]
    if metered:
        heads += ["CPU direct / miss", "gateway CPU ms / miss", "gateway CPU ms / hit"]
    g, met = verdict["goals"], verdict["met"]
    mark = {True: "met", False: "NOT met"}
    cpu = _cpu_table(cells)
    idle = _idle_cost(cells)
    return "\n".join(
        [
            markdown_table(["conc.", "path", "req/s", "p50 ms", "p99 ms", "requests", "errors"], rows, "lllrrrr"),
            "",
            markdown_table(heads, ratios),
            "",
            *([f"CPU per request, by process ({LOAD_GENERATOR} = this benchmark):", "", cpu, ""] if cpu else []),
            *([idle, ""] if idle else []),
            f"- miss throughput ≥ {g['miss_over_direct_min']:.2f} × direct at every concurrency: "
            f"{mark[met['miss_throughput']]}",
            f"- added p50 ≤ {g['added_p50_ms_max']:g} ms at every concurrency: {mark[met['added_p50']]}",
            f"- hit p99 ≤ {g['hit_p99_ms_max']:g} ms with ≥ {g['hit_rps_min']:.0f} req/s: {mark[met['hit']]}"
            + (f" (at concurrency {', '.join(map(str, met['hit_met_at_concurrency']))})" if met["hit"] else ""),
        ]
    )


def _levels(args: argparse.Namespace) -> list[int] | None:
    """The concurrency levels, None (said on stderr) when an option is out of range."""
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        print(f"bench gateway: --concurrency must be integers, got {args.concurrency!r}", file=sys.stderr)
        return None
    if not levels or min(levels) < 1 or args.duration_s <= 0 or args.warmup_s < 0 or args.rounds < 1:
        print("bench gateway: concurrency >= 1, --duration-s > 0, --warmup-s >= 0 and --rounds >= 1 are required",
              file=sys.stderr)  # fmt: skip
        return None
    if args.gateway_url and args.isolate:
        print("bench gateway: --isolate pins the stack it starts; it cannot be used with --gateway-url",
              file=sys.stderr)  # fmt: skip
        return None
    if args.gateway_url and not (args.api_key and args.triton_url):
        print("bench gateway: --gateway-url needs --api-key and --triton-url", file=sys.stderr)
        return None
    return levels


def _settings(args: argparse.Namespace, model: str, levels: list[int], images: Sequence[SampleImage], top_k: int
              ) -> dict[str, Any]:  # fmt: skip
    return {
        "model": model,
        "concurrency": levels,
        "duration_s": args.duration_s,
        "warmup_s": args.warmup_s,
        "rounds": args.rounds,
        **image_settings(images),
        "mean_image_bytes": round(sum(len(i.data) for i in images) / len(images)),
        "top_k": top_k,
        "workers": args.workers or int(os.environ.get("GATEWAY_WORKERS", "1")),
        "gateway_cache": "redis" if os.environ.get("REDIS_URL") else "in-process LRU",
        "load_generator": "raw HTTP/1.1 keep-alive (asyncio streams); Triton direct via client.AsyncTritonClient",
    }


def _run_cells(
    args: argparse.Namespace, model: str, levels: list[int], images: Sequence[SampleImage], top_k: int,
    report: dict[str, Any],
) -> dict[int, dict[str, Measurement]]:  # fmt: skip
    """Every phase at every level: against ``--gateway-url``, or a local stack started (and stopped) here."""
    if args.gateway_url:
        return asyncio.run(_measure(args.gateway_url, args.api_key, args.triton_url, model, levels, images, top_k,
                                    args))  # fmt: skip
    repository = Path(args.repository) if args.repository else repository_path()
    env = {"GATEWAY_WORKERS": str(args.workers)} if args.workers else {}
    log_path = Path(args.out) / "bench-gateway-stack.log"
    with GatewayStack(repository, log_path=log_path, models=[model], env=env) as stack:
        if args.isolate:
            assert stack.pid is not None  # the stack has started
            plan = isolate(stack.pid)
            report["settings"]["cores"] = {role: sorted(cores) for role, cores in plan.items()}
            print("isolated: " + ", ".join(f"{role} on cores {sorted(c)}" for role, c in plan.items()), flush=True)
        return asyncio.run(_measure(stack.gateway_url, stack.api_key, stack.triton_grpc_url, model, levels, images,
                                    top_k, args, meter=CpuMeter(stack.pid)))  # fmt: skip


def main(argv: list[str]) -> int:
    """Run the three phases at each concurrency, print the tables and the goals, write the JSON."""
    args = _parser().parse_args(argv)
    levels = _levels(args)
    if levels is None:
        return 2
    catalog = load_catalog()
    spec = catalog.get(args.model)
    top_k = args.top_k or catalog.top_k
    images = _images(args.images, args.formats)
    report: dict[str, Any] = {
        "benchmark": "gateway",
        "machine": machine(),
        "settings": _settings(args, spec.name, levels, images, top_k),
    }
    print(f"bench gateway: {spec.name}, concurrency {levels}, {len(images)} images "
          f"({', '.join(report['settings']['image_formats'])}), {report['machine']['cores']} cores, load average "
          f"{report['machine']['load_average_1m']}", flush=True)  # fmt: skip
    cells = _run_cells(args, spec.name, levels, images, top_k, report)
    verdict = evaluate(cells)
    report["cells"] = {str(conc): c for conc, c in cells.items()}
    report["ratios"] = {str(k): v for k, v in verdict["per_concurrency"].items()}
    report["goals"], report["met"] = verdict["goals"], verdict["met"]
    mark_load_after(report)
    dated, latest = write_json(report, Path(args.out), "bench-gateway")
    print()
    print(_table(cells, verdict))
    print(f"\nsaved {latest} (and {dated.name})")
    return 0
