"""``kedro run --only-missing-outputs`` after a lost file and a killed save, as docs/workflow.md describes it."""

from __future__ import annotations

import os

import pytest

from .conftest import run_kedro

pytestmark = pytest.mark.slow

RUN = ("run", "--env", "test", "--pipelines", "data_acquisition,data_processing")


def test_only_missing_outputs_remakes_the_lost_file_and_nothing_else(project_copy):
    first = run_kedro(project_copy, *RUN)
    assert first.returncode == 0, first.stderr[-3000:]
    data = project_copy / "data"
    acquired = data / "02_intermediate" / "acquired_table.parquet"
    clean = data / "03_primary" / "clean_table.parquet"
    made = clean.read_bytes()
    kept = acquired.stat().st_mtime_ns
    clean.unlink()  # lost
    leftover = clean.with_name(
        ".clean_table.partial-0123456789ab.parquet"
    )  # what a killed save leaves
    leftover.write_bytes(made[:100])
    os.utime(leftover, (1_000_000, 1_000_000))

    again = run_kedro(project_copy, *RUN, "--only-missing-outputs")

    assert again.returncode == 0, again.stderr[-3000:]
    assert clean.read_bytes() == made  # the same file as the uninterrupted run made
    assert acquired.stat().st_mtime_ns == kept  # an existing output is not recomputed
    assert not leftover.exists()
