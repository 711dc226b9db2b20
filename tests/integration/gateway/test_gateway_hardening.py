"""Abuse of keys, limits and endpoints on a real gateway with PostgreSQL, which the last test stops.

One gateway for the module: a tight anonymous bucket (3, refilling very slowly), 127.0.0.1 as
a trusted proxy (so each test client picks its address with X-Forwarded-For, as an ingress
would), a /metrics token, and a long key-lookup cache (a valid key stays known while the
database is down).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.services import PostgresServer
from tests.integration.gateway.conftest import GatewayProcess, running_gateway, unique_jpeg

pytestmark = pytest.mark.integration
BURST = 3
METRICS_TOKEN = "metrics-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def hardened(triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, PostgresServer]]:
    postgres = PostgresServer().start()
    env = {
        "DATABASE_URL": postgres.url(),
        "GATEWAY_ANONYMOUS_BURST": str(BURST),
        "GATEWAY_ANONYMOUS_RATE_PER_S": "0.001",
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
        "GATEWAY_METRICS_TOKEN": METRICS_TOKEN,
        "GATEWAY_AUTH_CACHE_TTL_S": "600",
    }
    try:
        with running_gateway(tmp_path_factory.mktemp("hardened"), triton.grpc_url, env=env) as gw:
            yield gw, postgres
    finally:
        postgres.stop()


def _made_up_key() -> str:
    return f"vsk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _as(gateway: GatewayProcess, address: str, key: str) -> httpx.Response:
    return httpx.get(gateway.url + "/v1/models", timeout=30,
                     headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": address})  # fmt: skip


def test_each_caller_behind_the_proxy_has_its_own_bucket(hardened: tuple[GatewayProcess, PostgresServer]) -> None:
    """Finding: behind an ingress every caller shared one anonymous bucket (the ingress's address)."""
    gw, _ = hardened
    guesser = [_as(gw, "198.51.100.1", _made_up_key()).status_code for _ in range(BURST + 2)]
    bystander = _as(gw, "198.51.100.2", _made_up_key())
    spoofed = httpx.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {_made_up_key()}",
                        "X-Forwarded-For": "198.51.100.2, 198.51.100.1"}, timeout=30)  # fmt: skip
    assert guesser == [401] * BURST + [429, 429]
    assert bystander.status_code == 401  # not the guesser's empty bucket
    assert spoofed.status_code == 429  # the rightmost untrusted hop counts, not what the caller wrote first
    assert _as(gw, "198.51.100.2", gw.key()).status_code == 200
    # an uncached key from the guesser's address waits for its bucket like a guess would:
    # telling them apart takes the very lookup the bucket is there to ration
    assert _as(gw, "198.51.100.1", gw.key()).status_code == 429


def test_metrics_needs_its_token(hardened: tuple[GatewayProcess, PostgresServer]) -> None:
    """Finding: /metrics was public through the ingress."""
    gw, _ = hardened
    anonymous = httpx.get(gw.url + "/metrics", timeout=30)
    allowed = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert allowed.status_code == 200 and "visionserve_gateway_" in allowed.text


def test_database_outage_export_is_503_and_unknown_keys_stop_reaching_it(
    hardened: tuple[GatewayProcess, PostgresServer],
) -> None:
    """Findings: the CSV export answered 200 with only its header during a database outage.

    And every unknown key cost a database query before any rate limit applied (none got a 429).
    """
    gw, postgres = hardened
    key = gw.key()
    with gw.client(key) as http:
        r = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, data={"model": "resnet18"})
        assert r.status_code == 200, r.text  # the key is now in the lookup cache
        assert http.get("/v1/history/export").status_code == 200
        postgres.stop()
        time.sleep(0.5)
        export = http.get("/v1/history/export")
        page = http.get("/v1/history")
    assert export.status_code == 503, export.text[:300]
    assert export.json()["error"]["code"] == "database_unavailable" and int(export.headers["retry-after"]) >= 1
    assert page.status_code == 503
    guesses = [_as(gw, "198.51.100.9", _made_up_key()).status_code for _ in range(BURST + 3)]
    assert guesses == [503] * BURST + [429] * 3  # past the bucket, no lookup is even tried
    assert httpx.get(gw.url + "/livez", timeout=10).status_code == 200
