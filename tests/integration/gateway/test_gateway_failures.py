"""Backends failing under a running gateway: Redis going away and back, PostgreSQL and Triton going away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.launcher import TritonServer
from tests.fixtures.services import PostgresServer, RedisServer
from tests.integration.gateway.conftest import GatewayProcess, own_triton_of, running_gateway, unique_jpeg
from visionserve.catalog import load_catalog

pytestmark = pytest.mark.integration
MODEL = "resnet18"
SPEC = load_catalog().get(MODEL)


def _classify(http: httpx.Client, image: bytes) -> httpx.Response:
    return http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": MODEL})


def _metric(gateway: GatewayProcess, prefix: str) -> float:
    total = 0.0
    for line in httpx.get(gateway.url + "/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_redis_down_mid_test_serves_uncached_then_recovers(triton, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    env = {"REDIS_URL": redis.url, "GATEWAY_REDIS_RETRY_S": "0.5", "GATEWAY_REDIS_TIMEOUT_S": "0.2"}
    try:
        with running_gateway(tmp_path / "gw", triton.grpc_url, env=env) as gw, gw.client(gw.key()) as http:
            image = unique_jpeg()
            assert _classify(http, image).json()["cached"] is False
            assert _classify(http, image).json()["cached"] is True  # from Redis
            redis.stop()
            started = time.monotonic()
            during = [_classify(http, image) for _ in range(3)] + [_classify(http, unique_jpeg())]
            elapsed = time.monotonic() - started
            assert [r.status_code for r in during] == [200] * 4
            assert [r.json()["cached"] for r in during] == [False] * 4  # served, uncached
            assert elapsed < 20  # no request waited long on the dead Redis
            assert _metric(gw, "visionserve_gateway_cache_errors_total") >= 1
            assert "Redis unavailable" in gw.log_tail(20000)
            assert http.get("/v1/models").status_code == 200  # rate limiting fell back to local buckets
            redis.start()  # same port: the gateway reconnects by itself
            time.sleep(0.6)
            fresh = unique_jpeg()
            outcomes = []
            for _ in range(20):
                outcomes.append(_classify(http, fresh).json()["cached"])
                if outcomes[-1]:
                    break
                time.sleep(0.1)
            assert outcomes[-1] is True, outcomes
    finally:
        redis.stop()


def test_database_down_is_503_with_retry_after_never_a_500(triton, tmp_path: Path) -> None:
    postgres = PostgresServer().start()
    try:
        with running_gateway(tmp_path / "gw", triton.grpc_url, env={"DATABASE_URL": postgres.url()}) as gw:
            key = gw.key()
            with gw.client(key) as http:
                assert _classify(http, unique_jpeg()).status_code == 200
                postgres.stop()
                time.sleep(1.2)  # past the key lookup cache (1 s): the next request asks the database
                for response in (_classify(http, unique_jpeg()), http.get("/v1/history")):
                    assert response.status_code == 503, response.text
                    assert response.json()["error"]["code"] == "database_unavailable"
                    assert int(response.headers["retry-after"]) >= 1
                assert httpx.get(gw.url + "/livez").status_code == 200  # the process itself is fine
    finally:
        postgres.stop()


@pytest.fixture
def own_triton(exported_repository: Path, tmp_path: Path) -> Iterator[TritonServer]:
    """A tritonserver of our own, serving resnet18 only, that the test may stop."""
    with own_triton_of(exported_repository, MODEL, tmp_path) as server:
        yield server


def test_triton_down_is_503_with_retry_after_and_a_recorded_failure(own_triton: TritonServer, tmp_path: Path) -> None:
    with running_gateway(tmp_path / "gw", own_triton.grpc_url) as gw, gw.client(gw.key()) as http:
        cached_image = unique_jpeg()
        assert _classify(http, cached_image).status_code == 200
        own_triton.stop()
        r = _classify(http, unique_jpeg())
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] in {"triton_unavailable", "model_unavailable"}
        assert int(r.headers["retry-after"]) >= 1
        assert "127.0.0.1" not in r.json()["error"]["message"]  # no internal addresses to callers
        still = _classify(http, cached_image)  # a cached answer needs no Triton
        assert still.status_code == 200 and still.json()["cached"] is True
        records = http.get("/v1/history").json()["records"]
        failed = next(rec for rec in records if rec["request_id"] == r.headers["x-request-id"])
        assert (failed["status"], failed["http_status"], failed["version"]) == ("error", 503, None)
        assert failed["error"] and failed["predictions"] == []
        deadline = time.monotonic() + 10
        while http.get("/readyz").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http.get("/readyz").status_code == 503
        assert _metric(gw, "visionserve_gateway_triton_errors_total") >= 1
        models = http.get("/v1/models").json()
        assert models["triton_reachable"] is False
