"""A bad parameter stops a real ``kedro run`` before any node: non-zero exit, the key named, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import data_state, run_kedro


def _delete_epochs(project: Path) -> None:
    # Soft merge cannot delete a key through an environment, so the copy's conf/base loses the line.
    path = project / "conf" / "base" / "parameters_modelling.yml"
    text, count = re.subn(r"(?m)^  epochs: .*\n", "", path.read_text())
    assert count == 1
    path.write_text(text)


def _override(file: str, text: str):
    def write(project: Path) -> None:
        env = project / "conf" / "case"
        env.mkdir(exist_ok=True)
        (env / file).write_text(text)

    return write


CASES = {
    "missing key": (_delete_epochs, "modelling.epochs"),
    "split size of 1.5": (
        _override("parameters_splitting.yml", "splitting:\n  train_size: 1.5\n"),
        "splitting.train_size",
    ),
    "negative epoch count": (
        _override("parameters_modelling.yml", "modelling:\n  epochs: -3\n"),
        "modelling.epochs",
    ),
    "unknown architecture": (
        _override("parameters_modelling.yml", "modelling:\n  architecture: resnet\n"),
        "modelling.architecture",
    ),
    "key of another family": (
        _override(
            "parameters_modelling.yml", "modelling:\n  architecture: mlp\n  tabm:\n    members: 4\n"
        ),
        "modelling",
    ),
    "negative threshold resamples": (
        _override("parameters_evaluation.yml", "evaluation:\n  threshold:\n    bootstrap: -1\n"),
        "evaluation.threshold.bootstrap",
    ),
    "string for a number": (
        _override("parameters_modelling.yml", "modelling:\n  learning_rate: fast\n"),
        "modelling.learning_rate",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_parameter_stops_kedro_run_before_any_node(project_copy, monkeypatch, case):
    break_configuration, key = CASES[case]
    break_configuration(project_copy)
    env = ["--env", "case"] if (project_copy / "conf" / "case").exists() else []
    before = data_state(project_copy)
    monkeypatch.setenv("COLUMNS", "200")

    result = run_kedro(project_copy, "run", *env, timeout=300)

    # Rich wraps the error to the console's width: compare with the line breaks undone.
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-2000:]
    assert f"- {key}: " in output, output[-2000:]
    assert data_state(project_copy) == before
