"""The folded first layer's grouped lookups, and the softmax over a short last axis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.inference.activations import softmax_last
from deep_learning_workflow.inference.folded import GROUP_ROWS, FirstLayer
from deep_learning_workflow.inference.ops import SegmentSoftmax
from deep_learning_workflow.inference.optimise_batch import CodedColumn
from deep_learning_workflow.inference.text import LookupIndex


def lookup_of(size: int) -> LookupIndex:
    """Index 0 is the out-of-vocabulary bucket; "v1" .. "v<size-1>" the rest."""
    return LookupIndex({f"v{i}": i for i in range(1, size)}, default=0)


def test_grouped_lookups_give_the_sum_of_each_lookups_rows():
    sizes = [3, 5, 7, GROUP_ROWS + 44, 2, 4]
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    random = np.random.default_rng(0)
    units = 8
    table = random.normal(size=(sum(sizes), units))
    bias = random.normal(size=units)
    layer = FirstLayer(
        [(lookup_of(size), offset) for size, offset in zip(sizes, offsets, strict=True)],
        table,
        chains=[],
        chain_inputs=[],
        chain_weights=np.zeros((0, units)),
        numeric_inputs=0,
        other_weights=[],
        bias=bias,
        activation_name=None,
    )
    # 3 x 5 x 7 = 105 rows join; the lookup larger than a group's table stays alone; 2 x 4 join after it.
    assert [[member for member, _ in members] for _, members in layer._groups] == [
        [0, 1, 2],
        [3],
        [4, 5],
    ]
    rows = 500
    indices = [random.integers(0, size, rows) for size in sizes]
    # Index 0 as a value the vocabulary lacks (an unseen category), the others as their text.
    columns = [[f"v{i}" if i else "never seen" for i in column.tolist()] for column in indices]
    # One column as the service and batch scoring hand it over: codes into its distinct values.
    columns[1] = CodedColumn.from_series(pd.Series(columns[1]))
    expected = bias + sum(
        table[offset + index] for offset, index in zip(offsets, indices, strict=True)
    )
    batch = layer(*columns)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-5)
    # One record's path (float64 sums over the ungrouped rows) agrees with its row of the batch.
    for record in (0, 17, rows - 1):
        single = layer.row(*[[np.asarray(column, dtype=object)[record]] for column in columns])
        np.testing.assert_allclose(single, batch[record], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width", [2, 3, 7, 8, 20])
def test_softmax_over_a_short_last_axis_is_bit_for_bit_numpys_reduction(width):
    x = np.random.default_rng(width).normal(scale=5, size=(300, 4, width)).astype(np.float32)
    reference = np.exp(x - x.max(axis=-1, keepdims=True))
    reference /= reference.sum(axis=-1, keepdims=True)
    np.testing.assert_array_equal(softmax_last(x), reference)
    flat = x.reshape(300, 4 * width)
    np.testing.assert_array_equal(SegmentSoftmax([width] * 4)(flat), reference.reshape(flat.shape))
