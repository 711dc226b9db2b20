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

Each carries an ``error_code`` so the gateway maps it to an HTTP status without a table of
its own.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ExportError",
    "ImageError",
    "ParityError",
    "RepositoryError",
    "ServerError",
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
