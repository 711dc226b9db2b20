"""The root error of visionserve and its cause-named subclasses.

Error tree::

    VisionServeError
    ├── CatalogError            models.yaml is missing, malformed, or names an unknown model
    ├── ExportError             an export could not produce a correct artifact
    │   ├── WeightsError        weights cannot be had (no internet, missing / wrong checkpoint)
    │   └── ParityError         an exported artifact disagrees with its source model
    ├── RepositoryError         the model repository is empty, corrupt, or lacks a version
    ├── ServerError             tritonserver cannot start or is unreachable
    └── ImageError              bytes that are not a decodable, acceptable image
        └── VideoError          a video that cannot be accepted (``code`` says why)
            ├── InvalidVideo    400  no video stream, no duration, corrupt, truncated before a frame
            ├── VideoTooLarge   413  duration, resolution, frames or frames sampled over the limits
            └── UnsupportedVideo 415 not MP4, MOV, WebM or AVI by its magic bytes

Each carries an ``error_code`` so the gateway maps it to an HTTP status without a table of
its own.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ExportError",
    "ImageError",
    "InvalidVideo",
    "ParityError",
    "RepositoryError",
    "ServerError",
    "UnsupportedVideo",
    "VideoError",
    "VideoTooLarge",
    "VisionServeError",
    "WeightsError",
]


class VisionServeError(Exception):
    """Base of every error visionserve raises on purpose."""

    error_code: int = 500
    code: str = "internal"


class CatalogError(VisionServeError):
    """models.yaml cannot be read or names something that does not exist."""

    error_code = 400
    code = "catalog"


class ExportError(VisionServeError):
    """An export step failed; nothing was published."""

    code = "export"


class WeightsError(ExportError):
    """Weights could not be obtained or do not fit the model."""

    code = "weights"


class ParityError(ExportError):
    """An exported artifact's outputs differ from its source model's beyond tolerance."""

    code = "parity"


class RepositoryError(VisionServeError):
    """The Triton model repository is empty, corrupt or lacks the requested version."""

    error_code = 404
    code = "repository"


class ServerError(VisionServeError):
    """tritonserver cannot be started, or cannot be reached."""

    error_code = 503
    code = "server"


class ImageError(VisionServeError):
    """The bytes are not an acceptable image."""

    error_code = 400
    code = "invalid_image"


class VideoError(ImageError):
    """The bytes are not an acceptable video; an instance may name its cause in ``code``."""

    code = "invalid_video"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidVideo(VideoError):
    """Not decodable: no video stream, no declared duration or size, corrupt or truncated."""


class VideoTooLarge(VideoError):
    """What decoding or classifying it would cost is over the limits."""

    error_code = 413
    code = "video_too_large"


class UnsupportedVideo(VideoError):
    """Not a container the video route reads (by magic bytes)."""

    error_code = 415
    code = "unsupported_video"
