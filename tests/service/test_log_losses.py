"""The prediction log loses nothing silently: odd text is escaped, a row that cannot be written costs only itself
and is counted and reported, whatever else was in its flush; a full queue makes requests wait instead."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from deep_learning_workflow.service.metrics import ServiceMetrics
from deep_learning_workflow.service.prediction_log import (
    LogEntry,
    PredictionLogWriter,
    encode_record,
    read_logged_records,
)


def entry(request_id: str, records: list[dict], labels: list[str] | None = None) -> LogEntry:
    count = len(records)
    probability = [0.25] * count
    return LogEntry(
        request_id,
        time.time(),
        "primary",
        "v1",
        None,
        True,
        tuple(records),
        np.tile([0.75, 0.25], (count, 1)),
        probability,
        labels or ["No"] * count,
        ("No", "Yes"),
        1.0,
    )


def writer_for(url: str) -> tuple[PredictionLogWriter, ServiceMetrics]:
    metrics = ServiceMetrics()
    writer = PredictionLogWriter(url, "predictions", metrics, flush_seconds=0.05)
    writer.start()
    return writer, metrics


def counted(metrics: ServiceMetrics) -> tuple[float, float]:
    return metrics.log_written._value.get(), metrics.log_dropped._value.get()


def test_lone_surrogates_are_escaped_not_lost(tmp_path):
    record = {"contract": "\ud800", "name\udfff": "x"}
    text = encode_record(record)
    assert "\\ud800" in text and orjson.loads(orjson.dumps(text))  # valid UTF-8 from here on
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    writer, metrics = writer_for(url)
    try:
        writer.submit(entry("a", [record, {"contract": "Two year"}]))
        assert writer.flush(10)
    finally:
        writer.close()
    logged = read_logged_records(url, expand=False)
    assert list(logged["request_id"]) == ["a", "a"]
    assert "\\ud800" in logged["record"][0]
    assert counted(metrics) == (2, 0)


def test_a_row_that_cannot_be_written_costs_only_itself(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    writer, metrics = writer_for(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        # The database refuses one row of the flush (as a constraint or a trigger of a real deployment may).
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON predictions WHEN NEW.records LIKE '%poison%' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    engine.dispose()
    caplog.set_level(logging.ERROR)
    try:
        writer.submit(entry("a", [{"x": 1}, {"x": 2}]))
        writer.submit(entry("b", [{"x": "poison"}]))
        writer.submit(entry("c", [{"x": 3}]))
        assert writer.flush(10)
    finally:
        writer.close()
    logged = read_logged_records(url, expand=False)
    assert sorted(logged["request_id"]) == ["a", "a", "c"]
    assert counted(metrics) == (3, 1)
    assert any(
        record.levelno == logging.ERROR and "dlw_prediction_log_dropped_total" in record.message
        for record in caplog.records
    )


def test_an_entry_that_cannot_become_rows_costs_only_its_own(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    writer, metrics = writer_for(url)
    try:
        writer.submit(entry("a", [{"x": 1}]))
        writer.submit(entry("broken", [{"x": 2}, {"x": 3}], labels=["No"]))  # labels do not match
        writer.submit(entry("c", [{"x": 4}]))
        assert writer.flush(10)
    finally:
        writer.close()
    assert sorted(read_logged_records(url, expand=False)["request_id"]) == ["a", "c"]
    assert counted(metrics) == (2, 2)


def test_an_unreachable_database_counts_every_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    writer, metrics = writer_for(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE predictions")
    engine.dispose()
    try:
        writer.submit(entry("a", [{"x": i} for i in range(30)]))
        assert writer.flush(10)
    finally:
        writer.close()
    assert counted(metrics) == (0, 30)


def test_closing_writes_everything_queued(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    metrics = ServiceMetrics()
    # More entries than one drain takes, and no timed flush before the close.
    writer = PredictionLogWriter(url, "predictions", metrics, queue_size=20_000, flush_seconds=3600)
    writer.start()
    for index in range(12_000):
        writer.submit(entry(f"r{index}", [{"x": index}]))
    writer.close()
    assert len(read_logged_records(url, expand=False)) == 12_000
    assert counted(metrics) == (12_000, 0)


def test_a_full_queue_counts_every_record_it_drops(tmp_path, caplog):
    metrics = ServiceMetrics()
    # The queue holds up to 6 waiting records: the first two entries fit, the last two find it full.
    writer = PredictionLogWriter(None, "predictions", metrics, queue_size=6, flush_seconds=3600)
    caplog.set_level(logging.ERROR)
    for index in range(4):
        writer.submit(entry(f"r{index}", [{"x": 1}, {"x": 2}, {"x": 3}]))
    assert metrics.log_dropped._value.get() == 6
    assert any("dlw_prediction_log_dropped_total" in record.message for record in caplog.records)


def test_a_full_queue_makes_the_request_wait_for_room(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    metrics = ServiceMetrics()
    # No timed flush: only the waiting request wakes the writer.
    writer = PredictionLogWriter(url, "predictions", metrics, queue_size=4, flush_seconds=3600)
    writer.start()
    try:
        writer.submit(entry("a", [{"x": i} for i in range(4)]))
        assert writer.waiting == 4
        assert asyncio.run(writer.room(10))
        assert writer.submit(entry("b", [{"x": 5}]))
        assert writer.flush(10)
    finally:
        writer.close()
    logged = read_logged_records(url)
    assert logged["request_id"].tolist() == ["a"] * 4 + ["b"]
    assert logged["x"].tolist() == [0, 1, 2, 3, 5]
    assert counted(metrics) == (5, 0)


def test_the_body_as_received_is_the_logged_records(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    writer, metrics = writer_for(url)
    single = entry("one", [{"contract": "\ud800", "x": 1}])._replace(
        body=b'{"contract": "\\ud800", "x": 1}', batch=False
    )
    batch = entry("two", [{"x": 2}, {"x": 3}])._replace(body=b'[{"x": 2}, {"x": 3}]')
    try:
        writer.submit(single)
        writer.submit(batch)
        assert writer.flush(10)
    finally:
        writer.close()
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT request_id, record_count, records, labels FROM predictions ORDER BY id"
        ).all()
    engine.dispose()
    assert stored == [
        ("one", 1, '[{"contract": "\\ud800", "x": 1}]', '["No"]'),
        ("two", 2, '[{"x": 2}, {"x": 3}]', '["No","No"]'),
    ]
    logged = read_logged_records(url)
    assert logged["record_index"].tolist() == [0, 0, 1]
    assert logged["x"].tolist() == [1, 2, 3]
    # Text UTF-8 cannot hold reaches the DataFrame escaped (Arrow-backed strings refuse lone surrogates).
    assert logged["contract"][0] == "\\ud800"
    assert counted(metrics) == (3, 0)


def test_a_table_of_the_per_record_layout_is_refused_by_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id TEXT, record_index INTEGER, "
            "record TEXT, label TEXT)"
        )
    engine.dispose()
    writer = PredictionLogWriter(url, "predictions", ServiceMetrics())
    try:
        with pytest.raises(ValueError, match="table 'predictions' .* has another layout") as raised:
            writer.start()
    finally:
        writer.close()
    assert "log_table" in str(raised.value)
