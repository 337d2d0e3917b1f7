"""The serving pipeline on an in-memory catalog, and its catalog and parameter files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset

from deep_learning_workflow.bundle import ServingBundleDataset, read_bundle
from deep_learning_workflow.datasets.chunked import ChunkedParquetDataset
from deep_learning_workflow.datasets.dask_cluster import DaskClusterDataset
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.serving import create_pipeline

from .conftest import release_gate

UPSTREAM = {"model", "train", "decision_threshold", "release_gate", "scoring_batch", "dask_cluster"}


def _catalog(
    tmp_path, keras_model, train, scoring_batch, gate, columns, serving_params
) -> DataCatalog:
    return DataCatalog(
        {
            # A Keras model must not be deep-copied between nodes.
            "model": MemoryDataset(keras_model, copy_mode="assign"),
            "train": MemoryDataset(train),
            "decision_threshold": MemoryDataset(
                {"rule": "max_f1", "threshold": 0.4, "positive_class": "Yes"}
            ),
            "release_gate": MemoryDataset(gate),
            "model_registration": MemoryDataset(None),
            "scoring_batch": MemoryDataset(scoring_batch),
            "dask_cluster": DaskClusterDataset(),
            "params:columns": MemoryDataset(columns),
            "params:serving": MemoryDataset(serving_params),
            "serving_bundle": ServingBundleDataset(path=str(tmp_path / "serving_bundle")),
            "batch_predictions": ChunkedParquetDataset(
                filepath=str(tmp_path / "predictions.parquet")
            ),
            "drift_report": JSONDataset(filepath=str(tmp_path / "drift_report.json")),
            "drift_scores_plot": MemoryDataset(),
            "drift_distributions_plot": MemoryDataset(),
        }
    )


def test_pipeline_inputs_and_outputs():
    pipeline = create_pipeline()
    assert pipeline.inputs() == UPSTREAM | {
        "params:columns",
        "params:serving",
        "model_registration",
    }
    assert pipeline.all_outputs() == {
        "validated_scoring_batch",
        "serving_bundle",
        "batch_predictions",
        "drift_report",
        "drift_scores_plot",
        "drift_distributions_plot",
    }
    assert "test" not in pipeline.inputs()


def test_pipeline_exports_scores_and_reports(
    tmp_path, keras_model, train, new_records, roles, columns, serving_params
):
    catalog = _catalog(
        tmp_path,
        keras_model,
        train,
        new_records,
        release_gate(keras_model, passed=True),
        columns,
        serving_params,
    )
    SequentialRunner().run(create_pipeline(), catalog)

    bundle = read_bundle(tmp_path / "serving_bundle")
    assert bundle.decision_threshold == 0.4
    predictions = catalog.load("batch_predictions")
    assert len(predictions) == len(new_records)
    np.testing.assert_allclose(
        predictions["probability_Yes"],
        predict_probabilities(keras_model, new_records, roles)[:, 1],
        rtol=1e-6,
    )
    assert (
        predictions["label"] == np.where(predictions["probability_Yes"] >= 0.4, "Yes", "No")
    ).all()
    assert (predictions["model_version"] == bundle.model_version).all()
    report = catalog.load("drift_report")
    assert report["model_version"] == bundle.model_version
    assert report["rows"] == len(new_records) and report["retraining_due"] is False
    assert set(report["features"]) == set(bundle.features)


def test_rescoring_with_an_existing_bundle(
    tmp_path, keras_model, train, new_records, columns, serving_params
):
    """``kedro run --pipelines serving --tags scoring`` re-scores fresh data without exporting again."""
    first = _catalog(
        tmp_path,
        keras_model,
        train,
        new_records,
        release_gate(keras_model, passed=True),
        columns,
        serving_params,
    )
    SequentialRunner().run(create_pipeline(), first)
    fresh = new_records.assign(monthly_charges=new_records["monthly_charges"] + 80)
    catalog = _catalog(tmp_path, None, None, fresh, None, columns, serving_params)
    SequentialRunner().run(create_pipeline().only_nodes_with_tags("scoring"), catalog)
    assert catalog.load("drift_report")["retraining_due"] is True


def test_pipeline_stops_on_a_failed_gate_before_writing(
    tmp_path, keras_model, train, new_records, columns, serving_params
):
    catalog = _catalog(
        tmp_path,
        keras_model,
        train,
        new_records,
        release_gate(keras_model, passed=False),
        columns,
        serving_params,
    )
    with pytest.raises(ValueError, match="release gate failed"):
        SequentialRunner().run(create_pipeline(), catalog)
    assert not (tmp_path / "serving_bundle").exists()


@pytest.mark.parametrize("env", ["base", "test"])
def test_config_files_build_the_catalog_and_valid_parameters(project_path, env):
    loader = OmegaConfigLoader(
        str(project_path / "conf"),
        base_env="base",
        default_run_env=env,
        merge_strategy={"parameters": "soft"},
    )
    validate_parameters({"serving": loader["parameters"]["serving"]})
    entries = {
        name: config
        for name, config in loader["catalog"].items()
        if name in create_pipeline().all_outputs() | {"scoring_batch"}
    }
    catalog = DataCatalog.from_config(entries)
    assert catalog["serving_bundle"]._describe() == {"path": "data/07_model_output/serving_bundle"}
    assert entries["batch_predictions"]["filepath"] == "data/07_model_output/predictions.parquet"
    assert entries["drift_report"]["filepath"] == "data/08_reporting/drift_report.json"


def test_bundled_scoring_sample_is_unlabelled_telco_records(project_path):
    sample = pd.read_csv(project_path / "data/01_raw/scoring_batch.csv")
    telco = pd.read_csv(project_path / "data/01_raw/telco_churn.csv", nrows=1)
    assert "churn" not in sample.columns
    assert list(sample.columns) == [column for column in telco.columns if column != "churn"]
    assert len(sample) == 500 and sample["customer_id"].is_unique
