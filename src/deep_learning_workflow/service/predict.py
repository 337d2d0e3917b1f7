"""``POST /predict`` in plain ASGI: read the body, parse it (a batch of valid records by msgspec straight into typed
records and columns, anything else with orjson), validate, score with the NumPy forward pass, answer with orjson,
and hand the prediction log one entry per request.

No Request or Response objects and no pydantic: for a body the handler parses itself they cost more than the
model. A batch goes through the columnar validator and its answer is built from the score arrays
(:mod:`.answers`), so no Python loop runs per record. When the log's queue is full the request waits for room before it is answered: overload
slows answers down rather than losing log rows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from typing import Any

import orjson

from .answers import predictions_json
from .metrics import ServiceMetrics
from .middleware import (
    MEDIA_TYPE_MESSAGE,
    Receive,
    Scope,
    Send,
    answer,
    dump_json,
    error_body,
    is_json,
)
from .prediction_log import LogEntry
from .scoring import ModelVersion, NonFiniteOutput, Scores
from .state import ServiceState
from .validation import InvalidRecords

logger = logging.getLogger(__name__)


def parse_body(body: bytes) -> Any:
    """orjson first; the stdlib parser only on failure, to name NaN/Infinity fields instead of a parse error (and
    to read escaped lone surrogates, which orjson refuses). Raises ValueError for anything else."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if b"\\u" not in body and b"NaN" not in body and b"Infinity" not in body:
            # Nothing the stdlib reads differently: no deep recursion either.
            raise ValueError(str(error)) from None
    try:
        return json.loads(body, parse_constant=float)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


class Predictor:
    """The /predict handler of one app.

    Args:
        state: the app's service state (versions, writer, counters).
        metrics: its metrics.
    """

    def __init__(self, state: ServiceState, metrics: ServiceMetrics) -> None:
        self.state = state
        self.metrics = metrics
        settings = state.settings
        self.max_batch = settings.max_batch_size
        self.limit = settings.max_concurrency
        self.body_timeout = settings.body_timeout_seconds
        # Body reads in progress (task -> deadline), swept for late ones a few times per timeout.
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        self._sweep_every = min(1.0, self.body_timeout / 4)
        self.log_wait = settings.log_wait_seconds
        # Request ids: a random per-process prefix and a counter (cheaper than a uuid4 per request, still unique).
        self._prefix = uuid.uuid4().hex[:12] + "-"
        self._counter = itertools.count(1)

    def fail(
        self, status: int, code: str, message: str, problems: list[dict[str, Any]] | None = None
    ) -> tuple[int, bytes, None]:
        self.metrics.errors.labels("/predict", code).inc()
        return status, dump_json(error_body(code, message, problems)), None

    def records(self, body: bytes) -> tuple[list[Any], bool] | tuple[int, bytes, None]:
        """The parsed records and whether the body is a batch, or the error answer."""
        try:
            payload = parse_body(body)
        except ValueError as error:
            return self.fail(400, "malformed_json", f"The body is not valid JSON: {error}")
        if type(payload) is dict:
            return [payload], False
        if type(payload) is not list:
            return self.fail(
                422, "invalid_body", "The body must be a record (JSON object) or a list of records."
            )
        if not payload:
            return self.fail(422, "empty_batch", "The batch holds no record.")
        if len(payload) > self.max_batch:
            return self.fail(
                413,
                "batch_too_large",
                f"The batch holds {len(payload)} records; at most {self.max_batch}.",
            )
        return payload, True

    def scores(
        self, version: ModelVersion, records: list[Any], batch: bool, columns: Any = None
    ) -> tuple[Any, Scores] | tuple[int, bytes, None]:
        """The validated columns (given, or validated here) and scores, or the error answer."""
        try:
            if columns is None:
                columns = version.validator.validate(records, batch)
        except InvalidRecords as invalid:
            problems = [p.as_dict() for p in invalid.problems]
            first = problems[0]
            where = f"record {first['record']}, " if first["record"] is not None else ""
            return self.fail(
                422,
                "invalid_record",
                f"{where}field {first['field']!r}: {first['message']}",
                problems,
            )
        try:
            return columns, version.score(columns)
        except NonFiniteOutput as error:
            problems = [
                {"record": i if batch else None, "field": None, "message": "non-finite output"}
                for i in error.records
            ]
            return self.fail(
                422,
                "non_finite_output",
                "The model returned a non-finite probability for this input.",
                problems,
            )

    def __call__(
        self, body: bytes, headers: list[tuple[bytes, bytes]], start: float
    ) -> tuple[int, bytes, LogEntry | None]:
        """Status, JSON body and log entry of a /predict request."""
        state = self.state
        if not state.ready:
            return self.fail(
                503, "not_ready", f"The model is not loaded yet (status: {state.status})."
            )
        if state.canary is not None:
            routing_key = next((value for name, value in headers if name == b"x-routing-key"), None)
            variant, version = state.route(body, routing_key or None)
        else:
            variant, version = "primary", state.primary
        # A batch of valid records goes straight from the body to columns; anything else is parsed and validated
        # record by record where needed, which names its problems.
        decoded = version.validator.decode_batch(body, self.max_batch) if body[:1] == b"[" else None
        if decoded is not None:
            records, batch = decoded[0], True
            scored = self.scores(version, records, batch, decoded[1])
        else:
            parsed = self.records(body)
            if len(parsed) == 3:
                return parsed
            records, batch = parsed
            scored = self.scores(version, records, batch)
        if len(scored) == 3:
            return scored
        columns, scores = scored
        latency = (time.perf_counter() - start) * 1000
        request_id = f"{self._prefix}{next(self._counter):x}"
        state.count(variant, version, scores.labels, scores.probability, columns)
        entry = None
        if state.writer is not None:
            entry = LogEntry(
                request_id,
                time.time(),
                variant,
                version.version,
                body,
                batch,
                tuple(records),
                scores.probabilities,
                scores.probability,
                scores.labels,
                version.classes_key,
                latency,
            )
        head = {"request_id": request_id, "model_version": version.version, "variant": variant}
        if batch:
            # The head's JSON with the predictions' JSON (built from the score arrays) as its last field.
            predictions = predictions_json(scores, version.classes)
            return 200, orjson.dumps(head)[:-1] + b',"predictions":' + predictions + b"}", entry
        head["probability"] = scores.probability[0]
        head["label"] = scores.labels[0]
        head["probabilities"] = dict(
            zip(version.classes, scores.probabilities[0].tolist(), strict=True)
        )
        return 200, orjson.dumps(head), entry

    async def read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when the client went away or was too slow (answered 408)."""
        task = asyncio.current_task()
        self._reading[task] = time.monotonic() + self.body_timeout
        loop = asyncio.get_running_loop()
        if self._sweep is None or self._sweep_loop is not loop:
            # (A new loop, e.g. a second test client on the same app: the old loop's sweep never runs again.)
            self._sweep, self._sweep_loop = (
                loop.call_later(self._sweep_every, self._cancel_late),
                loop,
            )
        chunks = []
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None  # the client went away
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            # Out of the sweep's sight before answering: a sweep meanwhile must not cancel the answer.
            del self._reading[task]
            self._late.discard(task)
            task.uncancel()
            message = f"The request body did not arrive within {self.body_timeout:g} s."
            await answer(send, *self.fail(408, "body_timeout", message)[:2], close=True)
            return None
        finally:
            self._reading.pop(task, None)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _cancel_late(self) -> None:
        """Cancel the body reads past their deadline; runs every ``_sweep_every`` seconds while bodies are read.

        One sweep for all requests instead of a timer per request (``asyncio.timeout`` cost 7 us of a 200 us
        request): a late body is answered 408 between ``body_timeout_seconds`` and a quarter of it later.
        """
        now, loop = time.monotonic(), asyncio.get_running_loop()
        for task, deadline in list(self._reading.items()):
            if deadline <= now and task not in self._late and task.get_loop() is loop:
                self._late.add(task)
                task.cancel()
        self._sweep = (
            loop.call_later(self._sweep_every, self._cancel_late) if self._reading else None
        )

    async def endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        headers = scope["headers"]
        if not is_json(headers):
            await answer(send, *self.fail(415, "unsupported_media_type", MEDIA_TYPE_MESSAGE)[:2])
            return
        body = await self.read_body(receive, send)
        if body is None:
            return
        state = self.state
        if state.in_flight >= self.limit:
            message = f"More than {self.limit} requests in flight; retry shortly."
            await answer(send, *self.fail(503, "overloaded", message)[:2], retry_after=True)
            return
        state.in_flight += 1
        try:
            status, content, entry = self(body, headers, start)
            if entry is not None:
                await self.log(entry)
            await answer(send, status, content)
        finally:
            state.in_flight -= 1

    async def log(self, entry: LogEntry) -> None:
        """Queue the entry, waiting for room in a full queue (up to ``log_wait_seconds``, then it is dropped)."""
        writer = self.state.writer
        if writer.waiting >= writer.queue_size:
            await writer.room(self.log_wait)
        writer.submit(entry)
