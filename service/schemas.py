"""Request and response models of the HTTP API (pydantic). Nothing here does any work.

Request models are strict (no type coercion: ``"yes"`` is not a boolean, ``1`` is not a string)
and forbid unknown fields. The configurable limits (comments per request, characters per text)
are checked by the endpoint and written into the OpenAPI schema by ``service.app``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.bundle import BundleMetadata
from service.settings import Mode


def _encodable(value: str) -> str:
    # JSON lets a client send a lone surrogate ("\ud800"); nothing downstream can encode it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains an unpaired surrogate code point at position {exc.start}") from None
    return value


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, AfterValidator(_encodable)] | None = Field(
        None, max_length=256, description="Caller's id, echoed back in the result."
    )
    text: Annotated[str, AfterValidator(_encodable)] = Field(
        pattern=r"\S", description="The comment as written: at least one non-space character."
    )


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"comments": [{"id": "1", "text": "前方高能！"}], "mode": "precision"}]},
    )

    comments: list[Comment] = Field(min_length=1, description="Comments to classify, answered in the same order.")
    mode: Mode | None = Field(
        None,
        description="precision: information needs a high probability; recall: a low one. "
        "Unset: the service default (DANMAKU_DEFAULT_MODE).",
    )
    information_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Overrides the mode's information threshold for this request."
    )
    return_scores: bool = Field(False, description="Include every probability of every model that ran.")


Scores = dict[str, dict[str, dict[str, float]]]


class CommentResult(BaseModel):
    id: str | None = Field(description="The id sent with the comment (null if none).")
    label: str = Field(description="Final main category.")
    subcategory: str | None = Field(description="Best sub-category under the final label (null if none exists).")
    labels: list[str] = Field(description="Every main category whose probability clears its threshold.")
    route: list[str] = Field(description="Names of the model bundles that ran on this comment, in order.")
    information_probability: float | None = Field(
        description="Probability from the information model; null when it did not run on this comment."
    )
    scores: Scores | None = Field(
        None, description="bundle -> head -> label -> probability, when return_scores was true."
    )


class ClassifyResponse(BaseModel):
    results: list[CommentResult]
    models: dict[str, str] = Field(description="Version of each bundle used (bundle name -> version).")
    mode: Mode
    information_threshold: float = Field(description="Threshold applied to the information probability.")


class ErrorDetail(BaseModel):
    field: str = Field(description="Offending field with indexes, e.g. comments[3].text.")
    problem: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_request, overloaded.")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class StatusResponse(BaseModel):
    status: str


class ModelInfo(BundleMetadata):
    """A loaded bundle: its ``bundle.json`` and the execution providers its session runs on."""

    execution_providers: list[str]


class RoutingInfo(BaseModel):
    routed_labels: list[str]
    thresholds: dict[str, float] = Field(description="Information threshold of each mode.")
    default_mode: Mode


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    routing: RoutingInfo
