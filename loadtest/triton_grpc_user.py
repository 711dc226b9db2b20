"""Locustfile: ``TritonGrpcUser``, a Locust ``User`` over ``tritonclient.grpc``.

gRPC's C core does its own I/O, which gevent cannot patch; without
``grpc.experimental.gevent.init_gevent()`` (called right after Locust has monkey-patched the
standard library, before any gRPC object exists) every call blocks the whole process and a
run stalls near 6 requests/s (locust PR 1016). Each user opens one channel in ``on_start``
and reuses it for all its requests; each call fires Locust's ``request`` event itself: name
= the model (``<model> fresh|repeat``), response time, response length (the serialized
answer), and the exception — a transport error, a Triton error, or ``WrongAnswer`` when the
top-k is not valid.

    locust -f loadtest/triton_grpc_user.py -H 127.0.0.1:8001
"""

from __future__ import annotations

# isort: off
import locust  # first: monkey-patches the standard library
import grpc.experimental.gevent as grpc_gevent
# isort: on

grpc_gevent.init_gevent()

import random  # noqa: E402
import time  # noqa: E402

import tritonclient.grpc as grpcclient  # noqa: E402
from locust import User, task  # noqa: E402

from client import classification_request, normalize_url  # noqa: E402
from loadtest.options import workload_for  # noqa: E402
from visionserve.samples import ImagePicker  # noqa: E402
from visionserve.settings import DEFAULT_GRPC_PORT  # noqa: E402

__all__ = ["TritonGrpcUser"]

del locust


class TritonGrpcUser(User):
    """Classifies images with Triton's ensembles over gRPC; one channel per user."""

    host = f"127.0.0.1:{DEFAULT_GRPC_PORT}"

    def wait_time(self) -> float:
        return self.workload.settings.think_time_s

    def on_start(self) -> None:
        self.workload = workload_for(self.environment)
        self.rng = random.Random()
        self.picker: ImagePicker = self.workload.picker()
        # The client library's URL rules: grpc:// and http:// are dropped, https:// is refused.
        self.client = grpcclient.InferenceServerClient(normalize_url(self.host or ""))

    def on_stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    @task
    def classify(self) -> None:
        model = self.workload.choose_model(self.rng)
        pick = self.picker.pick()
        inputs, outputs = classification_request([pick.data], self.workload.top_k, protocol="grpc")
        length, exception = 0, None
        start = time.perf_counter()
        try:
            result = self.client.infer(model, inputs, outputs=outputs, client_timeout=self.workload.settings.timeout_s)
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            length = result.get_response().ByteSize()
            self.workload.check_triton_answer(result, model)
        except Exception as exc:  # reported to Locust as this request's failure
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            exception = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name=f"{model} {'repeat' if pick.repeated else 'fresh'}",
            response_time=elapsed_ms,
            response_length=length,
            exception=exception,
            context={"model": model},
        )
