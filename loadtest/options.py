"""The locustfiles' own command-line options, and the per-process ``Workload`` built from them.

Registered on Locust's parser (``events.init_command_line_parser``), so they work the same
headless, in the web UI (shown in its start form) and on distributed workers (the master
sends parsed options to workers). The API key may also come from ``VISIONSERVE_API_KEY``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from locust import events

from loadtest.workload import DEFAULT_TIMEOUT_S, LoadSettings, Workload
from visionserve.errors import VisionServeError
from visionserve.samples import DEFAULT_IMAGE_COUNT, DEFAULT_IMAGE_SEED

__all__ = ["settings_from", "workload_for"]

_WORKLOADS: dict[LoadSettings, Workload] = {}


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    # On the parser itself: only its add_argument knows Locust's web-UI flags (is_secret).
    add = parser.add_argument
    add(
        "--api-key", default=os.environ.get("VISIONSERVE_API_KEY", ""), is_secret=True,
        help="gateway API key (default: $VISIONSERVE_API_KEY); create one with `visionserve keys create`",
    )  # fmt: skip
    add(
        "--models",
        dest="vs_models",
        default="",
        help="model mix, e.g. resnet18=3,mobilenet_v2=1 (default: every catalog model, equally)",
    )
    add("--repeat-share", type=float, default=0.0,
        help="share of requests repeating a hot image (cache hits once seen); the rest are "
             "never-seen bytes (cache misses)")  # fmt: skip
    add("--top-k", type=int, default=0, help="predictions per image (default: the catalog's)")
    add("--video-share", type=float, default=0.0,
        help="gateway user: share of requests that upload a generated 3 s video to /v1/classify/video "
             "(one frame a second, a token per frame; default 0)")  # fmt: skip
    add("--image-count", type=int, default=DEFAULT_IMAGE_COUNT, help="images in the generated set")
    add("--image-seed", type=int, default=DEFAULT_IMAGE_SEED, help="which generated image set")
    add(
        "--labels-dir",
        default="",
        help="model repository whose labels.txt give the expected labels (default: learn them)",
    )
    add("--think-time-s", type=float, default=0.0, help="pause between a user's requests (default 0: closed loop)")
    add("--request-timeout-s", type=float, default=DEFAULT_TIMEOUT_S, help="limit of one request")
    add("--step-users", default="1,2,4,8,16,32", help="step shape: user counts, in order")
    add("--step-s", type=float, default=30.0, help="step shape: seconds per step")
    add("--soak-ramp-s", type=float, default=60.0, help="soak shape: seconds to reach --users")


def settings_from(options: Any) -> LoadSettings:
    """``LoadSettings`` from Locust's parsed options."""
    return LoadSettings(
        api_key=str(getattr(options, "api_key", "") or ""),
        models=str(getattr(options, "vs_models", "") or ""),
        repeat_share=float(getattr(options, "repeat_share", 0.0) or 0.0),
        top_k=int(getattr(options, "top_k", 0) or 0),
        image_count=int(getattr(options, "image_count", DEFAULT_IMAGE_COUNT)),
        image_seed=int(getattr(options, "image_seed", DEFAULT_IMAGE_SEED)),
        labels_dir=str(getattr(options, "labels_dir", "") or ""),
        think_time_s=float(getattr(options, "think_time_s", 0.0) or 0.0),
        timeout_s=float(getattr(options, "request_timeout_s", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S),
        video_share=float(getattr(options, "video_share", 0.0) or 0.0),
    )


def workload_for(environment: Any) -> Workload:
    """The process's ``Workload`` for the environment's options (built on the first call)."""
    settings = settings_from(environment.parsed_options)
    workload = _WORKLOADS.get(settings)
    if workload is None:
        workload = _WORKLOADS[settings] = Workload(settings)
    return workload


@events.init.add_listener
def _prepare(environment: Any, **_kwargs: Any) -> None:
    """Check the options and make the image set before the first user starts (not on its clock)."""
    from locust.runners import MasterRunner

    if environment.parsed_options is None or isinstance(environment.runner, MasterRunner):
        return  # a master runs no users; its workers prepare their own
    try:
        _ = workload_for(environment).images
    except (ValueError, VisionServeError) as exc:  # a bad option: one line, not a traceback
        sys.exit(f"visionserve locustfile: {exc}")
