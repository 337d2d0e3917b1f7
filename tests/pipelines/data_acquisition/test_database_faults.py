"""The source database when it fails or is attacked: unreachable, refusing the password, malformed URLs, hostile
query values. Errors name the dataset and never show the password; bound values never run as SQL."""

from __future__ import annotations

import shutil
import sqlite3
import traceback
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa
from kedro.io import DataCatalog, DatasetError
from kedro.pipeline import Pipeline, node

from deep_learning_workflow.datasets.sql_dataset import (
    CONNECT_TIMEOUT_SECONDS,
    PortableSQLQueryDataset,
)
from deep_learning_workflow.hooks import CheckConnectionsHook
from tests.fake_postgres import PasswordRefusingServer
from tests.ports import free_port
from tests.postgres import POSTGRES, postgres_engine

SENTINEL = "S3ntinel-Pa55"
INJECTIONS = ["x' OR '1'='1", "1; DROP TABLE t"]


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    """The dataset caches one engine per URL in a class attribute: drop the ones a test made."""
    before = set(PortableSQLQueryDataset.engines)
    yield
    for con in set(PortableSQLQueryDataset.engines) - before:
        PortableSQLQueryDataset.engines.pop(con).dispose()


def everything_shown(error: BaseException) -> str:
    """The error as a traceback prints it, chained exceptions included."""
    return "".join(traceback.format_exception(error))


def failure(catalog_config: dict, con: str) -> tuple[DatasetError, DatasetError]:
    """The errors of loading ``raw_billing`` with ``con`` and of the run's connection check before any node."""
    credentials = {"source_database": {"con": con}}
    catalog = DataCatalog.from_config({"raw_billing": catalog_config["raw_billing"]}, credentials)
    with pytest.raises(DatasetError) as loading:
        catalog.load("raw_billing")
    run = Pipeline([node(lambda frame: frame, "raw_billing", "out")])
    with pytest.raises(DatasetError) as checking:
        CheckConnectionsHook().before_pipeline_run({}, run, catalog)
    return loading.value, checking.value


def assert_clear_and_redacted(error: DatasetError, shown_url: str, reason: str) -> None:
    message = str(error)
    assert message.startswith("raw_billing: "), message
    assert shown_url in message and reason in message, message
    assert SENTINEL not in everything_shown(error)


def test_an_unreachable_server(catalog_config):
    port = free_port()
    con = f"postgresql+psycopg2://analyst:{SENTINEL}@127.0.0.1:{port}/warehouse"
    for error in failure(catalog_config, con):
        assert_clear_and_redacted(
            error,
            f"postgresql+psycopg2://analyst:***@127.0.0.1:{port}/warehouse",
            "Connection refused",
        )


def test_a_wrong_password(catalog_config):
    with PasswordRefusingServer() as server:
        con = f"postgresql+psycopg2://analyst:{SENTINEL}@127.0.0.1:{server.port}/warehouse"
        for error in failure(catalog_config, con):
            assert_clear_and_redacted(
                error, "analyst:***@127.0.0.1", 'password authentication failed for user "analyst"'
            )
    assert server.passwords and set(server.passwords) == {
        SENTINEL
    }  # the password was really presented


@pytest.mark.parametrize(
    ("con", "shown", "reason"),
    [
        # the password as a query argument
        (
            f"postgresql+psycopg2://127.0.0.1:{{port}}/warehouse?user=analyst&password={SENTINEL}",
            "password=***",
            "Connection refused",
        ),
        # a password that needs quoting in the URL
        (
            f"postgresql+psycopg2://analyst:{quote(SENTINEL + '/@:')}@127.0.0.1:{{port}}/warehouse",
            "analyst:***@127.0.0.1",
            "Connection refused",
        ),
        # no scheme: not a URL SQLAlchemy can read
        (f"analyst:{SENTINEL}@127.0.0.1:{{port}}/warehouse", "analyst:***@", "not a database URL"),
        (
            f"postgresql+psycopg2://analyst:{SENTINEL}@127.0.0.1:port/warehouse",
            "analyst:***@",
            "not a database URL",
        ),
    ],
)
def test_malformed_or_unusual_urls_are_redacted(catalog_config, con, shown, reason):
    for error in failure(catalog_config, con.format(port=free_port())):
        assert_clear_and_redacted(error, shown, reason)


def test_postgresql_connections_time_out_by_default():
    def dataset(**credentials) -> PortableSQLQueryDataset:
        return PortableSQLQueryDataset(sql="SELECT 1", credentials={"con": POSTGRES, **credentials})

    # libpq would otherwise wait for ever on a server that accepts the connection and never answers
    assert dataset()._connection_args["connect_args"] == {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS
    }
    chosen = dataset(connect_args={"connect_timeout": 3, "application_name": "dlw"})
    assert chosen._connection_args["connect_args"] == {
        "connect_timeout": 3,
        "application_name": "dlw",
    }


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("role", "database", "reason"),
    [
        ("dlw_no_such_role", "test", 'role "dlw_no_such_role" does not exist'),
        ("postgres", "dlw_no_such_database", 'database "dlw_no_such_database" does not exist'),
    ],
)
def test_postgresql_refuses_a_login(catalog_config, role, database, reason):
    # The server trusts local connections, so it takes any password: a wrong one cannot be produced there (the
    # double above refuses one); an unknown role or database is a login the real server refuses.
    postgres_engine().dispose()
    con = f"postgresql+psycopg2://{role}:{SENTINEL}@127.0.0.1:5432/{database}"
    for error in failure(catalog_config, con):
        assert_clear_and_redacted(error, f"{role}:***@127.0.0.1:5432/{database}", reason)


# --- Hostile values of the query's bound parameters ----------------------------------------------------------


def query(con: str, sql: str, **params) -> pd.DataFrame:
    return PortableSQLQueryDataset(
        sql=sql, credentials={"con": con}, load_args={"params": params}
    ).load()


def sqlite_state(path) -> dict[str, tuple[int, str]]:
    with sqlite3.connect(path) as connection:
        tables = connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        return {
            name: (connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0], sql)
            for name, sql in tables.fetchall()
        }


def test_injection_strings_return_nothing_and_change_nothing_on_sqlite(
    catalog_config, project_path, tmp_path
):
    path = tmp_path / "billing.sqlite"
    shutil.copy(project_path / "data" / "01_raw" / "telco_billing.sqlite", path)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
    before = sqlite_state(path)
    con = f"sqlite:///{path}"
    config = {
        **catalog_config["raw_billing"],
        "load_args": {"params": {"min_monthly_charges": None}},
    }

    for value in INJECTIONS:
        # the project's own catalog entry, the value in its numeric comparison
        config["load_args"]["params"]["min_monthly_charges"] = value
        catalog = DataCatalog.from_config(
            {"raw_billing": config}, {"source_database": {"con": con}}
        )
        assert catalog.load("raw_billing").empty
        # a text and an integer comparison on the table the second string tries to drop
        assert query(con, "SELECT id, name FROM t WHERE name = :name", name=value).empty
        assert query(con, "SELECT id, name FROM t WHERE id = :id", id=value).empty

    assert sqlite_state(path) == before
    assert before["t"][0] == 3 and before["billing"][0] == 7043


@pytest.fixture
def postgres_table() -> Iterator[tuple[str, sa.Engine]]:
    """A schema of the test database holding a table ``t`` of three rows; dropped after."""
    engine = postgres_engine()
    schema = f"dlw_injection_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema))
            connection.execute(
                sa.text(f"CREATE TABLE {schema}.t (id integer PRIMARY KEY, name text NOT NULL)")
            )
            connection.execute(
                sa.text(f"INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            )
        yield schema, engine
    finally:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()


def postgres_state(engine: sa.Engine, schema: str) -> tuple[list, int]:
    with engine.connect() as connection:
        columns = connection.execute(
            sa.text(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = :schema ORDER BY table_name, ordinal_position"
            ),
            {"schema": schema},
        ).all()
        rows = connection.execute(sa.text(f"SELECT COUNT(*) FROM {schema}.t")).scalar_one()
    return [tuple(column) for column in columns], rows


@pytest.mark.postgres
def test_injection_strings_return_nothing_and_change_nothing_on_postgresql(postgres_table):
    schema, engine = postgres_table
    before = postgres_state(engine, schema)
    con = f"{POSTGRES}?options={quote(f'-csearch_path={schema}')}"

    for value in INJECTIONS:
        assert query(con, "SELECT id, name FROM t WHERE name = :name", name=value).empty
        # PostgreSQL types the bound value: not an integer, so it is refused as data, never run as SQL
        with pytest.raises(DatasetError, match="invalid input syntax for type integer"):
            query(con, "SELECT id, name FROM t WHERE id = :id", id=value)

    assert postgres_state(engine, schema) == before
    assert before[1] == 3
