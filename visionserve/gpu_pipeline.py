"""The catalog's preprocessing and a backbone, batched with torch on one device (the GPU profile).

One implementation for all three families: the constants come from the same
``imaging.Pipeline`` the CPU path uses, and so do the limits (``open_image``) and the
geometry (``resized_size``, ``crop_box``). It runs inside Triton — copied beside the GPU
model's ``model.py`` with ``imaging.py`` — and in-process for ``bench gpu``'s ceiling. It runs
on a CPU device as well, which is how CI tests the routing, the fallbacks and the geometry.

Decode: baseline JPEGs (YCbCr or grey; no progressive, CMYK or multi-picture files) are decoded
together in one call of the catalog's ``jpeg_decoder``: nvImageCodec on the GPU's hardware JPEG
engines (``NvImageCodecJpeg``), or nvJPEG on the SMs through ``torchvision.io.decode_jpeg``
(``TorchvisionJpeg``, also what a CPU device runs). Every other image (PNG, WebP, BMP, GIF,
progressive or CMYK JPEG, or a JPEG the device decoder refuses) goes to the CPU decoder
(``imaging.decode_rgb``, Pillow) inside the same batch; a corrupt image fails only its own slot.
Geometry: Pillow's antialiased bilinear resize, bit for bit (``PillowResize``: the framework
references resize with Pillow), computed only inside the centre crop, then
``(pixel * scale - mean) / std`` in the model's channel order and layout.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

try:  # inside Triton: the imaging.py copied beside this file, the one model.py imports too
    from imaging import InvalidImage, Pipeline, open_image  # type: ignore[no-redef]
except ImportError:  # in-process
    from visionserve.imaging import InvalidImage, Pipeline, open_image

__all__ = [
    "DEFAULT_GRAPH_BATCH_SIZES",
    "JPEG_DECODERS",
    "JpegDecoder",
    "NvImageCodecJpeg",
    "Overlapped",
    "TorchvisionJpeg",
    "jpeg_decoder",
    "exif_orientation",
    "Backbone",
    "PillowResize",
    "Preprocessor",
    "Prepared",
    "load_onnx_module",
    "nvjpeg_decodable",
    "orient",
    "pillow_coefficients",
]

#: Batch sizes a CUDA graph is captured for; a batch runs in the smallest one that holds it.
DEFAULT_GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_EXIF_ORIENTATION = 0x0112


def nvjpeg_decodable(img: Image.Image) -> bool:
    """True for what nvJPEG's batched decoder handles: a baseline JPEG in YCbCr or grey."""
    if img.format != "JPEG" or img.mode not in {"RGB", "L"}:
        return False  # MPO, CMYK/YCCK Adobe JPEGs and every other format go to the CPU decoder
    return not (img.info.get("progressive") or img.info.get("progression"))


def exif_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: Pillow's exif_transpose ignores it too
        return 1


def orient(chw: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (1-8) to a CHW tensor exactly as ``ImageOps.exif_transpose``."""
    if orientation == 2:
        return chw.flip(2)
    if orientation == 3:
        return chw.flip(1, 2)
    if orientation == 4:
        return chw.flip(1)
    if orientation == 5:
        return chw.transpose(1, 2)
    if orientation == 6:
        return torch.rot90(chw, -1, (1, 2))
    if orientation == 7:
        return chw.transpose(1, 2).flip(1, 2)
    if orientation == 8:
        return torch.rot90(chw, 1, (1, 2))
    return chw


class JpegDecoder(Protocol):
    """Baseline JPEGs -> CHW uint8 tensors on the device; None where it cannot decode one."""

    name: str

    def __call__(self, images: list[bytes]) -> list[torch.Tensor | None]: ...


class TorchvisionJpeg:
    """``torchvision.io.decode_jpeg(list, device=...)``: nvJPEG's batched decoder, on the SMs."""

    name = "torchvision"

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)

    def __call__(self, images: list[bytes]) -> list[torch.Tensor | None]:
        with warnings.catch_warnings():  # read-only bytes: decode_jpeg only reads them
            warnings.simplefilter("ignore", UserWarning)
            raw = [torch.frombuffer(data, dtype=torch.uint8) for data in images]
        try:
            return list(decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad file fails the batched call: decode one by one
            results: list[torch.Tensor | None] = []
            for tensor in raw:
                try:
                    results.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    results.append(None)
            return results


class NvImageCodecJpeg:
    """nvImageCodec: the GPU's hardware JPEG engines (NVJPG) first, its CUDA decoder for the rest.

    Why: nvJPEG through torchvision decodes on the SMs, where it competed with the backbone
    for the whole GPU (docs/benchmarks-gpu.md); the hardware engines sit beside the SMs.
    ``hardware_share`` is the hardware backend's load hint: the share of a batch it takes,
    the CUDA backend the rest (and what the hardware refuses). Decoding runs on the caller's
    current CUDA stream, and the images are handed over by DLPack, so nothing is copied.

    Args:
        device: a CUDA device.
        hardware_share: 0-1, the hardware decoder's share of each batch.
        cpu_threads: the decoder's host threads (Huffman parsing for the hardware engines).
    """

    name = "nvimgcodec"

    def __init__(self, device: torch.device, hardware_share: float, cpu_threads: int) -> None:
        from nvidia import nvimgcodec

        self.device = torch.device(device)
        kinds = nvimgcodec.BackendKind
        backends = [nvimgcodec.Backend(kinds.HW_GPU_ONLY, load_hint=hardware_share), nvimgcodec.Backend(kinds.GPU_ONLY)]
        self._decoder = nvimgcodec.Decoder(
            device_id=self.device.index or 0,
            max_num_cpu_threads=cpu_threads,
            backends=backends,
            options=":fancy_upsampling=1",  # chroma upsampled as libjpeg (Pillow) does
        )
        self._params = nvimgcodec.DecodeParams(apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB)

    def __call__(self, images: list[bytes]) -> list[torch.Tensor | None]:
        stream = torch.cuda.current_stream(self.device).cuda_stream
        decoded = self._decoder.decode(images, params=self._params, cuda_stream=stream)
        return [None if img is None else torch.from_dlpack(img).permute(2, 0, 1) for img in decoded]


#: What the catalog's ``jpeg_decoder`` names.
JPEG_DECODERS = ("nvimgcodec", "torchvision")


def jpeg_decoder(
    kind: str, device: torch.device, hardware_share: float, cpu_threads: int = 2
) -> tuple[JpegDecoder, str | None]:
    """The decoder ``kind`` names on ``device``; torchvision's, and why, where that one cannot run."""
    device = torch.device(device)
    if kind not in JPEG_DECODERS:
        raise ValueError(f"unknown JPEG decoder {kind!r}; one of {', '.join(JPEG_DECODERS)}")
    if kind == "nvimgcodec":
        if device.type != "cuda":
            return TorchvisionJpeg(device), "nvImageCodec decodes on a GPU; this is a CPU device"
        try:
            return NvImageCodecJpeg(device, hardware_share, cpu_threads), None
        except Exception as exc:  # noqa: BLE001 - not installed, no hardware decoder, driver too old…
            return TorchvisionJpeg(device), f"nvImageCodec unavailable ({type(exc).__name__}: {exc})"
    return TorchvisionJpeg(device), None


@dataclass
class Prepared:
    """A preprocessed batch: one row per image (zeros where it failed) and each image's error."""

    batch: torch.Tensor
    errors: list[str | None]
    decoded_on_device: int = 0
    decoded_on_cpu: int = 0


class Preprocessor:
    """Encoded images -> a model-ready batch on ``device`` in ``dtype``.

    Args:
        pipeline: the catalog preprocessing (``ModelSpec.pipeline_params()``).
        device: where decoding, resizing and normalising run.
        dtype: the batch's dtype (float16 for the GPU profile's fp16 backbones).
        jpeg: the baseline-JPEG decoder (``jpeg_decoder``); torchvision's when None.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        jpeg: JpegDecoder | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.device = torch.device(device)
        self.dtype = dtype
        self.jpeg = jpeg if jpeg is not None else TorchvisionJpeg(self.device)
        std = torch.tensor(pipeline.std, dtype=torch.float32)
        self._mul = (pipeline.scale / std).view(1, 3, 1, 1).to(self.device)
        self._add = (-torch.tensor(pipeline.mean, dtype=torch.float32) / std).view(1, 3, 1, 1).to(self.device)
        self._resize = PillowResize(pipeline, self.device)

    def __call__(self, images: Sequence[bytes]) -> Prepared:
        """Preprocess a batch; never raises for a bad image (its error is in ``errors``)."""
        errors: list[str | None] = [None] * len(images)
        decoded: dict[int, torch.Tensor] = {}
        on_device: list[tuple[int, int]] = []  # (index, EXIF orientation)
        on_cpu: list[int] = []
        for i, data in enumerate(images):
            try:
                header = open_image(
                    data, max_pixels=self.pipeline.max_pixels, max_aspect_ratio=self.pipeline.max_aspect_ratio
                )
            except InvalidImage as exc:
                errors[i] = str(exc)
                continue
            if nvjpeg_decodable(header):
                on_device.append((i, exif_orientation(header)))
            else:
                on_cpu.append(i)
        on_cpu += self._decode_jpegs(images, on_device, decoded)
        n_device = len(decoded)
        for i in on_cpu:
            try:
                rgb = np.array(self.pipeline.decode(images[i]))  # writable: torch refuses read-only arrays
            except InvalidImage as exc:
                errors[i] = str(exc)
                continue
            decoded[i] = torch.from_numpy(rgb).permute(2, 0, 1).to(self.device, non_blocking=True)
        batch = self._geometry_and_normalize(decoded, len(images))
        return Prepared(batch, errors, n_device, len(decoded) - n_device)

    def _decode_jpegs(
        self, images: Sequence[bytes], wanted: list[tuple[int, int]], out: dict[int, torch.Tensor]
    ) -> list[int]:
        """Decode ``wanted`` together; returns the indices the device decoder could not decode."""
        if not wanted:
            return []
        try:
            results = self.jpeg([images[i] for i, _ in wanted])
        except Exception:  # noqa: BLE001 - a decoder failing a whole batch: every image goes to the CPU
            results = [None] * len(wanted)
        rejected = []
        for (i, orientation), chw in zip(wanted, results, strict=True):
            if chw is None:
                rejected.append(i)  # the CPU decoder says what is wrong with it, or decodes it
            else:
                out[i] = orient(chw, orientation)
        return rejected

    def _geometry_and_normalize(self, decoded: dict[int, torch.Tensor], count: int) -> torch.Tensor:
        size = self.pipeline.output_size
        out = torch.zeros((count, 3, size, size), dtype=torch.float32, device=self.device)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, chw in decoded.items():
            groups[(chw.shape[2], chw.shape[1])].append(i)  # (width, height): resize equal sizes together
        for (width, height), members in groups.items():
            x = self._resize.crop(torch.stack([decoded[i] for i in members]), width, height)
            if self.pipeline.channel_order == "BGR":
                x = x.flip(1)  # mean and std are given in the model's channel order
            out[members] = x.float() * self._mul + self._add  # failed rows stay zeros
        out = out.to(self.dtype)
        if self.pipeline.layout == "NHWC":
            return out.permute(0, 2, 3, 1).contiguous()
        return out.contiguous(memory_format=torch.channels_last)


class Overlapped:
    """Preprocess a batch's next chunk while the backbone runs the current one, in one process.

    Why: much of a batch's preprocessing is host work (Pillow's header checks, nvJPEG's host
    phase, per-image tensor calls) while the backbone is GPU work, so chunked, the host prepares
    chunk k+1 while the GPU runs chunk k: on the H200 resnet18 served 2-5 % more, with a lower
    p99, side by side (docs/benchmarks-gpu.md). The GPU halves do not overlap: nvJPEG's batched
    decode waits for the whole device on every call (measured there too), so a decode issued
    while a backbone runs waits for it. The preprocessing thread has its own CUDA stream and the
    backbone waits on an event. A chunk should be one of the backbone's CUDA-graph buckets.

    Args:
        pre: the model's preprocessing.
        net: the model's backbone.
        chunk: images per chunk (the catalog's ``profiles.gpu.pipeline_chunk``).
    """

    def __init__(self, pre: Preprocessor, net: Backbone, chunk: int) -> None:
        self.pre, self.net, self.chunk = pre, net, max(1, chunk)
        self.device = pre.device
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess")
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def _prepare(self, images: Sequence[bytes]) -> tuple[Prepared, torch.cuda.Event | None]:
        if self._stream is None:
            return self.pre(images), None
        with torch.cuda.stream(self._stream):
            prepared = self.pre(images)
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return prepared, ready

    def __call__(self, images: Sequence[bytes]) -> tuple[torch.Tensor, list[str | None]]:
        """Probabilities [n, classes] (float32, on the device) and each image's error or None."""
        chunks = [images[i : i + self.chunk] for i in range(0, len(images), self.chunk)]
        pending = self._worker.submit(self._prepare, chunks[0])
        probabilities: list[torch.Tensor] = []
        errors: list[str | None] = []
        for k in range(len(chunks)):
            prepared, ready = pending.result()
            if k + 1 < len(chunks):
                pending = self._worker.submit(self._prepare, chunks[k + 1])
            if ready is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(ready)
                prepared.batch.record_stream(current)  # allocated on the side stream, used on this one
            probabilities.append(self.net(prepared.batch))
            errors += prepared.errors
        return (probabilities[0] if len(probabilities) == 1 else torch.cat(probabilities)), errors

    def close(self) -> None:
        self._worker.shutdown(wait=True)


#: Pillow's fixed-point precision for 8-bit resampling (``Resample.c``: 32 - 8 - 2 bits).
_PRECISION_BITS = 22


class PillowResize:
    """Pillow's antialiased bilinear resize, bit for bit, on uint8 tensors on any device.

    Pillow resamples in two passes (horizontal first unless the height shrinks much more),
    each with fixed-point coefficients and its result rounded to 8 bits; this does the same arithmetic in int32
    (gathers and multiply-adds, so it runs as well on a GPU as on a CPU device). Only the
    output pixels inside the centre crop are computed: resizing then cropping, as the
    framework does, gives the same pixels as computing just those rows and columns.

    Args:
        pipeline: the catalog preprocessing (sizes and crop).
        device: where the coefficient tables live.
    """

    def __init__(self, pipeline: Pipeline, device: torch.device) -> None:
        self.pipeline = pipeline
        self.device = torch.device(device)
        self._tables: dict[tuple[int, int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def crop(self, batch: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """[n, 3, height, width] uint8 -> the resized, centre-cropped [n, 3, s, s] uint8."""
        new_w, new_h = self.pipeline.resized_size(width, height)
        left, top, right, bottom = self.pipeline.crop_box(new_w, new_h) or (0, 0, new_w, new_h)
        passes = [(3, width, new_w, left, right), (2, height, new_h, top, bottom)]
        # Pillow 13's rule (Resample.c; the Triton images pin 13.0.0): when the height shrinks by
        # more than twice what the width does, the vertical pass runs first. The order changes
        # the intermediate rounding.
        if 0 < height - new_h and height - new_h > (width - new_w) * 2:
            passes.reverse()
        for dim, size, new, first, last in passes:
            if new != size:
                batch = self._pass(batch, self._table(size, new, first, last), dim=dim)
            else:
                batch = batch.narrow(dim, first, last - first)
        return batch

    def _table(self, size: int, new: int, first: int, last: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (size, new, first, last)
        table = self._tables.get(key)
        if table is None:
            if len(self._tables) >= 4096:  # sizes seen are unbounded; tables are cheap to rebuild
                self._tables.clear()
            index, weight = pillow_coefficients(size, new, first, last)
            table = (torch.from_numpy(index).to(self.device), torch.from_numpy(weight).to(self.device))
            self._tables[key] = table
        return table

    @staticmethod
    def _pass(batch: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor], dim: int) -> torch.Tensor:
        if batch.is_cuda and _resample_kernel is not None:
            return _resample_with_kernel(batch, table, dim)
        return _resample_with_torch(batch, table, dim)


def _resample_with_torch(batch: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor], dim: int) -> torch.Tensor:
    """One resampling pass as torch operations: a gather and an int32 multiply-add per tap.

    Runs on any device; on a GPU it launches four kernels per tap and materialises each
    tap's int32 product, which is why CUDA devices use ``_resample_kernel`` instead.
    """
    index, weight = table
    shape = [1, 1, 1, 1]
    shape[dim] = index.shape[0]
    acc = None
    for tap in range(index.shape[1]):
        term = batch.index_select(dim, index[:, tap]).to(torch.int32) * weight[:, tap].view(shape)
        acc = term if acc is None else acc.add_(term)
    assert acc is not None
    acc.add_(1 << (_PRECISION_BITS - 1))
    return acc.bitwise_right_shift_(_PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def _resample_with_kernel(batch: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor], dim: int) -> torch.Tensor:
    """One resampling pass as a single Triton kernel: each output byte gathers its taps once."""
    index, weight = table
    src = batch.contiguous()
    shape = list(src.shape)
    size, new, taps = shape[dim], index.shape[0], index.shape[1]
    inner = int(np.prod(shape[dim + 1 :], dtype=np.int64))
    shape[dim] = new
    out = torch.empty(shape, dtype=torch.uint8, device=src.device)
    total = out.numel()
    if total:
        block = 1024
        _resample_kernel[(triton.cdiv(total, block),)](
            src, out, index, weight, total, new, inner, size, taps, _PRECISION_BITS, BLOCK=block
        )
    return out


try:  # Triton (the kernel language) ships with CUDA builds of torch; CPU builds and CI lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the torch build
    _resample_kernel = None
else:

    @triton.jit
    def _resample_kernel(src, dst, index, weight, total, new, inner, size, taps, precision, BLOCK: tl.constexpr):
        """``dst[o, j, i] = clip8(sum_t src[o, index[j, t], i] * weight[j, t])`` over flat output offsets.

        The same fixed-point arithmetic as ``_resample_with_torch`` (and Pillow's
        ``ImagingResampleHorizontal/Vertical_8bpc``): int32 products, half added, shifted.
        """
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < total
        i = offs % inner
        j = (offs // inner) % new
        base = (offs // (inner * new)) * size * inner + i
        acc = tl.zeros([BLOCK], dtype=tl.int32)
        for t in range(taps):
            k = tl.load(index + j * taps + t, mask=mask, other=0)
            w = tl.load(weight + j * taps + t, mask=mask, other=0)
            x = tl.load(src + base + k * inner, mask=mask, other=0)
            acc += x.to(tl.int32) * w
        acc = (acc + (1 << (precision - 1))) >> precision
        acc = tl.minimum(tl.maximum(acc, 0), 255)
        tl.store(dst + offs, acc.to(tl.uint8), mask=mask)


def pillow_coefficients(size: int, new: int, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and int32 weights of output pixels [first, last) of a ``size`` -> ``new`` resize.

    ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` of Pillow's ``Resample.c`` for its
    bilinear (triangle) filter, in float64 as there: the support widens with the reduction
    factor (that is the antialiasing), weights are normalised per output pixel, then scaled to
    ``_PRECISION_BITS`` and rounded. Taps past a pixel's window get weight 0.
    """
    scale = size / new
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear filter's support is 1
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(first, last, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # C's (int) truncates
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), size)
    taps = xmin[:, None] + np.arange(ksize)[None, :]
    weights = 1.0 - np.abs((taps - center[:, None] + 0.5) * (1.0 / filterscale))  # x * ss, as there
    weights = np.where((weights > 0) & (taps < xmax[:, None]), weights, 0.0)
    total = np.cumsum(weights, axis=1)[:, -1:]  # summed left to right, as Pillow's loop does
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)
    fixed = np.trunc(0.5 + weights * (1 << _PRECISION_BITS)).astype(np.int32)
    return np.minimum(taps, size - 1), fixed


def load_onnx_module(path: str) -> torch.nn.Module:
    """The exported ONNX backbone as a torch module (onnx2torch): one artifact, torch kernels.

    The repository keeps ONNX for native backends; converting at load time means the GPU
    profile needs neither TorchScript (deprecated in torch) nor a torch-version-bound file.
    """
    import onnx
    from onnx2torch import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = convert(onnx.load(path)).eval()
    return _fold_constant_arguments(module)


def _fold_constant_arguments(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Make pads and squeeze axes that are initializers static arguments.

    onnx2torch keeps opset-13 ``Pad``/``Squeeze`` arguments as tensors and reads them per call
    (``pads.tolist()``, iterating ``axes``): on a GPU that is a device-to-host sync, which makes
    CUDA-graph capture fail (tf2onnx writes both for the Keras models). Folded, the module does
    the same arithmetic without reading device memory on the host.
    """
    from onnx2torch.node_converters.pad import OnnxPadDynamic, OnnxPadStatic
    from onnx2torch.node_converters.squeeze import OnnxSqueezeDynamicAxes, OnnxSqueezeStaticAxes

    def constant(arg: object) -> torch.Tensor | None:
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
            value = module
            for part in str(arg.target).split("."):
                value = getattr(value, part)
            return value  # type: ignore[return-value]
        return None

    changed = False
    for node in list(module.graph.nodes):
        if node.op != "call_module":
            continue
        target = module.get_submodule(str(node.target))
        args = list(node.args)
        values = [constant(a) for a in args[1:]]
        if not values or any(v is None for v in values):
            continue  # an argument computed in the graph stays dynamic
        if isinstance(target, OnnxPadDynamic):
            value = float(values[1]) if len(values) > 1 else 0.0
            static: torch.nn.Module = OnnxPadStatic.create_from_onnx_params(
                [int(v) for v in values[0].tolist()], onnx_mode=_ONNX_PAD_MODES[target.mode], constant_value=value
            )
        elif isinstance(target, OnnxSqueezeDynamicAxes) and len(values) == 1:
            static = OnnxSqueezeStaticAxes(axes=[int(v) for v in values[0].tolist()])
        else:
            continue
        module.add_submodule(str(node.target), static)
        node.args = (args[0],)
        changed = True
    if changed:
        module.graph.eliminate_dead_code()
        module.recompile()
    return module


#: torch's pad mode -> ONNX's, for rebuilding a pad from onnx2torch's dynamic one.
_ONNX_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


class Backbone:
    """A probabilities-out module on one device, replayed as CUDA graphs per batch-size bucket.

    Args:
        module: the backbone (ends in softmax).
        device: where it runs.
        dtype: float16 on the GPU profile; float32 on a CPU device.
        input_shape: one item's shape (no batch axis), in the model's layout.
        graph_batch_sizes: buckets captured as CUDA graphs (ignored on a CPU device). A batch
            is padded to the smallest bucket that holds it; larger ones run in slices.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        input_shape: Sequence[int],
        graph_batch_sizes: Sequence[int] = DEFAULT_GRAPH_BATCH_SIZES,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.input_shape = tuple(input_shape)
        self.channels_last = len(self.input_shape) == 3 and self.input_shape[0] == 3
        module = module.to(device=self.device, dtype=dtype).eval()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.buckets = sorted(set(graph_batch_sizes))
        self.graph_error: str | None = None
        if self.device.type == "cuda" and self.buckets:
            try:
                self._capture(self.buckets[::-1])
            except Exception as exc:  # noqa: BLE001 - a module that cannot be captured still runs eagerly
                self.graphs.clear()
                self.graph_error = f"{type(exc).__name__}: {exc}"

    def _blank(self, batch: int) -> torch.Tensor:
        x = torch.zeros((batch, *self.input_shape), device=self.device, dtype=self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _capture(self, sizes: list[int]) -> None:
        pool = torch.cuda.graph_pool_handle()
        for batch in sizes:  # largest first: smaller graphs reuse its memory pool
            static_in = self._blank(batch)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.inference_mode(), torch.cuda.stream(side):
                for _ in range(3):  # cuDNN picks its algorithms outside the capture
                    self.module(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph, pool=pool):
                static_out = self.module(static_in)
            self.graphs[batch] = (graph, static_in, static_out)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Float32 probabilities [n, classes] for a batch in the model's dtype and layout.

        On a GPU every batch runs at a bucket size, graph or not: with cuDNN's autotuner on,
        each new batch shape would otherwise cost an algorithm search on the request path.
        """
        if self.device.type != "cuda" or not self.buckets:
            with torch.inference_mode():
                return self.module(batch.to(self.dtype)).float()
        largest = self.buckets[-1]
        parts = []
        for start in range(0, batch.shape[0], largest):
            chunk = batch[start : start + largest]
            n = chunk.shape[0]
            bucket = next(b for b in self.buckets if b >= n)
            if bucket in self.graphs:
                graph, static_in, static_out = self.graphs[bucket]
                static_in[:n].copy_(chunk)
                graph.replay()
                parts.append(static_out[:n].float())  # a copy: the next replay overwrites
            else:
                padded = self._blank(bucket)
                padded[:n].copy_(chunk)
                with torch.inference_mode():
                    parts.append(self.module(padded)[:n].float())
        return parts[0] if len(parts) == 1 else torch.cat(parts)
