"""The workload every test, load test and benchmark sends: deterministic, varied, real images.

Nothing can be downloaded here, so the images are made on the spot from real photographs
shipped inside matplotlib (``generate``), cached on disk as the load tests' and benchmarks'
image set (``image_set``), made unique byte-wise without touching a pixel so caches miss
(``unique``), and chosen per request (``pickers``). Nothing here imports Locust.
"""

from visionserve.samples.generate import (
    MIME_TYPES,
    SAMPLE_FORMATS,
    SampleImage,
    base_photos,
    encode,
    mime_type,
    sample_images,
)
from visionserve.samples.image_set import DEFAULT_IMAGE_COUNT, DEFAULT_IMAGE_SEED, image_set, images_dir
from visionserve.samples.pickers import DEFAULT_HOT_COUNT, DistinctImages, FreshBytes, ImagePicker, Pick
from visionserve.samples.unique import MAX_TOKEN_BYTES, UNIQUE_FORMATS, make_unique

__all__ = [
    "DEFAULT_HOT_COUNT",
    "DEFAULT_IMAGE_COUNT",
    "DEFAULT_IMAGE_SEED",
    "MAX_TOKEN_BYTES",
    "MIME_TYPES",
    "SAMPLE_FORMATS",
    "UNIQUE_FORMATS",
    "DistinctImages",
    "FreshBytes",
    "ImagePicker",
    "Pick",
    "SampleImage",
    "base_photos",
    "encode",
    "image_set",
    "images_dir",
    "make_unique",
    "mime_type",
    "sample_images",
]
