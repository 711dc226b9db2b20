"""visionserve's client: classify images and manage models on Triton, over gRPC or HTTP.

A typed layer over ``tritonclient`` (sync and asyncio, both protocols) that the CLI, the
gateway, the load tests and the benchmarks share::

    from client import TritonClient

    with TritonClient(protocol="grpc") as triton:
        result = triton.classify(open("cat.jpg", "rb").read(), "resnet18", top_k=5)
        print(result.version, [(p.label, round(p.score, 3)) for p in result.predictions])

Errors are ``ClientError`` subclasses (see ``client._errors`` for the tree); the CLI lives
in ``client._main`` (``visionserve classify | models | health``).
"""

from client._async import AsyncTritonClient
from client._codec import parse_prediction
from client._config import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    DEFAULT_PROTOCOL,
    DEFAULT_TIMEOUT_S,
    PROTOCOLS,
    Protocol,
    default_url,
)
from client._errors import (
    ClientError,
    ImageFileError,
    InferenceError,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    ModelReloading,
    RepositoryRestricted,
    ServerUnavailable,
)
from client._files import IMAGE_EXTENSIONS, find_images, read_image
from client._sync import TritonClient
from client._types import Classification, ModelStatus, Prediction

__all__ = [
    "DEFAULT_GRPC_URL",
    "DEFAULT_HTTP_URL",
    "DEFAULT_PROTOCOL",
    "DEFAULT_TIMEOUT_S",
    "IMAGE_EXTENSIONS",
    "PROTOCOLS",
    "AsyncTritonClient",
    "Classification",
    "ClientError",
    "ImageFileError",
    "InferenceError",
    "InvalidRequest",
    "ModelLoadError",
    "ModelNotFound",
    "ModelReloading",
    "RepositoryRestricted",
    "ModelStatus",
    "Prediction",
    "Protocol",
    "ServerUnavailable",
    "TritonClient",
    "default_url",
    "find_images",
    "parse_prediction",
    "read_image",
]
