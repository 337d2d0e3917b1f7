"""The prediction log's table: one row per answered request and version, in SQLite or PostgreSQL.

A row holds the request's records as received and the version's outputs for them, as JSON arrays in record order,
so writing a request costs one row however many records it holds. Table ``predictions`` (name from settings)::

    id            integer primary key
    request_id    the request's id (also in the response), shared by the served and the shadow's row
    timestamp     UTC time the request was answered
    variant       primary | canary | shadow
    model_version the bundle's model version
    served        whether this row's outputs were the response (false for shadow rows)
    record_count  how many records the request held
    records       JSON array of the records as received (a single-record request: an array of one)
    classes       JSON array of the class labels, the order of each record's probabilities
    probabilities JSON array of one array of class probabilities per record
    probability   JSON array of P(positive class) (binary) or the probability of the label, per record
    labels        JSON array of the predicted label per record
    latency_ms    time to validate and score the request (the shadow's own time on shadow rows)
    error         why the shadow could not score the request (null otherwise; its outputs are then null)

:func:`read_logged_records` turns the rows back into one row per record (``record_index`` its position in the
request), the form the drift report and the version comparison read.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from deep_learning_workflow.redaction import redact_url

COLUMNS = (
    "request_id",
    "timestamp",
    "variant",
    "model_version",
    "served",
    "record_count",
    "records",
    "classes",
    "probabilities",
    "probability",
    "labels",
    "latency_ms",
    "error",
)
REQUEST_COLUMNS = ["request_id", "timestamp", "variant", "model_version", "served", "latency_ms"]


def prediction_table(metadata: sa.MetaData, name: str = "predictions") -> sa.Table:
    """The log table's definition."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, index=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False, index=True),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("records", sa.Text, nullable=False),
        sa.Column("classes", sa.Text),
        sa.Column("probabilities", sa.Text),
        sa.Column("probability", sa.Text),
        sa.Column("labels", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.Text),
    )


def check_layout(connection: sa.Connection, table: str, url: str) -> None:
    """Refuse a table of another layout (the per-record rows of earlier versions): inserts would all fail."""
    inspector = sa.inspect(connection)
    if not inspector.has_table(table):
        return
    present = {column["name"] for column in inspector.get_columns(table)}
    missing = [column for column in COLUMNS if column not in present]
    if missing:
        raise ValueError(
            f"The prediction log table '{table}' at '{redact_url(url)}' has another layout (no columns "
            f"{missing}; one row per record was the layout of earlier versions). Set log_table to a new table "
            "name, or rename the old table."
        )


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
            # First: the workers of one service open the file at once, and switching to WAL needs its lock.
            cursor.execute("PRAGMA busy_timeout=5000")
            # Large pages for a new file (an existing one keeps its own): a request's records are one long text,
            # and writing it over 4 KiB overflow pages took ten times as long.
            cursor.execute("PRAGMA page_size=65536")
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL without an fsync per commit: a crash of the process loses nothing, a power cut the last commits.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def max_parameters(engine: sa.Engine) -> int:
    """Bound parameters one statement may hold: SQLite's compiled-in limit (999 before 3.32), else the 65,535 of
    the PostgreSQL and MySQL protocols."""
    if engine.dialect.name != "sqlite":
        return 65_535
    import sqlite3

    connection = engine.raw_connection()
    try:
        return connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        connection.close()


def encode_records(records: Any) -> str:
    """Records as JSON text for the log. Text orjson refuses (a lone surrogate, which JSON can carry but UTF-8
    cannot) is written with ASCII escapes instead (``"\\ud800"``), so the row keeps what was received."""
    try:
        return orjson.dumps(records).decode()
    except orjson.JSONEncodeError:
        return json.dumps(records, ensure_ascii=True, default=repr)


def encode_record(record: Any) -> str:
    """One record as JSON text (see :func:`encode_records`)."""
    return encode_records(record)


def _visible(value: Any) -> Any:
    """Text with lone surrogates spelt as escapes (a backslash, then ``ud800``): DataFrames' Arrow strings cannot
    hold them."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {_visible(key): _visible(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_visible(item) for item in value]
    return value


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Escaped lone surrogates, which orjson refuses and the stdlib reads.
        return _visible(json.loads(text))


def _query(log: sa.Table, variant, model_version, served, since) -> sa.Select:
    query = sa.select(log).order_by(log.c.id)
    if variant is not None:
        query = query.where(log.c.variant == variant)
    if model_version is not None:
        query = query.where(log.c.model_version == model_version)
    if served is not None:
        query = query.where(log.c.served == served)
    if since is not None:
        query = query.where(log.c.timestamp >= since)
    return query


def read_log_rows(
    url: str,
    table: str = "predictions",
    *,
    variant: str | None = None,
    model_version: str | None = None,
    served: bool | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """The log's rows as stored: one per request and version (see the module docstring for the columns)."""
    engine = create_log_engine(url)
    try:
        log = prediction_table(sa.MetaData(), table)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table):
                raise ValueError(
                    f"The prediction log at '{redact_url(url)}' has no table '{table}'; has the service run?"
                )
            check_layout(connection, table, url)
            query = _query(log, variant, model_version, served, since)
            frame = pd.DataFrame(
                connection.execute(query).all(), columns=[c.name for c in log.columns]
            )
    finally:
        engine.dispose()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["served"] = frame["served"].astype(bool)
    return frame.drop(columns="id")


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
    """The logged records as a DataFrame, one row per record, each record's fields as columns (for drift reports
    and comparisons).

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
        probabilities ({class: probability}), latency_ms, error, record`` (the record's JSON text) and, with
        ``expand``, the record's fields.
    """
    rows = read_log_rows(
        url, table, variant=variant, model_version=model_version, served=served, since=since
    )
    counts = rows["record_count"].to_numpy(dtype=np.int64)
    frame = rows.loc[rows.index.repeat(counts), [*REQUEST_COLUMNS, "error"]].reset_index(drop=True)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    frame.insert(1, "record_index", np.arange(int(counts.sum())) - starts)
    records = [record for text in rows["records"] for record in _loads(text)]
    probability, labels, probabilities = [], [], []
    for count, classes, scores, chosen, named in zip(
        counts,
        rows["classes"],
        rows["probabilities"],
        rows["probability"],
        rows["labels"],
        strict=True,
    ):
        if chosen is None:  # the shadow could not score this request
            probability += [np.nan] * count
            labels += [None] * count
            probabilities += [None] * count
            continue
        probability += _loads(chosen)
        labels += _loads(named)
        names = _loads(classes)
        probabilities += [dict(zip(names, row, strict=True)) for row in _loads(scores)]
    frame["probability"] = np.asarray(probability, dtype=np.float64)
    frame["label"] = labels
    frame["probabilities"] = probabilities
    frame["record"] = [encode_record(record) for record in records]
    frame = frame[
        [
            "request_id",
            "record_index",
            "timestamp",
            "variant",
            "model_version",
            "served",
            "probability",
            "label",
            "probabilities",
            "latency_ms",
            "error",
            "record",
        ]
    ]
    if expand and not frame.empty:
        fields = pd.DataFrame.from_records(records, index=frame.index)
        fields = fields[[c for c in fields.columns if c not in frame.columns]]
        frame = pd.concat([frame, fields], axis=1)
    return frame
