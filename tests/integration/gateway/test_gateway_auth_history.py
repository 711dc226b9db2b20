"""Auth (401s, revocation), per-user history isolation (404), admin views, pagination, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.gateway.conftest import GatewayProcess, unique_jpeg

pytestmark = pytest.mark.integration
MODEL = "resnet18"


def classify(gateway: GatewayProcess, key: str, image: bytes | None = None, model: str = MODEL) -> dict:
    with gateway.client(key) as http:
        r = http.post("/v1/classify", files={"image": ("a.jpg", image or unique_jpeg())}, data={"model": model})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic dXNlcjpwYXNz",
                                    "Bearer vsk_000000000000_" + "A" * 43])  # fmt: skip
def test_missing_or_bad_keys_are_401(gateway: GatewayProcess, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    with gateway.client() as http:
        for method, path in [("GET", "/v1/models"), ("GET", "/v1/history"), ("POST", "/v1/classify")]:
            r = http.request(method, path, headers=headers, files={"image": ("a", b"x")} if method == "POST" else None)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_revoked_key_is_401(gateway: GatewayProcess) -> None:
    key = gateway.key()
    with gateway.client(key) as http:
        assert http.get("/v1/models").status_code == 200
        key_id = key.split("_")[1]
        revoked = gateway.keys_cli("revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        r = http.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid or revoked API key"


def test_users_see_only_their_history_and_others_records_are_404(gateway: GatewayProcess) -> None:
    alice, bob = gateway.key(), gateway.key()
    mine = classify(gateway, alice)
    theirs = classify(gateway, bob)
    with gateway.client(alice) as http:
        page = http.get("/v1/history").json()
        ids = {r["request_id"]: r["id"] for r in page["records"]}
        assert mine["request_id"] in ids and theirs["request_id"] not in ids
        own = http.get(f"/v1/history/{ids[mine['request_id']]}")
        with gateway.client(bob) as bob_http:
            bob_record_id = bob_http.get("/v1/history").json()["records"][0]["id"]
        stolen = http.get(f"/v1/history/{bob_record_id}")
        missing = http.get("/v1/history/ffffffffffffffffffffffffffffffff")
        peek = http.get("/v1/history", params={"user": "someone-else"})
    assert own.status_code == 200 and own.json()["model"] == MODEL
    assert stolen.status_code == 404 and missing.status_code == 404
    assert stolen.json() == {"error": {"code": "not_found", "message": f"no history record {bob_record_id!r}"}}
    assert peek.status_code == 403


def test_admin_sees_everyone_and_can_filter_by_user(gateway: GatewayProcess) -> None:
    user_key = gateway.key("carol")
    admin_key = gateway.key("root-admin", role="admin")
    made = classify(gateway, user_key)
    with gateway.client(admin_key) as http:
        everyone = http.get("/v1/history", params={"limit": 200}).json()["records"]
        carol = http.get("/v1/history", params={"user": "carol"}).json()["records"]
        record = http.get(f"/v1/history/{carol[0]['id']}")
    assert made["request_id"] in {r["request_id"] for r in everyone}
    assert len({r["user"] for r in everyone}) > 1
    assert {r["user"] for r in carol} == {"carol"} and record.status_code == 200


def test_history_rows_pagination_filters_and_csv(gateway: GatewayProcess) -> None:
    key = gateway.key()
    start = datetime.now(UTC)
    made = [classify(gateway, key, model=m)["request_id"] for m in (MODEL, "mobilenet_v2", MODEL, MODEL, MODEL)]
    with gateway.client(key) as http:
        seen, cursor = [], None
        while True:
            page = http.get("/v1/history", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += page["records"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        only = http.get("/v1/history", params={"model": "mobilenet_v2"}).json()["records"]
        ranged = http.get("/v1/history", params={"since": (start - timedelta(seconds=1)).isoformat(),
                                                 "until": (start + timedelta(minutes=5)).isoformat()})  # fmt: skip
        future = http.get("/v1/history", params={"since": (start + timedelta(hours=1)).isoformat()}).json()
        export = http.get("/v1/history/export")
        bad_cursor = http.get("/v1/history", params={"cursor": "garbage"})
    assert [r["request_id"] for r in seen] == made[::-1]  # newest first, each exactly once
    record = seen[0]
    assert record["status"] == "ok" and record["cached"] is False and record["top_k"] == 5
    assert len(record["image_sha256"]) == 64 and len(record["predictions"]) == 5 and record["latency_ms"] > 0
    assert [r["model"] for r in only] == ["mobilenet_v2"]
    assert len(ranged.json()["records"]) == 5 and future["records"] == []
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["request_id"] for r in rows] == made[::-1]
    assert bad_cursor.status_code == 400


def test_cached_answers_are_recorded_as_cached(gateway: GatewayProcess) -> None:
    key = gateway.key()
    image = unique_jpeg()
    classify(gateway, key, image)
    second = classify(gateway, key, image)
    with gateway.client(key) as http:
        records = http.get("/v1/history").json()["records"]
    assert second["cached"] is True
    assert [(r["cached"], r["image_sha256"]) for r in records[:2]] == [
        (True, records[1]["image_sha256"]), (False, records[0]["image_sha256"])
    ]  # fmt: skip
