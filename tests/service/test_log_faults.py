"""The prediction log's database when it fails: the service's error names the log and never shows the password."""

from __future__ import annotations

import logging
import traceback
import uuid

import pytest
import sqlalchemy as sa

from deep_learning_workflow.service.metrics import ServiceMetrics
from deep_learning_workflow.service.prediction_log import PredictionLogWriter, read_logged_records
from tests.fake_postgres import PasswordRefusingServer
from tests.ports import free_port

SENTINEL = "S3ntinel-Pa55"


def start_failure(url: str) -> RuntimeError:
    writer = PredictionLogWriter(url, "predictions", ServiceMetrics())
    try:
        with pytest.raises(RuntimeError) as raised:
            writer.start()
    finally:
        writer.close()
    return raised.value


def assert_clear_and_redacted(error: BaseException, shown: str, reason: str, log: str) -> None:
    message = str(error)
    assert message.startswith(f"Cannot open the prediction log {shown}") and "(log_url)" in message
    assert reason in message, message
    assert SENTINEL not in "".join(traceback.format_exception(error)) + log


def test_an_unreachable_log_database(caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    error = start_failure(f"postgresql+psycopg2://logger:{SENTINEL}@127.0.0.1:{port}/log")
    assert_clear_and_redacted(
        error,
        f"postgresql+psycopg2://logger:***@127.0.0.1:{port}/log",
        "Connection refused",
        caplog.text,
    )


def test_a_log_database_refusing_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    with PasswordRefusingServer() as server:
        error = start_failure(
            f"postgresql+psycopg2://logger:{SENTINEL}@127.0.0.1:{server.port}/log"
        )
    assert_clear_and_redacted(
        error,
        "postgresql+psycopg2://logger:***@127.0.0.1",
        'password authentication failed for user "logger"',
        caplog.text,
    )
    assert set(server.passwords) == {SENTINEL}


@pytest.mark.postgres
def test_reading_a_log_without_its_table_does_not_show_the_password():
    # Trust authentication takes the sentinel password, so the connection succeeds and the table is missing.
    url = f"postgresql+psycopg2://postgres:{SENTINEL}@127.0.0.1:5432/test"
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432: {error.orig}")
    finally:
        engine.dispose()
    table = f"dlw_missing_{uuid.uuid4().hex[:12]}"
    with pytest.raises(ValueError, match=f"has no table '{table}'") as raised:
        read_logged_records(url, table)
    assert "postgres:***@127.0.0.1:5432/test" in str(raised.value)
    assert SENTINEL not in "".join(traceback.format_exception(raised.value))
