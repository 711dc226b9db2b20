"""Where served time goes, from Triton's statistics extension (no profiler attached).

Two snapshots of ``statistics()`` around a run give, per Triton model (ensemble,
preprocessing, backbone): requests, executions (so the mean batch the dynamic batcher
formed), mean queue time per request, compute time per image, and how busy the model's
instance was (summed batch compute / wall time). A stage near 100 % busy is the bottleneck;
a backbone batching 1 at high concurrency means requests never met in its queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["StageProfile", "stage_profiles"]

_PHASES = ("compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class StageProfile:
    """One Triton model's work during a run.

    Args:
        model: the Triton model.
        requests: successful requests.
        executions: batches run (0 for an ensemble, which runs no batches itself).
        mean_batch: images per execution.
        queue_ms: mean time a request waited in the model's queue.
        compute_ms_per_image: batch compute time (input + infer + output) per image.
        busy: summed batch compute time / wall time (1.0 = one instance busy all the time).
    """

    model: str
    requests: int
    executions: int
    mean_batch: float
    queue_ms: float
    compute_ms_per_image: float
    busy: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _counters(stats: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for entry in stats.get("model_stats", []):
        inference = entry.get("inference_stats", {})
        batch_ns = sum(float(b.get(p, {}).get("ns", 0)) for b in entry.get("batch_stats", []) for p in _PHASES)
        executions = sum(float(b.get("compute_infer", {}).get("count", 0)) for b in entry.get("batch_stats", []))
        out[entry["name"]] = {
            "requests": float(inference.get("success", {}).get("count", 0)),
            "inferences": float(entry.get("inference_count", 0)),
            "executions": executions,
            "queue_ns": float(inference.get("queue", {}).get("ns", 0)),
            "queue_count": float(inference.get("queue", {}).get("count", 0)),
            "batch_ns": batch_ns,
        }
    return out


def stage_profiles(before: Mapping[str, Any], after: Mapping[str, Any], elapsed_s: float) -> dict[str, StageProfile]:
    """Per-model profiles of the work between two ``statistics()`` snapshots.

    Args:
        before: ``{"model_stats": [...]}`` as ``TritonClient.statistics()`` returns it, at the start.
        after: the same at the end.
        elapsed_s: wall time between the snapshots.
    """
    start, end = _counters(before), _counters(after)
    profiles = {}
    for model, now in end.items():
        then = start.get(model, dict.fromkeys(now, 0.0))
        d = {k: now[k] - then.get(k, 0.0) for k in now}
        if d["requests"] <= 0:
            continue
        images = d["inferences"] or d["requests"]
        profiles[model] = StageProfile(
            model=model,
            requests=int(d["requests"]),
            executions=int(d["executions"]),
            mean_batch=images / d["executions"] if d["executions"] else 0.0,
            queue_ms=d["queue_ns"] / d["queue_count"] / 1e6 if d["queue_count"] else 0.0,
            compute_ms_per_image=d["batch_ns"] / images / 1e6 if images else 0.0,
            busy=d["batch_ns"] / 1e9 / elapsed_s if elapsed_s > 0 else 0.0,
        )
    return profiles
