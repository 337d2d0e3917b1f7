"""The NumPy twin of ``QuantileNormal``: a piecewise-linear map from training quantiles to normal scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import FLOAT


class QuantileScore:
    """``QuantileNormal``: ``interp(x, knots, scores)``, flat outside the knots, in float32 like the layer."""

    def __init__(self, knots: Sequence[float], scores: Sequence[float]) -> None:
        self.knots = np.asarray(knots, dtype=np.float64)
        self.scores = np.asarray(scores, dtype=np.float64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.interp(x.astype(np.float64), self.knots, self.scores).astype(FLOAT)

    def scalar(self, value: float) -> float:
        if value != value:
            return value
        return float(np.interp(value, self.knots, self.scores))
