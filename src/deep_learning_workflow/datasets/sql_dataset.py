"""kedro-datasets' ``pandas.SQLQueryDataset`` with bound parameters that work on every database.

pandas hands a query string to the database driver as is, so bound parameters take the driver's own placeholder
style (``?`` or ``:name`` for SQLite, ``%(name)s`` for psycopg2) and one query cannot serve both. This dataset
wraps the query in :func:`sqlalchemy.text`, so ``:name`` placeholders (values in ``load_args.params``) are bound
by SQLAlchemy on any database: the same catalog entry reads SQLite or PostgreSQL when only the credentials change.
It also turns a missing SQLite file, an unreachable server or refused credentials into an error that says what to
do and never shows the password, and :meth:`PortableSQLQueryDataset.check_connection` lets the run check the
connection before its first node (``deep_learning_workflow.hooks.CheckConnectionsHook``).
"""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import SQLQueryDataset
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from deep_learning_workflow.redaction import redact_url, scrub

REBUILD_COMMAND = "python -m deep_learning_workflow.pipelines.data_acquisition.build_demo_data"
# libpq waits for ever on a server that accepts the connection and never answers.
CONNECT_TIMEOUT_SECONDS = 10


class PortableSQLQueryDataset(SQLQueryDataset):
    """Read the result of a SQL query whose ``:name`` parameters are bound by SQLAlchemy.

    Example (catalog)::

        raw_billing:
          type: deep_learning_workflow.datasets.sql_dataset.PortableSQLQueryDataset
          sql: SELECT * FROM billing WHERE monthly_charges >= :min_charges
          credentials: source_database
          load_args:
            params: {min_charges: 0}
    """

    # Where the run's credentials come from, named in errors; the run sets it for its environment
    # (deep_learning_workflow.hooks.CheckConnectionsHook).
    credentials_file = "conf/local/credentials.yml"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            backend = make_url(self._connection_str).get_backend_name()
        except Exception:  # noqa: BLE001 - reported, redacted, when the dataset connects
            backend = None
        if backend == "postgresql":
            connect_args = dict(self._connection_args.get("connect_args") or {})
            connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
            self._connection_args = {**self._connection_args, "connect_args": connect_args}

    def _where(self) -> str:
        return redact_url(self._connection_str)

    def _url(self) -> URL:
        try:
            return make_url(self._connection_str)
        except Exception as error:  # noqa: BLE001 - ArgumentError, or ValueError for a bad port
            reason = scrub(str(error), self._connection_str)
        raise DatasetError(
            f"The credentials' con {self._where()} is not a database URL SQLAlchemy can read ({reason}). Write it "
            f"as dialect+driver://user:password@host:port/database in {self.credentials_file}."
        )

    def _cannot_connect(self, error: Exception) -> DatasetError:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason_text = scrub(reason[0] if reason else type(error).__name__, self._connection_str)
        return DatasetError(
            f"Could not read the query's result from {self._where()}: {reason_text}. Check that the database is "
            f"reachable and has the queried table, and the credentials' con ({self.credentials_file})."
        )

    def check_connection(self) -> None:
        """Connect once and let go, so that a run stops before its first node when the database is unreachable or
        refuses the credentials.

        Raises:
            DatasetError: naming the database with its password redacted and saying what to check.
        """
        self._check_sqlite_file()
        try:
            with self.engine.connect():
                return
        except SQLAlchemyError as error:
            problem = self._cannot_connect(error)
        # Raised outside the except block: the driver's exception is not chained, so no traceback prints its text.
        raise problem

    def _check_sqlite_file(self) -> None:
        url = self._url()
        database = url.database or ""
        if (
            url.get_backend_name() != "sqlite"
            or database in ("", ":memory:")
            or database.startswith("file:")
        ):
            return
        if not Path(database).is_file():
            raise DatasetError(
                f"The SQLite database file '{database}' does not exist (from the credentials' con "
                f"{self._where()}). Rebuild the demo database with `{REBUILD_COMMAND}` from the project "
                f"folder, or point the credentials at your database in {self.credentials_file}."
            )

    def load(self) -> pd.DataFrame:
        load_args: dict[str, Any] = copy.deepcopy(self._load_args)
        if self._filepath:
            load_path = get_filepath_str(PurePosixPath(self._filepath), self._protocol)
            with self._fs.open(load_path, mode="r", encoding=self.encoding) as fs_file:
                load_args["sql"] = fs_file.read()
        query = text(load_args.pop("sql"))
        # SQLite would create an empty file and then fail on a missing table.
        self._check_sqlite_file()
        try:
            return pd.read_sql_query(
                sql=query, con=self.engine.execution_options(**self._execution_options), **load_args
            )
        except (SQLAlchemyError, pd.errors.DatabaseError) as error:
            problem = self._cannot_connect(error)
        # Raised outside the except block: the driver's exception is not chained, so no traceback prints its text.
        raise problem
