"""The request/prediction log: one row per record and answering (or shadow) version, in SQLite or PostgreSQL.

Requests only put an entry on a bounded queue; a writer thread turns entries into rows, scores them with the shadow
version when there is one, feeds the live drift gauges, and inserts rows in batches. A full queue drops the entry
(counted in ``dlw_prediction_log_dropped_total``) instead of slowing requests down.

Table ``predictions`` (name from settings)::

    id            integer primary key
    request_id    the request's id (also in the response), shared by its records and the shadow's rows
    record_index  position of the record in the request
    timestamp     UTC time the request was answered
    variant       primary | canary | shadow
    model_version the bundle's model version
    served        whether this row's output was the response (false for shadow rows)
    record        the raw record as received (JSON)
    probability   P(positive class) (binary) or the probability of the label
    label         the predicted label
    probabilities {class: probability} (JSON)
    latency_ms    time to validate and score the request (the shadow's own time on shadow rows)
    error         why the shadow could not score the record (null otherwise)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from deep_learning_workflow.redaction import redact_url, scrub

from .metrics import ServiceMetrics
from .scoring import ModelVersion, NonFiniteOutput, Scores
from .validation import InvalidRecords

logger = logging.getLogger(__name__)


def prediction_table(metadata: sa.MetaData, name: str = "predictions") -> sa.Table:
    """The log table's definition."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, index=True),
        sa.Column("record_index", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False, index=True),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("probability", sa.Float),
        sa.Column("label", sa.String(256)),
        sa.Column("probabilities", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.Text),
    )


def encode_record(record: Any) -> str:
    """A record as JSON text for the log. Text orjson refuses (a lone surrogate, which JSON can carry but UTF-8
    cannot) is written with ASCII escapes instead (``"\\ud800"``), so the row keeps what was received."""
    try:
        return orjson.dumps(record).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, ensure_ascii=True, default=repr)


def create_log_engine(url: str) -> sa.Engine:
    """An engine for the log; a SQLite file's folder is created, and SQLite runs in WAL mode so reports can read
    while the service writes."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    if parsed.get_backend_name() == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


class LogEntry(NamedTuple):
    """One answered request, as the handler hands it to the writer.

    Two objects the garbage collector tracks (the entry and its records; the parsed records, text, numbers and
    arrays are not tracked). Entries wait up to ``flush_seconds`` and so reach the collector's old generation:
    when each held the validated columns and the scores (some 25 tracked objects), the full collections they
    caused ran on the event loop every second or so and were the latency spikes of the logged service.
    """

    request_id: str
    timestamp: float
    variant: str
    model_version: str
    records: tuple[Any, ...]
    probabilities: np.ndarray
    probability: tuple[float, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    latency_ms: float

    @property
    def scores(self) -> Scores:
        return Scores(self.probabilities, list(self.probability), list(self.labels))


class _Encoded(NamedTuple):
    """What the writer derived from an entry for its rows (shared by the served and the shadow rows)."""

    when: Any
    records: list[str]


COLUMNS = (
    "request_id",
    "record_index",
    "timestamp",
    "variant",
    "model_version",
    "served",
    "record",
    "probability",
    "label",
    "probabilities",
    "latency_ms",
    "error",
)


def _rows(
    request_id: str,
    when: Any,
    variant: str,
    version: str,
    served: bool,
    scores: Scores | None,
    classes: list[str],
    latency_ms: float,
    error: str | None,
    encoded: list[str],
) -> list[tuple[Any, ...]]:
    """Log rows as tuples in :data:`COLUMNS` order."""
    if scores is None:
        return [
            (
                request_id,
                index,
                when,
                variant,
                version,
                served,
                record,
                None,
                None,
                None,
                latency_ms,
                error,
            )
            for index, record in enumerate(encoded)
        ]
    probabilities = scores.probabilities.tolist()
    return [
        (
            request_id,
            index,
            when,
            variant,
            version,
            served,
            record,
            probability,
            label,
            orjson.dumps(dict(zip(classes, row, strict=True))).decode(),
            latency_ms,
            error,
        )
        for index, (record, probability, label, row) in enumerate(
            zip(encoded, scores.probability, scores.labels, probabilities, strict=True)
        )
    ]


class PredictionLogWriter:
    """The background writer (and shadow scorer).

    Requests append to a deque (atomic, no lock, no wake-up: handing the GIL to a woken thread on every request
    would cost more than the request); the thread drains it every ``flush_seconds``.

    Args:
        url: SQLAlchemy URL, or None to keep no log (the shadow and the drift gauges still run).
        table: table name.
        metrics: the service's metrics.
        queue_size: entries waiting beyond this are dropped.
        flush_seconds: how often pending entries are processed and written.
        shadow: the shadow version, if any.
        on_records: called with the served raw records of each entry (the live drift monitor).
        on_idle: called after each drain (the drift monitor's refresh).
    """

    def __init__(
        self,
        url: str | None,
        table: str,
        metrics: ServiceMetrics,
        queue_size: int = 10_000,
        flush_seconds: float = 0.5,
        shadow: ModelVersion | None = None,
        on_records: Callable[[list[Any]], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.table_name = table
        self.metrics = metrics
        self.queue_size = queue_size
        self.flush_seconds = flush_seconds
        self.shadow = shadow
        self.on_records = on_records
        self.on_idle = on_idle
        self._pending: deque[LogEntry] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._drained = threading.Condition()
        self._drains = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._engine: sa.Engine | None = None
        self._table: sa.Table | None = None
        self._last_failure = 0.0

    def start(self) -> None:
        if self.url:
            self._engine = engine = create_log_engine(self.url)
            metadata = sa.MetaData()
            self._table = prediction_table(metadata, self.table_name)
            try:
                metadata.create_all(engine)
            except sa.exc.SQLAlchemyError as error:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()
                # Not chained: the driver's text is in the message, its password redacted.
                raise RuntimeError(
                    f"Cannot open the prediction log {redact_url(self.url)} (log_url): "
                    f"{scrub(reason[0] if reason else type(error).__name__, self.url)}. Check that the server is "
                    "reachable and the URL's user, password and database, or set log_url to null."
                ) from None
            # Rows go straight to the driver's executemany: SQLAlchemy's per-row parameter processing would cost
            # more than building the rows.
            marker = {
                "qmark": "?",
                "numeric": ":{}",
                "named": ":{}",
                "format": "%s",
                "pyformat": "%s",
            }
            style = marker[engine.dialect.paramstyle]
            quote = engine.dialect.identifier_preparer.quote
            self._insert_sql = "INSERT INTO {} ({}) VALUES ({})".format(
                quote(self.table_name),
                ", ".join(quote(column) for column in COLUMNS),
                ", ".join(
                    style.format(i + 1) if "{}" in style else style for i in range(len(COLUMNS))
                ),
            )
            self._sqlite = engine.dialect.name == "sqlite"
        self._thread.start()

    def _when(self, timestamp: float) -> Any:
        """The timestamp as the column stores it (SQLite: SQLAlchemy's text format, in UTC)."""
        when = datetime.fromtimestamp(timestamp, UTC)
        return when.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else when

    def submit(self, entry: LogEntry) -> None:
        """Queue an entry without waiting; a full queue drops it (counted per record, and reported)."""
        if len(self._pending) >= self.queue_size:
            self._dropped(
                len(entry.records), OverflowError(f"{self.queue_size} entries are waiting")
            )
            return
        self._pending.append(entry)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is processed and written (True) or the timeout passes (False)."""
        if not self._thread.is_alive():
            return False
        with self._drained:
            # The drain running now may have started before the caller's entries arrived: wait for the next one.
            target = self._drains + 2
            self._wake.set()
            return self._drained.wait_for(lambda: self._drains >= target, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                left = sum(len(entry.records) for entry in list(self._pending))
                self._last_failure = 0.0
                self._dropped(left, TimeoutError(f"still writing after {timeout:g} s"))
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._drain()
            except Exception:  # the writer must outlive any bad entry
                logger.exception("Could not log a batch of requests")
            with self._drained:
                self._drains += 1
                self._drained.notify_all()
                if self._pending:
                    self._wake.set()
            if stopping and not self._pending:  # on the way out, everything queued is written
                return

    def _drain(self) -> None:
        entries = []
        while len(entries) < 5000:
            try:
                entries.append(self._pending.popleft())
            except IndexError:
                break
        self.metrics.log_queue.set(len(self._pending))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(entries), 256):
            part = entries[start : start + 256]
            served, encoded = self._served_rows(part)
            rows += served
            if self.shadow is not None:
                try:
                    rows += self._shadow_rows(part, encoded)
                except Exception:  # the served rows are written whatever the shadow does
                    logger.exception("The shadow could not score %d requests", len(part))
            time.sleep(
                0
            )  # let the event loop in between slices: a long hold of the GIL shows in latency
        self._write(rows)
        if self.on_idle is not None:
            self.on_idle()

    def _served_rows(
        self, entries: list[LogEntry]
    ) -> tuple[list[tuple[Any, ...]], list[_Encoded | None]]:
        rows: list[tuple[Any, ...]] = []
        encoded: list[_Encoded | None] = []
        for entry in entries:
            try:
                if self.on_records is not None:
                    self.on_records(entry.records)
                if self._engine is None:
                    encoded.append(None)
                    continue
                texts = _Encoded(
                    self._when(entry.timestamp), list(map(encode_record, entry.records))
                )
                rows += _rows(
                    entry.request_id,
                    texts.when,
                    entry.variant,
                    entry.model_version,
                    True,
                    entry.scores,
                    entry.classes,
                    entry.latency_ms,
                    None,
                    texts.records,
                )
                encoded.append(texts)
            except Exception as error:  # one entry that cannot become rows costs its own rows only
                self._dropped(len(entry.records), error)
                encoded.append(None)
        return rows, encoded

    def _shadow_rows(
        self, entries: list[LogEntry], encoded: list[_Encoded | None]
    ) -> list[tuple[Any, ...]]:
        """Score every entry with the shadow, all records in one call (one entry at a time if that fails)."""
        shadow = self.shadow
        start = time.perf_counter()
        records = [record for entry in entries for record in entry.records]
        try:
            everything = shadow.score(shadow.validator.validate(records, batch=True))
        except (InvalidRecords, NonFiniteOutput):
            everything = None
        per_record_ms = (time.perf_counter() - start) * 1000 / max(len(records), 1)
        rows: list[tuple[Any, ...]] = []
        offset = 0
        for entry, texts in zip(entries, encoded, strict=True):
            count = len(entry.records)
            error = None
            if everything is not None:
                scores = Scores(
                    everything.probabilities[offset : offset + count],
                    everything.probability[offset : offset + count],
                    everything.labels[offset : offset + count],
                )
                latency = per_record_ms * count
            else:
                scores, error, latency = self._score_one(entry)
            offset += count
            if scores is not None:
                for label, count in Counter(scores.labels).items():
                    self.metrics.predictions.labels("shadow", shadow.version, label).inc(count)
            if texts is not None:
                rows += _rows(
                    entry.request_id,
                    texts.when,
                    "shadow",
                    shadow.version,
                    False,
                    scores,
                    shadow.classes,
                    latency,
                    error,
                    texts.records,
                )
        return rows

    def _score_one(self, entry: LogEntry) -> tuple[Scores | None, str | None, float]:
        shadow = self.shadow
        start = time.perf_counter()
        try:
            scores = shadow.score(shadow.validator.validate(entry.records, batch=True))
            return scores, None, (time.perf_counter() - start) * 1000
        except InvalidRecords as problem:
            self.metrics.shadow_errors.labels("invalid_record").inc()
            error = "invalid for the shadow's schema: " + "; ".join(
                f"[{p.record}].{p.field}: {p.message}" for p in problem.problems[:5]
            )
        except NonFiniteOutput as problem:
            self.metrics.shadow_errors.labels("non_finite_output").inc()
            error = str(problem)
        return None, error, (time.perf_counter() - start) * 1000

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert the rows in one transaction; if that fails, row by row, so one bad row costs only itself."""
        if not rows or self._engine is None:
            return
        try:
            self._insert(rows)
            return
        except Exception as error:  # a bad row or a database outage must not take the service down
            failure = error
        written = failed = 0
        for row in rows:
            # Ten failures in a row and nothing written: the database is down, not a row bad.
            if failed >= 10 and not written:
                break
            try:
                self._insert([row])
                written += 1
            except Exception as error:
                failed += 1
                failure = error
        self._dropped(len(rows) - written, failure)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self._engine.begin() as connection:
            connection.exec_driver_sql(self._insert_sql, rows)
        self.metrics.log_written.inc(len(rows))

    def _dropped(self, count: int, error: BaseException) -> None:
        """Count rows that could not be logged, and say so (at most once a minute per run of failures)."""
        if not count:
            return
        self.metrics.log_dropped.inc(count)
        now = time.monotonic()
        if now - self._last_failure > 60:
            logger.error(
                "Could not write %d rows to the prediction log (counted in "
                "dlw_prediction_log_dropped_total): %s",
                count,
                scrub(str(error), self.url or ""),
            )
            self._last_failure = now


def read_logged_records(
    url: str,
    table: str = "predictions",
    *,
    variant: str | None = None,
    model_version: str | None = None,
    served: bool | None = None,
    since: datetime | None = None,
    expand: bool = True,
) -> pd.DataFrame:
    """The logged rows as a DataFrame, each record's fields as columns (for drift reports and comparisons).

    Args:
        url: SQLAlchemy URL of the log.
        table: table name.
        variant: keep only ``primary``, ``canary`` or ``shadow`` rows.
        model_version: keep only this version's rows.
        served: keep only rows that were (True) or were not (False) the response.
        since: keep only rows logged at or after this time (timezone-aware).
        expand: add one column per record field (numeric nulls become NaN).

    Returns:
        Columns ``request_id, record_index, timestamp, variant, model_version, served, probability, label,
        probabilities, latency_ms, error, record`` and, with ``expand``, the record's fields.
    """
    engine = create_log_engine(url)
    try:
        metadata = sa.MetaData()
        log = prediction_table(metadata, table)
        query = sa.select(log).order_by(log.c.id)
        if variant is not None:
            query = query.where(log.c.variant == variant)
        if model_version is not None:
            query = query.where(log.c.model_version == model_version)
        if served is not None:
            query = query.where(log.c.served == served)
        if since is not None:
            query = query.where(log.c.timestamp >= since)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table):
                raise ValueError(
                    f"The prediction log at '{redact_url(url)}' has no table '{table}'; has the service run?"
                )
            frame = pd.DataFrame(
                connection.execute(query).mappings().all(), columns=[c.name for c in log.columns]
            )
    finally:
        engine.dispose()
    frame = frame.drop(columns="id")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["served"] = frame["served"].astype(bool)
    if expand and not frame.empty:
        fields = pd.DataFrame.from_records(
            [orjson.loads(record) for record in frame["record"]], index=frame.index
        )
        fields = fields[[c for c in fields.columns if c not in frame.columns]]
        frame = pd.concat([frame, fields], axis=1)
    return frame
