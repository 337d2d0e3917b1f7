"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
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


def _import_kedro_without_the_checkouts_log_file() -> None:
    """Kedro configures logging once, when ``kedro.framework.project`` is first imported, from conf/logging.yml of
    the working folder, the checkout, whose ``info.log`` is relative to it: every process of the suite (each
    pytest-xdist worker) would write and rotate the checkout's info.log on its own. Imported here under Kedro's own
    console-only configuration; ``_log_file_outside_the_checkout`` then applies the project's."""
    import importlib.util

    if os.environ.get("KEDRO_LOGGING_CONFIG"):
        return
    spec = importlib.util.find_spec("kedro.framework.project")
    if spec is None or spec.origin is None:
        return
    os.environ["KEDRO_LOGGING_CONFIG"] = str(Path(spec.origin).parent / "default_logging.yml")
    # Kedro says which configuration it used: not worth a console line at every start.
    logging.disable(logging.INFO)
    try:
        import kedro.framework.project  # noqa: F401
    finally:
        logging.disable(logging.NOTSET)
        del os.environ["KEDRO_LOGGING_CONFIG"]


_import_kedro_without_the_checkouts_log_file()


@pytest.fixture(scope="session", autouse=True)
def _log_file_outside_the_checkout(tmp_path_factory) -> None:
    """This process logs as conf/logging.yml says, its ``info.log`` in the process's temporary folder. (A process
    that a test starts logs as its working folder says: a ``kedro`` run in its project copy.)"""
    if os.environ.get("KEDRO_LOGGING_CONFIG"):
        return  # the caller's own configuration
    import yaml
    from kedro.framework.project import LOGGING

    config = yaml.safe_load((PROJECT_PATH / "conf" / "logging.yml").read_text())
    handler = config["handlers"]["info_file_handler"]
    handler["filename"] = str(tmp_path_factory.getbasetemp() / handler["filename"])
    LOGGING.configure(config)


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
