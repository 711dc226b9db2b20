"""Locustfile: ``TritonHttpUser``, Triton's KServe v2 HTTP endpoint through Locust's ``FastHttpUser``.

``POST /v2/models/<model>/infer`` with the binary-data extension: tritonclient.http builds the
body (JSON header + raw image bytes, ``Inference-Header-Content-Length``) and parses the
answer, while Locust's own geventhttpclient connection (kept alive per user) carries it, so
Locust times exactly the HTTP exchange. Every answer's top-k is checked like the gRPC user's.

    locust -f loadtest/triton_http_user.py -H http://127.0.0.1:8000
"""

from __future__ import annotations

import tritonclient.http as httpclient
from locust import task

from client import classification_request
from loadtest.http_user import WorkloadHttpUser, status_failure
from visionserve.settings import DEFAULT_HTTP_PORT

__all__ = ["HEADER_LENGTH", "TritonHttpUser"]

#: Length of the JSON part of a binary-data request or response (the rest is raw tensors).
HEADER_LENGTH = "Inference-Header-Content-Length"


class TritonHttpUser(WorkloadHttpUser):
    """Classifies images with Triton's ensembles over HTTP (one keep-alive connection per user)."""

    host = f"http://127.0.0.1:{DEFAULT_HTTP_PORT}"

    @task
    def classify(self) -> None:
        model = self.workload.choose_model(self.rng)
        pick = self.picker.pick()
        inputs, outputs = classification_request([pick.data], self.workload.top_k, protocol="http")
        body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
        headers = {"Content-Type": "application/octet-stream"}
        if json_size is not None:
            headers[HEADER_LENGTH] = str(json_size)
        with self.client.post(
            f"/v2/models/{model}/infer",
            data=body,
            headers=headers,
            name=f"{model} {'repeat' if pick.repeated else 'fresh'}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(status_failure(response))
                return
            try:
                length = response.headers.get(HEADER_LENGTH)
                result = httpclient.InferenceServerClient.parse_response_body(
                    response.content, header_length=int(length) if length else None
                )
                self.workload.check_triton_answer(result, model)
            except Exception as exc:  # any malformed answer is a failed request, not an uncounted task error
                response.failure(f"wrong answer: {exc}")
