"""Locustfile: ``GatewayUser``, HTTP against the visionserve gateway with an API key.

Each request uploads one image (multipart ``image`` + ``model`` + ``top_k``) to
``POST /v1/classify``, for a model drawn from the weighted mix (``--models``), either a
repeated hot image (``--repeat-share``; cache hits once seen) or never-seen bytes (a miss in
every cache). Requests are named ``<model> fresh`` / ``<model> repeat``, so the report shows
hit and miss latency per model. Every answer is checked — status, the model that answered,
a positive version, the top-k (count, indices, probabilities, order, labels) — and a fresh
image answered ``cached: true`` is a failure: a cache that returns results for bytes it never
saw is wrong, however fast. With ``--video-share`` that share of requests uploads one of a few
generated 3 s clips to ``POST /v1/classify/video`` instead (``<model> video``; one frame a
second, each frame a rate-limit token), and every frame's top-k and the mean are checked.

    locust -f loadtest/gateway_user.py -H http://127.0.0.1:3000 --api-key "$KEY"
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from locust import task

from client import CLASSIFY_PATH, CLASSIFY_VIDEO_PATH, classify_form
from loadtest.http_user import WorkloadHttpUser, status_failure
from visionserve.samples import Pick, mime_type
from visionserve.settings import DEFAULT_GATEWAY_PORT

__all__ = ["GatewayUser"]

_RATE_HINT = " (the key's rate limit: raise GATEWAY_RATE_PER_S / GATEWAY_RATE_BURST for load tests)"


class GatewayUser(WorkloadHttpUser):
    """A client of the gateway's HTTP API (one keep-alive connection per user)."""

    host = f"http://127.0.0.1:{DEFAULT_GATEWAY_PORT}"

    def on_start(self) -> None:
        if not self.workload.settings.api_key:
            raise RuntimeError(
                "GatewayUser needs an API key: --api-key or VISIONSERVE_API_KEY "
                "(create one with `visionserve keys create --name loadtest`)"
            )
        super().on_start()
        self.headers = {"Authorization": f"Bearer {self.workload.settings.api_key}"}

    def _body(self, model: str, pick: Pick) -> tuple[bytes, str]:
        return classify_form(pick.data, model=model, top_k=self.workload.top_k, filename=pick.image.name,
                             content_type=mime_type(pick.image.format))  # fmt: skip

    @task
    def classify(self) -> None:
        model = self.workload.choose_model(self.rng)
        if self.rng.random() < self.workload.settings.video_share:
            container, video = self.rng.choice(self.workload.videos)
            body, content_type = classify_form(video, model=model, top_k=self.workload.top_k,
                                               filename=f"clip.{container}", field="video",
                                               options={"every_seconds": "1"})  # fmt: skip
            self._post(CLASSIFY_VIDEO_PATH, body, content_type, f"{model} video",
                       lambda answer: self.workload.check_video_answer(answer, model=model))  # fmt: skip
            return
        pick = self.picker.pick()
        body, content_type = self._body(model, pick)
        fresh = not pick.repeated
        self._post(CLASSIFY_PATH, body, content_type, f"{model} {'fresh' if fresh else 'repeat'}",
                   lambda answer: self.workload.check_gateway_answer(answer, model=model, fresh=fresh))  # fmt: skip

    def _post(self, path: str, body: bytes, content_type: str, name: str, check: Callable[[Any], None]) -> None:
        """One request, failed in the report on a non-200 or an answer ``check`` refuses."""
        with self.client.post(
            path,
            data=body,
            headers={**self.headers, "Content-Type": content_type},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                hint = _RATE_HINT if response.status_code == 429 else ""
                response.failure(status_failure(response) + hint)
                return
            try:
                check(json.loads(response.content))
            except Exception as exc:  # any malformed answer is a failed request, not an uncounted task error
                response.failure(f"wrong answer: {exc}")
