"""``numeric.scaling: quantile``: training values mapped to normal scores through their ranks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import QuantileTransformer

from deep_learning_workflow.models.layers import QuantileNormal
from deep_learning_workflow.models.preprocessing import quantile_normal_knots


def _apply(values: np.ndarray, state: dict) -> np.ndarray:
    layer = QuantileNormal(state["knots"], state["scores"])
    return np.asarray(layer(values.reshape(-1, 1).astype("float32"))).ravel()


def test_a_skewed_column_comes_out_about_standard_normal_like_sklearn():
    values = np.random.default_rng(0).lognormal(0.0, 1.5, size=5000)
    state = quantile_normal_knots(values, 128)
    scores = _apply(values, state)
    assert abs(scores.mean()) < 0.05 and abs(scores.std() - 1.0) < 0.05
    reference = (
        QuantileTransformer(n_quantiles=1000, output_distribution="normal", random_state=0)
        .fit(values.reshape(-1, 1))
        .transform(values.reshape(-1, 1))
        .ravel()
    )
    middle = (values > np.quantile(values, 0.01)) & (values < np.quantile(values, 0.99))
    assert np.abs(scores[middle] - reference[middle]).max() < 0.05
    assert np.all(np.diff(scores[np.argsort(values)]) >= -1e-6), "the map must be monotone"


def test_ties_get_the_score_of_their_mid_rank_and_unseen_values_the_end_scores():
    values = np.array([0.0] * 60 + [1.0] * 30 + [5.0] * 10)
    state = quantile_normal_knots(values, 64)
    assert state["knots"] == [0.0, 1.0, 5.0]
    from scipy.special import ndtri

    expected = ndtri(np.array([0.30, 0.75, 0.95]))
    np.testing.assert_allclose(state["scores"], expected, rtol=1e-9)
    outside = _apply(np.array([-100.0, 0.5, 1000.0]), state)
    np.testing.assert_allclose(
        outside, [expected[0], (expected[0] + expected[1]) / 2, expected[2]], rtol=1e-5
    )


def test_a_constant_column_maps_to_zero_and_bad_knots_are_refused():
    state = quantile_normal_knots(np.full(20, 3.0), 16)
    assert _apply(np.array([1.0, 3.0, 9.0]), state).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        QuantileNormal([1.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="as many scores"):
        QuantileNormal([1.0, 2.0], [0.0])
