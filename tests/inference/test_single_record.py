"""The single-record paths of the NumPy ops (Python floats, one product by a block-diagonal or zero-filled kernel,
scipy's normal CDF for GELU) give what the batch paths give for the same row, and keep their edge cases: np.interp's
rule on tied knots, a NaN kept in its member."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.inference.activations import activation
from deep_learning_workflow.inference.blocks import BlockProduct
from deep_learning_workflow.inference.families import PeriodicEmbedding
from deep_learning_workflow.inference.folded import NumericColumns
from deep_learning_workflow.inference.ops import Clip, Impute, MemberMean, SegmentSoftmax
from deep_learning_workflow.inference.quantile import QuantileScore


def test_quantile_scalar_follows_np_interp_exactly_on_tied_and_outside_knots():
    rng = np.random.default_rng(0)
    for _ in range(100):
        # Rounded values: many tied knots, as an integer column's quantiles have.
        knots = np.sort(np.round(rng.normal(size=rng.integers(2, 30)), 1))
        scores = np.sort(rng.normal(size=knots.size))
        score = QuantileScore(knots, scores)
        values = [*knots, *rng.normal(scale=2, size=20), knots[0] - 1, knots[-1] + 1]
        for value in values:
            assert score.scalar(float(value)) == float(np.interp(value, knots, scores))
    assert np.isnan(score.scalar(float("nan")))


def test_numeric_columns_give_one_record_what_they_give_a_batch():
    chains = [
        [Impute(2.0), Clip(0.0, 5.0), QuantileScore([0, 1, 1, 3, 5], [-2, -1, 0, 1, 2])],
        [Impute(-1.0)],
        [Clip(-1.0, 1.0)],
    ]
    columns = NumericColumns(chains, [0, 1, 0])
    first = [0.5, float("nan"), 7.0, 1.0, -3.0]
    second = [float("nan"), 4.0, 1.5, -2.0, 0.0]
    batch = columns([np.array(first, dtype=np.float32), np.array(second, dtype=np.float32)])
    assert batch.shape == (5, 3) and batch.dtype == np.float32
    for row in range(5):
        one = columns([[first[row]], [second[row]]])
        np.testing.assert_allclose(one, batch[row : row + 1], rtol=1e-6)
    # The tied knot at 1: np.interp's score of the last tied knot.
    assert columns([[1.0], [0.0]])[0, 0] == 0.0


def test_a_finite_row_uses_the_whole_kernel_and_a_nan_stays_in_its_member():
    rng = np.random.default_rng(2)
    kernel = np.zeros((8, 6), dtype=np.float32)
    kernel[:4, :3] = rng.normal(size=(4, 3))
    kernel[4:, 3:] = rng.normal(size=(4, 3))
    product = BlockProduct(kernel, [(0, 4, 0, 3), (4, 8, 3, 6)])
    rows = rng.normal(size=(3, 8)).astype(np.float32)
    batch = product(rows)
    for row in range(3):
        np.testing.assert_allclose(product(rows[row : row + 1]), batch[row : row + 1], rtol=1e-6)
    poisoned = rows[:1].copy()
    poisoned[0, 1] = np.nan
    out = product(poisoned)
    assert np.isnan(out[0, :3]).all() and np.isfinite(out[0, 3:]).all()


@pytest.mark.parametrize("shape", [(1, 7), (1, 192), (3, 50), (40, 300), (1, 4, 16)])
def test_gelu_of_few_and_many_values_matches_keras(shape):
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(3).normal(scale=3, size=shape).astype(np.float32)
    expected = np.asarray(keras.activations.gelu(x, approximate=False))
    np.testing.assert_allclose(activation("gelu")(x), expected, rtol=1e-5, atol=1e-6)


def test_periodic_embedding_of_one_record_equals_its_row_of_a_batch():
    rng = np.random.default_rng(4)
    groups, k, d = 6, 5, 4
    embedding = PeriodicEmbedding(
        rng.normal(size=(groups, k)),
        rng.normal(size=(groups, 2 * k, d)),
        rng.normal(size=(groups, d)),
        sources=np.array([0, 1, 2, 0, 1, 2]),
    )
    x = rng.normal(size=(4, 3)).astype(np.float32)
    batch = embedding(x)
    assert batch.shape == (4, groups * d)
    for row in range(4):
        np.testing.assert_allclose(embedding(x[row : row + 1]), batch[row : row + 1], atol=1e-5)


def test_member_softmax_and_mean_of_one_record_equal_the_batch_rows():
    logits = np.random.default_rng(5).normal(size=(4, 7)).astype(np.float32)
    for softmax in (SegmentSoftmax([2, 2, 3]), SegmentSoftmax([3, 4])):
        batch = softmax(logits)
        for row in range(4):
            np.testing.assert_allclose(
                softmax(logits[row : row + 1]), batch[row : row + 1], rtol=1e-6
            )
    mean = MemberMean(3)
    probabilities = SegmentSoftmax([2, 2, 2])(logits[:, :6])
    batch = mean(probabilities)
    for row in range(4):
        np.testing.assert_allclose(
            mean(probabilities[row : row + 1]), batch[row : row + 1], rtol=1e-6
        )
