"""Early stopping's settings: the metric it watches, how many epochs it waits, and its callback.

Keras is imported inside :func:`early_stopping`, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deep_learning_workflow.metrics import GREATER_IS_BETTER

from .schema import ModellingParams


def monitored_metric(params: ModellingParams, primary_metric: str) -> tuple[str, str]:
    """The history key early stopping watches (``val_<metric>``) and its mode (``max`` or ``min``)."""
    name = params.early_stopping.monitor or primary_metric
    if name != "loss" and name not in GREATER_IS_BETTER:
        raise ValueError(
            f"params:problem.primary_metric '{name}' is not one of {sorted(GREATER_IS_BETTER)}."
        )
    return f"val_{name}", "max" if GREATER_IS_BETTER.get(name, False) else "min"


def early_stopping_patience(params: ModellingParams, val_labels: np.ndarray | None) -> int:
    """The patience of ``params:modelling.early_stopping``; ``auto`` resolved from the validation labels.

    A score on n rows of the rarest class is noisy in proportion to 1 / sqrt(n), so ``auto`` waits
    ``min_patience * sqrt(reference_rows / n)`` epochs (rounded up), between ``min_patience`` and ``max_patience``.

    Args:
        params: modelling parameters.
        val_labels: one-hot validation labels (:func:`encode_labels`); None or empty gives ``max_patience``.
    """
    settings = params.early_stopping
    if settings.patience != "auto":
        return int(settings.patience)
    counts = np.asarray(val_labels).sum(axis=0) if val_labels is not None else np.zeros(0)
    counts = counts[counts > 0]
    if counts.size == 0:
        return settings.max_patience
    wanted = math.ceil(
        settings.min_patience * math.sqrt(settings.reference_rows / counts.min()) - 1e-9
    )
    return int(min(settings.max_patience, max(settings.min_patience, wanted)))


def early_stopping(
    params: ModellingParams, monitor: str, mode: str, val_labels: np.ndarray | None = None
) -> Any:
    """The early-stopping callback of ``params:modelling.early_stopping`` (best weights restored), or None when off.

    Epochs tied on the monitored metric (a saturated ROC-AUC of 1.0) are told apart by the validation loss, and the
    epoch restored is the best on the metric among those whose validation loss is within
    ``early_stopping.loss_tolerance`` of the lowest (:class:`.stopping.TieBreakingEarlyStopping`). ``val_labels``
    (one-hot) resolve ``patience: auto`` (see :func:`early_stopping_patience`).
    """
    from .stopping import TieBreakingEarlyStopping

    if not params.early_stopping.enabled:
        return None
    return TieBreakingEarlyStopping(
        tie_breaker="val_loss",
        loss_tolerance=params.early_stopping.loss_tolerance,
        monitor=monitor,
        mode=mode,
        patience=early_stopping_patience(params, val_labels),
        min_delta=params.early_stopping.min_delta,
        restore_best_weights=True,
    )
