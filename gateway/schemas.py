"""The HTTP API's request and response models: they are the OpenAPI document's schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.versions import NOT_READY_REASONS
from visionserve.catalog import TTA_VIEWS, load_catalog

__all__ = [
    "BatchItem",
    "BatchResponse",
    "ClassifyForm",
    "ClassifyJSON",
    "ClassifyOptions",
    "ClassifyResponse",
    "ErrorDetail",
    "ErrorResponse",
    "HistoryPage",
    "HistoryRecord",
    "ModelInfo",
    "ModelsResponse",
    "Prediction",
    "BatchForm",
    "error_responses",
    "request_body",
]

DEFAULT_MODEL = "auto"
#: Shape of a model name in a request: catalog names are short identifiers, so anything longer
#: or stranger is refused before it is looked up (and never echoed back).
MODEL_NAME_MAX_CHARS = 64
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: Statuses every /v1 operation can answer: auth (401), a wrong method (405), the body cap
#: (413), rate limits (429), the key database or Triton down (503).
COMMON_ERRORS = (401, 405, 413, 429, 503)
#: models.yaml's ``defaults.top_k``: what a request without ``top_k`` gets.
DEFAULT_TOP_K = load_catalog().top_k


class Prediction(BaseModel):
    """One of the top-k classes."""

    # read from the client's ``Prediction`` (what the classifier, cache and history hold)
    model_config = ConfigDict(from_attributes=True)

    label: str = Field(description="class name from the model's labels file")
    index: int = Field(description="class index (row of the labels file)")
    score: float = Field(description="probability of the class")


class ClassifyOptions(BaseModel):
    """Options of a classification (form fields, or JSON members)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        max_length=MODEL_NAME_MAX_CHARS,
        pattern=MODEL_NAME_PATTERN,
        description="a catalog model name, or `auto` (see X-Latency-Budget-Ms)",
    )
    top_k: int = Field(DEFAULT_TOP_K, ge=1, description="how many classes to return")
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop predictions scoring below this")
    version: int | None = Field(
        None, ge=1, description="during a release: answer with this version (the stable or the canary one)"
    )
    label: Literal["stable", "canary"] | None = Field(
        None, description="during a release: answer with the `stable` or the `canary` version"
    )
    tta: Literal["none", *TTA_VIEWS] = Field(  # type: ignore[valid-type]
        "none",
        description="test-time augmentation: `hflip` averages the image and its mirror inside Triton "
        "(one request, two batch rows; the model's `tta` in GET /v1/models lists what it offers)",
    )

    @model_validator(mode="after")
    def _one_pin(self) -> ClassifyOptions:
        if self.version is not None and self.label is not None:
            raise ValueError("give `version` or `label`, not both")
        return self


class ClassifyJSON(ClassifyOptions):
    """JSON form of ``POST /v1/classify``."""

    image_base64: str = Field(
        description="the encoded image (JPEG, PNG, WebP, BMP or GIF), base64; a data-URL prefix "
        "(`data:image/png;base64,`) is accepted",
    )


class ClassifyForm(ClassifyOptions):
    """multipart/form-data form of ``POST /v1/classify``."""

    image: bytes = Field(description="the image file (JPEG, PNG, WebP, BMP or GIF)")


class BatchForm(ClassifyOptions):
    """multipart/form-data of ``POST /v1/classify/batch``: repeat the ``image`` field per image."""

    image: list[bytes] = Field(description="the image files, in order (the field repeated); one model for all")


class ClassifyResponse(BaseModel):
    """The answer for one image."""

    request_id: str = Field(description="also in the X-Request-ID header")
    model: str = Field(description="the model that answered (the one `auto` chose)")
    version: int = Field(description="the model version that produced the predictions")
    weights: str | None = Field(description="`demo` for demonstration weights, else what the export recorded")
    predictions: list[Prediction] = Field(description="best first")
    cached: bool = Field(description="true when answered from the gateway's cache")
    route: Literal["stable", "weight", "pin"] | None = Field(
        None,
        description="during a release, why this version answered: `stable`, `weight` (the canary's share) or `pin`",
    )
    tta: str | None = Field(None, description="the test-time augmentation applied (`hflip`), null for none")
    latency_ms: float = Field(description="time spent in the gateway, Triton included")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `unsupported_media_type`")
    message: str = Field(description="what is wrong, for a human")


class ErrorResponse(BaseModel):
    """Every error has this shape."""

    error: ErrorDetail


class BatchItem(BaseModel):
    """The outcome for one image of a batch: predictions, or an error of its own."""

    index: int = Field(description="position of the image in the request")
    filename: str | None = Field(None, description="the part's filename, if any")
    status: Literal["ok", "error"]
    version: int | None = None
    cached: bool = False
    route: Literal["stable", "weight", "pin"] | None = None
    predictions: list[Prediction] = Field(default_factory=list)
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    """One result per image, in request order."""

    request_id: str
    model: str
    weights: str | None
    results: list[BatchItem]
    latency_ms: float


class ModelInfo(BaseModel):
    """A catalog model as served right now."""

    name: str
    ready: bool = Field(description="the ensemble has a READY version in Triton")
    served_version: int | None = Field(description="the version requests get (highest ready)")
    versions: list[int] = Field(description="every READY version")
    weights: str | None = Field(description="the served version's `weights` config parameter")
    demo_weights: bool = Field(description="true when the served weights are demonstration weights")
    framework: str
    input_size: int
    num_classes: int
    top1_accuracy: float | None
    gflops: float | None = Field(description="compute per image (a committee: the sum of its members')")
    tta: list[str] = Field(default_factory=list, description="test-time augmentations offered (`tta=` of classify)")
    members: dict[str, float] | None = Field(
        None, description="a committee: its member models and their weights (summing to 1)"
    )
    labels: dict[str, int] = Field(
        default_factory=dict,
        description="version labels: `stable` (the served version) and, while a release runs, `canary`",
    )
    canary_weight: float | None = Field(None, description="share of API keys routed to the canary during a release")
    expected_latency_ms: float | None = Field(description="what `auto` expects this model to take")
    latency_measured: bool = Field(description="expected latency is measured (else derived from GFLOPs)")
    reason: Literal["", *NOT_READY_REASONS] = Field(  # type: ignore[valid-type]
        "", description="why the model is not ready: a stable word, never the server's own text"
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    auto_policy: str = Field(description="how `model=auto` chooses")
    default_top_k: int
    triton_reachable: bool


class HistoryRecord(BaseModel):
    """One stored classification attempt."""

    # read from ``history.HistoryRow`` (``key_id`` is not shown)
    model_config = ConfigDict(from_attributes=True)

    id: str
    request_id: str
    created_at: datetime = Field(description="UTC")
    user: str
    model: str
    version: int | None
    image_sha256: str
    top_k: int
    predictions: list[Prediction]
    latency_ms: float
    cached: bool
    status: Literal["ok", "rejected", "error"]
    http_status: int
    error: str | None
    frames: int | None = Field(None, description="a video: frames classified (null for an image)")
    duration_s: float | None = Field(None, description="a video: its duration in seconds (null for an image)")
    tta: str | None = Field(None, description="the test-time augmentation applied (`hflip`), null for none")

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # stored naive UTC


class HistoryPage(BaseModel):
    records: list[HistoryRecord] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


def request_body(*alternatives: tuple[str, type[BaseModel]]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` offering several content types (FastAPI cannot infer it)."""
    content = {}
    for media_type, model in alternatives:
        schema = model.model_json_schema()
        assert "$defs" not in schema, f"{model.__name__} must be flat to be inlined"
        content[media_type] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` entries documenting the error body for each status.

    ``COMMON_ERRORS`` are added to every operation; declaring 422 also keeps FastAPI from
    documenting its own validation-error shape (the gateway answers ``ErrorResponse``).
    """
    text = {
        400: "malformed body, invalid option or image, or bad cursor",
        401: "missing, unknown or revoked API key",
        403: "admin only",
        404: "not found (or someone else's)",
        405: "method not allowed on this path (see Allow)",
        413: "too large",
        415: "not an accepted image format or content type",
        422: "a query parameter, path parameter or header failed validation",
        429: "rate limit exceeded (see Retry-After)",
        502: "Triton rejected the inference",
        503: "Triton or the key/history database unavailable (see Retry-After)",
    }
    return {
        s: {"model": ErrorResponse, "description": text.get(s, "error")} for s in sorted({*statuses, *COMMON_ERRORS})
    }
