"""The image set of load tests and benchmarks: generated on first use, cached, never one image.

``image_set()`` makes ``count`` varied images (real-photo crops and synthetic scenes, eight
sizes from 224×224 to 1024×768, JPEG/PNG/WebP/BMP/GIF — ``visionserve.samples``) once, stores
them under ``.state/images/`` and reads them back on later runs, so every Locust process and
every benchmark phase sees the same bytes. ``ImagePicker`` then serves a configurable share of
*repeated* images (a small hot set sent byte-for-byte again: cache hits once seen) and
otherwise *fresh* uploads, made unique with ``loadtest.unique.make_unique`` (same pixels, new
bytes: a cache miss in every cache).

Nothing here imports Locust, so benchmarks can use it without gevent's monkey-patching.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loadtest.unique import make_unique
from visionserve.samples import sample_images
from visionserve.settings import PROJECT_ROOT

__all__ = [
    "DEFAULT_HOT_COUNT",
    "DEFAULT_IMAGE_COUNT",
    "DEFAULT_IMAGE_SEED",
    "LoadImage",
    "Pick",
    "ImagePicker",
    "image_set",
    "images_dir",
]

DEFAULT_IMAGE_COUNT = 48
DEFAULT_IMAGE_SEED = 2024
#: Images in the hot set that repeated requests draw from.
DEFAULT_HOT_COUNT = 8
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class LoadImage:
    """One encoded image of the set.

    Args:
        name: file name (``sample_<seed>_<i>.<ext>``).
        format: PIL format name.
        size: (width, height) in pixels.
        data: the encoded bytes.
    """

    name: str
    format: str
    size: tuple[int, int]
    data: bytes


@dataclass(frozen=True)
class Pick:
    """What to send next: the bytes and whether they were sent before (a cache candidate)."""

    image: LoadImage
    data: bytes
    repeated: bool


def images_dir(count: int, seed: int) -> Path:
    """Where the set of ``count`` images of ``seed`` is cached (``$VISIONSERVE_IMAGES_DIR`` overrides the root)."""
    root = Path(os.environ.get("VISIONSERVE_IMAGES_DIR") or PROJECT_ROOT / ".state" / "images")
    return root / f"seed{seed}-n{count}"


def _read_cached(directory: Path) -> tuple[LoadImage, ...] | None:
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
        images = []
        for entry in manifest:
            data = (directory / entry["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                return None
            images.append(LoadImage(entry["name"], entry["format"], tuple(entry["size"]), data))  # type: ignore[arg-type]
        return tuple(images)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    # A name unique to this process: several Locust processes may generate the set at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@lru_cache(maxsize=4)
def image_set(count: int = DEFAULT_IMAGE_COUNT, *, seed: int = DEFAULT_IMAGE_SEED) -> tuple[LoadImage, ...]:
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
    images = tuple(LoadImage(s.name, s.format, s.size, s.data) for s in sample_images(count, seed=seed))
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


class ImagePicker:
    """Chooses what each request sends: a repeated hot image or a fresh, never-seen upload.

    Fresh uploads cycle through the whole set (every format and size in turn) and are made
    unique with a token of this picker's random run id and a counter, so no two fresh
    uploads — across users, processes and machines — share bytes.

    Args:
        images: the image set.
        repeat_share: probability that a request repeats a hot image (0 = all misses,
            1 = all repeats).
        hot_count: size of the hot set (the first images of the set, sent unmodified).
        seed: seeds the choice of repeats (None: random).

    Raises:
        ValueError: empty set, share outside [0, 1], or hot_count < 1.
    """

    def __init__(
        self,
        images: tuple[LoadImage, ...] | list[LoadImage],
        *,
        repeat_share: float = 0.0,
        hot_count: int = DEFAULT_HOT_COUNT,
        seed: int | None = None,
    ) -> None:
        if not images:
            raise ValueError("the image set is empty")
        if not 0.0 <= repeat_share <= 1.0:
            raise ValueError(f"repeat_share must be within [0, 1], got {repeat_share}")
        if hot_count < 1:
            raise ValueError(f"hot_count must be >= 1, got {hot_count}")
        self.images = tuple(images)
        self.repeat_share = repeat_share
        self.hot = self.images[: min(hot_count, len(self.images))]
        self._rng = random.Random(seed)
        self._run_id = uuid.uuid4().hex[:12]
        self._next = self._rng.randrange(len(self.images))
        self._fresh_count = 0

    def fresh(self) -> Pick:
        """The next image of the set with bytes no cache has seen."""
        image = self.images[self._next % len(self.images)]
        self._next += 1
        self._fresh_count += 1
        token = f"vs-{self._run_id}-{self._fresh_count}"
        return Pick(image, make_unique(image.data, image.format, token), repeated=False)

    def repeat(self) -> Pick:
        """One of the hot images, byte for byte."""
        image = self._rng.choice(self.hot)
        return Pick(image, image.data, repeated=True)

    def pick(self) -> Pick:
        """A repeat with probability ``repeat_share``, else a fresh upload."""
        if self.repeat_share > 0 and self._rng.random() < self.repeat_share:
            return self.repeat()
        return self.fresh()
