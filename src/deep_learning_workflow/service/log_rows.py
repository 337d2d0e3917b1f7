"""Log rows from the entries requests hand the writer: the served row and the shadow's, in the order of
:data:`~.log_table.COLUMNS`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import orjson
import sqlalchemy as sa

from .columnar import plain_records
from .log_table import COLUMNS, encode_records
from .metrics import ServiceMetrics
from .scoring import ModelVersion
from .shadow import score_entries

NUMPY = orjson.OPT_SERIALIZE_NUMPY


class LogEntry(NamedTuple):
    """One answered request, as the handler hands it to the writer.

    Few objects the garbage collector tracks: entries wait up to ``flush_seconds`` and so reach the collector's
    old generation, and the full collections many tracked objects cause run on the event loop (latency spikes).

    Attributes:
        body: the request body as received (its records' JSON); None to have ``records`` encoded instead.
        batch: whether the body is a list of records (else one record).
        records: the parsed records (the drift window and the shadow read them).
        probabilities: (n, k) class probabilities; ``probability`` and ``labels`` have n items.
    """

    request_id: str
    timestamp: float
    variant: str
    model_version: str
    body: bytes | None
    batch: bool
    records: tuple[Any, ...]
    probabilities: np.ndarray
    probability: Any
    labels: Any
    classes: tuple[str, ...]
    latency_ms: float


class InsertStatements:
    """Multi-row INSERTs for the driver: one statement, and so one hand-over of the GIL, per ``per_statement`` rows.

    ``executemany`` releases and retakes the GIL around every row it steps; with the event loop busy, each retake
    waits for the interpreter's switch interval, so a writer inserting row by row fell thousands of rows behind the
    answers and cost the loop a forced switch per row. SQLAlchemy's own per-row parameter processing is skipped
    too: building the rows already made them what the driver takes.

    Args:
        engine: the log's engine (its paramstyle and quoting).
        table: the table name.
        max_parameters: the driver's limit on parameters per statement.
    """

    ROWS = 500

    def __init__(self, engine: sa.Engine, table: str, max_parameters: int) -> None:
        marker = {"qmark": "?", "numeric": ":{}", "named": ":{}", "format": "%s", "pyformat": "%s"}
        self._marker = marker[engine.dialect.paramstyle]
        quote = engine.dialect.identifier_preparer.quote
        self._head = "INSERT INTO {} ({}) VALUES ".format(
            quote(table), ", ".join(quote(column) for column in COLUMNS)
        )
        self.per_statement = max(1, min(self.ROWS, max_parameters // len(COLUMNS)))
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        """The statement for ``rows`` rows, whose parameters are the rows' values one after another."""
        text = self._sql.get(rows)
        if text is None:
            width = len(COLUMNS)
            if "{}" in self._marker:
                groups = (
                    "("
                    + ", ".join(self._marker.format(r * width + i + 1) for i in range(width))
                    + ")"
                    for r in range(rows)
                )
            else:
                groups = ("(" + ", ".join([self._marker] * width) + ")" for _ in range(rows))
            text = self._sql[rows] = self._head + ", ".join(groups)
        return text

    def execute(self, connection: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert the rows, ``per_statement`` at a time."""
        step = self.per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            connection.exec_driver_sql(
                self.sql(len(chunk)), tuple(value for row in chunk for value in row)
            )


class RowBuilder:
    """Turns entries into rows.

    Args:
        sqlite: timestamps as SQLAlchemy's SQLite text (else datetimes for the driver).
    """

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self._second = -1
        self._second_text = ""
        self._classes_text: dict[tuple[str, ...], str] = {}

    def records_text(self, entry: LogEntry) -> str:
        """The records' JSON: the body itself when it is UTF-8 (what orjson parsed always is)."""
        if entry.body is not None:
            try:
                text = entry.body.decode()
            except UnicodeDecodeError:
                return encode_records(plain_records(list(entry.records)))
            return text if entry.batch else f"[{text}]"
        return encode_records(plain_records(list(entry.records)))

    def when(self, timestamp: float) -> Any:
        """The timestamp as the column stores it (SQLite: SQLAlchemy's text format, in UTC)."""
        if not self.sqlite:
            return datetime.fromtimestamp(timestamp, UTC)
        second = int(timestamp)
        if second != self._second:  # the date and time to the second, formatted once per second
            self._second = second
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._second_text}.{int((timestamp - second) * 1e6):06d}"

    def classes(self, classes: tuple[str, ...]) -> str:
        text = self._classes_text.get(classes)
        if text is None:
            text = self._classes_text[classes] = orjson.dumps(classes).decode()
        return text

    def served(self, entry: LogEntry, text: str) -> tuple[Any, ...]:
        """The served row of an entry, in :data:`COLUMNS` order."""
        count = len(entry.records)
        if len(entry.labels) != count or len(entry.probabilities) != count:
            raise ValueError(
                f"request {entry.request_id}: {count} records but {len(entry.probabilities)} probabilities "
                f"and {len(entry.labels)} labels"
            )
        return (
            entry.request_id,
            self.when(entry.timestamp),
            entry.variant,
            entry.model_version,
            True,
            count,
            text,
            self.classes(entry.classes),
            orjson.dumps(entry.probabilities, option=NUMPY).decode(),
            orjson.dumps(entry.probability, option=NUMPY).decode(),
            orjson.dumps(entry.labels, option=NUMPY).decode(),
            entry.latency_ms,
            None,
        )

    def shadow(
        self,
        shadow: ModelVersion,
        entries: list[LogEntry],
        texts: list[str | None],
        metrics: ServiceMetrics,
    ) -> list[tuple[tuple[Any, ...], int]]:
        results = score_entries(
            shadow, [plain_records(entry.records) for entry in entries], metrics
        )
        rows = []
        classes = self.classes(tuple(shadow.classes))
        for entry, text, (scores, error, latency) in zip(entries, texts, results, strict=True):
            if text is None:
                continue
            outputs: tuple[Any, ...] = (None, None, None, None)
            if scores is not None:
                outputs = (
                    classes,
                    orjson.dumps(scores.probabilities, option=NUMPY).decode(),
                    orjson.dumps(scores.probability, option=NUMPY).decode(),
                    orjson.dumps(scores.labels, option=NUMPY).decode(),
                )
            head = (entry.request_id, self.when(entry.timestamp), "shadow", shadow.version, False)
            rows.append(
                ((*head, len(entry.records), text, *outputs, latency, error), len(entry.records))
            )
        return rows
