"""The large-batch path of the NumPy pass: coded categorical columns, one lookup per distinct value, GELU."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.inference.activations import ACTIVATIONS
from deep_learning_workflow.inference.optimise_batch import (
    CodedColumn,
    coded_inputs,
    lookup_index,
    sum_table_rows,
)
from deep_learning_workflow.inference.text import LookupIndex
from deep_learning_workflow.model_inputs import to_model_inputs


def test_gelu_matches_the_exact_erf_form_to_float32_resolution():
    x = np.concatenate(
        [np.linspace(-12, 12, 300_000), [0.0, -0.0, 1e-30, -40.0, 40.0, np.nan]]
    ).astype(np.float32)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / math.sqrt(2.0)))
    got = ACTIVATIONS["gelu"](x.reshape(-1, 3))
    assert got.dtype == np.float32 and got.shape == (len(x) // 3, 3)
    np.testing.assert_allclose(got.reshape(-1), exact, rtol=1e-5, atol=2e-7)
    assert np.isnan(got.reshape(-1)[-1])


def test_coded_column_reads_as_the_plain_column_with_missing_as_empty_text():
    series = pd.Series(["b", None, "a", "b", "", "c"], dtype="str")
    coded = CodedColumn.from_series(series)
    plain = ["b", "", "a", "b", "", "c"]
    assert len(coded) == 6
    assert np.asarray(coded).tolist() == plain
    assert list(coded) == plain
    assert coded[1] == "" and coded[5] == "c"
    assert list(coded[2:4]) == ["a", "b"]
    assert set(coded.values) == {"a", "b", "c", ""}


def test_coded_inputs_are_the_model_inputs_with_categories_coded():
    frame = pd.DataFrame(
        {
            "tenure": [1.0, np.nan, 3.5],
            "contract": pd.Series(["Month", None, "Year"], dtype="str"),
            "notes": pd.Series(["hi there", None, "x"], dtype="str"),
        }
    )
    roles = ColumnRoles(
        target="churn", numeric=["tenure"], categorical=["contract"], text=["notes"]
    )
    coded, plain = coded_inputs(frame, roles), to_model_inputs(frame, roles)
    np.testing.assert_array_equal(coded["tenure"], plain["tenure"])
    assert coded["tenure"].dtype == np.float32
    assert isinstance(coded["contract"], CodedColumn)
    assert np.asarray(coded["contract"]).tolist() == plain["contract"].tolist()
    assert coded["notes"].tolist() == plain["notes"].tolist()


@pytest.mark.parametrize("offset", [0, 7])
def test_a_coded_lookup_gives_the_indices_of_the_plain_lookup(offset):
    lookup = LookupIndex({"a": 1, "b": 2, "": 3}, default=0)
    values = ["a", "zz", "", "b", "a", "b"] * 5
    coded = CodedColumn.from_series(pd.Series(values, dtype="str"))
    np.testing.assert_array_equal(
        lookup_index(lookup, coded, offset), lookup.index_array(values, offset)
    )


def test_sum_table_rows_is_the_weighted_sum_of_the_chosen_rows():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(9, 5))
    index = rng.integers(0, 9, size=(40, 4))
    weights = rng.normal(size=(40, 4))
    expected = sum(weights[:, [j]] * table[index[:, j]] for j in range(4))
    np.testing.assert_allclose(sum_table_rows(table, index, weights), expected, rtol=1e-12)


def test_the_slices_of_a_coded_column_give_the_indices_of_their_plain_values():
    lookup = LookupIndex({"a": 1, "b": 2, "": 3}, default=0)
    other = LookupIndex({"b": 5}, default=4)
    values = ["a", "zz", "", "b", "a", "b", "b"] * 9
    coded = CodedColumn.from_series(pd.Series(values, dtype="str"))
    for start in range(0, len(values), 10):
        part = coded[start : start + 10]
        for table, offset in [(lookup, 0), (lookup, 7), (other, 0)]:
            np.testing.assert_array_equal(
                lookup_index(table, part, offset),
                table.index_array(values[start : start + 10], offset),
            )
