"""Scores of the toy classifier, shared by its model.py (inside Triton) and the tests (outside).

Each class gets a distinct probability (a permutation of a fixed decreasing sequence chosen by
a hash of the version and the bytes), so top-k order is well defined and every version
answers differently for the same image.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Payloads starting with this are rejected as undecodable, as a real preprocess model would.
UNDECODABLE_PREFIX = b"not an image"


class ToyImageError(ValueError):
    """The toy model's stand-in for an undecodable image."""


def toy_scores(data: bytes, version: int, num_classes: int) -> np.ndarray:
    """Probabilities over ``num_classes`` for one encoded payload, as FP32 summing to 1.

    Raises:
        ToyImageError: empty payload or one starting with ``UNDECODABLE_PREFIX``.
    """
    if not data:
        raise ToyImageError("empty image: 0 bytes")
    if data.startswith(UNDECODABLE_PREFIX):
        raise ToyImageError(f"cannot decode image: unknown format ({len(data)} bytes)")
    digest = hashlib.sha256(version.to_bytes(4, "little") + data).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    ranks = np.arange(num_classes, 0, -1, dtype=np.float64)  # n, n-1, ..., 1: all distinct
    return (rng.permutation(ranks) / ranks.sum()).astype(np.float32)
