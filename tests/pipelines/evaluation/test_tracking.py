"""The run's metrics and version tags reach MLflow through kedro-mlflow's dataset and the tags dataset."""

from __future__ import annotations

import pytest

from deep_learning_workflow.datasets.mlflow_tags import MlflowTagsDataset
from deep_learning_workflow.datasets.optional_json import OptionalJSONDataset

TEST_METRICS = {
    "bootstrap": {"confidence": 0.95, "resamples": 200},
    "data": {"fingerprint": "abc", "rows": 1057},
    "model": {"metrics": {"pr_auc": {"value": 0.64, "low": 0.6012, "high": 0.67034}}},
}


def test_interval_bounds_are_one_tag_per_score_and_no_metrics():
    from deep_learning_workflow.pipelines.evaluation.tracking import interval_tags, tracking_metrics

    assert interval_tags(TEST_METRICS) == {"test.pr_auc.interval": "[0.6012, 0.6703] 95%"}
    metrics = tracking_metrics(
        {"scores": {"pr_auc": 0.66}, "at_threshold": {}},
        {"logistic_regression": {"scores": {"pr_auc": 0.61}}},
        {"threshold": 0.4},
        {"passed": True, "failed_checks": []},
        TEST_METRICS,
    )
    assert metrics["test.pr_auc"] == {"value": 0.64, "step": 0}
    assert not [name for name in metrics if name.endswith((".low", ".high"))]


@pytest.mark.slow
def test_metrics_and_tags_are_logged_to_the_active_run(tmp_path):
    import mlflow
    from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
    from mlflow.tracking import MlflowClient

    from deep_learning_workflow.pipelines.evaluation.tracking import interval_tags

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    was_set, previous = mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("evaluation", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment) as run:
            MlflowMetricsHistoryDataset(prefix="evaluation").save(
                {
                    "val.pr_auc": {"value": 0.66, "step": 0},
                    "test.pr_auc": {"value": 0.64, "step": 0},
                }
            )
            MlflowTagsDataset().save(
                {"data.test.fingerprint": "abc", "data.val.rows": 1056}
                | interval_tags(TEST_METRICS)
            )
        logged = MlflowClient(tracking_uri=uri).get_run(run.info.run_id).data
    finally:
        mlflow.set_tracking_uri(previous if was_set else None)
    assert logged.metrics == {"evaluation.val.pr_auc": 0.66, "evaluation.test.pr_auc": 0.64}
    assert logged.tags["data.test.fingerprint"] == "abc" and logged.tags["data.val.rows"] == "1056"
    assert logged.tags["test.pr_auc.interval"] == "[0.6012, 0.6703] 95%"


def test_tags_without_an_active_run_are_not_logged_anywhere(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    assert mlflow.active_run() is None
    MlflowTagsDataset().save({"model.fingerprint": "abc"})
    assert mlflow.active_run() is None
    assert list(tmp_path.iterdir()) == []


def test_optional_json_dataset_reads_none_until_saved_and_saves_atomically(tmp_path):
    path = tmp_path / "released" / "release.json"
    dataset = OptionalJSONDataset(str(path))
    assert dataset.load() is None and not dataset.exists()
    dataset.save({"released": True, "model_fingerprint": "m"})
    assert dataset.load() == {"released": True, "model_fingerprint": "m"}
    with pytest.raises(Exception, match="not JSON serializable"):
        dataset.save({"released": object()})
    assert dataset.load() == {"released": True, "model_fingerprint": "m"}
    assert [p.name for p in path.parent.iterdir()] == ["release.json"]
