"""``visionserve bench video``: frames classified per second through ``POST /v1/classify/video``.

One clip at a time (a 30 s clip sampled once a second by default), through the real gateway
of a local stack started here, beside the same number of frames sent straight to Triton by the
client library (``AsyncTritonClient.classify_frames``: the same JPEGs, the same batches, every
class asked). The two alternate round by round on clips never sent before, so neither
Triton's response cache nor the gateway's answers one. The ratio is what the route adds to
the Triton work: the upload, sampling in a decode process (demux, decode, JPEG encode of each
sampled frame), the cache, the history row. The direct side gets its frames decoded before the
clock starts. Results go to ``reports/bench-video.json`` (and a dated copy).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.report import DEFAULT_REPORT_DIR, machine, markdown_table, write_json
from client import CLASSIFY_VIDEO_PATH, AsyncTritonClient
from serving.stack import GatewayStack
from visionserve.catalog import load_catalog
from visionserve.samples.videos import make_video
from visionserve.settings import repository_path
from visionserve.video import DEFAULT_VIDEO_LIMITS, Sampling, sample_video

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve bench video", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=load_catalog().names[0], help="catalog model (default: the first)")
    p.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    p.add_argument("--every-seconds", type=float, default=1.0, help="sampling interval (default 1)")
    p.add_argument("--fps", type=int, default=25, help="clip frame rate (default 25)")
    p.add_argument("--size", default="640x360", help="clip size WxH (default 640x360)")
    p.add_argument("--rounds", type=int, default=3, help="clips per side, alternating (default 3)")
    p.add_argument("--repository", help="model repository (default: model_repository/)")
    p.add_argument("--out", default=str(DEFAULT_REPORT_DIR), help="report directory")
    return p


def _clips(args: argparse.Namespace, count: int) -> list[bytes]:
    width, height = (int(v) for v in args.size.lower().split("x"))
    return [
        make_video(
            "mp4", "h264", seconds=args.seconds, fps=args.fps, size=(width + 16 * i, height), gop=2 * args.fps, scenes=3
        )  # fmt: skip
        for i in range(count)
    ]


async def _gateway_round(http: httpx.AsyncClient, clip: bytes, model: str, every_s: float) -> tuple[int, float]:
    started = time.perf_counter()
    r = await http.post(CLASSIFY_VIDEO_PATH, files={"video": ("clip.mp4", clip, "video/mp4")},
                        data={"model": model, "every_seconds": str(every_s)})  # fmt: skip
    elapsed = time.perf_counter() - started
    if r.status_code != 200 or r.json()["cached"]:
        raise RuntimeError(f"bench video: the gateway answered {r.status_code}: {r.text[:300]}")
    return len(r.json()["frames"]), elapsed


async def _direct_round(triton: AsyncTritonClient, clip: bytes, model: str, every_s: float) -> tuple[int, float]:
    spec = load_catalog().get(model)
    info, frames = sample_video(clip, "mp4", Sampling(every_s), DEFAULT_VIDEO_LIMITS)
    started = time.perf_counter()
    await triton.classify_frames(frames, model, top_k=load_catalog().top_k, batch_size=spec.max_batch_size,
                                 num_classes=spec.num_classes, duration_s=info.duration_s)  # fmt: skip
    return len(frames), time.perf_counter() - started


async def _measure(stack: GatewayStack, clips: list[bytes], args: argparse.Namespace) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"gateway": [], "direct": []}
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=300) as http,
        AsyncTritonClient(stack.triton_grpc_url, protocol="grpc", timeout_s=300) as triton,
    ):
        await _gateway_round(http, clips[0], args.model, args.every_seconds)  # warm-up: decode processes, channel
        await _direct_round(triton, clips[1], args.model, args.every_seconds)
        for r in range(args.rounds):
            for side, clip in (("gateway", clips[2 + 2 * r]), ("direct", clips[3 + 2 * r])):
                run = _gateway_round(http, clip, args.model, args.every_seconds) if side == "gateway" else \
                    _direct_round(triton, clip, args.model, args.every_seconds)  # fmt: skip
                frames, elapsed = await run
                rates[side].append(frames / elapsed)
                print(f"round {r + 1} {side}: {frames} frames in {elapsed:.2f} s = {frames / elapsed:.1f} frames/s",
                      flush=True)  # fmt: skip
    return rates


def main(argv: list[str]) -> int:
    """Generate the clips, start a stack, alternate the two sides, print the table, write the JSON."""
    args = _parser().parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.every_seconds <= 0:
        print("bench video: --rounds >= 1, --seconds > 0 and --every-seconds > 0 are required")
        return 2
    print(f"making {2 * args.rounds + 2} clips of {args.seconds:g} s ({args.size}, {args.fps} fps)...", flush=True)
    clips = _clips(args, 2 * args.rounds + 2)
    repository = Path(args.repository) if args.repository else repository_path()
    log_path = Path(args.out) / "bench-video-stack.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with GatewayStack(repository, log_path=log_path, models=[args.model]) as stack:
        rates = asyncio.run(_measure(stack, clips, args))
    median = {side: sorted(v)[len(v) // 2] for side, v in rates.items()}
    ratio = median["gateway"] / median["direct"]
    rows = [["gateway POST /v1/classify/video", "gateway"], ["Triton direct, same frames", "direct"]]
    table = [[label, f"{median[side]:.1f}", " ".join(f"{v:.1f}" for v in rates[side])] for label, side in rows]
    table.append(["gateway / direct", f"{ratio:.2f}x", ""])
    print(markdown_table(["path", "frames/s (median)", "rounds"], table))
    report: dict[str, Any] = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"clip_bytes": [len(c) for c in clips]},
        "frames_per_s": rates,
        "median_frames_per_s": median,
        "gateway_over_direct": ratio,
    }
    latest, _ = write_json(report, Path(args.out), "bench-video")
    print(f"report: {latest}")
    return 0
