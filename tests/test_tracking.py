"""MLflow as kedro-mlflow users expect it, against the SQLite store of ``conf/test/mlflow.yml``."""

from __future__ import annotations

import json
import re
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.parallel_hooks import is_parallel
from deep_learning_workflow.tracking_hooks import history_metrics, run_name, runner_name
from tests.conftest import run_kedro

# Baselines stopped after one step and a lower success bar let the two-epoch test model pass the release gate, so
# that it is registered.
WEAK_BASELINES = ",".join(
    (
        "modelling.baselines.logistic_regression.max_iter=1",
        "modelling.baselines.gradient_boosting.max_iter=1",
        "modelling.baselines.gradient_boosting.max_leaf_nodes=2",
        "problem.success.minimum=0.3",
    )
)
TRACKING_URI = "sqlite:///{project}/mlruns/test_env/mlflow.db"


def test_artifact_dataset_pickles_with_its_run_and_saves_after_unpickling(tmp_path):
    from deep_learning_workflow.datasets.mlflow_artifact import MlflowArtifactDataset

    dataset = MlflowArtifactDataset(
        {"type": "json.JSONDataset", "filepath": str(tmp_path / "report.json")},
        artifact_path="evaluation",
    )
    dataset.run_id = "0123abcd"
    dataset._logging_activated = False
    copy = ForkingPickler.loads(ForkingPickler.dumps(dataset))
    assert (copy.run_id, copy.artifact_path, copy._logging_activated) == (
        "0123abcd",
        "evaluation",
        False,
    )
    copy.save({"passed": True})
    assert json.loads((tmp_path / "report.json").read_text()) == {"passed": True}


def test_runner_name_reads_every_form_kedro_passes():
    from kedro.runner import ParallelRunner, SequentialRunner

    assert runner_name("<kedro.runner.parallel_runner.ParallelRunner object at 0x7f49>") == (
        "ParallelRunner"
    )
    assert runner_name(SequentialRunner()) == "SequentialRunner"
    assert runner_name(ParallelRunner) == "ParallelRunner"
    assert runner_name("ThreadRunner") == "ThreadRunner"
    assert is_parallel("<kedro.runner.parallel_runner.ParallelRunner object at 0x1>")
    assert not is_parallel(SequentialRunner())


def test_history_metrics_count_epochs_from_one_and_drop_missing_values():
    metrics = history_metrics({"loss": [0.6, 0.5], "val_loss": [0.7, float("nan")]}, "training.")
    assert metrics == [
        ("training.loss", 0.6, 1),
        ("training.loss", 0.5, 2),
        ("training.val_loss", 0.7, 1),
    ]
    from datetime import datetime

    assert run_name(["serving"], datetime(2026, 5, 2, 14, 3, 11)) == "serving 2026-05-02 14:03:11"
    assert run_name(None, datetime(2026, 5, 2, 14, 3, 11)) == "__default__ 2026-05-02 14:03:11"


@pytest.mark.slow
def test_run_logs_curves_and_model_registers_champion_and_bundle_records_it(project_copy):
    import mlflow
    from mlflow import MlflowClient

    result = run_kedro(project_copy, "run", "--env", "test", "--params", WEAK_BASELINES)
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_kedro(project_copy, "run", "--env", "test", "--pipelines", "serving")
    assert result.returncode == 0, result.stderr[-3000:]

    mlflow.set_tracking_uri(TRACKING_URI.format(project=project_copy))
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deep_learning_workflow_test")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 2
    default = next(run for name, run in runs.items() if name.startswith("__default__ "))
    assert re.fullmatch(r"__default__ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", default.info.run_name)
    assert any(name.startswith("serving ") for name in runs)
    assert default.data.tags["runner"] == "SequentialRunner"

    # The test scores' intervals are one tag each beside the point metric, not two charts of their own.
    tested = json.loads((project_copy / "data/08_reporting/test_metrics.json").read_text())
    pr_auc = tested["model"]["metrics"]["pr_auc"]
    assert default.data.metrics["evaluation.test.pr_auc"] == pytest.approx(pr_auc["value"])
    assert default.data.tags["test.pr_auc.interval"] == (
        f"[{pr_auc['low']:.4f}, {pr_auc['high']:.4f}] {tested['bootstrap']['confidence']:.0%}"
    )
    assert not [name for name in default.data.metrics if name.endswith((".low", ".high"))]

    history = json.loads((project_copy / "data/08_reporting/training_history.json").read_text())
    logged = client.get_metric_history(default.info.run_id, "training.loss")
    assert [m.step for m in logged] == list(range(1, len(history["history"]["loss"]) + 1))
    assert [m.value for m in logged] == pytest.approx(history["history"]["loss"])

    version = client.get_model_version_by_alias("deep_learning_workflow", "champion")
    assert version.run_id == default.info.run_id
    registration = json.loads(
        (project_copy / "data/06_models/released/registration.json").read_text()
    )
    assert registration["version"] == int(version.version)
    bundle = json.loads(
        (project_copy / "data/07_model_output/serving_bundle/bundle.json").read_text()
    )
    assert bundle["registry"]["version"] == int(version.version)
    assert bundle["registry"]["alias"] == "champion"

    # The registered model takes raw records, has a signature and an input example, and is the trained model.
    info = mlflow.models.get_model_info("models:/deep_learning_workflow@champion")
    assert {spec.name for spec in info.signature.inputs} == set(bundle["features"])
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model("models:/deep_learning_workflow@champion")
    val = pd.read_parquet(project_copy / "data/05_model_input/val.parquet").head(20)
    scored = model.predict(val[bundle["features"]])
    assert list(scored.columns) == bundle["classes"]

    from deep_learning_workflow.bundle import read_bundle
    from deep_learning_workflow.mlflow_model import records_to_inputs

    keras_model = read_bundle(project_copy / "data/07_model_output/serving_bundle").model
    kinds = {name: schema["input_dtype"] for name, schema in bundle["schema"].items()}
    kinds = {name: "string" if kind == "string" else "number" for name, kind in kinds.items()}
    kinds = {name: kinds[name] for name in bundle["features"]}
    expected = keras_model.predict(records_to_inputs(val, kinds), verbose=0)
    np.testing.assert_allclose(scored.to_numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_mlflow_ui_serves_the_project_store(tmp_path):
    """The README's ``mlflow ui`` command, on a free port, against a SQLite store like the project's."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", "sqlite:///mlruns.db"]
    command += ["--port", str(port), "--host", "127.0.0.1"]
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5"
        deadline, answer = time.monotonic() + 300, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                time.sleep(1)
        assert answer is not None, "mlflow ui never answered"
        assert [experiment["name"] for experiment in answer["experiments"]] == ["Default"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
