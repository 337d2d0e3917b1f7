"""The FastAPI application: endpoints, limits, metrics, canary routing, shadow scoring and the prediction log.

Endpoints:

- ``POST /predict``: one raw record (a JSON object) or a batch (a JSON array of objects) -> probability, label at
  the bundle's decision threshold, and the model version that answered.
- ``GET /livez``: the process is up. ``GET /readyz``: 200 once every configured bundle is loaded and its manifest
  verified, 503 before (or when loading failed, with the reason).
- ``GET /metadata``: schema, model versions, threshold, classes, limits.
- ``GET /metrics``: Prometheus text.

Every error is a JSON body ``{"error": <code>, "message": ..., "problems": [{"record", "field", "message"}]}``:
400 malformed JSON, 408 a body that did not arrive in time, 413 body or batch too large, 415 a body not declared as
JSON, 422 invalid records or a non-finite model output, 503 not ready, draining (``/readyz``) or over the concurrency
limit. The request path parses with orjson (a batch of valid records with msgspec, straight into typed records),
validates with plain Python and NumPy (no pydantic) and scores with the NumPy forward pass; TensorFlow is imported
only by the loader thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from .metrics import ServiceMetrics
from .middleware import Receive, Scope, Send, ServiceMiddleware, error_body, json_response
from .openapi import openapi_document
from .predict import Predictor
from .settings import ServiceSettings
from .state import ServiceState, limit_blas_threads

__all__ = ["ServiceState", "create_app", "limit_blas_threads"]

logger = logging.getLogger(__name__)


class _ASGIEndpoint:
    """Starlette routes hand a class instance the raw ASGI call (a function would be wrapped in a Request)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ServiceApp(FastAPI):
    """FastAPI, with ``POST /predict`` dispatched straight to its handler (through the service middleware only):
    the router and FastAPI's own middleware stack cost more per request than validating a record."""

    fast_predict: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_predict is not None
            and scope["type"] == "http"
            and scope["path"] == "/predict"
            and scope["method"] == "POST"
            and not self.root_path
        ):
            await self.fast_predict(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServiceSettings, load: bool = True, load_before_serving: bool = False
) -> FastAPI:
    """The service's ASGI app.

    Args:
        settings: service settings.
        load: start loading the bundles when the app starts (in a thread, so ``/livez`` answers meanwhile).
        load_before_serving: load them before the app starts serving instead (a worker of several: its siblings
            answer meanwhile, and it takes no connection it would answer 503).
    """
    metrics = ServiceMetrics()
    state = ServiceState(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if load and load_before_serving:
            await asyncio.to_thread(state.load)
        elif load:
            threading.Thread(target=state.load, name="bundle-loader", daemon=True).start()
        yield
        await asyncio.to_thread(state.close)

    app = ServiceApp(
        title="Deep Learning Workflow model service",
        description="Scores raw records with the model of a serving bundle.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = state
    max_batch = settings.max_batch_size

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> Response:
        # Never echo the input: FastAPI's default handler fails to serialise NaN and answers 500.
        problems = [
            {
                "record": None,
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "message": str(e.get("msg")),
            }
            for e in error.errors()
        ]
        return json_response(
            422, error_body("invalid_request", "The request is invalid.", problems)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return json_response(
            error.status_code, error_body(code, str(error.detail)), headers=error.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> Response:
        logger.exception("Unhandled error", exc_info=error)
        return json_response(
            500, error_body("internal_error", "The service failed on this request.")
        )

    predictor = Predictor(state, metrics)
    app.router.routes.insert(
        0, Route("/predict", _ASGIEndpoint(predictor.endpoint), methods=["POST"], name="predict")
    )

    @app.get("/livez", summary="Liveness", response_class=Response)
    async def livez() -> Response:
        return json_response(200, {"status": "alive"})

    @app.get(
        "/readyz",
        summary="Readiness: 200 once the bundles are loaded and verified",
        response_class=Response,
        responses={503: {"description": "Loading, or loading failed"}},
    )
    async def readyz() -> Response:
        if state.draining:
            return json_response(503, {"status": "draining", "error": None})
        if state.ready:
            versions = {
                v: m.version
                for v, m in (
                    ("primary", state.primary),
                    ("canary", state.canary),
                    ("shadow", state.shadow),
                )
                if m
            }
            return json_response(200, {"status": "ready", "model_versions": versions})
        return json_response(503, {"status": state.status, "error": state.error})

    @app.get(
        "/metadata",
        summary="Schema, model versions, threshold",
        response_class=Response,
        responses={503: {"description": "Not ready"}},
    )
    async def metadata() -> Response:
        if not state.ready:
            return json_response(
                503,
                error_body("not_ready", f"The model is not loaded yet (status: {state.status})."),
            )
        body = state.primary.describe() | {
            "canary": state.canary.describe() if state.canary else None,
            "canary_fraction": settings.canary_fraction if state.canary else 0.0,
            "shadow": state.shadow.describe() if state.shadow else None,
            "limits": {
                "max_batch_size": settings.max_batch_size,
                "max_body_bytes": settings.max_body_bytes,
                "max_concurrency": settings.max_concurrency,
                "range_policy": settings.range_policy,
                "range_margin": settings.range_margin,
            },
        }
        return json_response(200, body)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        record = state.primary.validator.json_schema() if state.primary else {"type": "object"}
        document = openapi_document(app, record, max_batch)
        if state.ready:
            app.openapi_schema = document
        return document

    app.openapi = openapi
    app.add_middleware(ServiceMiddleware, state=state)
    app.fast_predict = ServiceMiddleware(predictor.endpoint, state)
    return app
