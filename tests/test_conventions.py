"""Kedro conventions: a new pipeline joins the default run, the wheel keeps telemetry off, a run without its raw
data stops at once, naming the files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_PATH, run_kedro


def test_default_run_is_every_pipeline_but_the_opt_in_ones(tmp_path):
    """A pipeline package added under pipelines/ (as ``kedro pipeline create`` adds it) joins ``__default__``."""
    import shutil

    package = tmp_path / "src" / "deep_learning_workflow"
    shutil.copytree(
        PROJECT_PATH / "src" / "deep_learning_workflow",
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    new = package / "pipelines" / "customer_scores"
    new.mkdir()
    (new / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (new / "pipeline.py").write_text(
        "from kedro.pipeline import Node, Pipeline\n\n\n"
        "def score(table):\n    return table\n\n\n"
        "def create_pipeline(**kwargs):\n"
        "    return Pipeline([Node(score, 'clean_table', 'customer_scores', name='score')])\n"
    )
    probe = (
        "import deep_learning_workflow.pipeline_registry as r\n"
        "from kedro.framework.project import configure_project\n"
        "configure_project('deep_learning_workflow')\n"
        "pipelines = r.register_pipelines()\n"
        "default = {n.name for n in pipelines['__default__'].nodes}\n"
        "for name, pipeline in sorted(pipelines.items()):\n"
        "    if name != '__default__':\n"
        "        print('JOINED', name, {n.name for n in pipeline.nodes} <= default)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_PATH,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "src")},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    joined = dict(
        line.split()[1:] for line in result.stdout.splitlines() if line.startswith("JOINED ")
    )
    assert joined["customer_scores"] == "True"
    assert joined["data_acquisition"] == joined["evaluation"] == "True"
    assert joined["tuning"] == joined["serving"] == joined["model_pruning"] == "False"


def test_the_package_entry_point_turns_telemetry_off():
    probe = (
        "import deep_learning_workflow.__main__\n"
        "from kedro_telemetry.plugin import _check_for_telemetry_consent\n"
        "print(_check_for_telemetry_consent(None))\n"
    )
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_packaged_run_without_raw_data_stops_at_once_naming_the_files(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "deep_learning_workflow",
            "--conf-source",
            str(PROJECT_PATH / "conf"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    output = (result.stdout + result.stderr).splitlines()
    first = next(i for i, line in enumerate(output) if "raw files that do not exist" in line)
    assert first < 60, "\n".join(output[:80])
    assert any("raw_customers:" in line and "telco_churn.csv" in line for line in output)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


# The packaged run above checks the same stop on missing raw files in the fast suite.
@pytest.mark.slow
def test_kedro_run_in_a_copy_without_one_raw_file_names_it(project_copy):
    (project_copy / "data/01_raw/telco_churn.csv").unlink()
    result = run_kedro(project_copy, "run", "--env", "test", "--pipelines", "data_acquisition")
    assert result.returncode != 0
    assert "raw_customers" in result.stderr + result.stdout
    assert not (project_copy / "data/02_intermediate/acquired_table.parquet").exists()
