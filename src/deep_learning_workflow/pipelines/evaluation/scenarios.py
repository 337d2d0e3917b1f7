"""Release scenarios: curated records the model must decide as expected before it is released."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.metrics import predict_labels
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.pipelines.evaluation.predictions import CANDIDATE, checked_probabilities
from deep_learning_workflow.pipelines.evaluation.schema import ReleaseScenarios, Scenario

SCENARIOS_FILE = "release_scenarios (data/01_raw/release_scenarios.yml)"


def scenario_frame(
    scenarios: ReleaseScenarios, roles: ColumnRoles
) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """All scenario records in one frame (one batch for the model) and each scenario's rows."""
    features = roles.features
    numeric = set(roles.numeric or [])

    def complete(record: dict, where: str) -> dict:
        unknown = [column for column in record if column not in features]
        if unknown:
            raise ValueError(
                f"{SCENARIOS_FILE}: {where} names columns that are not feature columns of the model: {unknown}. "
                f"The feature columns are {features}."
            )
        text_numbers = [c for c in record if c in numeric and isinstance(record[c], str)]
        if text_numbers:
            raise ValueError(
                f"{SCENARIOS_FILE}: {where} gives text for the numeric columns {text_numbers}."
            )
        return record

    defaults = complete(dict(scenarios.defaults), "defaults")
    rows: list[dict] = []
    spans: list[tuple[int, int]] = []
    for position, scenario in enumerate(scenarios.scenarios):
        where = f"scenarios[{position}] ('{scenario.name}')"
        record = {**defaults, **complete(dict(scenario.record), f"{where}.record")}
        steps = scenario.steps or [{}]
        start = len(rows)
        for number, step in enumerate(steps):
            row = {**record, **complete(dict(step), f"{where}.steps[{number}]")}
            missing = [column for column in features if column not in row]
            if missing:
                raise ValueError(
                    f"{SCENARIOS_FILE}: {where} gives no value for {missing}; add them to 'defaults' or to the "
                    "scenario's record (null for a missing value)."
                )
            rows.append(row)
        spans.append((start, len(rows)))
    columns = {}
    for column in features:
        values = [row[column] for row in rows]
        if column in numeric:
            columns[column] = pd.to_numeric(pd.Series(values, dtype="object")).astype("float64")
        else:
            # As the training data reads: the category 1 of an integer column is the string "1".
            columns[column] = pd.Series(
                [None if v is None else str(v) for v in values], dtype="object"
            )
    return pd.DataFrame(columns), spans


def check_classes(scenarios: ReleaseScenarios, classes: list[str]) -> None:
    """Every class a scenario names is one of the model's."""
    for position, scenario in enumerate(scenarios.scenarios):
        for key in ("expect_label", "probability_of"):
            value = getattr(scenario, key)
            if value is not None and value not in classes:
                raise ValueError(
                    f"{SCENARIOS_FILE}: scenarios[{position}] ('{scenario.name}').{key} is '{value}', "
                    f"not one of the model's classes {classes}."
                )


def _expected_label(
    scenario: Scenario, probabilities: np.ndarray, decided: str, classes: list[str], rule: str
) -> dict:
    shown = {label: round(float(p), 4) for label, p in zip(classes, probabilities, strict=True)}
    return {
        "name": scenario.name,
        "kind": "expected_label",
        "passed": bool(decided == scenario.expect_label),
        "probabilities": shown,
        "detail": f"decided '{decided}' (probabilities {shown}, {rule}); expected '{scenario.expect_label}'",
    }


def _expected_direction(scenario: Scenario, path: np.ndarray, label: str) -> dict:
    changes = np.diff(path)
    worst = float(changes.max() if scenario.expect == "not_increasing" else -changes.min())
    steps = [round(float(p), 4) for p in path]
    return {
        "name": scenario.name,
        "kind": "expected_direction",
        "passed": bool(worst <= scenario.tolerance),
        "probabilities": steps,
        "detail": f"P({label}) over the steps {steps} must be {scenario.expect.replace('_', ' ')} within "
        f"{scenario.tolerance}; largest move the wrong way {max(worst, 0.0):.4f}",
    }


def run_scenarios(
    model: Any,
    scenarios: ReleaseScenarios,
    roles: ColumnRoles,
    classes: list[str],
    positive_class: str | None,
    threshold: float | None,
) -> list[dict]:
    """Score every scenario's records in one batch and check each expectation."""
    check_classes(scenarios, classes)
    frame, spans = scenario_frame(scenarios, roles)
    probabilities = checked_probabilities(
        predict_probabilities(model, frame, roles), len(frame), classes, CANDIDATE
    )
    decided = predict_labels(probabilities, classes, positive_class, threshold)
    rule = "argmax" if threshold is None else f"threshold {threshold:.4f}"
    results = []
    for scenario, (start, end) in zip(scenarios.scenarios, spans, strict=True):
        if scenario.expect_label is not None:
            results.append(
                _expected_label(scenario, probabilities[start], decided[start], classes, rule)
            )
        else:
            label = scenario.probability_of or positive_class or classes[-1]
            path = probabilities[start:end, classes.index(label)]
            results.append(_expected_direction(scenario, path, label))
    return results
