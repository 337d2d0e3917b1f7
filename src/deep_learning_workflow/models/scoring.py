"""Scoring a model while and after it trains: per-epoch metrics, probabilities, the validation score.

Everything here runs a model eagerly on whole arrays: Keras' ``predict`` would trace a new graph for every new
model (a trial's, a fine-tuned one's), which costs more than the computation itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_labels
from deep_learning_workflow.metrics import GREATER_IS_BETTER, score
from deep_learning_workflow.model_inputs import to_model_inputs

# Metrics recorded after every epoch on the fitted rows and on validation (see epoch_metrics); the monitored metric
# is added when it is another one, so a history key `val_<primary_metric>` always exists for early stopping and
# pruning.
EPOCH_METRICS = ("accuracy", "roc_auc", "pr_auc")
# The training-side metrics of an epoch are scored on a fixed sample of this many fitted rows at most.
TRAIN_METRIC_ROWS = 10_000


def epoch_metrics(
    fit: tuple[Mapping[str, np.ndarray], np.ndarray],
    validation: tuple[Mapping[str, np.ndarray], np.ndarray],
    classes: Sequence[str],
    positive_class: str | None,
    extra: Sequence[str] = (),
    seed: int = 0,
) -> Any:
    """A Keras callback writing the project's metrics of the epoch's weights into the epoch's logs.

    After each epoch it scores the head on the rows it is fitted on (``accuracy``, ``roc_auc``, ...) and on
    validation (``val_accuracy``, ``val_roc_auc``, ..., ``val_loss``) with :func:`deep_learning_workflow.metrics.score`,
    so early stopping and pruning watch exactly the metric evaluation reports. Computing them in NumPy instead of
    compiling Keras metrics halves a model's set-up (no metric graphs to trace), which is most of a short trial's
    cost. Put it first among the callbacks: the ones after it (early stopping, pruning, History) read its values.

    Args:
        fit: the head's inputs and one-hot labels of the fitted rows (a fixed sample of at most
            :data:`TRAIN_METRIC_ROWS` of them is scored).
        validation: the head's inputs and one-hot labels of the validation rows.
        classes: the class of each probability column.
        positive_class: for binary targets, the class the AUCs are taken on.
        extra: further metric names (e.g. the monitored one) beyond :data:`EPOCH_METRICS`.
        seed: seeds the choice of the scored sample of fitted rows.
    """
    import keras

    names = [*EPOCH_METRICS, *(name for name in extra if name not in EPOCH_METRICS)]
    names = [name for name in names if name in GREATER_IS_BETTER]
    inputs, labels = fit
    if len(labels) > TRAIN_METRIC_ROWS:
        rows = np.sort(
            np.random.default_rng(seed).choice(len(labels), TRAIN_METRIC_ROWS, replace=False)
        )
        inputs, labels = {k: v[rows] for k, v in inputs.items()}, labels[rows]
    class_names = np.asarray(classes, dtype=object)
    scored = {
        "": (inputs, labels, class_names[labels.argmax(axis=1)]),
        "val_": (validation[0], validation[1], class_names[validation[1].argmax(axis=1)]),
    }

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None:
                return
            for prefix, (x, one_hot, names_of_rows) in scored.items():
                probabilities = model_probabilities(self.model, x)
                finite = bool(np.isfinite(probabilities).all())
                for name in names:
                    logs[f"{prefix}{name}"] = (
                        _score_or_nan(name, names_of_rows, probabilities, classes, positive_class)
                        if finite
                        else float("nan")
                    )
                if prefix:
                    picked = np.clip((probabilities * one_hot).sum(axis=1), 1e-7, 1.0)
                    # Keras' loss includes the regularisation penalties; so does this one.
                    penalty = float(sum(float(loss) for loss in self.model.losses))
                    logs["val_loss"] = float(-np.log(picked).mean()) + penalty

    return EpochMetrics()


def _score_or_nan(
    name: str,
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    positive_class: str | None,
) -> float:
    # A split too small to hold every class has no AUC; the epoch is then not judged on it (NaN never improves
    # early stopping and is not reported to the pruner) instead of stopping training.
    try:
        return score(name, labels, probabilities, classes, positive_class)
    except ValueError:
        return float("nan")


def model_probabilities(
    model: Any, inputs: Mapping[str, np.ndarray], rows: int = 8192
) -> np.ndarray:
    """A Keras model's probabilities for its dict of inputs, in inference mode, computed eagerly in large batches.

    A training head of several members gives (rows, members, classes): their mean is the model's probabilities.
    """
    total = len(next(iter(inputs.values())))
    parts = [
        np.asarray(
            model({k: v[start : start + rows] for k, v in inputs.items()}, training=False),
            dtype="float64",
        )
        for start in range(0, total, rows)
    ]
    probabilities = np.concatenate(parts)
    return probabilities.mean(axis=1) if probabilities.ndim == 3 else probabilities


def validation_score(
    model: Any, val: pd.DataFrame, roles: ColumnRoles, classes: Sequence[str], metric: str
) -> float:
    """A model's ``metric`` on the validation rows it takes raw; NaN when its probabilities are not finite."""
    if val.empty:
        raise ValueError("The validation split 'val' is empty; the model cannot be scored.")
    inputs = {name: values.reshape(-1, 1) for name, values in to_model_inputs(val, roles).items()}
    probabilities = model_probabilities(model, inputs)
    if not np.isfinite(probabilities).all():
        return float("nan")
    labels = target_labels(val[roles.target]).to_numpy()
    return score(metric, labels, probabilities, list(classes), roles.positive_class)


def prepare(preprocessor: Any, frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, np.ndarray]:
    """The preprocessing outputs of a table's rows (the head's inputs), computed by the model's own layers.

    The layers run eagerly on the whole table at once: tracing a prediction function would cost more than the
    computation itself.
    """
    import tensorflow as tf

    inputs = {name: tf.constant(values) for name, values in to_model_inputs(frame, roles).items()}
    outputs = preprocessor(
        {name: tf.expand_dims(value, -1) for name, value in inputs.items()}, training=False
    )
    return {name: np.asarray(value) for name, value in outputs.items()}
