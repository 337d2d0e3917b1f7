"""kedro-datasets' ``pandas.SQLQueryDataset`` with bound parameters that work on every database.

pandas hands a query string to the database driver as is, so bound parameters take the driver's own placeholder
style (``?`` or ``:name`` for SQLite, ``%(name)s`` for psycopg2) and one query cannot serve both. This dataset
wraps the query in :func:`sqlalchemy.text`, so ``:name`` placeholders (values in ``load_args.params``) are bound
by SQLAlchemy on any database: the same catalog entry reads SQLite or PostgreSQL when only the credentials change.
It also turns a missing SQLite file or an unreachable server into an error that says what to do.
"""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import SQLQueryDataset
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

REBUILD_COMMAND = "python -m deep_learning_workflow.pipelines.data_acquisition.build_demo_data"


class PortableSQLQueryDataset(SQLQueryDataset):
    """Read the result of a SQL query whose ``:name`` parameters are bound by SQLAlchemy.

    Example (catalog)::

        raw_billing:
          type: deep_learning_workflow.pipelines.data_acquisition.sql_dataset.PortableSQLQueryDataset
          sql: SELECT * FROM billing WHERE monthly_charges >= :min_charges
          credentials: source_database
          load_args:
            params: {min_charges: 0}
    """

    def _where(self) -> str:
        return make_url(self._connection_str).render_as_string(hide_password=True)

    def _check_sqlite_file(self) -> None:
        url = make_url(self._connection_str)
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
                "folder, or point the credentials at your database in conf/local/credentials.yml."
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
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise DatasetError(
                f"Could not read the query's result from {self._where()}: {reason}. Check that the database is "
                "reachable and has the queried table, and the credentials' con (conf/local/credentials.yml)."
            ) from error
