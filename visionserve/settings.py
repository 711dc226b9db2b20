"""Named defaults shared by every component (ports, paths, timeouts).

Environment variables override the paths so that tests and deployments can point at their
own catalog and repository without touching code.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_METRICS_PORT",
    "PROJECT_ROOT",
    "catalog_path",
    "repository_path",
]

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
DEFAULT_GATEWAY_PORT = 3000

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def catalog_path() -> Path:
    """The catalog file: ``$VISIONSERVE_CATALOG`` or ``models.yaml`` at the project root."""
    return Path(os.environ.get("VISIONSERVE_CATALOG", PROJECT_ROOT / "models.yaml"))


def repository_path() -> Path:
    """The Triton model repository: ``$VISIONSERVE_REPOSITORY`` or ``model_repository/``."""
    return Path(os.environ.get("VISIONSERVE_REPOSITORY", PROJECT_ROOT / "model_repository"))
