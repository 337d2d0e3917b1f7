"""A real ``kedro run`` whose databases fail keeps their password secret and writes nothing under data/.

The source database (raw_billing) and the study storage (tuning_storage) get PostgreSQL URLs holding a sentinel
password; the run takes both pipelines, so the check before the first node meets both. The sentinel must appear
nowhere: not on stdout or stderr, not in the log file (conf/logging.yml writes info.log in the project folder), not
in MLflow's store, not in any file under data/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import data_state, run_kedro
from .fake_postgres import PasswordRefusingServer
from .ports import free_port

SENTINEL = "S3ntinel-Pa55"


def files_holding(project: Path, secret: str) -> list[str]:
    """Files of the project copy, outside its configuration, whose bytes hold ``secret``."""
    return sorted(
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file()
        and path.relative_to(project).parts[0] != "conf"
        and secret.encode() in path.read_bytes()
    )


def failing_run(project: Path, port: int, monkeypatch) -> str:
    env = project / "conf" / "leak"
    env.mkdir()
    (env / "credentials.yml").write_text(
        "source_database:\n"
        f"  con: postgresql+psycopg2://analyst:{SENTINEL}@127.0.0.1:{port}/warehouse\n"
        "tuning_storage:\n"
        f"  con: postgresql+psycopg2://tuner:{SENTINEL}@127.0.0.1:{port}/optuna\n"
    )
    before = data_state(project)
    monkeypatch.setenv("COLUMNS", "200")

    result = run_kedro(project, "run", "--env", "leak", "--pipelines", "data_acquisition,tuning")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert SENTINEL not in output
    # Rich wraps the error to the console's width: compare with the line breaks undone.
    output = " ".join(output.split())
    assert files_holding(project, SENTINEL) == []
    assert data_state(project) == before  # stopped before any node: no partial output
    for name, user, database in (
        ("raw_billing", "analyst", "warehouse"),
        ("tuning_storage", "tuner", "optuna"),
    ):
        assert f"{name}: " in output, output[-3000:]
        assert f"{user}:***@127.0.0.1:{port}/{database}" in output, output[-3000:]
    # the credentials file of the environment the run used, not conf/local's
    assert "(conf/leak/credentials.yml)" in output, output[-3000:]
    return output


@pytest.mark.slow
def test_unreachable_databases(project_copy, monkeypatch):
    output = failing_run(project_copy, free_port(), monkeypatch)
    assert "Connection refused" in output


@pytest.mark.slow
def test_databases_refusing_the_password(project_copy, monkeypatch):
    with PasswordRefusingServer() as server:
        output = failing_run(project_copy, server.port, monkeypatch)
    assert 'password authentication failed for user "analyst"' in output
    assert 'password authentication failed for user "tuner"' in output
    assert server.passwords.count(SENTINEL) >= 2  # both datasets really presented it


SALT_SENTINEL = "S4lt-Sentinel-0123456789abcdef"


@pytest.fixture
def billing_in_postgres(project_path) -> Iterator[str]:
    """The demo billing tables copied into a fresh schema of the PostgreSQL test database; its name."""
    import sqlite3
    import uuid

    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test", connect_args={"connect_timeout": 3}
    )
    try:
        engine.connect().close()
    except sa.exc.OperationalError as error:
        engine.dispose()
        pytest.skip(
            f"no PostgreSQL server at 127.0.0.1:5432 (trust auth, database 'test'): {error.orig}"
        )
    schema = f"dlw_secrets_{uuid.uuid4().hex[:12]}"
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    with sqlite3.connect(project_path / "data" / "01_raw" / "telco_billing.sqlite") as source:
        for table in ("contracts", "payment_methods", "billing"):
            frame = pd.read_sql_query(f"SELECT * FROM {table}", source)  # noqa: S608 - fixed names
            frame.to_sql(table, engine, schema=schema, index=False)
    try:
        yield schema
    finally:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_successful_run_keeps_every_credential_and_the_salt_secret(
    project_copy, billing_in_postgres
):
    """A run reads its source database with a password and hashes the key with a salt, both sentinels; after the
    data pipelines, training, evaluation and the serving bundle, neither is anywhere in MLflow's store, the bundle,
    the logs, the console or data/. (PostgreSQL here trusts local connections, so the password is sent but not
    checked: what is tested is that nothing writes it.)"""
    import hashlib
    import hmac

    import pandas as pd

    test_env = project_copy / "conf" / "test"
    (test_env / "credentials.yml").write_text(
        "source_database:\n"
        f"  con: postgresql+psycopg2://postgres:{SENTINEL}@127.0.0.1:5432/test"
        f"?options=-csearch_path%3D{billing_in_postgres}\n"
        "tuning_storage:\n"
        f"  con: postgresql+psycopg2://tuner:{SENTINEL}@127.0.0.1:5432/optuna\n"
        "deidentification:\n"
        f"  salt: {SALT_SENTINEL}\n"
    )
    (test_env / "parameters_data_acquisition.yml").write_text(
        "data_acquisition:\n  sensitive:\n    hash: [customer_id]\n"
    )

    outputs = []
    for arguments in (("run", "--env", "test"), ("run", "--env", "test", "--pipelines", "serving")):
        result = run_kedro(project_copy, *arguments)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(result.stdout + result.stderr)

    acquired = pd.read_parquet(project_copy / "data" / "02_intermediate" / "acquired_table.parquet")
    first = hmac.new(SALT_SENTINEL.encode(), b"C00001", hashlib.sha256).hexdigest()
    assert first in set(acquired["customer_id"])  # the salt from the credentials was used
    assert (project_copy / "data" / "07_model_output" / "serving_bundle" / "bundle.json").exists()
    assert (project_copy / "mlruns").is_dir() and (project_copy / "info.log").exists()
    for secret in (SENTINEL, SALT_SENTINEL):
        assert not any(secret in output for output in outputs)
        assert files_holding(project_copy, secret) == []
