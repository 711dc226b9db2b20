"""The HTTP contract of a real gateway on a real tritonserver (embedded defaults)."""

from __future__ import annotations

import base64

import pytest

from tests.integration.gateway.conftest import GatewayProcess, ensemble_counts, unique_jpeg
from visionserve.catalog import load_catalog

pytestmark = pytest.mark.integration
CATALOG = load_catalog()
MODEL = "resnet18"


def test_classify_multipart_then_cached(gateway: GatewayProcess) -> None:
    image = unique_jpeg()
    with gateway.client(gateway.key()) as http:
        first = http.post("/v1/classify", files={"image": ("x.jpg", image, "image/jpeg")},
                          data={"model": MODEL, "top_k": "3"})  # fmt: skip
        second = http.post("/v1/classify", files={"image": ("y.jpg", image)}, data={"model": MODEL, "top_k": "3"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {
        "request_id", "model", "version", "weights", "predictions", "cached", "route", "tta", "latency_ms",
    }  # fmt: skip
    assert body["model"] == MODEL and body["version"] == 1 and body["weights"] == "demo"
    assert body["route"] is None and body["tta"] is None  # no release running, no TTA asked
    assert body["cached"] is False and second.json()["cached"] is True
    assert body["request_id"] == first.headers["x-request-id"]
    preds = body["predictions"]
    assert len(preds) == 3 and preds == second.json()["predictions"]
    assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
    assert all(set(p) == {"label", "index", "score"} and p["label"] for p in preds)


def test_classify_json_base64_with_data_url_and_min_score(gateway: GatewayProcess) -> None:
    image = unique_jpeg()
    encoded = base64.b64encode(image).decode()
    with gateway.client(gateway.key()) as http:
        plain = http.post("/v1/classify", json={"image_base64": encoded, "model": MODEL, "top_k": 10})
        data_url = http.post("/v1/classify", json={"image_base64": "data:image/jpeg;base64," + encoded,
                                                  "model": MODEL, "top_k": 10, "min_score": 0.05})  # fmt: skip
    assert plain.status_code == 200 and data_url.status_code == 200, data_url.text
    everything = plain.json()["predictions"]
    kept = data_url.json()["predictions"]
    assert len(everything) == 10
    assert kept == [p for p in everything if p["score"] >= 0.05]
    assert data_url.json()["cached"] is True  # same bytes, same model/version/top_k


def test_top_k_default_is_five_and_bad_options_are_400(gateway: GatewayProcess) -> None:
    image = unique_jpeg()
    with gateway.client(gateway.key()) as http:
        default = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": MODEL})
        bad_k = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"top_k": "0"})
        huge_k = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"top_k": "5000"})
        unknown = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": "alexnet"})
        wrong_type = http.post("/v1/classify", content=image, headers={"content-type": "image/jpeg"})
    assert len(default.json()["predictions"]) == 5
    assert (bad_k.status_code, huge_k.status_code, unknown.status_code) == (400, 400, 404)
    assert unknown.json()["error"]["code"] == "unknown_model"
    assert wrong_type.status_code == 415


def test_batch_is_one_triton_request_with_per_image_errors(gateway: GatewayProcess, triton) -> None:
    images = [unique_jpeg() for _ in range(3)]
    files = [("image", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    files.insert(1, ("image", ("evil.pdf", b"%PDF-1.7 not an image", "image/jpeg")))
    before = ensemble_counts(triton.grpc_url, MODEL)
    with gateway.client(gateway.key()) as http:
        r = http.post("/v1/classify/batch", files=files, data={"model": MODEL, "top_k": "2"})
    after = ensemble_counts(triton.grpc_url, MODEL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == MODEL and len(body["results"]) == 4
    statuses = [(item["index"], item["status"]) for item in body["results"]]
    assert statuses == [(0, "ok"), (1, "error"), (2, "ok"), (3, "ok")]
    assert body["results"][1]["error"]["code"] == "unsupported_media_type"
    assert all(len(item["predictions"]) == 2 for item in body["results"] if item["status"] == "ok")
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)  # three images, ONE execution


def test_batch_size_cap(gateway: GatewayProcess) -> None:
    files = [("image", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(17)]
    with gateway.client(gateway.key()) as http:
        r = http.post("/v1/classify/batch", files=files)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"


def test_models_lists_the_catalog_with_versions_readiness_and_demo_flag(gateway: GatewayProcess) -> None:
    with gateway.client(gateway.key()) as http:
        body = http.get("/v1/models").json()
    assert [m["name"] for m in body["models"]] == CATALOG.served_names  # the committee too
    for m in body["models"]:
        assert m["ready"] is True and m["served_version"] == 1 and m["versions"] == [1]
        assert m["weights"] == "demo" and m["demo_weights"] is True
        assert m["expected_latency_ms"] > 0
        assert m["labels"] == {"stable": 1} and m["canary_weight"] is None  # no release runs
    assert body["triton_reachable"] is True and "accurate" in body["auto_policy"]


def test_auto_follows_the_declared_policy(gateway: GatewayProcess) -> None:
    with gateway.client(gateway.key()) as http:
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        no_budget = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())})
        tiny = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())},
                         headers={"X-Latency-Budget-Ms": "0.001"})  # fmt: skip
        bad = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())},
                        headers={"X-Latency-Budget-Ms": "soon"})  # fmt: skip
    rated = [m for m in models.values() if m["top1_accuracy"] is not None]  # a committee declares none
    most_accurate = max(rated, key=lambda m: m["top1_accuracy"])["name"]
    fastest = min(rated, key=lambda m: m["expected_latency_ms"])["name"]
    assert no_budget.json()["model"] == most_accurate
    assert tiny.json()["model"] == fastest
    assert bad.status_code == 422  # a header failing its declared schema: what the document says


def test_infrastructure_endpoints(gateway: GatewayProcess) -> None:
    with gateway.client() as http:
        assert http.get("/readyz").status_code == 200
        assert http.get("/livez").status_code == 200
        metrics = http.get("/metrics").text
        docs = http.get("/docs.json").json()
        index = http.get("/")
    for name in ("visionserve_gateway_request_seconds_bucket", "visionserve_gateway_cache_lookups_total",
                 "visionserve_gateway_triton_seconds_bucket"):  # fmt: skip
        assert name in metrics, name
    assert 'result="hit"' in metrics and 'result="miss"' in metrics
    assert "/v1/classify" in docs["paths"] and "ClassifyResponse" in docs["components"]["schemas"]
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]


def test_wrong_method_is_405_with_allow_and_a_json_body(gateway: GatewayProcess) -> None:
    """Finding: a wrong method on a real path got 404."""
    with gateway.client(gateway.key()) as http:
        get_classify = http.get("/v1/classify")
        delete_models = http.delete("/v1/models")
        put_record = http.put("/v1/history/abc")
        missing = http.get("/v1/nothing-here")
    assert get_classify.status_code == 405 and get_classify.headers["allow"] == "POST"
    assert get_classify.json()["error"]["code"] == "method_not_allowed"
    assert delete_models.status_code == 405 and set(delete_models.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert put_record.status_code == 405
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0.5"},  # a bare number that is no sane Unix time
        {"since": "1e12"},
        {"since": "9999-12-31T23:59:59-14:00"},  # used to overflow in the UTC conversion: a 500
        {"since": "0001-01-01T00:00:00+14:00"},
        {"since": "yesterday"},
        {"until": "nan"},
    ],
)
def test_bad_history_parameters_are_422_never_500(gateway: GatewayProcess, params: dict) -> None:
    """Findings: ``since`` near the datetime limits gave a 500; ``until=0.5`` was taken as a time."""
    with gateway.client(gateway.key()) as http:
        listing = http.get("/v1/history", params=params)
        export = http.get("/v1/history/export", params=params)
    for r in (listing, export):
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"


def test_sane_timestamps_are_accepted_as_iso_or_unix_seconds(gateway: GatewayProcess) -> None:
    with gateway.client(gateway.key()) as http:
        iso = http.get("/v1/history", params={"since": "2026-01-01T00:00:00Z", "until": "9999-12-31T23:59:59"})
        unix = http.get("/v1/history", params={"since": "1700000000", "until": "4000000000.5"})
        no_rows = http.get("/v1/history", params={"limit": "0"})
    assert iso.status_code == 200 and unix.status_code == 200, (iso.text, unix.text)
    assert no_rows.status_code == 422


def test_model_field_is_bounded_and_never_echoed(gateway: GatewayProcess) -> None:
    """Finding: the JSON ``model`` field had no length limit and was echoed in the 404."""
    image = base64.b64encode(unique_jpeg()).decode()
    marker = "zz" + "<script>x</script>"
    with gateway.client(gateway.key()) as http:
        long = http.post("/v1/classify", json={"image_base64": image, "model": "m" * 100_000})
        odd = http.post("/v1/classify", json={"image_base64": image, "model": marker})
        unknown = http.post("/v1/classify", json={"image_base64": image, "model": "zz-unknown-model"})
    assert long.status_code == 400 and "m" * 100 not in long.text
    assert odd.status_code == 400 and "script" not in odd.text
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_model"
    assert "zz-unknown-model" not in unknown.text
    assert all(name in unknown.json()["error"]["message"] for name in CATALOG.names)


def test_cache_is_per_key_by_default(gateway: GatewayProcess) -> None:
    """Finding: ``cached: true`` told user B that someone else had uploaded the same bytes."""
    image = unique_jpeg()
    alice, bob = gateway.key(), gateway.key()

    def cached(key: str) -> bool:
        with gateway.client(key) as http:
            r = http.post("/v1/classify", files={"image": ("a.jpg", image)}, data={"model": MODEL})
        assert r.status_code == 200, r.text
        return r.json()["cached"]

    assert [cached(alice), cached(bob), cached(alice), cached(bob)] == [False, False, True, True]


def test_served_document_is_valid_openapi_3_0(gateway: GatewayProcess) -> None:
    from openapi_spec_validator import validate

    with gateway.client() as http:
        doc = http.get("/docs.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.0.")
