"""A real ``kedro run`` whose databases fail keeps their password secret and writes nothing under data/.

The source database (raw_billing) and the study storage (tuning_storage) get PostgreSQL URLs holding a sentinel
password; the run takes both pipelines, so the check before the first node meets both. The sentinel must appear
nowhere: not on stdout or stderr, not in the log file (conf/logging.yml writes info.log in the project folder), not
in MLflow's store, not in any file under data/.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import data_state, run_kedro
from .fake_postgres import PasswordRefusingServer

SENTINEL = "S3ntinel-Pa55"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    return output


@pytest.mark.slow
def test_unreachable_databases(project_copy, monkeypatch):
    output = failing_run(project_copy, closed_port(), monkeypatch)
    assert "Connection refused" in output


@pytest.mark.slow
def test_databases_refusing_the_password(project_copy, monkeypatch):
    with PasswordRefusingServer() as server:
        output = failing_run(project_copy, server.port, monkeypatch)
    assert 'password authentication failed for user "analyst"' in output
    assert 'password authentication failed for user "tuner"' in output
    assert server.passwords.count(SENTINEL) >= 2  # both datasets really presented it
