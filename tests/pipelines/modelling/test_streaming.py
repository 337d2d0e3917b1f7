"""Training streamed from the split's Parquet file (params:modelling.streaming) against training in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets import ParquetSplitDataset
from deep_learning_workflow.metrics import score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.streaming import row_draws, training_inputs
from deep_learning_workflow.parameters import validate_parameters
from deep_learning_workflow.pipelines.modelling.nodes import train_seed_models

from .conftest import ROLES, make_table, modelling_params

PROBLEM = {"statement": "Who churns?", "primary_metric": "pr_auc"}


def _split(tmp_path, frame: pd.DataFrame, name: str, row_group_size: int = 400):
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, row_group_size=row_group_size)
    return ParquetSplitDataset(filepath=str(path)).load()


def _params(min_rows: int, **overrides):
    return modelling_params(
        epochs=8,
        streaming={"min_rows": min_rows, "adapt_sample_rows": 1500, "chunk_rows": 500},
        **overrides,
    )


@pytest.fixture(scope="module")
def tables():
    # Validation holds a contract and numeric values that train never has: a fitted value that saw validation
    # rows would show them.
    train = make_table(3000, seed=11)
    val = make_table(1000, seed=12, contracts=("Month-to-month", "One year", "Two year", "Never"))
    val.loc[val.index[:50], "tenure"] = 500.0
    return train, val


def _train(tmp_path, train, val, min_rows, **overrides):
    split = _split(tmp_path, train, "train")
    model, history, report = train_seed_models(
        split,
        split,
        val,
        ColumnRoles(**ROLES).model_dump(mode="json"),
        _params(min_rows, **overrides),
        PROBLEM,
        42,
        {"enabled": False},
    )
    return model, history, report


def _pr_auc(model, val):
    probabilities = predict_probabilities(model, val, ColumnRoles(**ROLES))
    return score("pr_auc", val["churn"].to_numpy(), probabilities, ["No", "Yes"], "Yes")


def test_a_split_above_min_rows_is_streamed_and_fits_only_training_rows(tmp_path, tables):
    train, val = tables
    model, history, report = _train(tmp_path, train, val, min_rows=1000)
    assert report["streamed"] is True
    assert history["watched"] == "holdout"
    lookup = model.get_layer("lookup_contract").get_vocabulary()
    assert "Never" not in lookup and set(train["contract"]) <= set(lookup)
    # Adapted on a seeded sample of 1,500 training rows: the clip bounds are that sample's quantiles.
    sample = train.iloc[np.sort(np.random.default_rng(42).choice(3000, 1500, replace=False))]
    clip = model.get_layer("clip_tenure").get_config()
    assert [clip["lower"], clip["upper"]] == pytest.approx(
        list(np.quantile(sample["tenure"], [0.001, 0.999]))
    )
    assert clip["upper"] <= train["tenure"].max() < 500.0
    assert np.isfinite(history["history"]["loss"]).all()


def test_the_streamed_model_scores_validation_like_the_model_trained_in_memory(tmp_path, tables):
    train, val = tables
    streamed, _, streamed_report = _train(tmp_path, train, val, min_rows=1000)
    in_memory, _, memory_report = _train(tmp_path, train, val, min_rows=100_000)
    assert memory_report["streamed"] is False
    base_rate = float((val["churn"] == "Yes").mean())
    streamed_score, memory_score = _pr_auc(streamed, val), _pr_auc(in_memory, val)
    assert streamed_score > base_rate + 0.15
    assert streamed_score == pytest.approx(memory_score, abs=0.03)


def test_streamed_training_restores_the_epoch_the_loss_tolerance_chooses(tmp_path, tables):
    train, val = tables
    _, history, report = _train(
        tmp_path, train, val, min_rows=1000, early_stopping={"patience": 3, "loss_tolerance": 0.01}
    )
    assert report["streamed"] is True
    metric, loss = history["history"]["val_pr_auc"], history["history"]["val_loss"]
    # The best holdout PR-AUC among the epochs whose holdout loss is within 1% of the lowest (1-based).
    eligible = [epoch for epoch in range(len(loss)) if loss[epoch] <= min(loss) * 1.01]
    chosen = max(eligible, key=lambda epoch: (metric[epoch], -loss[epoch], -epoch))
    assert history["best_epoch"] == chosen + 1


def test_the_streamed_holdout_is_the_same_rows_whatever_the_chunk_size():
    positions = np.arange(10_000)
    whole = row_draws(7, positions)
    pieces = np.concatenate([row_draws(7, part) for part in np.array_split(positions, 13)])
    np.testing.assert_array_equal(whole, pieces)
    assert 0.13 < float((whole < 0.15).mean()) < 0.17
    assert not np.array_equal(whole, row_draws(8, positions))


def test_in_memory_frames_are_never_streamed(tables):
    train, _ = tables
    *_, streamed = training_inputs(train, train, _params(min_rows=1), 42)
    assert streamed is False


def test_streaming_refuses_augmentation_before_training(tmp_path, tables):
    train, val = tables
    with pytest.raises(
        ValueError, match=r"streaming does not support params:modelling\.augmentation"
    ):
        _train(tmp_path, train, val, min_rows=10, augmentation={"mixup_alpha": 0.2})


@pytest.mark.parametrize("value", [0, -5, 2.5, "many"])
def test_a_row_limit_that_is_not_a_positive_integer_is_refused(value):
    params = _params(min_rows=1000)
    params["streaming"]["min_rows"] = value
    with pytest.raises(ValueError, match=r"modelling\.streaming\.min_rows"):
        validate_parameters({"modelling": params})
