"""The HTTP layer around the endpoints, in plain ASGI: JSON errors, the concurrency and body size limits, request
metrics, ``Connection: close`` while draining, and a JSON 500 instead of a traceback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from .metrics import HANDLERS

logger = logging.getLogger(__name__)

JSON = "application/json"
METHODS = {"GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"}
# Probes and scrapes are never turned away: an overloaded service is still alive, and its metrics matter most then.
UNLIMITED = {"/livez", "/readyz", "/metrics"}
CLOSE = (b"connection", b"close")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def dump_json(content: Any) -> bytes:
    """orjson, or the stdlib's ASCII-escaped JSON for text orjson refuses (a lone surrogate in a field name)."""
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:
        return json.dumps(content, ensure_ascii=True, default=str).encode()


def json_response(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dump_json(content), status_code=status, media_type=JSON, headers=headers)


def error_body(
    code: str, message: str, problems: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if problems is not None:
        body["problems"] = problems
    return body


class _BodyTooLarge(Exception):
    pass


class ServiceMiddleware:
    """Pure ASGI: concurrency limit, body size limit, request metrics, and a JSON 500 instead of a traceback."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state
        self.limit = state.settings.max_concurrency
        self.max_body = state.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, metrics = self.state, self.state.metrics
        path = scope["path"]
        handler = path if path in HANDLERS else "other"
        method = scope["method"] if scope["method"] in METHODS else "other"
        start = time.perf_counter()
        status = 500
        started = False

        async def send_tracking(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                if (
                    state.draining
                ):  # keep-alive clients reconnect elsewhere instead of meeting a reset
                    message = {**message, "headers": [*message["headers"], CLOSE]}
            await send(message)

        # /predict counts itself once its body is read: a slow client's upload is no request in flight yet.
        counted = path != "/predict"
        if counted and state.in_flight >= self.limit and path not in UNLIMITED:
            metrics.errors.labels(handler, "overloaded").inc()
            response = json_response(
                503,
                error_body(
                    "overloaded", f"More than {self.limit} requests in flight; retry shortly."
                ),
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send_tracking)
            metrics.observe_request(handler, method, status, time.perf_counter() - start)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body
            except ValueError:
                too_large = False
            if too_large:
                await self._too_large(handler, scope, receive, send_tracking)
                metrics.observe_request(handler, method, status, time.perf_counter() - start)
                return
        else:
            receive = self._counting(receive)
        if counted:
            state.in_flight += 1
            metrics.in_flight.set(state.in_flight)
        try:
            await self.app(scope, receive, send_tracking)
        except _BodyTooLarge:
            if not started:
                await self._too_large(handler, scope, receive, send_tracking)
        except Exception:
            logger.exception("Unhandled error on %s %s", method, path)
            metrics.errors.labels(handler, "internal").inc()
            if not started:
                await json_response(
                    500, error_body("internal_error", "The service failed on this request.")
                )(scope, receive, send_tracking)
        finally:
            if counted:
                state.in_flight -= 1
                metrics.in_flight.set(state.in_flight)
            metrics.observe_request(handler, method, status, time.perf_counter() - start)

    async def _too_large(self, handler: str, scope: Scope, receive: Receive, send: Send) -> None:
        self.state.metrics.errors.labels(handler, "body_too_large").inc()
        response = json_response(
            413, error_body("body_too_large", f"The request body exceeds {self.max_body} bytes.")
        )
        await response(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        return counting_receive


MEDIA_TYPE_MESSAGE = "Send the records as JSON, with the header 'Content-Type: application/json'."


def is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the Content-Type is JSON (``application/json``, with parameters, or a ``+json`` type)."""
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json")
            )
    return False


async def answer(
    send: Send, status: int, content: bytes, close: bool = False, retry_after: bool = False
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    if close:
        headers.append(CLOSE)
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
