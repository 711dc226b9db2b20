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
    assert set(body) == {"request_id", "model", "version", "weights", "predictions", "cached", "latency_ms"}
    assert body["model"] == MODEL and body["version"] == 1 and body["weights"] == "demo"
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
    assert [m["name"] for m in body["models"]] == CATALOG.names
    for m in body["models"]:
        assert m["ready"] is True and m["served_version"] == 1 and m["versions"] == [1]
        assert m["weights"] == "demo" and m["demo_weights"] is True
        assert m["expected_latency_ms"] > 0
    assert body["triton_reachable"] is True and "accurate" in body["auto_policy"]


def test_auto_follows_the_declared_policy(gateway: GatewayProcess) -> None:
    with gateway.client(gateway.key()) as http:
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        no_budget = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())})
        tiny = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())},
                         headers={"X-Latency-Budget-Ms": "0.001"})  # fmt: skip
        bad = http.post("/v1/classify", files={"image": ("a.jpg", unique_jpeg())},
                        headers={"X-Latency-Budget-Ms": "soon"})  # fmt: skip
    most_accurate = max(models.values(), key=lambda m: m["top1_accuracy"])["name"]
    fastest = min(models.values(), key=lambda m: m["expected_latency_ms"])["name"]
    assert no_budget.json()["model"] == most_accurate
    assert tiny.json()["model"] == fastest
    assert bad.status_code == 400


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
