"""The served ensembles against the frameworks' own pipeline, and hostile requests.

Reference = the framework's preprocessing (keras ``load_img`` + ``preprocess_input``, or
torchvision's ImageNet transforms) feeding the exported artifact in process. The served
top-5 must be the same classes in the same order, over gRPC and HTTP.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from client import InferenceError, TritonClient
from export.backbone import resolve_builder
from export.runners import load_runner
from serving.launcher import TritonServer
from visionserve.catalog import ARTIFACTS, ModelSpec, load_catalog
from visionserve.samples import sample_images

pytestmark = pytest.mark.integration

CATALOG = load_catalog()
# Formats and sizes where no JPEG draft applies: the reference decodes at full resolution too.
IMAGES = [s.data for s in sample_images(6, seed=31, formats=("PNG", "WEBP", "BMP", "GIF"))] + [
    s.data for s in sample_images(2, seed=32, formats=("JPEG",), sizes=((320, 240), (300, 420)))
]


def _framework_batch(spec: ModelSpec, images: list[bytes]) -> np.ndarray:
    if spec.framework == "keras":
        import keras

        size = spec.preprocessing.resize.size
        preprocess_input = resolve_builder(spec.preprocessing.reference)
        arrays = []
        for data in images:
            img = keras.utils.load_img(io.BytesIO(data), target_size=(size, size), interpolation="bilinear")
            arrays.append(preprocess_input(keras.utils.img_to_array(img)))
        return np.stack(arrays).astype(np.float32)
    from torchvision.models import ResNet18_Weights

    transform = ResNet18_Weights.IMAGENET1K_V1.transforms()
    return np.stack([transform(Image.open(io.BytesIO(d)).convert("RGB")).numpy() for d in images])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("spec", CATALOG.models.values(), ids=CATALOG.names)
def test_served_top5_equals_framework_reference(
    triton: TritonServer, exported_repository: Path, spec: ModelSpec, protocol: str
) -> None:
    fmt = spec.serve_format
    run = load_runner(fmt, exported_repository / spec.backbone_model(fmt) / "1" / ARTIFACTS[fmt])
    reference = run(_framework_batch(spec, IMAGES))
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    with TritonClient(url, protocol=protocol) as client:
        for data, probs in zip(IMAGES, reference, strict=True):
            served = client.classify(data, spec.ensemble, top_k=5)
            expected = np.argsort(-probs)[:5].tolist()
            assert [p.index for p in served.predictions] == expected
            np.testing.assert_allclose([p.score for p in served.predictions], probs[expected], atol=1e-3)
            assert served.version == "1"


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


_JPEG = _encoded(Image.new("RGB", (640, 480), (10, 200, 30)), "JPEG")
HOSTILE = {
    "empty": (b"", "empty image"),
    "not an image": (b"%PDF-1.7 definitely not pixels", "not a recognised image"),
    "truncated jpeg": (_JPEG[: len(_JPEG) // 3], "truncated or corrupt JPEG"),
    "bomb 60000x60000": (_png_header(60000, 60000), "above the limit"),
    "1x100000 strip": (_encoded(Image.new("L", (1, 100000)), "PNG"), "aspect ratio"),
}


def _stubs(server: TritonServer) -> set[int]:
    return {p.pid for p in psutil.Process(server.pid).children(recursive=True)}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_hostile_images_fail_alone_and_nothing_dies(triton: TritonServer, protocol: str) -> None:
    stubs_before = _stubs(triton)
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    good = IMAGES[0]
    with TritonClient(url, protocol=protocol) as client:
        for name, (data, message) in HOSTILE.items():
            with pytest.raises(InferenceError, match=message) as err:
                client.classify(data, "resnet18", top_k=5)
            assert err.value.error_code == 400, name
            assert client.classify(good, "resnet18", top_k=3).predictions, (
                f"server stopped serving after {name}"
            )
    assert _stubs(triton) == stubs_before, "a python backend stub died or was replaced"


def test_wrong_input_name_type_and_shape_are_clear(triton: TritonServer) -> None:
    with TritonClient(triton.grpc_url) as client:
        good = np.array([[IMAGES[0]]], dtype=object)
        with pytest.raises(InferenceError, match="unexpected inference input 'picture'"):
            client.infer("resnet18", {"picture": good}, ["probabilities"])
        with pytest.raises(InferenceError, match="(?i)data-type|datatype|BYTES|FP32"):
            client.infer("resnet18", {"image": np.zeros((1, 1), dtype=np.float32)}, ["probabilities"])
        with pytest.raises(InferenceError, match="(?i)shape"):
            client.infer(
                "resnet18", {"image": np.array([[IMAGES[0], IMAGES[1]]], dtype=object)}, ["probabilities"]
            )
        with pytest.raises(InferenceError, match="(?i)shape"):
            client.infer(
                "resnet18_onnx",
                {"preprocessed_image": np.zeros((1, 3, 100, 100), np.float32)},
                ["probabilities"],
            )
        assert client.classify(IMAGES[0], "resnet18").predictions
