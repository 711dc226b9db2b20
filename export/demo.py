"""Seeded demo models: non-degenerate, input-dependent, stable predictions from an untrained backbone.

A randomly initialised network's softmax is near-uniform and nearly input-independent
(features share one large common component), and such a network is chaotic: a perturbation
of a fraction of a pixel level flips a quarter of its top-1 classes, where a trained network
flips none. Both would make the stack untestable (the INT8 agreement gate measures exactly
this robustness), so a demo model is made to behave like a trained one in these two respects:

- its residual branches start damped (``DEMO_RESIDUAL_GAMMA`` on the last batch norm of each
  branch, the "zero-γ" initialisation of trained ResNets): the identity path dominates and
  differences between images survive the depth;
- its classifier head reads the few dominant directions in which real sample images differ
  (the top ``DEMO_COMPONENTS`` principal components of their pooled features), projected with a
  seeded random matrix scaled so that logits spread by ``spread``.

The result has clearly different top-1 classes for different images, a confident top-1 and
the robustness to small input noise of a trained model — but it is not a trained model, and
every artifact made this way is marked ``weights: demo``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CALIBRATION_IMAGES", "DEMO_COMPONENTS", "DEMO_RESIDUAL_GAMMA", "demo_head"]

#: Number of sample images used to calibrate a demo head.
CALIBRATION_IMAGES = 48
#: Principal components of the pooled features the demo head reads.
DEMO_COMPONENTS = 4
#: Scale (γ) of the last batch norm of every residual branch of a demo backbone.
DEMO_RESIDUAL_GAMMA = 0.2


def demo_head(
    features: np.ndarray, num_classes: int, seed: int, spread: float = 15.0, components: int = DEMO_COMPONENTS
) -> tuple[np.ndarray, np.ndarray]:
    """Return (kernel [d, classes], bias [classes]) of a dense head over ``features`` [n, d].

    Args:
        features: pooled features of the calibration images.
        num_classes: classes of the head.
        seed: seed of the random projection.
        spread: logit scale along the leading component.
        components: leading principal components read (capped at n - 1).
    """
    features = np.asarray(features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    mean = features.mean(axis=0)
    _, singular, directions = np.linalg.svd(features - mean, full_matrices=False)
    k = max(1, min(components, len(singular) - 1))
    leading_std = singular[0] / np.sqrt(len(features)) + 1e-6
    basis = directions[:k].T / leading_std  # [d, k]: unit variance along the leading component
    projection = rng.standard_normal((k, num_classes)) / np.sqrt(k)
    kernel = basis @ projection * spread
    bias = -mean @ kernel
    return kernel.astype(np.float32), bias.astype(np.float32)
