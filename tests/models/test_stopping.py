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


def tolerant_choice(metric: list[float], loss: list[float], tolerance: float) -> int:
    """The epoch with the best metric among those whose loss is within ``tolerance`` of the lowest (brute force)."""
    lowest = min(loss)
    eligible = [epoch for epoch in range(len(loss)) if loss[epoch] <= lowest * (1 + tolerance)]
    return max(eligible, key=lambda epoch: (metric[epoch], -loss[epoch], -epoch))


# One training seed on hmda (split seed 43): the early-stopping holdout holds 30 denied applications. Its PR-AUC is
# highest at the first epoch, while the holdout log loss shows the model is far from trained (test PR-AUC 0.39 at
# the first epoch, 0.51 at the eighth).
HMDA_PR_AUC = [0.606, 0.573, 0.547, 0.551, 0.548, 0.555, 0.549, 0.563, 0.543, 0.539, 0.540]
HMDA_LOSS = [0.320, 0.285, 0.269, 0.268, 0.265, 0.263, 0.265, 0.263, 0.264, 0.266, 0.266]
# One seed on caravan (split seed 42): the model peaks at once and then overfits; its loss is lowest early too.
CARAVAN_PR_AUC = [0.203, 0.189, 0.170, 0.149, 0.150, 0.145, 0.151, 0.136, 0.146, 0.141]
CARAVAN_LOSS = [0.217, 0.216, 0.217, 0.230, 0.229, 0.242, 0.242, 0.244, 0.256, 0.253]


def _watching(patience: int, loss_tolerance: float | None) -> TieBreakingEarlyStopping:
    return TieBreakingEarlyStopping(
        monitor="val_roc_auc",
        mode="max",
        patience=patience,
        loss_tolerance=loss_tolerance,
        restore_best_weights=True,
    )


def test_a_noisy_first_epoch_far_from_the_lowest_loss_is_not_restored():
    # On the metric alone: 9 epochs without beating the first, so it stops after the tenth and restores the first.
    assert run_epochs(_watching(9, None), HMDA_PR_AUC, HMDA_LOSS) == (10, 0, 0)
    # With the tolerance it stops at the same epoch, but restores the best PR-AUC among the epochs whose loss is
    # within 5% of the lowest (0.263): the eighth epoch (0.563), whose weights the model then holds.
    callback = _watching(9, 0.05)
    assert run_epochs(callback, HMDA_PR_AUC, HMDA_LOSS) == (10, 7, 7)
    assert (callback.best, callback.best_tie_breaker) == (0.563, 0.263)
    assert tolerant_choice(HMDA_PR_AUC[:10], HMDA_LOSS[:10], 0.05) == 7


def test_an_early_peak_near_the_lowest_loss_is_kept():
    expected = run_epochs(_watching(8, None), CARAVAN_PR_AUC, CARAVAN_LOSS)
    assert expected == (9, 0, 0)
    assert run_epochs(_watching(8, 0.05), CARAVAN_PR_AUC, CARAVAN_LOSS) == expected


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tolerance", [0.0, 0.02, 0.05, 0.3])
def test_the_epoch_restored_is_the_best_metric_among_epochs_near_the_lowest_loss(seed, tolerance):
    rng = np.random.default_rng(seed)
    epochs = np.arange(40)
    # A noisy rising metric and a loss that falls, then rises as the model overfits.
    metric = list(np.round(0.5 + 0.2 * np.sin(epochs / 15) + rng.normal(0, 0.04, epochs.size), 3))
    loss = list(np.round(0.3 + 0.0004 * (epochs - 15) ** 2 + rng.normal(0, 0.01, epochs.size), 4))
    ran, best, restored = run_epochs(_watching(6, tolerance), metric, loss)
    # When to stop does not depend on the tolerance; which of the epochs run is restored does.
    assert ran == run_epochs(_watching(6, None), metric, loss)[0]
    assert best == restored == tolerant_choice(metric[:ran], loss[:ran], tolerance)


def test_a_metric_that_is_lower_when_better_is_chosen_by_its_lowest_value():
    callback = TieBreakingEarlyStopping(
        monitor="val_roc_auc", mode="min", patience=5, loss_tolerance=0.1, restore_best_weights=True
    )
    # Epoch 0 has the lowest metric but a loss far above the lowest (0.20); of epochs 1 to 3, epoch 2 is lowest.
    assert run_epochs(callback, [0.1, 0.5, 0.3, 0.4], [0.9, 0.21, 0.215, 0.20])[1:] == (2, 2)


@pytest.mark.parametrize("tolerance", [-0.1, float("nan"), float("inf")])
def test_a_loss_tolerance_that_is_not_a_finite_share_is_refused(tolerance):
    with pytest.raises(ValueError, match="loss_tolerance"):
        _watching(3, tolerance)


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


def train_on(spread: float, loss_tolerance: float | None = None):
    settings = modelling_params(
        epochs=40,
        learning_rate=0.003,
        batch_size=32,
        # Watching validation itself, so the model's validation loss can be checked against the history.
        early_stopping={
            "patience": 3,
            "monitor": "roc_auc",
            "holdout": 0.0,
            "loss_tolerance": loss_tolerance,
        },
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


def test_a_trained_model_holds_the_weights_of_the_epoch_the_loss_tolerance_chose():
    result, val = train_on(spread=2.5, loss_tolerance=0.05)
    auc, loss = list(result.history["val_roc_auc"]), list(result.history["val_loss"])
    assert result.best_epoch == tolerant_choice(auc, loss, 0.05)
    # The restored weights are that epoch's: the model's validation loss is the one the history has for it.
    probabilities = _probabilities(result, val)
    picked = probabilities[np.arange(len(val)), [CLASSES.index(s) for s in val["shape"]]]
    assert -np.log(np.clip(picked, 1e-7, 1)).mean() == pytest.approx(
        loss[result.best_epoch], rel=1e-3
    )


def test_the_project_callback_breaks_ties_with_the_validation_loss():
    params = as_params(
        modelling_params(
            early_stopping={"patience": 2, "monitor": "roc_auc", "loss_tolerance": 0.1}
        )
    )
    monitor, mode = monitored_metric(params, "pr_auc")
    callback = early_stopping(params, monitor, mode)
    assert isinstance(callback, TieBreakingEarlyStopping)
    assert (callback.monitor, callback.tie_breaker, callback.patience, callback.loss_tolerance) == (
        "val_roc_auc",
        "val_loss",
        2,
        0.1,
    )
    assert as_params({}).early_stopping.loss_tolerance == 0.05  # the shipped default


def _probabilities(result, frame: pd.DataFrame) -> np.ndarray:
    from deep_learning_workflow.models.scoring import model_probabilities, prepare

    roles = result.roles
    return model_probabilities(result.head, prepare(result.preprocessor, frame, roles))
