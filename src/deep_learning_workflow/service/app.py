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
limit. The request path parses with orjson and validates with plain Python (no pydantic), and
scores with the NumPy forward pass; TensorFlow is imported only by the loader thread.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from .metrics import ServiceMetrics, observe_many
from .middleware import (
    MEDIA_TYPE_MESSAGE,
    Receive,
    Scope,
    Send,
    ServiceMiddleware,
    answer,
    dump_json,
    error_body,
    is_json,
    json_response,
)
from .openapi import openapi_document
from .prediction_log import LogEntry, PredictionLogWriter
from .scoring import ModelVersion, NonFiniteOutput
from .settings import ServiceSettings
from .validation import Columns, InvalidRecords

logger = logging.getLogger(__name__)


class _ASGIEndpoint:
    """Starlette routes hand a class instance the raw ASGI call (a function would be wrapped in a Request)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ServiceState:
    """What the app serves: the loaded versions, readiness, the log writer and the live drift gauges."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.status = "loading"
        self.error: str | None = None
        self.ready = False
        self.primary: ModelVersion | None = None
        self.canary: ModelVersion | None = None
        self.shadow: ModelVersion | None = None
        self.writer: PredictionLogWriter | None = None
        self.drift = None
        self.in_flight = 0
        self.draining = False
        self._label_children: dict[tuple[str, str, str], Any] = {}
        self._column_children: dict[tuple[str, str], Any] = {}
        self._probability_children: dict[str, Any] = {}
        self.metrics.ready.set(0)

    # -- loading ------------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load and verify every configured bundle (runs in a thread; TensorFlow is imported here)."""
        settings = self.settings
        if settings.blas_threads is not None:
            limit_blas_threads(settings.blas_threads)
        try:
            from .loader import load_version

            def load(path: str) -> ModelVersion:
                return load_version(
                    path, settings.range_policy, settings.range_margin, settings.engine
                )

            primary = load(settings.bundle)
            canary = load(settings.canary_bundle) if settings.canary_bundle else None
            shadow = load(settings.shadow_bundle) if settings.shadow_bundle else None
            drift = None
            if primary.metadata.get("reference"):
                from .monitoring import DriftMonitor

                drift = DriftMonitor(
                    primary.metadata["reference"],
                    self.metrics,
                    settings.drift_window,
                    settings.drift_interval_seconds,
                    settings.drift,
                )
            writer = PredictionLogWriter(
                settings.log_url,
                settings.log_table,
                self.metrics,
                queue_size=settings.log_queue_size,
                flush_seconds=settings.log_flush_seconds,
                shadow=shadow,
                on_records=drift.add if drift else None,
                on_idle=drift.maybe_update if drift else None,
            )
            writer.start()
        # Whatever went wrong is served on /readyz; the process stays up (live, not ready) to report it.
        except Exception as error:
            logger.error("The service cannot become ready: %s", error)
            self.error = f"{type(error).__name__}: {error}"
            self.status = "failed"
            return
        self.primary, self.canary, self.shadow, self.writer, self.drift = (
            primary,
            canary,
            shadow,
            writer,
            drift,
        )
        for variant, version in (("primary", primary), ("canary", canary), ("shadow", shadow)):
            if version is not None:
                self.metrics.info.labels(variant, version.version, version.engine).set(1)
        # Everything loaded so far (TensorFlow, the models) lives as long as the process: keep the garbage
        # collector from scanning it again on every full collection.
        gc.freeze()
        self.status = "ready"
        self.ready = True
        self.metrics.ready.set(1)
        logger.info("Ready: serving model version %s.", primary.version)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- request helpers ----------------------------------------------------------------------------------------

    def route(self, body: bytes, routing_key: bytes | None) -> tuple[str, ModelVersion]:
        """The canary answers the share ``canary_fraction`` of requests, chosen by a hash of the routing key
        (header ``X-Routing-Key``) or of the body: deterministic, so a retried request gets the same version."""
        fraction = self.settings.canary_fraction
        if self.canary is not None and fraction > 0:
            digest = hashlib.blake2b(routing_key or body, digest_size=8).digest()
            if int.from_bytes(digest, "big") < fraction * 2**64:
                return "canary", self.canary
        return "primary", self.primary

    def count(
        self,
        variant: str,
        version: ModelVersion,
        labels: list[str],
        probability: list[float],
        columns: Columns,
    ) -> None:
        metrics = self.metrics
        for label, n in Tally(labels).items() if len(labels) > 1 else ((labels[0], 1),):
            key = (variant, version.version, label)
            child = self._label_children.get(key)
            if child is None:
                child = self._label_children[key] = metrics.predictions.labels(*key)
            child.inc(n)
        histogram = self._probability_children.get(variant)
        if histogram is None:
            histogram = self._probability_children[variant] = metrics.probability.labels(variant)
        observe_many(histogram, probability)
        for kind, tally in (("unseen", columns.unseen), ("missing", columns.missing)):
            for column, n in tally.items():
                child = self._column_children.get((kind, column))
                if child is None:
                    counter = metrics.unseen if kind == "unseen" else metrics.missing
                    child = self._column_children[(kind, column)] = counter.labels(column)
                child.inc(n)


def limit_blas_threads(threads: int) -> None:
    """Cap NumPy's BLAS threads: a small matrix product split over threads waits more than it computes, the
    more so on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the library default stays
        logger.info("threadpoolctl is not installed; NumPy's BLAS keeps its default threads.")
        return
    threadpool_limits(limits=threads, user_api="blas")


def _parse(body: bytes) -> Any:
    """orjson first; the stdlib parser only on failure, to name NaN/Infinity fields instead of a parse error (and
    to read escaped lone surrogates, which orjson refuses). Raises ValueError for anything else."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if b"\\u" not in body and b"NaN" not in body and b"Infinity" not in body:
            raise ValueError(
                str(error)
            ) from None  # nothing the stdlib reads differently: no deep recursion
    try:
        return json.loads(body, parse_constant=float)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def create_app(settings: ServiceSettings, load: bool = True) -> FastAPI:
    """The service's ASGI app.

    Args:
        settings: service settings.
        load: start loading the bundles when the app starts (in a thread, so ``/livez`` answers meanwhile).
    """
    metrics = ServiceMetrics()
    state = ServiceState(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if load:
            threading.Thread(target=state.load, name="bundle-loader", daemon=True).start()
        yield
        await asyncio.to_thread(state.close)

    app = FastAPI(
        title="Deep Learning Workflow model service",
        description="Scores raw records with the model of a serving bundle.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = state
    max_batch = settings.max_batch_size
    # Request ids: a random per-process prefix and a counter (cheaper than a uuid4 per request, still unique).
    request_prefix = uuid.uuid4().hex[:12] + "-"
    request_counter = itertools.count(1)

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

    def fail(
        status: int, code: str, message: str, problems: list[dict[str, Any]] | None = None
    ) -> tuple[int, bytes]:
        metrics.errors.labels("/predict", code).inc()
        return status, dump_json(error_body(code, message, problems))

    def predict(body: bytes, headers: list[tuple[bytes, bytes]], start: float) -> tuple[int, bytes]:
        """Status and JSON body of a /predict request."""
        if not state.ready:
            return fail(503, "not_ready", f"The model is not loaded yet (status: {state.status}).")
        try:
            payload = _parse(body)
        except ValueError as error:
            return fail(400, "malformed_json", f"The body is not valid JSON: {error}")
        if type(payload) is dict:
            records, batch = [payload], False
        elif type(payload) is list:
            records, batch = payload, True
            if not records:
                return fail(422, "empty_batch", "The batch holds no record.")
            if len(records) > max_batch:
                return fail(
                    413,
                    "batch_too_large",
                    f"The batch holds {len(records)} records; at most {max_batch}.",
                )
        else:
            return fail(
                422, "invalid_body", "The body must be a record (JSON object) or a list of records."
            )
        if state.canary is not None:
            routing_key = next((value for name, value in headers if name == b"x-routing-key"), None)
            variant, version = state.route(body, routing_key or None)
        else:
            variant, version = "primary", state.primary
        try:
            columns = version.validator.validate(records, batch)
        except InvalidRecords as invalid:
            problems = [p.as_dict() for p in invalid.problems]
            first = problems[0]
            where = f"record {first['record']}, " if first["record"] is not None else ""
            return fail(
                422,
                "invalid_record",
                f"{where}field {first['field']!r}: {first['message']}",
                problems,
            )
        try:
            scores = version.score(columns)
        except NonFiniteOutput as error:
            problems = [
                {"record": i if batch else None, "field": None, "message": "non-finite output"}
                for i in error.records
            ]
            return fail(
                422,
                "non_finite_output",
                "The model returned a non-finite probability for this input.",
                problems,
            )
        latency = (time.perf_counter() - start) * 1000
        request_id = f"{request_prefix}{next(request_counter):x}"
        state.count(variant, version, scores.labels, scores.probability, columns)
        if state.writer is not None:
            state.writer.submit(
                LogEntry(
                    request_id,
                    time.time(),
                    variant,
                    version.version,
                    tuple(records),
                    scores.probabilities,
                    tuple(scores.probability),
                    tuple(scores.labels),
                    tuple(version.classes),
                    latency,
                )
            )
        classes = version.classes
        if batch:
            rows = scores.probabilities.tolist()
            content: dict[str, Any] = {
                "request_id": request_id,
                "model_version": version.version,
                "variant": variant,
                "predictions": [
                    {
                        "probability": p,
                        "label": label,
                        "probabilities": dict(zip(classes, row, strict=True)),
                    }
                    for p, label, row in zip(scores.probability, scores.labels, rows, strict=True)
                ],
            }
        else:
            content = {
                "request_id": request_id,
                "model_version": version.version,
                "variant": variant,
                "probability": scores.probability[0],
                "label": scores.labels[0],
                "probabilities": dict(zip(classes, scores.probabilities[0].tolist(), strict=True)),
            }
        return 200, orjson.dumps(content)

    limit, body_timeout = settings.max_concurrency, settings.body_timeout_seconds

    async def predict_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        # Plain ASGI: no Request or Response objects, and no FastAPI dependency solving (or pydantic) for a
        # body the handler parses itself. The route stays first in the table; its OpenAPI entry is written below.
        start = time.perf_counter()
        headers = scope["headers"]
        if not is_json(headers):
            await answer(send, *fail(415, "unsupported_media_type", MEDIA_TYPE_MESSAGE))
            return
        chunks = []
        try:
            async with asyncio.timeout(body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            message = f"The request body did not arrive within {body_timeout:g} s."
            await answer(send, *fail(408, "body_timeout", message), close=True)
            return
        if state.in_flight >= limit:
            metrics.errors.labels("/predict", "overloaded").inc()
            content = dump_json(
                error_body("overloaded", f"More than {limit} requests in flight; retry shortly.")
            )
            await answer(send, 503, content, retry_after=True)
            return
        state.in_flight += 1
        try:
            status, content = predict(b"".join(chunks), headers, start)
            await answer(send, status, content)
        finally:
            state.in_flight -= 1

    app.router.routes.insert(
        0, Route("/predict", _ASGIEndpoint(predict_endpoint), methods=["POST"], name="predict")
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
    return app
