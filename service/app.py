"""The HTTP API: ``create_app(settings)`` builds it; the lifespan loads and warms the bundles.

Endpoints are thin: validate (pydantic + the configurable limits), hand the texts to the router,
shape the answer. Errors go through the one handler in ``service.errors``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service import tracing
from service.disclosure import public_provenance
from service.errors import (
    InvalidRequest,
    NotReady,
    ServiceError,
    ShuttingDown,
    TooManyComments,
    render,
    to_error,
)
from service.lifecycle import Lifecycle
from service.metrics import Metrics
from service.middleware import GuardMiddleware, RequestMetricsMiddleware, cancel_on_disconnect
from service.parsing import classify_request
from service.runtime import Runtime
from service.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    CommentResult,
    ErrorDetail,
    ErrorResponse,
    ModelInfo,
    ModelsResponse,
    RoutingInfo,
    StatusResponse,
)
from service.settings import Settings, load_settings

logger = logging.getLogger(__name__)

RuntimeLoader = Callable[[Settings, Metrics], Runtime]
CLASSIFY_PATH = "/classify"
ROUTES = (CLASSIFY_PATH, "/healthz", "/readyz", "/v1/models", "/metrics", "/docs", "/openapi.json")
# With a bearer token (and DANMAKU_AUTH_COVERS_METADATA), these need it too; health, readiness and metrics never do.
METADATA_PATHS = ("/v1/models", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


def _package_version() -> str:
    try:
        return version("danmaku-classifier")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    lifecycle: Lifecycle
    runtime: Runtime | None = None

    def loaded_runtime(self) -> Runtime:
        """The runtime, or NotReady. Admission (and refusing new work while draining) is the guard's job:
        a request admitted before SIGTERM must still be served after it."""
        if self.runtime is None or not self.lifecycle.ready:
            raise NotReady("the models are not loaded and warmed up yet")
        return self.runtime

    def check_ready(self) -> None:
        if self.lifecycle.draining:
            raise ShuttingDown()
        self.loaded_runtime()


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


CLASSIFY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not valid JSON."),
    401: _error("Bearer token missing or wrong (only when the service requires one)."),
    408: _error("The body did not arrive within DANMAKU_BODY_TIMEOUT_S, or the service began shutting down."),
    413: _error("Body larger than DANMAKU_MAX_BODY_BYTES, or more comments than DANMAKU_MAX_COMMENTS_PER_REQUEST."),
    415: _error("Content-Type is not application/json."),
    422: _error("A field is missing, unknown, of the wrong type or out of range; details name it with its index."),
    429: _error("A model queue is full; retry after the Retry-After header's seconds."),
    503: _error("Not ready yet (models loading) or shutting down."),
}

router = APIRouter()
State = Annotated[ServiceState, Depends(service_state)]
# The body is parsed by service.parsing (cheap checks before per-item validation); documented here instead.
CLASSIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}}},
    }
}


def check_limits(payload: ClassifyRequest, settings: Settings) -> None:
    """The configurable limits (the static ones are in the pydantic models)."""
    count, limit = len(payload.comments), settings.max_comments_per_request
    if count > limit:
        raise TooManyComments(
            f"{count} comments in one request; the limit is {limit} (DANMAKU_MAX_COMMENTS_PER_REQUEST)",
            details=[ErrorDetail(field="comments", problem=f"{count} items, at most {limit}")],
        )
    too_long = [
        ErrorDetail(
            field=f"comments[{index}].text",
            problem=f"{len(comment.text)} characters, at most {settings.max_text_chars}",
        )
        for index, comment in enumerate(payload.comments)
        if len(comment.text) > settings.max_text_chars
    ]
    if too_long:
        raise InvalidRequest(
            f"invalid request: {too_long[0].field}: {too_long[0].problem} (DANMAKU_MAX_TEXT_CHARS)"
            + (f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""),
            details=too_long,
        )


@router.post(
    CLASSIFY_PATH,
    response_model=ClassifyResponse,
    responses=CLASSIFY_ERRORS,
    summary="Classify a batch of comments",
    description="One result per comment, in order. See docs/serving.md for the routing rule.",
    openapi_extra=CLASSIFY_BODY,
)
async def classify(
    payload: Annotated[ClassifyRequest, Depends(classify_request)], request: Request, state: State
) -> ClassifyResponse:
    runtime = state.loaded_runtime()
    with tracing.span("validate", comments=len(payload.comments)):
        check_limits(payload, state.settings)
    batch = await cancel_on_disconnect(
        request.receive,
        tracing.traced(
            "route",
            runtime.router.classify(
                [comment.text for comment in payload.comments],
                mode=payload.mode,
                information_threshold=payload.information_threshold,
                return_scores=payload.return_scores,
            ),
        ),
    )
    if tracing.enabled():
        routed = sum(decision.information_probability is not None for decision in batch.decisions)
        attributes = {"danmaku.comments": len(batch.decisions), "danmaku.routed": routed, "danmaku.mode": batch.mode}
        tracing.annotate(**attributes)
    return ClassifyResponse(
        results=[
            CommentResult(
                id=comment.id,
                label=decision.label,
                subcategory=decision.subcategory,
                labels=decision.labels,
                route=decision.route,
                information_probability=decision.information_probability,
                scores=decision.scores,
            )
            for comment, decision in zip(payload.comments, batch.decisions, strict=True)
        ],
        models=batch.models,
        mode=batch.mode,
        information_threshold=batch.information_threshold,
    )


@router.get("/healthz", response_model=StatusResponse, summary="Liveness: the process answers")
async def healthz() -> StatusResponse:
    return StatusResponse(status="alive")


@router.get(
    "/readyz",
    response_model=StatusResponse,
    responses={503: _error("Models not loaded and warmed yet, or shutting down.")},
    summary="Readiness: every bundle loaded and warmed, not shutting down",
)
async def readyz(state: State) -> StatusResponse:
    state.check_ready()
    return StatusResponse(status="ready")


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    responses={503: _error("Models not loaded yet, or shutting down.")},
    summary="Metadata of the loaded bundles and the routing settings",
)
async def models(state: State) -> ModelsResponse:
    runtime = state.loaded_runtime()
    policy = runtime.router.policy
    return ModelsResponse(
        models=[
            ModelInfo(
                **{**dict(model.metadata), "provenance": public_provenance(model.metadata.provenance)},
                execution_providers=model.providers,
            )
            for model in runtime.models
        ],
        routing=RoutingInfo(
            routed_labels=sorted(policy.routed_labels),
            thresholds=dict(policy.thresholds),
            default_mode=policy.default_mode,
        ),
    )


async def metrics_endpoint(request: Request) -> Response:
    state = service_state(request)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _document_limits(app: FastAPI, settings: Settings, bearer: bool) -> Callable[[], dict[str, Any]]:
    """OpenAPI with the configured limits (maxItems, maxLength) and, if on, the bearer scheme."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema["components"]["schemas"]
            request_schema = ClassifyRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(request_schema.pop("$defs", {}))
            components["ClassifyRequest"] = request_schema
            components["ClassifyRequest"]["properties"]["comments"]["maxItems"] = settings.max_comments_per_request
            components["Comment"]["properties"]["text"]["maxLength"] = settings.max_text_chars
            if bearer:
                schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                schema["paths"][CLASSIFY_PATH]["post"]["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(settings: Settings | None = None, *, load_runtime: RuntimeLoader = Runtime.load) -> FastAPI:
    """The service as an ASGI app. ``load_runtime`` is swappable so tests can serve fake models."""
    settings = settings or load_settings()
    state = ServiceState(settings=settings, metrics=Metrics(), lifecycle=Lifecycle())
    bearer_token = settings.bearer_token()
    tracing.configure(settings.otlp_endpoint, service_version=_package_version())
    state.metrics.ready.set_function(lambda: float(state.lifecycle.ready and not state.lifecycle.draining))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server, _ = start_http_server(settings.metrics_port, settings.host, state.metrics.registry)
            logger.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        try:
            try:
                state.runtime = await asyncio.to_thread(load_runtime, settings, state.metrics)
            except Exception as exc:
                logger.error("cannot start: %s", exc)
                raise
            state.runtime.start()
            state.lifecycle.ready = True
            yield
        finally:
            state.lifecycle.ready = False
            if state.runtime is not None:
                await state.runtime.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()

    app = FastAPI(
        title="Danmaku classifier",
        version=_package_version(),
        description="Classifies Chinese danmaku (bullet-screen comments): emotion model on every comment, "
        "information model on the comments it routes. Errors: {'error': {'code', 'message', 'details'}}.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.include_router(router)
    if settings.metrics_port is None:
        app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)

    async def handle(request: Request, exc: Exception) -> Response:
        status, error = to_error(exc)
        if status >= 400 and status != 500:
            state.metrics.rejections.labels(error.code).inc()
        return render(status, error)

    for exception_type in (ServiceError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(exception_type, handle)
    # Added last = outermost: metrics see every request, the guard runs before any parsing.
    app.add_middleware(
        GuardMiddleware,
        lifecycle=state.lifecycle,
        metrics=state.metrics,
        max_body_bytes=settings.max_body_bytes,
        bearer_token=bearer_token,
        protected=(CLASSIFY_PATH,),
        authenticated=METADATA_PATHS if settings.auth_covers_metadata else (),
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=state.metrics, routes=ROUTES)
    app.add_middleware(tracing.TracingMiddleware, paths=(CLASSIFY_PATH,))  # a no-op unless tracing is on
    app.openapi = _document_limits(app, settings, bearer_token is not None)  # type: ignore[method-assign]
    return app
