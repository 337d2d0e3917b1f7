"""The prediction log writes many rows per INSERT statement (one hand-over of the GIL each, not one per row): every
row lands, in order, on SQLite and PostgreSQL, and a driver's small parameter limit only makes the statements
shorter."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from deep_learning_workflow.service.log_rows import InsertStatements
from deep_learning_workflow.service.log_table import COLUMNS, max_parameters, prediction_table
from deep_learning_workflow.service.metrics import ServiceMetrics
from deep_learning_workflow.service.prediction_log import PredictionLogWriter, read_logged_records
from tests.postgres import POSTGRES, postgres_engine

from .test_log_losses import counted, entry


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_every_row_of_a_large_flush_lands_in_order(tmp_path, backend):
    table = f"log_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        postgres_engine().dispose()
        url = POSTGRES
    else:
        url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    metrics = ServiceMetrics()
    writer = PredictionLogWriter(url, table, metrics, flush_seconds=60)
    writer.start()
    try:
        # More rows than one statement holds, plus a remainder, in one flush; one request of 3 records among them.
        ids = [f"r{i:05d}" for i in range(1_234)]
        for request_id in ids:
            writer.submit(entry(request_id, [{"contract": request_id}]))
        writer.submit(entry("batch", [{"contract": "a"}, {"contract": "b"}, {"contract": "c"}]))
        assert writer.flush(30)
    finally:
        writer.close()
    logged = read_logged_records(url, table, expand=False)
    assert list(logged["request_id"]) == [*ids, "batch", "batch", "batch"]
    assert [json.loads(record)["contract"] for record in logged["record"][:3]] == ids[:3]
    assert counted(metrics) == (1_237, 0)
    if backend == "postgres":
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP TABLE "{table}"')
        engine.dispose()


def test_a_small_parameter_limit_makes_shorter_statements(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.sqlite'}")
    metadata = sa.MetaData()
    prediction_table(metadata, "predictions")
    metadata.create_all(engine)
    assert max_parameters(engine) >= 999
    statements = InsertStatements(engine, "predictions", max_parameters=999)
    assert statements.per_statement == 999 // len(COLUMNS)
    assert statements.sql(2).count("(?") == 2
    rows = [
        (
            f"r{i}",
            "2026-12-03 10:00:00.000000",
            "primary",
            "v1",
            True,
            1,
            "[{}]",
            "[]",
            "[]",
            "[]",
            "[]",
            1.0,
            None,
        )
        for i in range(200)
    ]
    with engine.begin() as connection:
        statements.execute(connection, rows)
    with engine.connect() as connection:
        stored = (
            connection.exec_driver_sql("SELECT request_id FROM predictions ORDER BY id")
            .scalars()
            .all()
        )
    assert stored == [f"r{i}" for i in range(200)]
    engine.dispose()
