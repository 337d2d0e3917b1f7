"""The NumPy twin of ``QuantileNormal``: a piecewise-linear map from training quantiles to normal scores."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from .activations import FLOAT


class QuantileScore:
    """``QuantileNormal``: ``interp(x, knots, scores)``, flat outside the knots, in float32 like the layer."""

    def __init__(self, knots: Sequence[float], scores: Sequence[float]) -> None:
        self.knots = np.asarray(knots, dtype=np.float64)
        self.scores = np.asarray(scores, dtype=np.float64)
        self._knots, self._scores = self.knots.tolist(), self.scores.tolist()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.interp(x.astype(np.float64), self.knots, self.scores).astype(FLOAT)

    def scalar(self, value: float) -> float:
        if value != value:
            return value
        # np.interp's rule on Python floats (a NumPy call costs more than the arithmetic): the last knot at or
        # below the value (the last of tied knots), its score on a tie, else the slope to the next knot.
        knots, scores = self._knots, self._scores
        if value < knots[0]:
            return scores[0]
        if value > knots[-1]:
            return scores[-1]
        j = bisect_right(knots, value) - 1
        if knots[j] == value:
            return scores[j]
        slope = (scores[j + 1] - scores[j]) / (knots[j + 1] - knots[j])
        return slope * (value - knots[j]) + scores[j]
