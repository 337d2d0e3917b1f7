"""What a run prints: a short console ending with the release gate's verdict, and one message for a failure, while
info.log keeps everything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deep_learning_workflow.run_summary import SUMMARY_LINES, summary_lines

from .conftest import copy_project, run_kedro

CONSOLE_LINES = 200

GATE = {
    "verdict": "reject",
    "primary_metric": "pr_auc",
    "model_value": 0.6351,
    "rule": {"name": "non_inferior", "margin": 0.02, "confidence": 0.95},
    "validation_optimistic": True,
    "failed_checks": ["pr_auc vs gradient_boosting", "floor roc_auc"],
    "checks": [
        {"check": "pr_auc vs gradient_boosting", "passed": False, "detail": "lead -0.0134"},
        {"check": "pr_auc vs logistic_regression", "passed": True, "detail": "lead +0.0151"},
        {"check": "floor roc_auc", "passed": False, "detail": "roc_auc 0.79 must be >= 0.8"},
    ],
    "comparisons": [
        {
            "baseline": "gradient_boosting",
            "metric": "pr_auc",
            "baseline_value": 0.6485,
            "greater_is_better": True,
        },
        {
            "baseline": "logistic_regression",
            "metric": "pr_auc",
            "baseline_value": 0.62,
            "greater_is_better": True,
        },
        {
            "baseline": "gradient_boosting",
            "metric": "log_loss",
            "baseline_value": 0.41,
            "greater_is_better": False,
        },
    ],
}


def test_the_summary_names_the_deciding_checks_the_best_baseline_and_the_next_command():
    test_metrics = {
        "model": {"metrics": {"pr_auc": {"value": 0.6689}}},
        "baselines": {"gradient_boosting": {"metrics": {"pr_auc": {"value": 0.665}}}},
    }
    lines = summary_lines(
        GATE, test_metrics, "data/08_reporting/model_report.html", "m.keras", "reviews"
    )
    assert len(lines) <= SUMMARY_LINES
    assert lines[0] == "Release gate: REJECT (rule non_inferior)"
    assert [line.split(":")[0].strip() for line in lines[1:3]] == [
        "failed pr_auc vs gradient_boosting",
        "failed floor roc_auc",
    ]
    text = "\n".join(lines)
    assert "model 0.6351, best baseline gradient_boosting 0.6485" in text
    assert "optimistic" in text
    assert "pr_auc on test: model 0.6689, gradient_boosting 0.6650" in text
    assert "Report: data/08_reporting/model_report.html" in text
    assert "--env reviews --pipelines tuning" in lines[-1]
    released = {**GATE, "verdict": "release", "failed_checks": [], "validation_optimistic": False}
    released["checks"] = [{**check, "passed": True} for check in GATE["checks"]]
    lines = summary_lines(released, None, None, None, "local")
    assert lines[-1] == "Next: kedro run --pipelines serving"
    assert not any("on test" in line for line in lines)
    many = {
        **GATE,
        "checks": [{"check": f"c{i}", "passed": False, "detail": "d"} for i in range(30)],
    }
    assert len(summary_lines(many, test_metrics, "r", "m", None)) <= SUMMARY_LINES


def _summary(console: str) -> list[str]:
    lines = console.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Release gate: "))
    return lines[start:]


@pytest.mark.slow
def test_a_run_prints_a_short_console_that_ends_with_the_gate_verdict(project_path, tmp_path):
    project = copy_project(project_path, tmp_path)
    result = run_kedro(project, "run", "--env", "test")
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-3000:]
    assert len(console.splitlines()) <= CONSOLE_LINES, console
    assert "retracing" not in console
    gate = json.loads((project / "data" / "08_reporting" / "release_gate.json").read_text())
    test_metrics = json.loads((project / "data" / "08_reporting" / "test_metrics.json").read_text())
    summary = _summary(result.stdout)
    assert len(summary) <= SUMMARY_LINES
    assert summary[0].startswith(f"Release gate: {gate['verdict'].upper()}")
    primary = gate["primary_metric"]
    validation = next(line for line in summary if line.startswith(f"{primary} on validation"))
    assert f"model {gate['model_value']:.4f}" in validation
    best = max(
        (c for c in gate["comparisons"] if c["metric"] == primary),
        key=lambda c: c["baseline_value"],
    )
    assert f"best baseline {best['baseline']} {best['baseline_value']:.4f}" in validation
    on_test = next(line for line in summary if line.startswith(f"{primary} on test"))
    assert f"model {test_metrics['model']['metrics'][primary]['value']:.4f}" in on_test
    for name in gate["failed_checks"][:4]:
        assert any(line.strip().startswith(f"failed {name}:") for line in summary), name
    assert any(line.startswith("Report: ") and "model_report.html" in line for line in summary)
    assert summary[-1].startswith("Next: ") and "kedro run --env test --pipelines " in summary[-1]
    # Everything still reaches info.log: every node's start, which the console leaves out.
    log = (project / "info.log").read_text()
    assert len(re.findall(r"Running node: ", log)) >= 30
    assert "Running node: " not in console


@pytest.mark.slow
def test_a_failed_run_prints_its_message_once_and_its_traceback_to_info_log(project_path, tmp_path):
    project = copy_project(project_path, tmp_path)
    scenarios_file = project / "data" / "01_raw" / "release_scenarios.yml"
    scenarios = yaml.safe_load(scenarios_file.read_text())
    scenarios["defaults"]["no_such_column"] = 1
    scenarios_file.write_text(yaml.safe_dump(scenarios))
    result = run_kedro(project, "run", "--env", "test")
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        console.count("names columns that are not feature columns of the model: ['no_such_column']")
        == 1
    )
    assert "Traceback" not in console and "was closed because" not in console
    assert len(console.splitlines()) <= CONSOLE_LINES
    assert "Traceback" in (project / "info.log").read_text()
    assert not any(line.startswith("Release gate: ") for line in console.splitlines())


def test_logging_configuration_keeps_every_record_in_info_log(project_path: Path):
    config = yaml.safe_load((project_path / "conf" / "logging.yml").read_text())
    assert config["handlers"]["info_file_handler"]["level"] == "INFO"
    assert "info_file_handler" in config["root"]["handlers"]
    for name, logger in config["loggers"].items():
        if logger.get("propagate") is False:
            assert "info_file_handler" in logger["handlers"], name
