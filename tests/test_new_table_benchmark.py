"""The checks of benchmarks/new_table.py: its two tables made from Telco, and what it counts as a violation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from deep_learning_workflow.models.names import keras_names

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RAW = BENCHMARKS.parent / "data" / "01_raw"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            "new_table_benchmark", BENCHMARKS / "new_table.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_odd_names_table_is_telco_renamed_and_the_small_one_is_60_telco_rows(bench, tmp_path):
    (tmp_path / "telco_churn.csv").write_bytes((RAW / "telco_churn.csv").read_bytes())
    bench.generate_tables(tmp_path)
    telco = pd.read_csv(tmp_path / "telco_churn.csv")
    odd = pd.read_csv(tmp_path / "odd_names.csv")
    small = pd.read_csv(tmp_path / "small.csv")

    pd.testing.assert_frame_equal(odd, telco.rename(columns=bench.ODD_NAMES))
    assert len(small) == 60 and set(small["customer_id"]) <= set(telco["customer_id"])
    features = [name for name in odd.columns if name != "Churn?"]
    assert any(not name.isascii() for name in features)
    assert any(" " in name for name in features)
    # Two names that read the same once sanitised still get two Keras names.
    cleaned = [name.rsplit("_", 1)[0] for name in keras_names(features).values()]
    assert len(set(cleaned)) < len(cleaned)
    assert len(set(keras_names(features).values())) == len(features)


def released(model: dict[str, float], baseline: dict[str, float]) -> dict:
    def metrics(values):
        return {name: {"value": value} for name, value in values.items()}

    return {
        "table": "t",
        "rows": 100,
        "seconds": 1.0,
        "margins": {"primary": 0.03, "accuracy": 0.03, "log_loss": 0.03},
        "release_gate": {
            "verdict": "release",
            "failed_checks": [],
            "primary_metric": "pr_auc",
            "model_value": 0.8,
            "comparisons": [{"baseline": "prior", "metric": "pr_auc", "baseline_value": 0.5}],
        },
        "test_metrics": {
            "classes": ["No", "Yes"],
            "model": {"metrics": metrics(model), "at_threshold": {"accuracy": model["accuracy"]}},
            "baselines": {"prior": {"metrics": metrics(baseline)}},
        },
    }


@pytest.mark.parametrize(
    ("model", "violations"),
    [
        ({"pr_auc": 0.7, "accuracy": 0.80, "log_loss": 0.42}, 0),
        ({"pr_auc": 0.7, "accuracy": 0.76, "log_loss": 0.42}, 1),
        ({"pr_auc": 0.7, "accuracy": 0.80, "log_loss": 0.45}, 1),
    ],
)
def test_a_released_model_worse_than_a_baseline_beyond_the_margin_is_a_violation(
    bench, model, violations
):
    record = released(model, {"pr_auc": 0.6, "accuracy": 0.80, "log_loss": 0.41})

    assert len(bench.check_run(record, ["No", "Yes"])["problems"]) == violations
    record["release_gate"]["verdict"] = "reject"
    assert bench.check_run(record, ["No", "Yes"])["problems"] == []


def test_a_stop_that_wrote_files_or_repeats_its_message_is_a_violation(bench):
    message = "ValueError: The table is too small to split: class 'Yes' would have 3 rows in val"
    record = {"table": "t", "rows": 60, "seconds": 1.0, "new_table": "", "stopped_at": "kedro run"}

    assert bench.check_run(record | {"run": message, "written": []}, [])["problems"] == []
    wrote = record | {"run": message, "written": ["t/02_intermediate/acquired_table.parquet"]}
    assert len(bench.check_run(wrote, [])["problems"]) == 1
    twice = record | {
        "run": f"{message}\n(The traceback is in info.log.)\n{message}",
        "written": [],
    }
    assert len(bench.check_run(twice, [])["problems"]) == 1
    traceback = "Traceback (most recent call last):\n  File ...\n"
    with_traceback = record | {"run": traceback + message, "written": []}
    assert len(bench.check_run(with_traceback, [])["problems"]) == 1
