"""What every simulated user sends and how its answers are judged, built once per process.

A ``Workload`` holds the parts the three user classes share: the model mix, the image set,
top-k, the labels each answer is checked against (the client's checks: a fast wrong answer
is a failure, not a success). Labels come from the model repository's ``labels.txt`` when
the load generator can read it (a local stack); against a remote deployment they are learned
from the answers. It knows nothing about Locust (the locustfiles turn Locust's parsed options
into ``LoadSettings``), so it is unit-tested and reused as is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client import (
    LabelBook,
    Prediction,
    WrongAnswer,
    check_gateway_answer,
    check_predictions,
    check_triton_answer,
)
from loadtest.mix import ModelMix, parse_mix
from visionserve.catalog import Catalog, load_catalog
from visionserve.samples import DEFAULT_IMAGE_COUNT, DEFAULT_IMAGE_SEED, ImagePicker, SampleImage, image_set
from visionserve.samples.videos import video_set

__all__ = ["DEFAULT_TIMEOUT_S", "LoadSettings", "Workload", "read_repository_labels"]

DEFAULT_TIMEOUT_S = 60.0


def read_repository_labels(repository: Path | None, model: str) -> list[str] | None:
    """The labels of ensemble ``model`` from ``<repository>/<model>/labels.txt``, None if unreadable."""
    if repository is None:
        return None
    try:
        text = (Path(repository) / model / "labels.txt").read_text(encoding="utf-8")
    except OSError:
        return None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    return labels or None


@dataclass(frozen=True)
class LoadSettings:
    """The knobs of a load test (Locust command-line options of the locustfiles).

    Args:
        api_key: the gateway's API key (gateway user only).
        models: the model mix, ``"resnet18=3,mobilenet_v2=1"``; empty = all, equally.
        repeat_share: share of requests that repeat a hot image (cache hits once seen).
        top_k: predictions asked per image; 0 = the catalog default.
        image_count: images in the generated set.
        image_seed: which generated set.
        labels_dir: a model repository whose ``labels.txt`` files give the expected labels;
            empty = learn them from the answers.
        think_time_s: pause between a user's requests (0 = closed loop, as fast as answered).
        timeout_s: limit of one request.
        video_share: share of gateway requests that upload a short generated video to
            ``POST /v1/classify/video`` (one frame a second; each frame costs a rate-limit token).
    """

    api_key: str = ""
    models: str = ""
    repeat_share: float = 0.0
    top_k: int = 0
    image_count: int = DEFAULT_IMAGE_COUNT
    image_seed: int = DEFAULT_IMAGE_SEED
    labels_dir: str = ""
    think_time_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    video_share: float = 0.0


class Workload:
    """The shared, per-process state of the simulated users.

    Args:
        settings: the load-test settings.
        catalog: the model catalog (``load_catalog()`` when None).

    Raises:
        CatalogError: the mix names a model the catalog lacks.
        ValueError: a setting is out of range.
    """

    def __init__(self, settings: LoadSettings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog()
        self.mix: ModelMix = parse_mix(settings.models, self.catalog)
        self.top_k = settings.top_k or self.catalog.top_k
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 <= settings.repeat_share <= 1.0:
            raise ValueError(f"repeat share must be within [0, 1], got {settings.repeat_share}")
        if not 0.0 <= settings.video_share <= 1.0:
            raise ValueError(f"video share must be within [0, 1], got {settings.video_share}")
        if settings.timeout_s <= 0:
            raise ValueError(f"timeout must be > 0 s, got {settings.timeout_s}")
        repository = Path(settings.labels_dir) if settings.labels_dir else None
        known = {m: labels for m in self.mix.names if (labels := read_repository_labels(repository, m))}
        self.labels = LabelBook(known)
        self._images: tuple[SampleImage, ...] | None = None
        self._videos: list[tuple[str, bytes]] | None = None

    @property
    def images(self) -> tuple[SampleImage, ...]:
        """The image set, generated (or read from its cache) on first use."""
        if self._images is None:
            self._images = image_set(self.settings.image_count, seed=self.settings.image_seed)
        return self._images

    @property
    def videos(self) -> list[tuple[str, bytes]]:
        """The clips video requests send, as (container, bytes): generated on first use, in memory."""
        if self._videos is None:
            self._videos = video_set(seed=self.settings.image_seed)
        return self._videos

    def picker(self, seed: int | None = None) -> ImagePicker:
        """A picker for one simulated user."""
        return ImagePicker(self.images, repeat_share=self.settings.repeat_share, seed=seed)

    def choose_model(self, rng: random.Random) -> str:
        return self.mix.choose(rng)

    def _expected(self, model: str) -> dict[str, Any]:
        return {"top_k": self.top_k, "num_classes": self.catalog.get(model).num_classes, "labels": self.labels}

    def check(self, model: str, predictions: Sequence[Prediction | tuple[str, int, float]]) -> None:
        """Raise ``WrongAnswer`` unless ``predictions`` is a valid top-k of ``model``."""
        check_predictions(predictions, model=model, **self._expected(model))

    def check_triton_answer(self, result: Any, model: str) -> None:
        """Raise ``WrongAnswer`` unless tritonclient's ``result`` is a valid top-k of ``model`` for one image."""
        check_triton_answer(result, model=model, **self._expected(model))

    def check_gateway_answer(self, body: Any, *, model: str, fresh: bool) -> None:
        """Raise ``WrongAnswer`` unless ``body`` is a valid gateway answer; a ``fresh`` image must not be cached."""
        check_gateway_answer(body, model=model, cached=False if fresh else None, **self._expected(model))

    def check_video_answer(self, body: Any, *, model: str) -> None:
        """Raise ``WrongAnswer`` unless ``body`` is a valid video answer: every frame's top-k and the mean."""
        if not isinstance(body, dict) or body.get("model") != model or not body.get("frames"):
            raise WrongAnswer(f"not a video answer of {model}: {str(body)[:200]}")
        for frame in body["frames"]:
            self.check(model, [(p["label"], p["index"], p["score"]) for p in frame["predictions"]])
        self.check(model, [(p["label"], p["index"], p["score"]) for p in body["aggregate"]])
        if sum(s["frames"] for s in body["segments"]) != len(body["frames"]):
            raise WrongAnswer("the segments do not cover the frames")
