"""The image set of load tests and benchmarks: generated on first use, cached, never one image.

``image_set()`` makes ``count`` varied images (real-photo crops and synthetic scenes, eight
sizes from 224×224 to 1024×768, JPEG/PNG/WebP/BMP/GIF — ``sample_images``) once, stores them
under ``.state/images/`` and reads them back on later runs, so every Locust process and every
benchmark phase sees the same bytes.

Nothing here imports Locust, so benchmarks can use it without gevent's monkey-patching.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from functools import lru_cache
from pathlib import Path

from visionserve.samples.generate import SampleImage, sample_images
from visionserve.settings import PROJECT_ROOT

__all__ = ["DEFAULT_IMAGE_COUNT", "DEFAULT_IMAGE_SEED", "image_set", "images_dir"]

DEFAULT_IMAGE_COUNT = 48
DEFAULT_IMAGE_SEED = 2024
_MANIFEST = "manifest.json"


def images_dir(count: int, seed: int) -> Path:
    """Where the set of ``count`` images of ``seed`` is cached (``$VISIONSERVE_IMAGES_DIR`` overrides the root)."""
    root = Path(os.environ.get("VISIONSERVE_IMAGES_DIR") or PROJECT_ROOT / ".state" / "images")
    return root / f"seed{seed}-n{count}"


def _read_cached(directory: Path) -> tuple[SampleImage, ...] | None:
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
        images = []
        for entry in manifest:
            data = (directory / entry["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                return None
            images.append(SampleImage(entry["name"], entry["format"], tuple(entry["size"]), data))  # type: ignore[arg-type]
        return tuple(images)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    # A name unique to this process: several Locust processes may generate the set at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@lru_cache(maxsize=4)
def image_set(count: int = DEFAULT_IMAGE_COUNT, *, seed: int = DEFAULT_IMAGE_SEED) -> tuple[SampleImage, ...]:
    """The image set: read from the cache, or generated (a few seconds) and cached.

    Args:
        count: how many distinct images (at least 1).
        seed: which set; the same seed always gives the same bytes.

    Returns:
        ``count`` images cycling through JPEG, PNG, WebP, BMP and GIF.

    Raises:
        ValueError: ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"an image set needs at least 1 image, got {count}")
    directory = images_dir(count, seed)
    cached = _read_cached(directory)
    if cached is not None and len(cached) == count:
        return cached
    images = tuple(sample_images(count, seed=seed))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for image in images:
            _write_atomic(directory / image.name, image.data)
        manifest = [
            {"name": i.name, "format": i.format, "size": list(i.size), "sha256": hashlib.sha256(i.data).hexdigest()}
            for i in images
        ]
        _write_atomic(directory / _MANIFEST, json.dumps(manifest, indent=1).encode())
    except OSError:
        pass  # a read-only checkout still works: the set is simply made again next time
    return images
