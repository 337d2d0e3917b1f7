"""Build the project's wheel in a copy of the project and run it from a fresh virtual environment.

Reusable by other tests (e.g. the REST service's), without pytest fixtures::

    from tests.pipelines.serving.packaging import (
        install_packaged_project,
        run_packaged,
        start_service,
    )

    project = install_packaged_project(tmp_path)  # kedro package + venv + wheel
    run_packaged(project, "--env", "test", "--pipelines", "data_acquisition,...")
    with start_service(
        project, bundle_path
    ) as base_url:  # python -m deep_learning_workflow.service
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

PACKAGE = "deep_learning_workflow"
PROJECT_PATH = Path(__file__).resolve().parents[3]
# What `git clone` would not bring (or what the build must not see).
_NOT_COPIED = (
    ".venv",
    ".git",
    "dist",
    "build",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".viz",
    "mlruns",
    "*.log",
)
UPSTREAM_PIPELINES = ("data_acquisition", "data_processing", "splitting", "modelling", "evaluation")


@dataclass(frozen=True)
class PackagedProject:
    """A wheel of the project installed in its own virtual environment, with a folder to run it in."""

    python: Path
    """The virtual environment's interpreter (the wheel is installed there)."""
    wheel: Path
    conf_tarball: Path
    run_dir: Path
    """The working directory of runs: ``data/`` with the raw files; no source code."""

    @property
    def env(self) -> dict[str, str]:
        # Kedro's bootstrap_project (run by other tests in this process) puts the checkout's src on PYTHONPATH,
        # which would shadow the installed wheel.
        inherited = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        return {
            **inherited,
            "KEDRO_DISABLE_TELEMETRY": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONNOUSERSITE": "1",
        }


def _run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited with {result.returncode} in {cwd}\n"
            f"--- stdout (tail)\n{result.stdout[-4000:]}\n--- stderr (tail)\n{result.stderr[-6000:]}"
        )
    return result.stdout


def copy_project(destination: Path) -> Path:
    """Copy the project as a fresh checkout would have it: sources, conf and the raw data only."""
    shutil.copytree(PROJECT_PATH, destination, ignore=shutil.ignore_patterns(*_NOT_COPIED, "data"))
    raw = PROJECT_PATH / "data" / "01_raw"
    shutil.copytree(
        raw, destination / "data" / "01_raw", ignore=shutil.ignore_patterns("*.partial-*")
    )
    return destination


def build_package(project: Path) -> tuple[Path, Path]:
    """``kedro package`` in ``project``; returns the wheel and the conf tarball."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    _run([sys.executable, "-m", "kedro", "package"], cwd=project, env=env)
    wheels = sorted((project / "dist").glob(f"{PACKAGE}-*.whl"))
    tarball = project / "dist" / f"conf-{PACKAGE}.tar.gz"
    if len(wheels) != 1 or not tarball.is_file():
        raise AssertionError(
            f"kedro package left {sorted(p.name for p in (project / 'dist').iterdir())} in dist/"
        )
    return wheels[0], tarball


def make_venv(path: Path) -> Path:
    """A virtual environment that sees this environment's packages below its own.

    ``--system-site-packages`` reaches the *base* interpreter's packages; when the tests already run in a virtual
    environment (as here) its packages are added by a ``.pth`` file instead. Only the directory is added (its own
    ``.pth`` files, such as the project's editable install, are not processed), so the wheel installed in the new
    environment is the only ``deep_learning_workflow`` it can import.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(path)],
        check=True,
    )
    python = path / "bin" / "python"
    own_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    (own_site / "_test_environment.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return python


def install_packaged_project(workdir: Path) -> PackagedProject:
    """Copy the project, package it, install the wheel (``--no-deps``) in a new venv, prepare a run folder."""
    project = copy_project(workdir / "project")
    wheel, tarball = build_package(project)
    python = make_venv(workdir / "venv")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--ignore-installed",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        cwd=workdir,
    )
    run_dir = workdir / "run"
    shutil.copytree(project / "data", run_dir / "data")
    return PackagedProject(python=python, wheel=wheel, conf_tarball=tarball, run_dir=run_dir)


def run_packaged(project: PackagedProject, *arguments: str, timeout: float = 900) -> str:
    """``python -m deep_learning_workflow --conf-source <tarball> ARGUMENTS`` in the run folder."""
    command = [
        str(project.python),
        "-m",
        PACKAGE,
        "--conf-source",
        str(project.conf_tarball),
        *arguments,
    ]
    return _run(command, cwd=project.run_dir, env=project.env, timeout=timeout)


def conf_tarball_members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        return archive.getnames()


@contextlib.contextmanager
def start_service(
    project: PackagedProject, bundle: Path, *extra: str, ready_timeout: float = 180
) -> Iterator[str]:
    """Start ``python -m deep_learning_workflow.service --bundle BUNDLE`` from the installed wheel.

    Yields the base URL once ``/readyz`` answers 200; stops the service with SIGTERM afterwards and fails when it
    does not exit cleanly.
    """
    port = free_port()
    command = [
        str(project.python),
        "-m",
        f"{PACKAGE}.service",
        "--bundle",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    log = project.run_dir / f"service-{port}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=project.run_dir, env=project.env, stdout=output, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"The service exited with {process.returncode}:\n{log.read_text()[-6000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"The service was not ready after {ready_timeout} s:\n{log.read_text()[-6000:]}"
                )
            time.sleep(0.5)
        yield base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if process.returncode != 0:
        raise AssertionError(
            f"The service exited with {process.returncode} on SIGTERM:\n{log.read_text()[-6000:]}"
        )
