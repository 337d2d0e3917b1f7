"""Early stopping on a holdout of the fitted rows: validation is never seen while fitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models.fitting import train_model
from deep_learning_workflow.models.holdout import split_holdout

from .conftest import make_table, modelling_params


def test_the_holdout_is_stratified_disjoint_and_seeded():
    frame = make_table(400, seed=7)
    fit, held = split_holdout(frame, "churn", 0.2, seed=3)
    assert len(fit) + len(held) == len(frame)
    assert set(fit.customer_id).isdisjoint(held.customer_id)
    assert set(fit.customer_id) | set(held.customer_id) == set(frame.customer_id)
    shares = held.churn.value_counts() / frame.churn.value_counts()
    assert np.allclose(shares, 0.2, atol=0.01)
    again, _ = split_holdout(frame, "churn", 0.2, seed=3)
    other, _ = split_holdout(frame, "churn", 0.2, seed=4)
    assert again.customer_id.tolist() == fit.customer_id.tolist()
    assert other.customer_id.tolist() != fit.customer_id.tolist()


def test_a_class_too_small_for_the_holdout_is_a_clear_error():
    frame = make_table(50, seed=1)
    frame.loc[frame.index[0], "churn"] = "Maybe"
    with pytest.raises(ValueError, match=r"'train'.*\['Maybe'\].*early_stopping.holdout"):
        split_holdout(frame, "churn", 0.15, seed=0)
    with pytest.raises(ValueError, match="must be in"):
        split_holdout(frame, "churn", 1.0, seed=0)


def _shuffled_labels(frame: pd.DataFrame) -> pd.DataFrame:
    labels = frame["churn"].to_numpy().copy()
    np.random.default_rng(0).shuffle(labels)
    return frame.assign(churn=pd.Series(labels, index=frame.index, dtype="str"))


def test_with_a_holdout_validation_labels_do_not_change_the_model(train, val, columns):
    """The same seed with validation labels shuffled gives the same model: validation chose nothing. Without the
    holdout, early stopping reads validation, so the labels change which epoch is kept."""
    params = modelling_params(
        units=64, dropout=0.0, learning_rate=0.05, epochs=8, early_stopping={"patience": 3}
    )
    shuffled = _shuffled_labels(val)
    first = train_model(train, val, columns, params, seed=5)
    second = train_model(train, shuffled, columns, params, seed=5)
    assert first.history["val_loss"] == second.history["val_loss"]
    np.testing.assert_array_equal(
        predict_probabilities(first.model, val, first.roles),
        predict_probabilities(second.model, val, second.roles),
    )
    on_val = modelling_params(**{**params, "early_stopping": {"patience": 3, "holdout": 0.0}})
    third = train_model(train, val, columns, on_val, seed=5)
    fourth = train_model(train, shuffled, columns, on_val, seed=5)
    assert third.history["val_loss"] != fourth.history["val_loss"]


def test_the_patience_is_resolved_on_the_holdout(train, val, columns):
    params = modelling_params(epochs=1, early_stopping={"patience": "auto", "holdout": 0.2})
    result = train_model(train, val, columns, params, seed=1)
    held = round(0.2 * (train.churn == "Yes").sum())
    assert result.patience == min(10, max(3, int(np.ceil(3 * np.sqrt(250 / held)))))
