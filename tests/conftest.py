"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_PATH = Path(__file__).resolve().parents[1]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Keras and TensorFlow start quietly.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _share_the_cores() -> None:
    """Under pytest-xdist the workers are processes that share the cores: each gets its share of threads.

    TensorFlow, OpenMP (scikit-learn, oneDNN) and OpenBLAS each start a thread per core in every process by
    default, so two workers on two cores run eight compute threads that preempt one another, and OpenMP's threads
    spin while they wait. Set here, before anything imports those libraries, and inherited by the ``kedro``
    processes the tests start; a variable the caller set is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = str(max(1, (cores or 1) // workers))
    for name in (
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
    ):
        os.environ.setdefault(name, threads)


_share_the_cores()


@pytest.fixture(scope="session", autouse=True)
def _log_file_outside_the_checkout(tmp_path_factory) -> None:
    """Kedro configures this process's logging from conf/logging.yml of the working folder, the checkout, whose
    ``info.log`` is relative to it: the in-process tests would append to the checkout's info.log, one file that
    every pytest-xdist worker writes and rotates on its own. This process writes it in its temporary folder; the
    ``kedro`` processes the tests start still write theirs in their project copies."""
    from kedro.framework.project import LOGGING

    handler = LOGGING.data.get("handlers", {}).get("info_file_handler")
    if handler is not None and not Path(handler["filename"]).is_absolute():
        handler["filename"] = str(tmp_path_factory.getbasetemp() / handler["filename"])
        LOGGING.configure(LOGGING.data)


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
