"""Every visionserve user class in one locustfile, for Locust's web UI and ad-hoc runs.

    locust -f loadtest/locustfile.py --class-picker                         # pick users in the UI
    locust -f loadtest/locustfile.py,loadtest/shape_step.py --class-picker  # … and the step shape

Shapes live in their own files (``shape_step.py``, ``shape_soak.py``): Locust applies any
shape class it finds, so one is loaded only when it is wanted.
"""

from __future__ import annotations

# isort: off
from loadtest.triton_grpc_user import TritonGrpcUser  # first: gevent-patches gRPC before anything else
from loadtest.gateway_user import GatewayUser
from loadtest.triton_http_user import TritonHttpUser
# isort: on

__all__ = ["GatewayUser", "TritonGrpcUser", "TritonHttpUser"]
