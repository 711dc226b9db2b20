"""``bench serving``'s printed table: each part of a report becomes its lines, in report order."""

from __future__ import annotations

from typing import Any

from bench.profile import StageProfile
from bench.serving import format_serving
from bench.stats import Measurement


def _m(concurrency: int, throughput: float) -> Measurement:
    return Measurement("x", "resnet18", concurrency, 10, 10, 0, 1.0, throughput, 5.0 + concurrency, 9.0, 6.0)


def _format(rates: list[float], backbone: str) -> dict[str, Any]:
    ceiling = [_m(1, 10.0), _m(4, 20.0)]
    profile = {
        "resnet18_preprocess": StageProfile("resnet18_preprocess", 1, 2, 3.0, 1.0, 2.0, 0.5),
        f"resnet18_{backbone}": StageProfile(f"resnet18_{backbone}", 1, 2, 4.0, 1.0, 3.0, 0.7),
    }
    served = [
        {"measurement": _m(c, r), "profile": profile, "ratio": r / 20.0} for c, r in zip((1, 2), rates, strict=True)
    ]
    best = max(rates) / 20.0
    return {"ceiling": ceiling, "ceiling_best": ceiling[1], "served": served, "best_concurrency": 2,
            "best_served": max(rates), "best_ratio": best, "meets_goal": best >= 0.9}  # fmt: skip


REPORT: dict[str, Any] = {
    "settings": {"goal": 0.9},
    "machine": {"cpu_features": ["avx2", "fma"]},
    "models": {
        "resnet18": {
            "formats": {"onnx": _format([9.0, 17.0], "onnx"), "onnx_int8": _format([15.0, 30.0], "onnx_int8")},
            "int8_vs_fp32": {
                "served_by_concurrency": {1: 1.6, 2: 1.5},
                "served_best": 1.55,
                "ceiling_best": 2.1,
                "goal": 2.0,
            },  # fmt: skip
            "decoders": {
                "jpeg_images": 12,
                "images_per_s": {"pillow": 100.0, "simplejpeg": 150.0},
                "catalog": "pillow",
            },  # fmt: skip
        },
        "mobilenet_v2": {"formats": {"onnx": {"ceiling": [_m(1, 5.0)]}}},
    },
    "composition": {
        "tta_vs_plain": {"resnet18_hflip": {"plain": "resnet18", "by_concurrency": {1: 0.5, 4: 0.44}, "best": 0.48}},
        "committee": {
            "committee": {"best": 6.8, "vs_member": {"resnet18": 0.5, "mobilenet_v2": 0.7}, "vs_members_in_turn": 0.96}
        },  # fmt: skip
    },
}


def test_every_part_of_the_report_has_its_lines_in_order() -> None:
    lines = format_serving(REPORT).splitlines()
    wanted = [
        "resnet18      onnx       in-process batch 4 *",
        "resnet18      onnx       triton gRPC c=2           17.0",
        "              onnx       best: c=2, served/ceiling 0.85 — BELOW the 0.90 goal",
        "              onnx_int8  best: c=2, served/ceiling 1.50 — meets the 0.90 goal",
        "              int8/fp32 served: best 1.55 (below 2.0x); c=1 1.60, c=2 1.50; in-process ceiling 2.10",
        "              preprocessing, 12 JPEGs, one thread: pillow 100 img/s, simplejpeg 150 img/s "
        "(simplejpeg/pillow 1.50; catalog uses pillow)",
        "mobilenet_v2  onnx       in-process batch 1 *       5.0",
        "resnet18_hflip     TTA/plain throughput: best 0.48; c=1 0.50, c=4 0.44",
        "committee          6.8 img/s at best; committee/member: resnet18 0.50, mobilenet_v2 0.70; "
        "vs the members in turn 0.96",
        "CPU features: avx2 fma",
    ]
    at = [next(i for i, line in enumerate(lines) if line.startswith(w)) for w in wanted]
    assert at == sorted(at)


def test_the_served_rows_carry_the_stage_figures_and_a_model_without_them_none() -> None:
    lines = format_serving(REPORT).splitlines()
    served = [line for line in lines if "triton gRPC" in line]
    assert len(served) == 4 and all("3.0/4.0" in line and "50%/70%" in line for line in served)
    bare = {**REPORT, "composition": None, "machine": {}}
    text = format_serving(bare)
    assert "TTA/plain" not in text and "CPU features" not in text and "committee/member" not in text
