"""The study storage when its database fails: a refused password, malformed URLs, unknown roles and databases, and
the check a run makes before its first node. Errors name the credentials key and never show the password."""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
from deep_learning_workflow.hooks import CheckConnectionsHook
from tests.fake_postgres import PasswordRefusingServer
from tests.ports import free_port

SENTINEL = "S3ntinel-Pa55"


def failures(con: str) -> list[DatasetError]:
    """The errors of opening the storage (the first node) and of the run's check before any node."""
    dataset = OptunaStorageDataset(credentials={"con": con})
    with pytest.raises(DatasetError) as opening:
        dataset.load()
    with pytest.raises(DatasetError) as checking:
        dataset.check_connection()
    catalog = DataCatalog({"tuning_storage": dataset, "train": MemoryDataset(1)})
    run = Pipeline([node(lambda storage, train: train, ["tuning_storage", "train"], "out")])
    with pytest.raises(DatasetError) as before_run:
        CheckConnectionsHook().before_pipeline_run({}, run, catalog)
    assert str(before_run.value) == f"tuning_storage: {checking.value}"
    assert SENTINEL not in repr(dataset) + str(dataset._describe())
    return [opening.value, checking.value, before_run.value]


def assert_clear_and_redacted(errors: list[DatasetError], shown: str, reason: str, log: str):
    for error in errors:
        message = str(error)
        assert (
            "Cannot open the Optuna study storage" in message and "'tuning_storage.con'" in message
        )
        assert shown in message and reason in message, message
        assert SENTINEL not in "".join(traceback.format_exception(error))
    assert SENTINEL not in log


def test_a_wrong_password(caplog):
    caplog.set_level(logging.DEBUG)
    with PasswordRefusingServer() as server:
        errors = failures(f"postgresql+psycopg2://tuner:{SENTINEL}@127.0.0.1:{server.port}/optuna")
    assert_clear_and_redacted(
        errors,
        f"postgresql+psycopg2://tuner:***@127.0.0.1:{server.port}/optuna",
        'password authentication failed for user "tuner"',
        caplog.text,
    )
    assert server.passwords and set(server.passwords) == {SENTINEL}


@pytest.mark.parametrize(
    ("con", "shown", "reason"),
    [
        (
            f"postgresql+psycopg2://127.0.0.1:{{port}}/optuna?user=tuner&password={SENTINEL}",
            "password=***",
            "Connection refused",
        ),
        (
            f"postgresql+psycopg2://tuner:{quote(SENTINEL + '/@:')}@127.0.0.1:{{port}}/optuna",
            "tuner:***@127.0.0.1",
            "Connection refused",
        ),
        (f"tuner:{SENTINEL}@127.0.0.1:{{port}}/optuna", "tuner:***@", "ArgumentError"),
    ],
)
def test_unusual_or_malformed_urls_are_redacted(caplog, con, shown, reason):
    caplog.set_level(logging.DEBUG)
    assert_clear_and_redacted(failures(con.format(port=free_port())), shown, reason, caplog.text)


def test_local_files_need_no_connection_check(tmp_path):
    for con in (f"sqlite:///{tmp_path}/a/study.db", f"journal:///{tmp_path}/b/study.journal"):
        OptunaStorageDataset(credentials={"con": con}).check_connection()
    assert (
        list(tmp_path.iterdir()) == []
    )  # the check creates nothing; the first node opens the storage


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("role", "database", "reason"),
    [
        ("dlw_no_such_role", "test", 'role "dlw_no_such_role" does not exist'),
        ("postgres", "dlw_no_such_database", 'database "dlw_no_such_database" does not exist'),
    ],
)
def test_postgresql_refuses_a_login(caplog, role, database, reason):
    # The server trusts local connections and takes any password (the double above refuses one); an unknown role
    # or database is a login it refuses.
    engine = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432: {error.orig}")
    finally:
        engine.dispose()
    caplog.set_level(logging.DEBUG)
    con = f"postgresql+psycopg2://{role}:{SENTINEL}@127.0.0.1:5432/{database}"
    assert_clear_and_redacted(
        failures(con), f"{role}:***@127.0.0.1:5432/{database}", reason, caplog.text
    )
