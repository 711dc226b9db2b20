"""Stage profiles from two Triton statistics snapshots."""

from __future__ import annotations

import pytest

from bench.profile import stage_profiles


def _stats(name: str, requests: int, inferences: int, batches: dict[int, tuple[int, int]], queue_ns: int) -> dict:
    """``batches``: batch size -> (executions, compute_infer ns summed over them)."""
    return {
        "model_stats": [
            {
                "name": name,
                "inference_count": inferences,
                "execution_count": sum(e for e, _ in batches.values()),
                "inference_stats": {"success": {"count": requests}, "queue": {"count": requests, "ns": queue_ns}},
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_infer": {"count": e, "ns": ns},
                        "compute_input": {"count": e, "ns": 0},
                        "compute_output": {"count": e, "ns": 0},
                    }
                    for size, (e, ns) in batches.items()
                ],  # fmt: skip
            }
        ]
    }


def test_profile_of_a_run_is_the_difference_of_the_snapshots() -> None:
    before = _stats("resnet18_onnx", 10, 10, {1: (10, 1_000_000_000)}, 50_000_000)
    # during the run: 20 more requests in 8 batches of 1 + 6 of 2, 2 s of compute, 0.4 s of queueing
    after = _stats("resnet18_onnx", 30, 30, {1: (18, 1_800_000_000), 2: (6, 1_200_000_000)}, 450_000_000)
    profile = stage_profiles(before, after, elapsed_s=4.0)["resnet18_onnx"]
    assert profile.requests == 20
    assert profile.executions == 14
    assert profile.mean_batch == pytest.approx(20 / 14)
    assert profile.queue_ms == pytest.approx(20.0)
    assert profile.compute_ms_per_image == pytest.approx(100.0)
    assert profile.busy == pytest.approx(0.5)


def test_models_without_requests_in_the_run_are_left_out() -> None:
    same = _stats("idle", 5, 5, {1: (5, 10)}, 10)
    assert stage_profiles(same, same, elapsed_s=1.0) == {}


def test_a_model_first_seen_in_the_second_snapshot_counts_from_zero() -> None:
    after = _stats("new", 4, 4, {4: (1, 40_000_000)}, 0)
    profile = stage_profiles({"model_stats": []}, after, elapsed_s=1.0)["new"]
    assert (profile.executions, profile.mean_batch) == (1, 4.0)
    assert profile.compute_ms_per_image == pytest.approx(10.0)
