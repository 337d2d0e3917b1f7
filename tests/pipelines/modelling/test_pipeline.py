"""The modelling pipeline run end to end on an in-memory catalog (the model saved through its real dataset)."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.runner import SequentialRunner

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets import KerasModelDataset, WordVectorsDataset
from deep_learning_workflow.metrics import GREATER_IS_BETTER, score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.pipelines.modelling import create_pipeline

from .conftest import ROLES, modelling_params

PROBLEM = {"statement": "Who churns?", "primary_metric": "pr_auc"}
OUTPUTS = (
    "modelling_roles",
    "baseline_models",
    "sanity_check_report",
    "training_history",
    "seed_report",
    "model_metadata",
    "training_history_plot",
    "training_diagnosis",
    "transfer_report",
)


class KeptDataset(MemoryDataset):
    """A memory dataset the runner does not empty after its last reader, so the test can read it."""

    def _release(self) -> None:
        pass


def _catalog(tmp_path, train, val, columns, modelling) -> DataCatalog:
    return DataCatalog(
        {
            "train": MemoryDataset(train),
            "train_balanced": MemoryDataset(train),
            "val": MemoryDataset(val),
            "params:columns": MemoryDataset(columns),
            "params:modelling": MemoryDataset(modelling),
            "params:problem": MemoryDataset(PROBLEM),
            "params:seed": MemoryDataset(42),
            "model": KerasModelDataset(
                filepath=str(tmp_path / "model.keras"), version=Version(None, None)
            ),
            # Transfer is off: the optional sources have no file and load as None.
            "warm_start_model": KerasModelDataset(
                filepath=str(tmp_path / "pretrained.keras"), optional=True
            ),
            "pretrained_word_vectors": WordVectorsDataset(
                filepath=str(tmp_path / "word_vectors.txt"), optional=True
            ),
            **{name: KeptDataset() for name in OUTPUTS},
        }
    )


@pytest.mark.slow
def test_the_pipeline_trains_seeds_keeps_the_best_and_saves_one_loadable_model(
    tmp_path, train, val, columns
):
    catalog = _catalog(tmp_path, train, val, columns, modelling_params(seeds=2))
    SequentialRunner().run(create_pipeline(), catalog)

    report = catalog.load("seed_report")
    assert [run["seed"] for run in report["seeds"]] == [42, 43]
    values = [run["validation"]["pr_auc"] for run in report["seeds"]]
    assert report["kept_seed"] == report["seeds"][int(np.argmax(values))]["seed"]
    assert set(report["summary"]) == set(GREATER_IS_BETTER)
    assert report["summary"]["pr_auc"]["mean"] == pytest.approx(np.mean(values))
    assert report["summary"]["pr_auc"]["sd"] == pytest.approx(np.std(values, ddof=1))

    model = catalog.load("model")
    metadata = catalog.load("model_metadata")
    assert metadata["classes"] == ["No", "Yes"] and metadata["positive_class"] == "Yes"
    assert metadata["seed"] == report["kept_seed"] and metadata["seeds"] == [42, 43]
    assert metadata["feature_columns"] == ROLES["numeric"] + ROLES["categorical"]
    assert metadata["params"]["seeds"] == 2 and metadata["versions"]["keras"]
    probabilities = predict_probabilities(
        model, val, ColumnRoles(**catalog.load("modelling_roles"))
    )
    assert score(
        "pr_auc", val["churn"], probabilities, metadata["classes"], "Yes"
    ) == pytest.approx(report["kept_validation"]["pr_auc"], abs=1e-6)

    history = catalog.load("training_history")
    assert history["seed"] == report["kept_seed"]
    assert (
        len(history["history"]["loss"])
        == len(history["history"]["val_loss"])
        == history["epochs_run"]
    )
    assert catalog.load("sanity_check_report")["passed"]
    assert set(catalog.load("training_diagnosis")["flags"]) == {
        "unstable",
        "overfitting",
        "underfitting",
    }
    assert len(catalog.load("training_history_plot").data) >= 2
    assert catalog.load("transfer_report") == {"enabled": False}
    assert set(catalog.load("baseline_models")) == {
        "majority_class",
        "logistic_regression",
        "gradient_boosting",
    }


def test_a_missing_column_stops_the_run_before_any_training(tmp_path, train, val):
    columns = {**ROLES, "categorical": ["contract", "paperless"]}
    catalog = _catalog(tmp_path, train, val, columns, modelling_params())
    with pytest.raises(ValueError, match=r"columns\.categorical names 'paperless'"):
        SequentialRunner().run(create_pipeline(), catalog)
    assert not (tmp_path / "model.keras").exists()
    with pytest.raises(Exception, match="has not been saved"):
        catalog.load("sanity_check_report")


@pytest.mark.slow
def test_a_diverging_run_saves_no_model(tmp_path, train, val, columns):
    params = modelling_params(
        optimizer="sgd",
        learning_rate=1e12,
        early_stopping={"enabled": False},
        sanity_check={"enabled": False},
    )
    catalog = _catalog(tmp_path, train, val, columns, params)
    with pytest.raises(ValueError, match="diverged"):
        SequentialRunner().run(create_pipeline(), catalog)
    assert not (tmp_path / "model.keras").exists()
