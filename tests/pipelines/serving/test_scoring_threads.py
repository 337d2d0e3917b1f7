"""Scoring a chunk on several threads keeps the rows in order; reading ahead on a thread keeps errors where they
happen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.inference.optimise_batch import CodedColumn
from deep_learning_workflow.pipelines.serving.chunked import (
    PART_ROWS,
    DriftSample,
    ThreadedForward,
    prefetched,
    sample_in_order,
)


def test_threaded_forward_scores_the_parts_in_row_order():
    rows = 2 * PART_ROWS + 123
    numbers = np.arange(rows, dtype=np.float32)
    codes = CodedColumn(np.arange(rows) % 3, ["a", "b", ""])
    seen = []

    def forward(inputs):
        seen.append(len(inputs["x"]))
        decoded = np.asarray(inputs["c"], dtype=object)
        return np.column_stack([np.asarray(inputs["x"]), decoded == "b"]).astype(np.float32)

    threaded = ThreadedForward(forward, 3)
    try:
        out = threaded({"x": numbers, "c": codes})
    finally:
        threaded.close()
    assert len(seen) == 3 and sum(seen) == rows
    np.testing.assert_array_equal(out[:, 0], numbers)
    np.testing.assert_array_equal(out[:, 1], (np.arange(rows) % 3 == 1).astype(np.float32))


def test_a_small_chunk_is_scored_on_one_thread():
    calls = []
    threaded = ThreadedForward(lambda inputs: calls.append(1) or np.ones((5, 2)), 4)
    threaded({"x": np.zeros(5)})
    threaded.close()
    assert calls == [1]


def test_prefetched_yields_every_item_and_raises_where_the_error_happened():
    def items():
        yield 1
        yield 2
        raise ValueError("row 3 is broken")

    got = []
    with pytest.raises(ValueError, match="row 3 is broken"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]
    assert list(prefetched(iter([]))) == []


def test_drift_sample_keeps_the_rows_with_the_smallest_keys_over_all_chunks():
    random = np.random.default_rng(3)
    sample = DriftSample(250)
    keys = []
    for first_row in range(0, 2000, 128):
        rows = min(128, 2000 - first_row)
        chunk = pd.DataFrame({"value": np.arange(first_row, first_row + rows)})
        chunk_keys = random.random(rows)
        keys.append(chunk_keys)
        sample.add(chunk, chunk_keys, first_row)
    expected = np.sort(np.argsort(np.concatenate(keys))[:250])
    kept = sample_in_order(sample.frame())
    np.testing.assert_array_equal(kept["value"].to_numpy(), expected)
    assert list(kept.columns) == ["value"]
