"""The file and database sources through their catalog entries: SQLite, PostgreSQL, and what breaks."""

from __future__ import annotations

import copy
import socket
import uuid
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa
from kedro.io import DataCatalog, DatasetError

from deep_learning_workflow.datasets.sql_dataset import (
    REBUILD_COMMAND,
    PortableSQLQueryDataset,
)

BILLING = [
    "customer_id",
    "contract",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
]
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def load(config: dict, name: str, credentials: dict | None = None) -> pd.DataFrame:
    return DataCatalog.from_config({name: config[name]}, credentials=credentials).load(name)


def test_the_file_source_reads_the_non_billing_columns(catalog_config, telco):
    customers = load(catalog_config, "raw_customers")
    expected = telco.drop(columns=[c for c in BILLING if c != "customer_id"])
    pd.testing.assert_frame_equal(customers, expected)


def test_the_database_source_reads_the_billing_columns_from_sqlite(
    catalog_config, sqlite_credentials, telco
):
    billing = load(catalog_config, "raw_billing", sqlite_credentials)
    pd.testing.assert_frame_equal(
        billing, telco[BILLING].sort_values("customer_id", ignore_index=True)
    )
    assert billing["total_charges"].isna().sum() == 11


def test_query_values_are_bound_parameters(catalog_config, sqlite_credentials, telco):
    config = copy.deepcopy(catalog_config)
    config["raw_billing"]["load_args"]["params"]["min_monthly_charges"] = 100
    assert (
        len(load(config, "raw_billing", sqlite_credentials))
        == (telco["monthly_charges"] >= 100).sum()
    )

    # a value is never pasted into the SQL text: this one is compared as a string and matches no row
    config["raw_billing"]["load_args"]["params"]["min_monthly_charges"] = "0 OR 1=1"
    assert load(config, "raw_billing", sqlite_credentials).empty


def test_a_missing_sqlite_file_is_a_clear_error_and_is_not_created(catalog_config, tmp_path):
    path = tmp_path / "nowhere.sqlite"
    with pytest.raises(DatasetError) as error:
        load(catalog_config, "raw_billing", {"source_database": {"con": f"sqlite:///{path}"}})
    message = str(error.value)
    assert message.startswith("raw_billing: ")
    assert f"'{path}' does not exist" in message and REBUILD_COMMAND in message
    assert not path.exists()


def test_an_unreachable_database_is_a_clear_error_without_the_password(catalog_config):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    con = f"postgresql+psycopg2://analyst:hunter2-secret@127.0.0.1:{port}/warehouse"
    with pytest.raises(DatasetError) as error:
        load(catalog_config, "raw_billing", {"source_database": {"con": con}})
    message = str(error.value)
    assert message.startswith(
        "raw_billing: Could not read the query's result from postgresql+psycopg2://analyst:***@"
    )
    assert "conf/local/credentials.yml" in message
    assert "hunter2-secret" not in message


def test_a_missing_file_names_the_dataset_and_the_path(catalog_config, tmp_path):
    config = copy.deepcopy(catalog_config)
    config["raw_customers"]["filepath"] = str(tmp_path / "telco_churn.csv")
    with pytest.raises(
        DatasetError, match=r"(?s)^raw_customers: .*No such file or directory.*telco_churn.csv"
    ):
        load(config, "raw_customers")


@pytest.fixture
def postgres_schema(project_path):
    """A fresh schema on the PostgreSQL server at 127.0.0.1:5432 holding the demo billing tables; dropped after."""
    engine = sa.create_engine(POSTGRES, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        engine.dispose()
        pytest.skip(
            f"no PostgreSQL server at 127.0.0.1:5432 (trust auth, database 'test'): {error.orig}"
        )
    schema = f"dlw_acquisition_{uuid.uuid4().hex[:12]}"
    sqlite = sa.create_engine(
        f"sqlite:///{project_path / 'data' / '01_raw' / 'telco_billing.sqlite'}"
    )
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema))
            for table in ("contracts", "payment_methods", "billing"):
                frame = pd.read_sql_table(table, sqlite)
                frame.to_sql(table, connection, schema=schema, index=False)
        yield schema
    finally:
        sqlite.dispose()
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()


@pytest.mark.postgres
def test_the_same_catalog_entry_reads_postgresql_when_only_credentials_change(
    catalog_config, sqlite_credentials, postgres_schema
):
    # The schema is chosen through the connection URL, i.e. the credentials, like a user's own database.
    con = f"{POSTGRES}?options={quote(f'-csearch_path={postgres_schema}')}"
    try:
        from_postgres = load(catalog_config, "raw_billing", {"source_database": {"con": con}})
    finally:
        engine = PortableSQLQueryDataset.engines.pop(con, None)
        if engine is not None:
            engine.dispose()

    from_sqlite = load(catalog_config, "raw_billing", sqlite_credentials)
    assert len(from_postgres) == 7043
    pd.testing.assert_frame_equal(from_postgres, from_sqlite)
