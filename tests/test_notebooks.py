"""The notebooks run headless, top to bottom, on the outputs of ``kedro run --env test``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_project, run_kedro
from tests.ports import free_port

NOTEBOOKS = ("exploratory_analysis", "model_diagnostics")


def test_notebooks_are_committed_without_outputs(project_path):
    nbformat = pytest.importorskip("nbformat")
    for name in NOTEBOOKS:
        notebook = nbformat.read(project_path / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), (
            name
        )
        # The extension loads the project; %reload_kedro after it would load it a second time.
        assert code[0].source.strip().endswith("%load_ext kedro.ipython"), name
        assert not any("%reload_kedro" in cell.source for cell in code), name


@pytest.fixture(scope="session")
def project_after_test_run(project_path, tmp_path_factory) -> Path:
    """A project copy holding the outputs of ``kedro run --env test``, with the notebooks beside them."""
    project = copy_project(project_path, tmp_path_factory.mktemp("notebooks_project"))
    result = run_kedro(project, "run", "--env", "test")
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.copytree(project_path / "notebooks", project / "notebooks")
    return project


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_without_errors(project_after_test_run, name):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    folder = project_after_test_run / "notebooks"
    notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEDRO_ENV", "test")  # the kernel inherits it: the extension loads conf/test
        client.execute()  # raises CellExecutionError, with the cell and its traceback, on the first failing cell

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    # Every code cell ran, and the last one (the error table by segment, or the rates by category) has a result.
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert any(output.output_type == "execute_result" for output in code[-1].outputs)


@pytest.mark.slow
def test_kedro_jupyter_lab_starts_and_serves_its_api(project_copy):
    import importlib.util
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip('jupyterlab is not installed: pip install -e ".[notebooks]"')
    port = free_port()
    command = [sys.executable, "-m", "kedro", "jupyter", "lab", "--no-browser", "--port", str(port)]
    command += ["--ServerApp.ip=127.0.0.1", "--IdentityProvider.token="]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append(
            "--allow-root"
        )  # Jupyter refuses to run as root otherwise (as in containers)
    server = subprocess.Popen(
        command,
        cwd=project_copy,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
    )
    try:
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                time.sleep(1)
        assert answer is not None, (
            server.stdout.read() if server.poll() is not None else "no answer"
        )
        assert "version" in answer
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/kernelspecs", timeout=10
        ) as response:
            kernels = json.loads(response.read())
        # kedro jupyter lab installs and selects the project's kernel, which loads the project at start.
        assert kernels["default"] == "kedro_deep_learning_workflow"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
