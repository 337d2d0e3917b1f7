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
from deep_learning_workflow.models.ensemble import member_count, members
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
            "train_split": MemoryDataset(train),
            "train_balanced_split": MemoryDataset(train),
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
def test_the_pipeline_saves_the_mean_of_the_seeds_as_one_loadable_model(
    tmp_path, train, val, columns
):
    catalog = _catalog(tmp_path, train, val, columns, modelling_params(seeds=3))
    SequentialRunner().run(create_pipeline(), catalog)

    report = catalog.load("seed_report")
    assert [run["seed"] for run in report["seeds"]] == [42, 43, 44]
    values = [run["validation"]["pr_auc"] for run in report["seeds"]]
    assert set(report["summary"]) == set(GREATER_IS_BETTER)
    assert report["summary"]["pr_auc"]["mean"] == pytest.approx(np.mean(values))
    assert report["summary"]["pr_auc"]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert report["seed_selection"] == "average" and report["kept_seed"] is None
    assert report["model_seeds"] == [42, 43, 44]
    assert report["validation_selection_bias"] is False
    assert report["kept_validation"] == report["ensemble_validation"]

    # Loaded back through the catalog's dataset (safe_mode on): one model, three heads, the mean of their outputs.
    model = catalog.load("model")
    roles = ColumnRoles(**catalog.load("modelling_roles"))
    heads = members(model)
    assert member_count(model) == 3 and len(heads) == 3
    probabilities = predict_probabilities(model, val, roles)
    each = [predict_probabilities(head, val, roles) for head in heads]
    np.testing.assert_allclose(probabilities, np.mean(each, axis=0), atol=1e-6)
    # Each head is its seed's model: it scores what the report says that seed scored.
    for head_probabilities, run in zip(each, report["seeds"], strict=True):
        assert score("pr_auc", val["churn"], head_probabilities, ["No", "Yes"], "Yes") == (
            pytest.approx(run["validation"]["pr_auc"], abs=1e-6)
        )
    assert score("pr_auc", val["churn"], probabilities, ["No", "Yes"], "Yes") == pytest.approx(
        report["kept_validation"]["pr_auc"], abs=1e-6
    )

    metadata = catalog.load("model_metadata")
    assert metadata["classes"] == ["No", "Yes"] and metadata["positive_class"] == "Yes"
    assert metadata["seed"] is None and metadata["seeds"] == [42, 43, 44]
    assert metadata["ensemble_members"] == 3 and metadata["validation_selection_bias"] is False
    assert metadata["validation"] == report["kept_validation"]
    assert metadata["feature_columns"] == ROLES["numeric"] + ROLES["categorical"]
    assert metadata["params"]["seeds"] == 3 and metadata["versions"]["keras"]

    history = catalog.load("training_history")
    assert history["seed"] == 42
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


@pytest.mark.slow
def test_keeping_the_best_seed_saves_one_head_and_records_the_selection_bias(
    tmp_path, train, val, columns
):
    modelling = modelling_params(seeds=2, seed_selection="best")
    catalog = _catalog(tmp_path, train, val, columns, modelling)
    SequentialRunner().run(create_pipeline(), catalog)

    report = catalog.load("seed_report")
    values = [run["validation"]["pr_auc"] for run in report["seeds"]]
    assert report["kept_seed"] == report["seeds"][int(np.argmax(values))]["seed"]
    assert report["kept_validation"]["pr_auc"] == max(values)
    assert report["validation_selection_bias"] is True
    assert (
        report["ensemble_validation"] is not None
    )  # what averaging would have scored, for comparison

    model = catalog.load("model")
    assert member_count(model) == 1
    metadata = catalog.load("model_metadata")
    assert metadata["seed"] == report["kept_seed"] and metadata["model_seeds"] == [
        report["kept_seed"]
    ]
    assert metadata["validation_selection_bias"] is True
    probabilities = predict_probabilities(
        model, val, ColumnRoles(**catalog.load("modelling_roles"))
    )
    assert score(
        "pr_auc", val["churn"], probabilities, metadata["classes"], "Yes"
    ) == pytest.approx(report["kept_validation"]["pr_auc"], abs=1e-6)
    assert catalog.load("training_history")["seed"] == report["kept_seed"]


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
