"""The gateway's OpenAPI document (``/docs.json``), valid OpenAPI 3.0.

BentoML labels its document ``openapi: 3.0.2`` but takes the mounted FastAPI app's paths and
schemas from FastAPI, which writes OpenAPI 3.1 / JSON Schema 2020-12 (``anyOf: [..., {type:
null}]`` for an optional value, ``exclusiveMinimum: 0`` as a number, ``const``). Tools that
read 3.0 (``openapi-spec-validator``, client generators, schemathesis) reject or misread that.
``document`` rewrites those forms into their 3.0 equivalents (``nullable``, boolean
``exclusiveMinimum``, ``enum``) and declares the infrastructure endpoints' own statuses;
``GatewayMiddleware`` serves the result at ``/docs.json`` in place of BentoML's.

It is also the project's document, not the framework's: BentoML's info block (badges from
external hosts, "Contact BentoML Team", version "None") and its two generic tags give way to
the gateway's title, package version and description, and one tag per area (``TAGS``), which
the API reference page at ``/`` (``gateway.console``) groups operations by.
"""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

__all__ = ["TAGS", "document", "downgrade_schema"]

#: (tag, description, path prefixes): the first tag whose prefix a path starts with is its area.
TAGS = (
    ("classification", "Top-k classes of uploaded images", ("/v1/classify",)),
    ("history", "Your classification records, as pages or CSV", ("/v1/history",)),
    ("models", "What is served, which versions, and what `auto` expects of each", ("/v1/models",)),
    ("operations", "Health, readiness and Prometheus metrics for operators", ("/",)),
)
DESCRIPTION = (
    "Image classification on NVIDIA Triton. Every `/v1` call takes an API key as "
    "`Authorization: Bearer <key>` (`visionserve keys create`) and is rate-limited per key; errors "
    'answer `{"error": {"code", "message"}}`. The console at `/ui` uses this API from a browser.'
)

_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties",)
_SCHEMA_ONE = ("items", "not", "additionalProperties")
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def downgrade_schema(schema: Any) -> Any:
    """A JSON Schema (2020-12, as Pydantic writes it) as an OpenAPI 3.0 Schema Object."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [downgrade_schema(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: downgrade_schema(v) for name, v in value.items()}
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = downgrade_schema(value)
        else:
            out[key] = value
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out["minimum" if bound == "exclusiveMinimum" else "maximum"] = value
            out[bound] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out and isinstance(out["examples"], list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else out["type"]
    for combinator in ("anyOf", "oneOf"):
        options = out.get(combinator)
        if not isinstance(options, list):
            continue
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == len(options):
            continue
        del out[combinator]
        out["nullable"] = True
        if len(kept) == 1 and "$ref" not in kept[0]:
            out = {**kept[0], **out}
        elif kept:
            out[combinator] = kept
    if out.get("nullable") and "$ref" in out:  # a $ref takes no siblings in 3.0: wrap it
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def _walk(node: Any) -> Any:
    """Downgrade every ``schema`` found in a paths / components tree."""
    if isinstance(node, list):
        return [_walk(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: downgrade_schema(v) if k == "schema" else _walk(v) for k, v in node.items()}


#: Examples for the documented schemas (shown by the API reference and client generators).
EXAMPLES: dict[str, dict[str, Any]] = {
    "ClassifyResponse": {
        "request_id": "5f0c7e8a9b2d4c6e8f0a1b2c3d4e5f60",
        "model": "resnet50",
        "version": 3,
        "weights": "imagenet",
        "predictions": [
            {"label": "tabby", "index": 281, "score": 0.8123},
            {"label": "tiger cat", "index": 282, "score": 0.1012},
        ],
        "cached": False,
        "latency_ms": 41.7,
    },
    "VideoResponse": {
        "request_id": "9a1f0c7e8a9b2d4c6e8f0a1b2c3d4e5f",
        "model": "resnet18",
        "version": 2,
        "weights": "imagenet",
        "duration_s": 3.0,
        "sampling": {"every_seconds": 1.0, "keyframes_only": False},
        "frames": [
            {"t_s": 0.0, "keyframe": True, "predictions": [{"label": "tabby", "index": 281, "score": 0.71}]},
            {"t_s": 1.0, "keyframe": False, "predictions": [{"label": "tabby", "index": 281, "score": 0.64}]},
            {"t_s": 2.0, "keyframe": False, "predictions": [{"label": "Egyptian cat", "index": 285, "score": 0.58}]},
        ],
        "aggregate": [{"label": "tabby", "index": 281, "score": 0.52}],
        "segments": [
            {"start_s": 0.0, "end_s": 2.0, "label": "tabby", "index": 281, "frames": 2},
            {"start_s": 2.0, "end_s": 3.0, "label": "Egyptian cat", "index": 285, "frames": 1},
        ],
        "cached": False,
        "latency_ms": 212.4,
    },
    "ErrorResponse": {"error": {"code": "unsupported_media_type", "message": "not an image: PDF document"}},
}


def _version() -> str:
    try:
        return metadata.version("visionserve")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(_ERROR_SCHEMA)}}}


def document(spec: dict[str, Any], *, metrics_protected: bool) -> dict[str, Any]:
    """The served document: BentoML's ``openapi_spec.asdict()`` made valid OpenAPI 3.0.

    Args:
        spec: BentoML's document (not modified).
        metrics_protected: ``/metrics`` needs a bearer token (``GATEWAY_METRICS_TOKEN``).
    """
    doc = copy.deepcopy(spec)
    doc["openapi"] = "3.0.3"
    doc["info"] = {"title": "visionserve gateway", "version": _version(), "description": DESCRIPTION}
    doc["tags"] = [{"name": name, "description": text} for name, text, _ in TAGS]
    for path, item in doc.get("paths", {}).items():
        area = next(name for name, _, prefixes in TAGS if path.startswith(prefixes))
        for operation in item.values():
            if isinstance(operation, dict):
                operation["tags"] = [area]
    doc["paths"] = _walk(doc.get("paths", {}))
    components = doc.setdefault("components", {})
    components["schemas"] = {name: downgrade_schema(s) for name, s in components.get("schemas", {}).items()}
    for name, example in EXAMPLES.items():
        if name in components["schemas"]:
            components["schemas"][name]["example"] = example
    for name in ("HTTPValidationError", "ValidationError"):  # 422 answers ErrorResponse, not FastAPI's shape
        components["schemas"].pop(name, None)
    paths = doc["paths"]
    if "/readyz" in paths:
        paths["/readyz"]["get"]["responses"]["503"] = {"description": "no catalog ensemble is ready in Triton"}
    if "/metrics" in paths and metrics_protected:
        paths["/metrics"]["get"]["responses"]["401"] = _error("missing or wrong metrics bearer token")
    return doc
