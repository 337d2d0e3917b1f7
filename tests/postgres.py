"""The PostgreSQL server the database tests talk to (127.0.0.1:5432, trust auth, database ``test``), or a skip
that says why."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_engine() -> sa.Engine:
    """An engine on the test server; skips the calling test when the server does not answer."""
    engine = sa.create_engine(POSTGRES, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        engine.dispose()
        pytest.skip(
            f"no PostgreSQL server at 127.0.0.1:5432 (trust auth, database 'test'): {error.orig}"
        )
    return engine
