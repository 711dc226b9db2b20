"""Seeded demo heads: non-degenerate, input-dependent predictions from an untrained backbone.

A randomly initialised network's softmax is near-uniform and nearly input-independent
(features share one large common component). We calibrate the classifier head on real sample
images instead: standardise the pooled features (remove the common mean, divide by the spread)
and project them with a seeded random matrix scaled so that logits spread by ``spread``. The
result has clearly different top-1 classes for different images and a confident top-1, so
every layer of the stack can be tested for real — but it is not a trained model, and every
artifact made this way is marked ``weights: demo``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CALIBRATION_IMAGES", "demo_head"]

#: Number of sample images used to calibrate a demo head.
CALIBRATION_IMAGES = 48


def demo_head(features: np.ndarray, num_classes: int, seed: int, spread: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (kernel [d, classes], bias [classes]) of a dense head over ``features`` [n, d]."""
    features = np.asarray(features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    dim = features.shape[1]
    projection = rng.standard_normal((dim, num_classes)) / np.sqrt(dim)
    kernel = projection / std[:, None] * spread
    bias = -(mean / std) @ projection * spread
    return kernel.astype(np.float32), bias.astype(np.float32)
