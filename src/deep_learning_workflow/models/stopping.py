"""Early stopping that judges epochs on (validation metric, -validation loss), so a saturated metric does not stop.

A ranking metric saturates on an easy validation split: ROC-AUC reaches 1.0 and stays there while the model keeps
getting more confident and better calibrated. Keras' ``EarlyStopping`` sees no improvement after the first epoch at
1.0, stops ``patience`` epochs later and restores that first epoch, whose probabilities are the least calibrated of
the tied ones. :class:`TieBreakingEarlyStopping` compares epochs lexicographically: the metric first (improving by
more than ``min_delta``, as Keras does), then, on a tie, the lower validation loss. A tie won by a lower loss is an
improvement: it becomes the best epoch and resets the patience, so early stopping falls back to the validation
loss while the metric is saturated. On a metric that does not tie it behaves exactly like ``EarlyStopping``.

A ranking metric on few rows of the rarest class is noisy, and it can rank an epoch well that the loss shows is far
from trained: on hmda's holdout (about 30 denied applications) one seed's PR-AUC was 0.61 at its first epoch and at
most 0.56 for the next 30, while its holdout log loss fell from 0.320 to 0.263; Keras restored that first epoch
(test PR-AUC 0.39, against 0.53 ten epochs later). With ``loss_tolerance`` the epoch restored is the best on the
metric among the epochs whose ``tie_breaker`` (the holdout loss, computed on every row, so much less noisy) is within
that share of the lowest one of the run: an epoch counts once the loss says the model is about as well fitted as it
gets. A table whose model peaks early keeps its early epoch, whose loss is then near the lowest too. When to stop is
decided as before (patience on the metric); the tolerance only chooses which of the epochs run is restored.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras

TIE_TOLERANCE = 1e-12
"""Metric values closer than this are tied (the metric is a float64 computed by ``scoring.epoch_metrics``)."""


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


class _Candidate(NamedTuple):
    """An epoch that could still be restored: no earlier-kept epoch is as good on the metric and the loss."""

    score: float  # the metric, sign-flipped for a "min" metric so that higher is better
    loss: float
    epoch: int
    metric: float
    weights: Any


class TieBreakingEarlyStopping(keras.callbacks.EarlyStopping):
    """``keras.callbacks.EarlyStopping`` whose ties on ``monitor`` are won by the lower ``tie_breaker``.

    Args:
        tie_breaker: the log key that breaks ties, lower is better (``val_loss``).
        loss_tolerance: with ``restore_best_weights``, the epoch restored at the end is the best on ``monitor``
            among the epochs whose ``tie_breaker`` is at most ``(1 + loss_tolerance)`` times the lowest of the run
            (ties: the lower ``tie_breaker``, then the earlier epoch); None restores the best epoch on ``monitor``.
        **kwargs: the arguments of ``keras.callbacks.EarlyStopping``.

    Attributes:
        best_tie_breaker: the ``tie_breaker`` value of the best epoch (None before the first judged epoch).
        best_epoch: the epoch whose weights are restored (after training, the one ``loss_tolerance`` chose).
    """

    def __init__(
        self, tie_breaker: str = "val_loss", loss_tolerance: float | None = None, **kwargs: Any
    ) -> None:
        if loss_tolerance is not None and not (
            math.isfinite(float(loss_tolerance)) and loss_tolerance >= 0
        ):
            raise ValueError(
                "params:modelling.early_stopping.loss_tolerance must be a number >= 0 or null, "
                f"got {loss_tolerance}."
            )
        super().__init__(**kwargs)
        self.tie_breaker = tie_breaker
        self.loss_tolerance = loss_tolerance
        self.best_tie_breaker: float | None = None
        self._candidates: list[_Candidate] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best_tie_breaker = None
        self._candidates = []

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        chosen = self.chosen()
        if chosen is not None:
            self.best, self.best_tie_breaker, self.best_epoch = (
                chosen.metric,
                chosen.loss,
                chosen.epoch,
            )
            self.best_weights = chosen.weights
        super().on_train_end(logs)

    def chosen(self) -> _Candidate | None:
        """The epoch ``loss_tolerance`` restores: the best metric among the epochs whose loss is near the lowest."""
        if self.loss_tolerance is None or not self._candidates:
            return None
        lowest = min(candidate.loss for candidate in self._candidates)
        eligible = [c for c in self._candidates if c.loss <= lowest * (1 + self.loss_tolerance)]
        return max(eligible, key=lambda c: (c.score, -c.loss, -c.epoch))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self._remember(epoch, logs.get(self.monitor), logs.get(self.tie_breaker))
        self._judge(epoch, logs)

    def _remember(self, epoch: int, current: Any, loss: Any) -> None:
        """Keep the epoch's weights while no kept epoch is at least as good on both the metric and the loss.

        Only such epochs can be :meth:`chosen`: whenever a dominated epoch is eligible, the one dominating it is too.
        """
        if not (
            self.loss_tolerance is not None
            and self.restore_best_weights
            and epoch >= self.start_from_epoch
            and _finite(current)
            and _finite(loss)
        ):
            return
        score = float(current) if self.mode != "min" else -float(current)
        if any(c.score >= score and c.loss <= float(loss) for c in self._candidates):
            return
        self._candidates = [
            c for c in self._candidates if not (score >= c.score and float(loss) <= c.loss)
        ]
        self._candidates.append(
            _Candidate(score, float(loss), epoch, float(current), self.model.get_weights())
        )

    def _judge(self, epoch: int, logs: dict[str, Any]) -> None:
        """Keras' rule on the metric, ties won by the lower loss: what resets the patience and stops training."""
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
