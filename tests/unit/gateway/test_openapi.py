"""The OpenAPI document BentoML generates describes the /v1 API with real schemas."""

from __future__ import annotations

from gateway.service import Gateway


def spec() -> dict:
    return Gateway.openapi_spec.asdict()


def test_every_route_is_documented() -> None:
    paths = spec()["paths"]
    routes = [
        ("/v1/classify", "post"), ("/v1/classify/batch", "post"), ("/v1/models", "get"),
        ("/v1/history", "get"), ("/v1/history/export", "get"), ("/v1/history/{record_id}", "get"),
        ("/readyz", "get"), ("/livez", "get"), ("/metrics", "get"),
    ]  # fmt: skip
    for path, method in routes:
        assert method in paths[path], path


def test_classify_documents_both_bodies_and_the_response_schema() -> None:
    doc = spec()
    op = doc["paths"]["/v1/classify"]["post"]
    content = op["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert {"image_base64", "model", "top_k", "min_score"} <= set(
        content["application/json"]["schema"]["properties"]
    )
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/ClassifyResponse")
    schemas = doc["components"]["schemas"]
    props = schemas["ClassifyResponse"]["properties"]
    assert {"request_id", "model", "version", "weights", "predictions", "cached", "latency_ms"} <= set(props)
    assert {"401", "413", "415", "429", "503"} <= set(op["responses"])
    assert schemas["ErrorResponse"]["properties"]["error"]


def test_history_and_models_have_typed_parameters_and_schemas() -> None:
    doc = spec()
    params = {p["name"]: p for p in doc["paths"]["/v1/history"]["get"]["parameters"]}
    assert {"model", "since", "until", "cursor", "limit", "user"} <= set(params)
    assert "HistoryPage" in doc["components"]["schemas"] and "ModelInfo" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/models"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "X-Latency-Budget-Ms" in {p["name"] for p in doc["paths"]["/v1/classify"]["post"]["parameters"]}
