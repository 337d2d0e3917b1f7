"""The notebooks run headless, top to bottom, on the outputs of ``kedro run --env test``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_project, run_kedro

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
        assert "%reload_kedro" in code[0].source, name


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
