"""Bring your own data by configuration alone (docs/own_data.md): a table of another shape runs the whole workflow.

The table shares nothing with Telco: other column names, a three-class target, a free-text column, numeric and
categorical columns with missing values, read from Parquet (the new records from CSV). Only files under
``conf/tickets/`` and ``data/01_raw/`` are written; the code is the project's.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run_kedro
from tests.own_tables import CLASSES, make_tickets

ENV = "tickets"
# The keys docs/own_data.md tells a user to set, per file of conf/<env>/.
OWN_PARAMETERS = {
    "parameters.yml": {
        "columns": {
            "key": "ticket_id",
            "target": "priority",
            "positive_class": None,
            "numeric": None,
            "categorical": None,
            "text": ["description"],
        },
        "problem": {
            "statement": "Route support tickets to the right queue by priority.",
            "primary_metric": "roc_auc",
            "success": {"metric": "roc_auc", "minimum": 0.6},
            "costs": None,
        },
    },
    "parameters_data_acquisition.yml": {
        "data_acquisition": {"sources": {"database": {"enabled": False}}, "dtypes": None}
    },
    "parameters_data_processing.yml": {
        "data_processing": {
            "rules": [
                {"column": "priority", "allowed": CLASSES, "action": "drop_row"},
                {"column": "hours_open", "ge": 0, "action": "set_missing"},
            ]
        }
    },
    "parameters_evaluation.yml": {
        "evaluation": {
            "threshold": {"rule": "max_f1"},
            "release_gate": {
                "floors": {"roc_auc": 0.6},
                "ceilings": {"brier": None},
            },
            "report": {"title": "Ticket priority model report", "limitations": []},
        }
    },
    "parameters_tuning.yml": {"tuning": {"study_name": "tickets"}},
    # Enough epochs for a three-class model on 500 rows to learn something; conf/test's two only check wiring.
    "parameters_modelling.yml": {"modelling": {"epochs": 8, "batch_size": 32}},
}

CATALOG = {
    "raw_customers": {"type": "pandas.ParquetDataset", "filepath": "data/01_raw/tickets.parquet"},
    "scoring_batch": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/new_tickets.csv"},
    "release_scenarios": {
        "type": "yaml.YAMLDataset",
        "filepath": "data/01_raw/ticket_scenarios.yml",
    },
}

SCENARIOS = {
    "defaults": {
        "plan": "pro",
        "hours_open": 5.0,
        "messages": 3,
        "channel": "email",
        "description": "the app page",
    },
    "scenarios": [
        {
            "name": "an_outage_is_high",
            "record": {"description": "urgent outage after the update", "plan": "enterprise"},
            "expect_label": "high",
        }
    ],
}


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_environment(project) -> None:
    """conf/tickets = conf/test (small epochs, forced export, own tracking store) + the own-data keys."""
    environment = project / "conf" / ENV
    shutil.copytree(project / "conf" / "test", environment)
    for name, values in OWN_PARAMETERS.items():
        path = environment / name
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
        path.write_text(yaml.safe_dump(_merge(existing or {}, values), sort_keys=False))
    (environment / "catalog.yml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))


@pytest.mark.slow
def test_a_foreign_table_runs_the_whole_workflow_and_is_served(project_copy):
    raw = project_copy / "data" / "01_raw"
    tickets = make_tickets(500, seed=7)
    tickets.to_parquet(raw / "tickets.parquet", index=False)
    new = make_tickets(120, seed=8).drop(columns="priority")
    new.to_csv(raw / "new_tickets.csv", index=False)
    (raw / "ticket_scenarios.yml").write_text(yaml.safe_dump(SCENARIOS))
    write_environment(project_copy)

    result = run_kedro(project_copy, "run", "--env", ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_kedro(project_copy, "run", "--env", ENV, "--pipelines", "serving")
    assert result.returncode == 0, result.stderr[-3000:]

    def report(name: str) -> dict:
        return json.loads((project_copy / "data" / "08_reporting" / name).read_text())

    splits = {
        name: pd.read_parquet(project_copy / "data" / "05_model_input" / f"{name}.parquet")
        for name in ("train", "val", "test")
    }
    assert sum(len(frame) for frame in splits.values()) == len(tickets)
    assert all(set(frame["priority"]) == set(CLASSES) for frame in splits.values())
    assert splits["train"]["description"].str.contains("<br").sum() == 0  # text cleaned

    metadata = json.loads((project_copy / "data/06_models/model_metadata.json").read_text())
    assert metadata["classes"] == CLASSES
    assert metadata["roles"]["numeric"] == ["hours_open", "messages"]
    assert metadata["roles"]["categorical"] == ["plan", "channel"]
    assert metadata["roles"]["text"] == ["description"]

    validation = report("validation_metrics.json")
    assert validation["classes"] == CLASSES
    assert validation["at_threshold"]["rule"] == "argmax"
    assert np.asarray(validation["at_threshold"]["confusion_matrix"]["counts"]).shape == (3, 3)
    assert set(validation["at_threshold"]["f1"]) == {*CLASSES, "macro"}
    assert all(0.0 <= validation["scores"][name] <= 1.0 for name in ("roc_auc", "accuracy"))
    # The words carry the priority: the model and the text-aware baseline both rank far better than chance (0.5),
    # the model on the 85% of 350 training rows it fits, the rest held out for early stopping.
    assert validation["scores"]["roc_auc"] > 0.65
    baselines = report("baseline_metrics.json")
    assert baselines["logistic_regression"]["scores"]["roc_auc"] > 0.7
    assert baselines["majority_class"]["scores"]["roc_auc"] == pytest.approx(0.5)
    gate = report("release_gate.json")
    assert "floor roc_auc" in {check["check"] for check in gate["checks"]}
    assert not {"floor pr_auc", "ceiling brier"} & {check["check"] for check in gate["checks"]}
    test_metrics = report("test_metrics.json")
    assert test_metrics["classes"] == CLASSES
    assert test_metrics["data"]["rows"] == len(splits["test"])

    predictions = pd.read_parquet(project_copy / "data/07_model_output/predictions.parquet")
    assert len(predictions) == len(new)
    assert {f"probability_{label}" for label in CLASSES} <= set(predictions.columns)
    assert set(predictions["label"]) <= set(CLASSES)
    drift = report("drift_report.json")
    assert {"hours_open", "plan", "channel"} <= set(drift["features"])

    from deep_learning_workflow.service.loader import load_version

    version = load_version(project_copy / "data/07_model_output/serving_bundle")
    assert version.classes == CLASSES
    records = [
        {
            "ticket_id": "X1",
            "plan": "enterprise",
            "hours_open": None,
            "messages": 2,
            "channel": None,
            "description": "URGENT: outage, the app is down!",
        },
        {
            "plan": "a plan never seen",
            "hours_open": 30.0,
            "messages": 0,
            "channel": "chat",
            "description": "",
        },
    ]
    scores = version.score(version.validator.validate(records, batch=True))
    assert scores.probabilities.shape == (2, 3)
    assert np.allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert set(scores.labels) <= set(CLASSES)


def test_the_own_data_keys_replace_what_names_telco_after_the_soft_merge(project_copy):
    from kedro.config import OmegaConfigLoader

    from deep_learning_workflow.parameters import parse, validate_parameters
    from deep_learning_workflow.pipelines.evaluation.schema import EvaluationParameters

    write_environment(project_copy)
    loader = OmegaConfigLoader(
        conf_source=str(project_copy / "conf"),
        base_env="base",
        default_run_env=ENV,
        merge_strategy={"parameters": "soft"},
    )
    parameters = loader["parameters"]
    validate_parameters(parameters)

    # A map in an environment is merged into the base map, so the Telco dtypes and limits are dropped with null.
    assert parameters["data_acquisition"]["dtypes"] is None
    assert parameters["data_acquisition"]["sources"]["database"]["enabled"] is False
    assert parameters["data_processing"]["rules"][0]["column"] == "priority"
    assert parameters["columns"]["numeric"] is None and parameters["columns"]["categorical"] is None
    gate = parse(EvaluationParameters, parameters["evaluation"], "evaluation").release_gate
    assert gate.floors == {"roc_auc": 0.6} and gate.ceilings == {}
    assert parameters["problem"]["costs"] is None
