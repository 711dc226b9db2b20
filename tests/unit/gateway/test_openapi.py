"""The OpenAPI document served at /docs.json: valid OpenAPI 3.0, real schemas, every status declared."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from gateway.openapi import downgrade_schema
from gateway.schemas import COMMON_ERRORS
from gateway.service import openapi_document


def spec() -> dict:
    return openapi_document()


def test_document_is_valid_openapi_3_0() -> None:
    """Finding: BentoML's document mixed in 3.1 forms (``exclusiveMinimum: 0`` as a number)."""
    doc = spec()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)  # raises on any violation of the 3.0 schema
    budget = next(p for p in doc["paths"]["/v1/classify"]["post"]["parameters"] if p["name"] == "X-Latency-Budget-Ms")
    assert budget["schema"]["exclusiveMinimum"] is True and budget["schema"]["minimum"] == 0


def test_every_v1_operation_declares_its_errors_with_the_error_schema() -> None:
    doc = spec()
    expected = {
        ("/v1/classify", "post"): {400, 404, 415, 422, 502},
        ("/v1/classify/batch", "post"): {400, 404, 415, 422},
        ("/v1/classify/video", "post"): {400, 404, 415, 422, 502},
        ("/v1/models", "get"): set(),
        ("/v1/history", "get"): {400, 403, 422},
        ("/v1/history/export", "get"): {403, 422},
        ("/v1/history/{record_id}", "get"): {404, 422},
    }
    for (path, method), statuses in expected.items():
        responses = doc["paths"][path][method]["responses"]
        assert {str(s) for s in statuses | set(COMMON_ERRORS)} <= set(responses), path
        for status, response in responses.items():
            if status != "200":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


@pytest.mark.parametrize(
    "schema,expected",
    [
        ({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "T"},
         {"type": "string", "title": "T", "nullable": True}),
        ({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}, {"nullable": True, "anyOf": [{"$ref": "#/x"}]}),
        ({"type": "number", "exclusiveMaximum": 5}, {"type": "number", "maximum": 5, "exclusiveMaximum": True}),
        ({"const": "ok"}, {"enum": ["ok"]}),
        ({"type": "object", "properties": {"a": {"type": ["integer", "null"]}}},
         {"type": "object", "properties": {"a": {"type": "integer", "nullable": True}}}),
    ],
)  # fmt: skip
def test_downgrade_rewrites_3_1_forms(schema: dict, expected: dict) -> None:
    assert downgrade_schema(schema) == expected


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


def test_the_video_route_is_documented_with_its_form_and_example() -> None:
    doc = spec()
    operation = doc["paths"]["/v1/classify/video"]["post"]
    assert operation["tags"] == ["classification"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"video", "model", "top_k", "every_seconds", "keyframes_only"} <= set(form["properties"])
    example = doc["components"]["schemas"]["VideoResponse"]["example"]
    assert example["segments"] and example["frames"] and example["aggregate"]
