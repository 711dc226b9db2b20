"""What bounds JPEG -> top-5 on one GPU, outside Triton: ``python -m bench.gpu_bounds [seconds]``.

``bench gpu`` measures the served ensemble; this asks what any pipeline on the same GPU could
reach, so that a served figure can be judged against it (issue 13). Per model it measures, in
one process: the backbone alone (fp16, channels_last, CUDA graph, batch 256), then a coupled
pipeline in which decode threads (each on its own CUDA stream) feed batches through a bounded
queue to the backbone thread, with torchvision's nvJPEG and with nvImageCodec's hardware
engines (one decoder per thread: one nvImageCodec decoder is not safe to share between
threads). For resnet50 it also runs each kind of work beside the backbone in another thread
(``side_by_side``): a plain kernel interleaves with it, while a device-wide synchronisation
(``cudaMalloc`` + ``cudaFree``) and both nvJPEG decoders wait for it. Then the same pipeline in
2 and 4 processes started together, whose rates add up only if separate CUDA contexts run side
by side. The backbones are torchvision's architectures with random weights (speed does not
depend on the values) and the JPEGs are 640x480, quality 90.

The nets and the preprocessing here are deliberately not the GPU model's classes: this is a
bound for any implementation, and the served path is compared against it. It needs a CUDA GPU
and prints JSON (one line per finished figure, so a run cut short still reports).
"""

from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable

import numpy as np

BATCH = 256
MODELS = ("resnet18", "resnet50", "mobilenet_v2")


def jpegs(n: int = BATCH, width: int = 640, height: int = 480, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (smooth colour fields plus grain): entropy like a camera's, ~100 KB."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC)).astype(np.int16)
        grain = rng.integers(-12, 12, (height, width, 3))
        buf = io.BytesIO()
        Image.fromarray((smooth + grain).clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class _Lab:
    """The torch half: needs CUDA, imported only when a GPU is there."""

    def __init__(self) -> None:
        import torch
        import torch.nn.functional as functional
        import torchvision

        self.torch, self.functional, self.torchvision = torch, functional, torchvision
        self.device = torch.device("cuda:0")
        torch.backends.cudnn.benchmark = True
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1) * 255

    def graphed_net(self, name: str):
        """(graph, static input, static probabilities) of ``name`` at batch 256, fp16."""
        torch = self.torch
        net = getattr(self.torchvision.models, name)().to(self.device, torch.float16).eval()
        net = net.to(memory_format=torch.channels_last)
        x = torch.zeros(BATCH, 3, 224, 224, device=self.device, dtype=torch.float16)
        x = x.contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(3):  # cuDNN picks its algorithms outside the capture
                net(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            y = torch.softmax(net(x).float(), 1)
        return graph, x, y

    def torchvision_decoder(self) -> Callable:
        from torchvision.io import ImageReadMode, decode_jpeg

        torch = self.torch

        def decode(data: list[bytes], stream):
            with warnings.catch_warnings():  # read-only bytes: decode_jpeg only reads them
                warnings.simplefilter("ignore", UserWarning)
                raw = [torch.frombuffer(d, dtype=torch.uint8) for d in data]
            with torch.cuda.stream(stream):
                return list(decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device))

        return decode

    def hardware_decoder(self, cpu_threads: int = 2) -> Callable:
        from nvidia import nvimgcodec

        decoder = nvimgcodec.Decoder(
            device_id=0,
            max_num_cpu_threads=cpu_threads,
            backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.HW_GPU_ONLY)],
        )
        params = nvimgcodec.DecodeParams(apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB)
        torch = self.torch

        def decode(data: list[bytes], stream):
            out = decoder.decode(data, params=params, cuda_stream=stream.cuda_stream)
            with torch.cuda.stream(stream):
                return [torch.from_dlpack(i).permute(2, 0, 1) for i in out if i is not None]

        return decode

    def prep(self, decoded, stream):
        """Resize to 256 on the short side, centre-crop 224, normalise, fp16 channels_last."""
        with self.torch.cuda.stream(stream):
            x = self.torch.stack(decoded).float()
            x = self.functional.interpolate(x, size=(256, 341), mode="bilinear", antialias=True)[:, :, 16:240, 58:282]
            return ((x - self.mean) / self.std).half().contiguous(memory_format=self.torch.channels_last)

    def rate(self, step: Callable[[], object], seconds: float) -> float:
        """Batches of 256 per second of ``step`` run back to back, synchronised at both ends."""
        step()
        self.torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += 1
        self.torch.cuda.synchronize()
        return n * BATCH / (time.perf_counter() - t0)

    def pipeline(
        self, make_decoder: Callable[[], Callable], graphed, data: list[bytes], seconds: float, producers: int = 1
    ) -> float:
        """Images/s through decode threads -> bounded queue -> the backbone thread (top-5 to the host)."""
        torch = self.torch
        graph, x, y = graphed
        batches: queue.Queue = queue.Queue(maxsize=3)
        stop = threading.Event()

        def produce() -> None:
            stream, decode = torch.cuda.Stream(), make_decoder()
            while not stop.is_set():
                batch = self.prep(decode(data, stream), stream)
                ready = torch.cuda.Event()
                ready.record(stream)
                batches.put((batch, ready))

        threads = [threading.Thread(target=produce, daemon=True) for _ in range(producers)]
        for thread in threads:
            thread.start()
        stream, done, seen, t0 = torch.cuda.Stream(), 0, 0, 0.0
        with torch.cuda.stream(stream):
            while True:
                batch, ready = batches.get()
                stream.wait_event(ready)
                batch.record_stream(stream)
                x.copy_(batch)
                graph.replay()
                top = y.topk(5, 1).indices.cpu()
                seen += 1
                if seen == 3:  # two batches of warm-up
                    t0 = time.perf_counter()
                elif seen > 3:
                    done += top.shape[0]
                    if time.perf_counter() - t0 > seconds:
                        break
        elapsed = time.perf_counter() - t0
        stop.set()
        for thread in threads:
            while thread.is_alive():
                while not batches.empty():
                    batches.get()
                thread.join(timeout=0.1)
        return done / elapsed


def side_by_side(steps: list[tuple[Callable[[], object], int, Callable[[], object]]], seconds: float) -> list[float]:
    """Items/s of each ``(step, items per call, wait)``, every one in its own thread, over the same seconds.

    Why: whether two kinds of GPU work share the GPU shows in whether each keeps its rate beside
    the other. ``wait`` (the step's stream's synchronize) makes a rate count finished work, not
    what was queued; all threads start together after one warm-up call each.
    """
    rates = [0.0] * len(steps)
    start = threading.Barrier(len(steps))

    def run(i: int, step: Callable[[], object], per: int, wait: Callable[[], object]) -> None:
        step()
        wait()
        start.wait()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            wait()
            n += 1
        rates[i] = n * per / (time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(i, *step)) for i, step in enumerate(steps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rates


def _beside_the_backbone(lab: _Lab, graphed, data: list[bytes], seconds: float, record: Callable) -> None:
    """Each kind of work alone, then beside the backbone replaying in another thread, in one context.

    A small kernel on another stream keeps most of its rate (kernels interleave); a
    ``cudaMalloc`` + ``cudaFree`` (what ``empty_cache`` does) waits for the whole device, so it
    runs once per backbone batch. The decoders show which of the two they behave like.
    """
    torch = lab.torch
    graph, net_stream, other = graphed[0], torch.cuda.Stream(), torch.cuda.Stream()
    probe = torch.ones(1 << 22, device=lab.device)
    tv, hw = lab.torchvision_decoder(), lab.hardware_decoder()

    def backbone() -> None:
        with torch.cuda.stream(net_stream):
            graph.replay()

    def kernel() -> None:
        with torch.cuda.stream(other):
            probe.mul_(1.0)

    def malloc_free() -> None:
        with torch.cuda.stream(other):
            torch.empty(1 << 20, dtype=torch.uint8, device=lab.device).fill_(1)
        torch.cuda.empty_cache()

    work = {
        "small kernel": (kernel, 1),
        "cudaMalloc+cudaFree": (malloc_free, 1),
        "nvJPEG decode b64": (lambda: tv(data[:64], other), 64),
        "hardware decode b64": (lambda: hw(data[:64], other), 64),
    }
    for name, (step, per) in work.items():
        alone = side_by_side([(step, per, other.synchronize)], seconds)[0]
        net, beside = side_by_side([(backbone, BATCH, net_stream.synchronize), (step, per, other.synchronize)], seconds)
        record(f"beside the resnet50 backbone: {name}", {"alone": alone, "beside": beside, "backbone": net})


def _child(model: str, decoder: str, start_at: float, seconds: float) -> None:
    lab = _Lab()
    data, graphed = jpegs(seed=os.getpid() % 1000), lab.graphed_net(model)
    make = lab.torchvision_decoder if decoder == "torchvision" else lab.hardware_decoder
    lab.pipeline(make, graphed, data, 0.5)
    while time.time() < start_at:  # every process measures over the same seconds
        time.sleep(0.01)
    print(json.dumps({"rate": lab.pipeline(make, graphed, data, seconds)}), flush=True)


def _processes(model: str, decoder: str, count: int, seconds: float) -> list[float | None]:
    start_at = time.time() + 20
    command = [sys.executable, "-m", "bench.gpu_bounds", "--child", model, decoder, str(start_at), str(seconds)]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(count)
    ]
    rates: list[float | None] = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        lines = out.strip().splitlines()
        rates.append(json.loads(lines[-1])["rate"] if lines else None)
    return rates


def run(seconds: float = 3.0, models: tuple[str, ...] = MODELS) -> dict[str, object]:
    """Every figure of the module docstring, printed as it is measured; the whole dict returned."""
    lab = _Lab()
    torch = lab.torch
    result: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    data = jpegs()
    result["jpeg_kb"] = round(sum(map(len, data)) / len(data) / 1024, 1)

    def record(key: str, value: object) -> None:
        result[key] = value
        print(json.dumps({key: value}), flush=True)

    stream, tv, hw = torch.cuda.Stream(), lab.torchvision_decoder(), lab.hardware_decoder(4)
    record("decode torchvision alone", lab.rate(lambda: tv(data, stream), seconds))
    record("decode hardware alone", lab.rate(lambda: hw(data, stream), seconds))
    record("decode+prep torchvision alone", lab.rate(lambda: lab.prep(tv(data, stream), stream), seconds))
    for model in models:
        graphed = lab.graphed_net(model)
        record(f"{model} backbone alone", lab.rate(graphed[0].replay, seconds))
        if model == "resnet50":
            _beside_the_backbone(lab, graphed, data, seconds, record)
        record(f"{model} pipeline torchvision x1", lab.pipeline(lab.torchvision_decoder, graphed, data, seconds))
        for producers in (1, 2, 3):
            record(
                f"{model} pipeline hardware x{producers}",
                lab.pipeline(lab.hardware_decoder, graphed, data, seconds, producers),
            )
        del graphed
        torch.cuda.empty_cache()
    for count in (2, 4):
        record(f"resnet50 pipeline hardware, {count} processes", _processes("resnet50", "hardware", count, seconds))
    record("resnet50 pipeline torchvision, 2 processes", _processes("resnet50", "torchvision", 2, seconds))
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2], float(argv[3]), float(argv[4]))
        return 0
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        print("bench.gpu_bounds needs a CUDA GPU and torch with CUDA; none here", file=sys.stderr)
        return 2
    run(float(argv[0]) if argv else 3.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
