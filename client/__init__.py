"""visionserve's client: classify images and manage models on Triton, over gRPC or HTTP.

A typed layer over ``tritonclient`` (sync and asyncio, both protocols) that the CLI, the
gateway, the load tests and the benchmarks share::

    from client import TritonClient

    with TritonClient(protocol="grpc") as triton:
        result = triton.classify(open("cat.jpg", "rb").read(), "resnet18", top_k=5)
        print(result.version, [(p.label, round(p.score, 3)) for p in result.predictions])
        clip = triton.classify_video(open("clip.mp4", "rb").read(), "resnet18")  # 1 frame/s
        print(clip.aggregate[0].label, [(s.start_s, s.label) for s in clip.segments])

Load generators that carry requests on their own connections build them here too
(``classification_request``, ``classify_form``) and check every answer with the same rules
(``check_triton_answer``, ``check_gateway_answer``: a fast wrong answer is a ``WrongAnswer``).
Errors are ``ClientError`` subclasses (see ``client._errors`` for the tree); the CLI lives
in ``client._main`` (``visionserve classify | models | health``).
"""

from client._async import AsyncTritonClient
from client._checks import LabelBook, check_gateway_answer, check_predictions, check_triton_answer
from client._codec import parse_classifications, parse_prediction, weights_of
from client._config import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    DEFAULT_PROTOCOL,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOP_K,
    PROTOCOLS,
    Protocol,
    default_url,
    normalize_url,
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
    WrongAnswer,
)
from client._files import IMAGE_EXTENSIONS, find_images, read_image
from client._requests import CLASSIFY_PATH, CLASSIFY_VIDEO_PATH, classification_request, classify_form
from client._sync import TritonClient
from client._types import Classification, ModelStatus, Prediction
from client._video import FrameClassification, Segment, VideoClassification

__all__ = [
    "CLASSIFY_PATH",
    "CLASSIFY_VIDEO_PATH",
    "DEFAULT_GRPC_URL",
    "DEFAULT_HTTP_URL",
    "DEFAULT_PROTOCOL",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TOP_K",
    "IMAGE_EXTENSIONS",
    "PROTOCOLS",
    "AsyncTritonClient",
    "Classification",
    "FrameClassification",
    "ClientError",
    "ImageFileError",
    "InferenceError",
    "InvalidRequest",
    "LabelBook",
    "ModelLoadError",
    "ModelNotFound",
    "ModelReloading",
    "RepositoryRestricted",
    "ModelStatus",
    "Prediction",
    "Protocol",
    "Segment",
    "ServerUnavailable",
    "TritonClient",
    "VideoClassification",
    "WrongAnswer",
    "check_gateway_answer",
    "check_predictions",
    "check_triton_answer",
    "classification_request",
    "classify_form",
    "default_url",
    "find_images",
    "normalize_url",
    "parse_classifications",
    "parse_prediction",
    "read_image",
    "weights_of",
]
