"""Two gateways (three worker processes) sharing Redis and PostgreSQL: limits, cache, history."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.integration.gateway.conftest import GatewayProcess, unique_jpeg

pytestmark = pytest.mark.integration
MODEL = "resnet18"
BURST = 8  # GATEWAY_RATE_BURST of shared_gateways; refill 0.05/s is negligible during a test


def test_rate_limit_is_shared_across_gateways_and_workers(
    shared_gateways: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = shared_gateways
    key = a.key()
    statuses, responses = [], []
    with a.client(key) as ha, b.client(key) as hb:
        for i in range(BURST + 2):
            r = (ha if i % 2 == 0 else hb).get("/v1/models")  # alternate gateways (and A's two workers)
            statuses.append(r.status_code)
            responses.append(r)
    assert statuses == [200] * BURST + [429, 429]
    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in responses[:BURST]]
    assert remaining == list(range(BURST - 1, -1, -1))  # one budget, counted down by both gateways
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == str(BURST) and refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) > 0
    with a.client(a.key()) as other:  # another key has its own bucket
        assert other.get("/v1/models").status_code == 200
    metrics = httpx.get(a.url + "/metrics").text + httpx.get(b.url + "/metrics").text
    assert 'visionserve_gateway_rate_limited_total{bucket="key"}' in metrics


def test_batch_costs_one_token_per_image(shared_gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, _ = shared_gateways
    with a.client(a.key()) as http:
        files = [("image", (f"{i}.jpg", unique_jpeg())) for i in range(BURST + 1)]
        too_big = http.post("/v1/classify/batch", files=files, data={"model": MODEL})
    assert too_big.status_code == 429 and "tokens" in too_big.json()["error"]["message"]


def test_cache_is_shared_between_gateways(shared_gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = shared_gateways
    image = unique_jpeg()
    key = a.key()  # the cache is scoped per key by default (GATEWAY_CACHE_SCOPE): one key, two gateways
    with a.client(key) as ha, b.client(key) as hb:
        first = ha.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": MODEL}).json()
        second = hb.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": MODEL}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["predictions"] == second["predictions"] and first["version"] == second["version"]


def test_history_on_postgresql_is_shared_and_isolated(shared_gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = shared_gateways
    user = f"pg-{uuid.uuid4().hex[:8]}"
    key = a.key(user)
    with a.client(key) as ha:
        made = [ha.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())}, data={"model": MODEL}).json()
                for _ in range(3)]  # fmt: skip
    # A writes its rows in batches (GATEWAY_HISTORY_FLUSH_INTERVAL_S): visible to B shortly after. An admin
    # key waits for them, so the user's own bucket (BURST requests) pays only for the reads checked below.
    with b.client(b.key(role="admin")) as watcher:
        for _ in range(BURST):
            if len(watcher.get("/v1/history", params={"user": user}).json()["records"]) >= 3:
                break
            time.sleep(0.5)
    with b.client(key) as hb:  # the other gateway reads the same database
        page1 = hb.get("/v1/history", params={"limit": 2}).json()
        page2 = hb.get("/v1/history", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
        record = hb.get(f"/v1/history/{page1['records'][0]['id']}")
        csv_text = hb.get("/v1/history/export").text
    with b.client(b.key()) as stranger:
        assert stranger.get(f"/v1/history/{page1['records'][0]['id']}").status_code == 404
        assert stranger.get("/v1/history").json()["records"] == []
    got = [r["request_id"] for r in page1["records"] + page2["records"]]
    assert got == [m["request_id"] for m in made][::-1] and page2["next_cursor"] is None
    assert record.status_code == 200 and record.json()["version"] == made[-1]["version"]
    assert all(m["request_id"] in csv_text for m in made)
