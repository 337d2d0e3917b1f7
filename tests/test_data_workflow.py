"""The data half of the workflow from the command line, in a temporary copy of the project."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_kedro


@pytest.mark.slow
def test_kedro_run_data_pipelines_writes_splits_and_eda(project_copy):
    result = run_kedro(
        project_copy,
        "run",
        "--env",
        "test",
        "--pipelines",
        "data_acquisition,data_processing,splitting",
    )
    assert result.returncode == 0, result.stderr[-3000:]

    raw = pd.read_csv(project_copy / "data/01_raw/telco_churn.csv")
    splits = {
        name: pd.read_parquet(project_copy / f"data/05_model_input/{name}.parquet")
        for name in ("train", "val", "test")
    }
    keys = {name: set(frame["customer_id"]) for name, frame in splits.items()}
    assert sum(len(k) for k in keys.values()) == len(raw)
    assert set().union(*keys.values()) == set(raw["customer_id"])
    raw_rate = (raw["churn"] == "Yes").mean()
    for frame in splits.values():
        assert (frame["churn"] == "Yes").mean() == pytest.approx(raw_rate, abs=0.01)
    assert (project_copy / "data/05_model_input/train_balanced.parquet").exists()

    report = json.loads((project_copy / "data/08_reporting/split_report.json").read_text())
    assert report  # the split report is written beside the EDA plots
    plots = sorted(p.name for p in (project_copy / "data/08_reporting").glob("eda_*"))
    assert len(plots) >= 5


# End to end, a real run; test_run_validation's slow cases run the same check, and test_parameters the
# validation itself, in the fast suite.
@pytest.mark.slow
def test_kedro_run_stops_on_bad_split_size_before_any_node(project_copy):
    (project_copy / "conf/local/parameters_splitting.yml").write_text(
        "splitting:\n  test_size: 1.5\n"
    )
    result = run_kedro(
        project_copy, "run", "--pipelines", "data_acquisition,data_processing,splitting"
    )
    assert result.returncode != 0
    assert "splitting.test_size" in result.stderr + result.stdout
    assert not (project_copy / "data/02_intermediate/acquired_table.parquet").exists()


@pytest.mark.slow
def test_data_pipelines_run_under_parallel_runner(project_copy):
    result = run_kedro(
        project_copy,
        "run",
        "--env",
        "test",
        "--runner",
        "ParallelRunner",
        "--pipelines",
        "data_acquisition,data_processing,splitting",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    raw = pd.read_csv(project_copy / "data/01_raw/telco_churn.csv")
    splits = [
        pd.read_parquet(project_copy / f"data/05_model_input/{name}.parquet")
        for name in ("train", "val", "test")
    ]
    assert sorted(pd.concat(splits)["customer_id"]) == sorted(raw["customer_id"])


@pytest.mark.slow
def test_default_run_under_parallel_runner_logs_into_one_mlflow_run(project_copy):
    import mlflow
    from mlflow import MlflowClient

    result = run_kedro(project_copy, "run", "--env", "test", "--runner", "ParallelRunner")
    assert result.returncode == 0, result.stderr[-3000:]
    gate = json.loads((project_copy / "data/08_reporting/release_gate.json").read_text())
    assert isinstance(gate["passed"], bool)

    mlflow.set_tracking_uri(f"sqlite:///{project_copy}/mlruns/test_env/mlflow.db")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deep_learning_workflow_test")
    runs = client.search_runs([experiment.experiment_id])
    # The worker processes log into the run the main process opened, not into runs of their own.
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["runner"] == "ParallelRunner"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/validation_metrics.json" in artifacts
    assert client.get_metric_history(run.info.run_id, "training.loss")
