"""The GPU profile's preprocessing and backbone runner, on a CPU device (what CI can run).

The same code runs on a GPU; there the JPEG route is nvJPEG instead of torchvision's CPU
libjpeg. Geometry and normalisation are compared against ``imaging.Pipeline`` — the CPU path,
parity-tested against the frameworks — on identical decoded pixels.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from visionserve.catalog import load_catalog
from visionserve.gpu_pipeline import (
    Backbone,
    Overlapped,
    PillowResize,
    Preprocessor,
    TorchvisionJpeg,
    jpeg_decoder,
    nvjpeg_decodable,
    orient,
)
from visionserve.imaging import open_image
from visionserve.samples import base_photos, sample_images

CATALOG = load_catalog()
CPU = torch.device("cpu")


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(size: tuple[int, int] = (320, 240)) -> Image.Image:
    return base_photos()[0].resize(size)


@pytest.mark.parametrize("spec", CATALOG.models.values(), ids=CATALOG.names)
def test_geometry_and_normalisation_match_the_cpu_pipeline(spec) -> None:  # noqa: ANN001
    """Lossless formats decode to identical pixels on both paths: what differs is the geometry."""
    pipeline = spec.pipeline(use_draft=False)
    images = [s.data for s in sample_images(12, seed=7, formats=("PNG", "BMP", "WEBP", "GIF"))]
    prepared = Preprocessor(pipeline, CPU)(images)
    assert prepared.errors == [None] * len(images)
    expected = pipeline.batch(images)
    got = prepared.batch.numpy()
    assert got.shape == expected.shape
    # in 8-bit pixel levels: the resize is Pillow's, bit for bit; only float rounding remains
    levels = np.abs(got - expected) * np.asarray(pipeline.std).max() / pipeline.scale
    assert levels.max() < 1e-3


@pytest.mark.parametrize(
    ("width", "height"),
    [(640, 480), (480, 640), (257, 999), (256, 300), (1920, 1080), (97, 61), (6000, 40), (40, 3000), (224, 224)],
)
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_resize_is_pillows_bit_for_bit(name: str, width: int, height: int) -> None:
    """Both pass orders (Pillow runs the vertical one first when the height shrinks much more)."""
    pipeline = CATALOG.get(name).pipeline(use_draft=False)
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = np.asarray(pipeline.geometry(Image.fromarray(pixels)))
    batch = torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()
    got = PillowResize(pipeline, CPU).crop(batch, width, height)[0].permute(1, 2, 0).numpy()
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.array_equal(got, expected)


_KERNEL_CHECK = """
import sys
import numpy as np, torch
from PIL import Image
from visionserve import gpu_pipeline
from visionserve.catalog import load_catalog

gpu_pipeline.PillowResize._pass = staticmethod(gpu_pipeline._resample_with_kernel)  # as on a CUDA device
catalog = load_catalog()
sizes = [("resnet18", 97, 61), ("resnet18", 257, 999), ("mobilenet_v2", 640, 480), ("mobilenet_v2", 40, 300)]
for name, width, height in sizes:
    pipeline = catalog.get(name).pipeline(use_draft=False)
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = np.asarray(pipeline.geometry(Image.fromarray(pixels)))
    batch = torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()
    got = gpu_pipeline.PillowResize(pipeline, torch.device("cpu")).crop(batch, width, height)
    got = got[0].permute(1, 2, 0).numpy()
    if not np.array_equal(got, expected):
        sys.exit(f"{name} {width}x{height}: max difference {np.abs(got.astype(int) - expected).max()}")
    print("exact", name, width, height)
"""


def test_the_gpu_resize_kernel_is_pillows_bit_for_bit() -> None:
    """The Triton kernel CUDA devices run, executed by Triton's interpreter on the CPU."""
    pytest.importorskip("triton", reason="Triton ships with torch's CUDA builds (the pinned torch)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}  # read when the kernel is defined: a fresh process
    done = subprocess.run([sys.executable, "-c", _KERNEL_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:] or done.stdout
    assert done.stdout.count("exact") == 4


def test_baseline_jpegs_take_the_device_route_and_the_rest_fall_back() -> None:
    photo = _photo()
    cases = {
        "baseline": (_encode(photo, "JPEG", quality=90), True),
        "grey": (_encode(photo.convert("L"), "JPEG"), True),
        "progressive": (_encode(photo, "JPEG", progressive=True), False),
        "cmyk": (_encode(photo.convert("CMYK"), "JPEG"), False),
        "png": (_encode(photo, "PNG"), False),
        "webp": (_encode(photo, "WEBP"), False),
        "bmp": (_encode(photo, "BMP"), False),
        "gif": (_encode(photo, "GIF"), False),
    }
    for name, (data, device_route) in cases.items():
        assert nvjpeg_decodable(open_image(data)) is device_route, name
    pipeline = CATALOG.get("resnet18").pipeline()
    prepared = Preprocessor(pipeline, CPU)([data for data, _ in cases.values()])
    assert prepared.errors == [None] * len(cases)
    assert (prepared.decoded_on_device, prepared.decoded_on_cpu) == (2, 6)
    # every route yields the same picture: colour rows agree with the first within coding noise
    rows = prepared.batch.float()
    colour = [i for i, name in enumerate(cases) if name != "grey"]
    assert all(float((rows[i] - rows[0]).abs().mean()) < 0.1 for i in colour)


def test_device_route_agrees_with_the_cpu_path_on_jpegs() -> None:
    """Decoders differ by a few levels; the CPU path also decodes at a reduced DCT scale (draft)."""
    pipeline = CATALOG.get("resnet50").pipeline()
    jpegs = [s.data for s in sample_images(8, seed=11, formats=("JPEG",))]
    got = Preprocessor(pipeline, CPU)(jpegs).batch.numpy()
    expected = pipeline.batch(jpegs)
    levels = np.abs(got - expected) / pipeline.scale
    assert np.median(levels) <= 3.0
    assert levels.mean() < 6.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation: int) -> None:
    img = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2)
    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = Image.open(io.BytesIO(_encode(img, "PNG", exif=exif)))
    expected = np.asarray(ImageOps.exif_transpose(tagged).convert("RGB"))
    got = orient(torch.from_numpy(np.array(img)).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)


def test_oriented_jpeg_on_the_device_route_matches_the_cpu_path() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(_photo((320, 200)), "JPEG", quality=95, exif=exif)
    pipeline = CATALOG.get("mobilenet_v2").pipeline(use_draft=False)
    prepared = Preprocessor(pipeline, CPU)([data])
    assert prepared.decoded_on_device == 1
    levels = np.abs(prepared.batch.numpy()[0] - pipeline(data)) / pipeline.scale
    assert levels.mean() < 2.0  # a wrong rotation would differ by tens of levels


def test_bad_images_fail_alone() -> None:
    good = _encode(_photo(), "JPEG")
    truncated = good[: len(good) // 3]
    corrupt = good[:600] + bytes(range(256)) * 8 + good[2648:]
    images = [good, b"", b"not an image at all", truncated, corrupt, _encode(Image.new("L", (1, 5000)), "PNG"), good]
    pipeline = CATALOG.get("resnet18").pipeline()
    prepared = Preprocessor(pipeline, CPU)(images)
    assert prepared.errors[0] is None and prepared.errors[-1] is None
    assert "empty image" in prepared.errors[1]
    assert "not a recognised image" in prepared.errors[2]
    assert "truncated or corrupt" in prepared.errors[3]
    assert "aspect ratio" in prepared.errors[5]
    torch.testing.assert_close(prepared.batch[0], prepared.batch[-1])
    assert float(prepared.batch[1].abs().sum()) == 0.0  # a failed row is zeros, never a neighbour's pixels
    if prepared.errors[4] is None:  # libjpeg may conceal a corrupt scan; the row must still be an image
        assert torch.isfinite(prepared.batch[4]).all()


def test_layout_dtype_and_channel_order() -> None:
    data = [_encode(_photo(), "PNG")]
    for name in CATALOG.names:
        spec = CATALOG.get(name)
        batch = Preprocessor(spec.pipeline(), CPU, torch.float16)(data).batch
        assert batch.dtype == torch.float16
        assert tuple(batch.shape[1:]) == spec.input_shape
    rgb = Preprocessor(CATALOG.get("mobilenet_v2").pipeline(), CPU)(data).batch  # RGB, x/127.5 - 1
    bgr = Preprocessor(CATALOG.get("resnet50").pipeline(), CPU)(data).batch  # BGR, minus caffe means
    torch.testing.assert_close((bgr[..., 0] + 103.939) / 127.5 - 1, rgb[..., 2], atol=1e-4, rtol=0)


def test_backbone_runs_eagerly_on_a_cpu_device() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Softmax(1)
    )
    runner = Backbone(module, CPU, torch.float32, (3, 16, 16))
    x = torch.randn(5, 3, 16, 16)
    assert not runner.graphs
    torch.testing.assert_close(runner(x), module(x))


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_overlapped_chunks_give_the_whole_batchs_answers(chunk: int) -> None:
    """Chunked (preprocess k+1 while the backbone runs k) = the batch run at once, errors in place."""
    torch.manual_seed(0)
    spec = CATALOG.get("resnet18")
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Softmax(1)
    )
    pre = Preprocessor(spec.pipeline(), CPU, torch.float32, TorchvisionJpeg(CPU))
    net = Backbone(module, CPU, torch.float32, spec.pipeline().output_shape)
    images = [s.data for s in sample_images(12, seed=5)]
    images[3:3] = [b"not an image"]
    whole = pre(images)
    overlapped = Overlapped(pre, net, chunk)
    try:
        probabilities, errors = overlapped(images)
    finally:
        overlapped.close()
    assert errors == whole.errors and errors[3] is not None and sum(e is not None for e in errors) == 1
    assert probabilities.shape == (13, 8)
    torch.testing.assert_close(probabilities, net(whole.batch))
    assert probabilities[~torch.tensor([e is not None for e in errors])].argmax(1).unique().numel() > 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_graph_buckets_pad_and_slice() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Softmax(1))
    runner = Backbone(module, torch.device("cuda"), torch.float32, (3, 8, 8), graph_batch_sizes=(1, 4, 8))
    assert sorted(runner.graphs) == [1, 4, 8]
    x = torch.randn(19, 3, 8, 8, device="cuda")
    torch.testing.assert_close(runner(x), runner.module(x), atol=1e-5, rtol=1e-4)


def test_initializer_pads_and_squeeze_axes_become_static(tmp_path) -> None:  # noqa: ANN001
    """Loading folds initializer arguments of opset-13 Pad/Squeeze (as tf2onnx writes them).

    Read per call on a GPU they are a device sync that breaks CUDA-graph capture.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from visionserve.gpu_pipeline import load_onnx_module

    graph = helper.make_graph(
        [
            helper.make_node("Pad", ["x", "pads", "value"], ["padded"], mode="constant"),
            helper.make_node("GlobalAveragePool", ["padded"], ["pooled"]),
            helper.make_node("Squeeze", ["pooled", "axes"], ["y"]),
        ],
        "folding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[
            numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 3, 1], dtype=np.int64), "pads"),
            numpy_helper.from_array(np.array(1.5, dtype=np.float32), "value"),
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
        ],
    )
    path = tmp_path / "folding.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    module = load_onnx_module(str(path))
    kinds = {type(m).__name__ for m in module.modules()}
    assert "OnnxPadDynamic" not in kinds and "OnnxSqueezeDynamicAxes" not in kinds
    assert {"OnnxPadStatic", "OnnxSqueezeStaticAxes"} <= kinds
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_jpeg_decoder_falls_back_to_torchvision_off_the_gpu() -> None:
    jpeg, reason = jpeg_decoder("nvimgcodec", CPU, 1.0)
    assert isinstance(jpeg, TorchvisionJpeg) and jpeg.name == "torchvision"
    assert reason is not None and "CPU device" in reason
    assert jpeg_decoder("torchvision", CPU, 0.0)[1] is None
    with pytest.raises(ValueError, match="unknown JPEG decoder"):
        jpeg_decoder("libjpeg", CPU, 1.0)


class _Refusing:
    """A device decoder that refuses every other image and fails a batch holding a grey one."""

    name = "refusing"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, images: list[bytes]) -> list[torch.Tensor | None]:
        self.calls.append(len(images))
        if any(Image.open(io.BytesIO(data)).mode == "L" for data in images):
            raise RuntimeError("the whole batch failed")
        decoded = [
            torch.from_numpy(np.array(Image.open(io.BytesIO(d)).convert("RGB"))).permute(2, 0, 1) for d in images
        ]
        return [None if i % 2 else chw for i, chw in enumerate(decoded)]


def test_what_the_device_decoder_refuses_or_fails_goes_to_the_cpu_decoder() -> None:
    pipeline = CATALOG.get("resnet18").pipeline()
    photos = [_encode(_photo((320 + 16 * i, 240)), "JPEG", quality=90) for i in range(4)]
    reference = Preprocessor(pipeline, CPU)(photos)
    refusing = _Refusing()
    prepared = Preprocessor(pipeline, CPU, jpeg=refusing)(photos)
    assert refusing.calls == [4]
    assert (prepared.decoded_on_device, prepared.decoded_on_cpu) == (2, 2)
    assert prepared.errors == [None] * 4
    # the CPU decoder decodes at a reduced DCT scale; the picture is the same
    assert float((prepared.batch - reference.batch).abs().mean()) < 0.05
    grey = Preprocessor(pipeline, CPU, jpeg=refusing)([*photos, _encode(_photo().convert("L"), "JPEG")])
    assert (grey.decoded_on_device, grey.decoded_on_cpu) == (0, 5) and grey.errors == [None] * 5
