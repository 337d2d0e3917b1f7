"""Early stopping that judges epochs on (validation metric, -validation loss), so a saturated metric does not stop.

A ranking metric saturates on an easy validation split: ROC-AUC reaches 1.0 and stays there while the model keeps
getting more confident and better calibrated. Keras' ``EarlyStopping`` sees no improvement after the first epoch at
1.0, stops ``patience`` epochs later and restores that first epoch, whose probabilities are the least calibrated of
the tied ones. :class:`TieBreakingEarlyStopping` compares epochs lexicographically: the metric first (improving by
more than ``min_delta``, as Keras does), then, on a tie, the lower validation loss. A tie won by a lower loss is an
improvement: it becomes the best epoch and resets the patience, so early stopping falls back to the validation
loss while the metric is saturated. On a metric that does not tie it behaves exactly like ``EarlyStopping``.
"""

from __future__ import annotations

import math
from typing import Any

import keras

TIE_TOLERANCE = 1e-12
"""Metric values closer than this are tied (the metric is a float64 computed by ``scoring.epoch_metrics``)."""


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


class TieBreakingEarlyStopping(keras.callbacks.EarlyStopping):
    """``keras.callbacks.EarlyStopping`` whose ties on ``monitor`` are won by the lower ``tie_breaker``.

    Args:
        tie_breaker: the log key that breaks ties, lower is better (``val_loss``).
        **kwargs: the arguments of ``keras.callbacks.EarlyStopping``.

    Attributes:
        best_tie_breaker: the ``tie_breaker`` value of the best epoch (None before the first judged epoch).
    """

    def __init__(self, tie_breaker: str = "val_loss", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tie_breaker = tie_breaker
        self.best_tie_breaker: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best_tie_breaker = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        current, loss = logs.get(self.monitor), logs.get(self.tie_breaker)
        if epoch >= self.start_from_epoch and self._wins_tie(current, loss):
            self.best, self.best_tie_breaker, self.best_epoch = current, float(loss), epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            self.wait = 0
            return
        before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best is not before:  # Keras recorded an improvement of the metric
            self.best_tie_breaker = float(loss) if _finite(loss) else None

    def _wins_tie(self, current: Any, loss: Any) -> bool:
        if not (_finite(current) and _finite(self.best) and _finite(loss)):
            return False
        if abs(float(current) - float(self.best)) > TIE_TOLERANCE:
            return False
        return self.best_tie_breaker is None or float(loss) < self.best_tie_breaker

    def better(self, value: Any, loss: Any, reference: Any, reference_loss: Any) -> bool:
        """Whether (``value``, ``loss``) beats (``reference``, ``reference_loss``): the metric first, then the loss."""
        if not _finite(value):
            return False
        if not _finite(reference):
            return True
        if abs(float(value) - float(reference)) <= TIE_TOLERANCE:
            return _finite(loss) and (not _finite(reference_loss) or loss < reference_loss)
        return value > reference if self.mode == "max" else value < reference
