"""Early stopping on (validation metric, -validation loss): a saturated metric falls back to the validation loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.models.fitting import early_stopping, monitored_metric, train_model
from deep_learning_workflow.models.preprocessing import as_params
from deep_learning_workflow.models.stopping import TieBreakingEarlyStopping
from tests.pipelines.modelling.conftest import modelling_params

CLASSES = ["circle", "square", "triangle"]
ROLES = {
    "key": "id",
    "target": "shape",
    "positive_class": None,
    "numeric": ["x", "y"],
    "categorical": [],
    "text": [],
}


class ScriptedModel:
    """Stands for the Keras model: its weights are the number of the epoch that ended last."""

    def __init__(self) -> None:
        self.epoch, self.stop_training = -1, False

    def get_weights(self) -> list[int]:
        return [self.epoch]

    def set_weights(self, weights: list[int]) -> None:
        self.epoch = weights[0]


def run_epochs(callback, metric: list[float], loss: list[float]) -> tuple[int, int, int]:
    """Feed the callback one epoch of logs at a time, as fit does; (epochs run, best epoch, restored weights)."""
    model = ScriptedModel()
    callback.set_model(model)
    callback.on_train_begin()
    ran = 0
    for epoch, (value, validation_loss) in enumerate(zip(metric, loss, strict=True)):
        model.epoch = epoch
        callback.on_epoch_end(epoch, {"val_roc_auc": value, "val_loss": validation_loss})
        ran = epoch + 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, callback.best_epoch, model.epoch


def test_a_tie_on_the_metric_is_won_by_the_lower_loss_and_resets_the_patience():
    metric = [0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    loss = [0.50, 0.30, 0.20, 0.15, 0.16, 0.17, 0.18, 0.19]
    settings = {"monitor": "val_roc_auc", "mode": "max", "patience": 2}
    plain = keras_early_stopping(**settings)
    assert run_epochs(plain, metric, loss) == (4, 1, 1)  # Keras stops on the first epoch at 1.0
    tie_breaking = TieBreakingEarlyStopping(
        tie_breaker="val_loss", restore_best_weights=True, **settings
    )
    assert run_epochs(tie_breaking, metric, loss) == (6, 3, 3)
    assert tie_breaking.best_tie_breaker == pytest.approx(0.15)


def test_a_higher_metric_beats_a_lower_loss():
    callback = TieBreakingEarlyStopping(
        monitor="val_roc_auc", mode="max", patience=5, restore_best_weights=True
    )
    assert run_epochs(callback, [0.8, 0.9, 0.85, 0.9], [0.2, 0.4, 0.1, 0.3])[1:] == (3, 3)
    assert callback.better(0.91, 0.9, 0.9, 0.1) and not callback.better(0.9, 0.2, 0.9, 0.1)
    assert callback.better(0.9, 0.05, 0.9, 0.1) and not callback.better(float("nan"), 0.0, 0.9, 0.1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("mode", "min_delta"), [("max", 0.0), ("max", 0.01), ("min", 0.0)])
def test_without_ties_it_behaves_as_keras_early_stopping(seed, mode, min_delta):
    rng = np.random.default_rng(seed)
    metric = list(np.round(rng.uniform(0.6, 0.9, 20), 6) + np.linspace(0, 0.05, 20))
    metric = list(dict.fromkeys(metric))  # no two epochs tied
    loss = list(rng.uniform(0.1, 0.6, len(metric)))
    settings = {"monitor": "val_roc_auc", "mode": mode, "patience": 3, "min_delta": min_delta}
    expected = run_epochs(keras_early_stopping(**settings), metric, loss)
    assert (
        run_epochs(TieBreakingEarlyStopping(**settings, restore_best_weights=True), metric, loss)
        == expected
    )


def keras_early_stopping(**settings):
    import keras

    return keras.callbacks.EarlyStopping(restore_best_weights=True, **settings)


def shapes(rows: int, seed: int, spread: float) -> pd.DataFrame:
    """Three classes in three clusters; a small spread keeps them apart, a large one makes them overlap."""
    rng = np.random.default_rng(seed)
    centres = {"circle": (-3.0, 0.0), "square": (3.0, 0.0), "triangle": (0.0, 4.0)}
    shape = rng.choice(CLASSES, size=rows)
    points = np.array([centres[label] for label in shape]) + rng.normal(0, spread, (rows, 2))
    return pd.DataFrame(
        {
            "id": [f"s{seed}-{index:04d}" for index in range(rows)],
            "x": points[:, 0],
            "y": points[:, 1],
            "shape": pd.Series(shape, dtype="str"),
        }
    )


def train_on(spread: float):
    settings = modelling_params(
        epochs=40,
        learning_rate=0.003,
        batch_size=32,
        # Watching validation itself, so the model's validation loss can be checked against the history.
        early_stopping={"patience": 3, "monitor": "roc_auc", "holdout": 0.0},
    )
    train, val = shapes(300, 1, spread), shapes(150, 2, spread)
    return train_model(train, val, ROLES, settings, seed=3, primary_metric="roc_auc"), val


def test_a_saturated_roc_auc_restores_the_epoch_of_lowest_validation_loss():
    result, val = train_on(spread=1.0)
    auc = np.asarray(result.history["val_roc_auc"])
    loss = np.asarray(result.history["val_loss"])
    saturated = np.flatnonzero(auc == 1.0)
    assert saturated.size >= 2, auc  # the separable table saturates the metric
    assert len(auc) > saturated[0] + 3 + 1  # Keras would stop `patience` epochs after the first 1.0
    assert result.best_epoch == saturated[np.argmin(loss[saturated])]
    assert result.best_epoch > saturated[0]
    # Stopped by the patience counted on the validation loss, before the last epoch allowed.
    assert len(auc) == result.best_epoch + 3 + 1 < 40
    # The model holds the restored epoch's weights: its validation loss is that epoch's.
    probabilities = _probabilities(result, val)
    picked = probabilities[np.arange(len(val)), [CLASSES.index(s) for s in val["shape"]]]
    assert -np.log(np.clip(picked, 1e-7, 1)).mean() == pytest.approx(
        loss[result.best_epoch], rel=1e-3
    )


def test_an_unsaturated_metric_keeps_the_epoch_of_the_best_metric():
    result, _ = train_on(spread=2.0)
    auc = np.asarray(result.history["val_roc_auc"])
    assert auc.max() < 1.0 and len(auc) < 40
    assert result.best_epoch == int(np.argmax(auc))  # the first of the best, as Keras picks it


def test_the_project_callback_breaks_ties_with_the_validation_loss():
    params = as_params(modelling_params(early_stopping={"patience": 2, "monitor": "roc_auc"}))
    monitor, mode = monitored_metric(params, "pr_auc")
    callback = early_stopping(params, monitor, mode)
    assert isinstance(callback, TieBreakingEarlyStopping)
    assert (callback.monitor, callback.tie_breaker, callback.patience) == (
        "val_roc_auc",
        "val_loss",
        2,
    )


def _probabilities(result, frame: pd.DataFrame) -> np.ndarray:
    from deep_learning_workflow.models.scoring import model_probabilities, prepare

    roles = result.roles
    return model_probabilities(result.head, prepare(result.preprocessor, frame, roles))
