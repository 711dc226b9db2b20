"""What each load-test or benchmark request sends: a repeated image, or bytes no cache has seen.

``ImagePicker`` (the load tests' simulated users) serves a configurable share of *repeated*
images (a small hot set sent byte-for-byte again: cache hits once seen) and otherwise *fresh*
uploads. ``DistinctImages`` (the benchmarks' senders) maps request ``i`` to image ``i mod n``
of the set, fresh unless told otherwise. Fresh bytes come from ``FreshBytes``: the same pixels
with a token of a random run id and a counter embedded (``make_unique``), so no two fresh
uploads — across users, processes and machines — share bytes, and every cache misses.

Nothing here imports Locust, so benchmarks can use it without gevent's monkey-patching.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from visionserve.samples.generate import SampleImage
from visionserve.samples.unique import make_unique

__all__ = ["DEFAULT_HOT_COUNT", "DistinctImages", "FreshBytes", "ImagePicker", "Pick"]

#: Images in the hot set that repeated requests draw from.
DEFAULT_HOT_COUNT = 8


class FreshBytes:
    """``fresh(image)``: the image's pixels in bytes no earlier call (of any instance) produced.

    Args:
        prefix: the start of every token (says who made the bytes: ``vs`` load tests, ``b`` benchmarks).
    """

    def __init__(self, prefix: str) -> None:
        self._run = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self._sequence = itertools.count(1)

    def __call__(self, image: SampleImage) -> bytes:
        return make_unique(image.data, image.format, f"{self._run}-{next(self._sequence)}")


@dataclass(frozen=True)
class Pick:
    """What to send next: the bytes and whether they were sent before (a cache candidate)."""

    image: SampleImage
    data: bytes
    repeated: bool


class ImagePicker:
    """Chooses what each request sends: a repeated hot image or a fresh, never-seen upload.

    Fresh uploads cycle through the whole set (every format and size in turn), starting at a
    random image.

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
        images: Sequence[SampleImage],
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
        self._fresh = FreshBytes("vs")
        self._next = self._rng.randrange(len(self.images))

    def fresh(self) -> Pick:
        """The next image of the set with bytes no cache has seen."""
        image = self.images[self._next % len(self.images)]
        self._next += 1
        return Pick(image, self._fresh(image), repeated=False)

    def repeat(self) -> Pick:
        """One of the hot images, byte for byte."""
        image = self._rng.choice(self.hot)
        return Pick(image, image.data, repeated=True)

    def pick(self) -> Pick:
        """A repeat with probability ``repeat_share``, else a fresh upload."""
        if self.repeat_share > 0 and self._rng.random() < self.repeat_share:
            return self.repeat()
        return self.fresh()


class DistinctImages:
    """Request ``i`` → image ``i mod n`` of the set, with bytes no earlier call has produced.

    The uniqueness token is a per-instance sequence number, not ``i``: the driver restarts
    ``i`` at 0 on every run, and a sender reused across runs (concurrency levels, interleaved
    rounds) would otherwise replay the bytes of the run before — answered from Triton's
    response cache or the gateway's, in the next run's window.

    Args:
        images: the image set.
        distinct: False to send the set's bytes as they are (repeats: cache hits once seen).

    Raises:
        ValueError: an empty set.
    """

    def __init__(self, images: Sequence[SampleImage], *, distinct: bool = True) -> None:
        if not images:
            raise ValueError("the image set is empty")
        self.images = tuple(images)
        self.distinct = distinct
        self._fresh = FreshBytes("b")

    def image(self, i: int) -> SampleImage:
        return self.images[i % len(self.images)]

    def __call__(self, i: int) -> bytes:
        image = self.image(i)
        return self._fresh(image) if self.distinct else image.data
