"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_PATH = Path(__file__).resolve().parents[1]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Keras and TensorFlow start quietly and use both cores in a predictable way.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def project_path() -> Path:
    """The project's root folder."""
    return PROJECT_PATH


def copy_project(source: Path, destination: Path) -> Path:
    """Copy what a run needs (configuration, raw data, project metadata) into ``destination``.

    Kedro wants a ``src`` folder; it stays empty because the package is installed from the checkout in editable
    mode, so the copy runs the same code against its own data folder.
    """
    import shutil

    (destination / "src").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(source / name, destination / name)
    shutil.copytree(source / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    shutil.copytree(source / "data" / "01_raw", destination / "data" / "01_raw")
    return destination


@pytest.fixture
def project_copy(project_path, tmp_path) -> Path:
    """A temporary copy of the project to run ``kedro`` in, so tests never write into the checkout's data."""
    return copy_project(project_path, tmp_path)


def run_kedro(project: Path, *arguments: str, timeout: int = 600):
    """Run ``kedro`` in ``project`` with this interpreter; returns the completed process (never raises on failure)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "kedro", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        check=False,
    )


def data_state(project: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``project/data`` with its size and modification time, to prove a run wrote
    nothing there."""
    return {
        str(path.relative_to(project)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted((project / "data").rglob("*"))
    }
