"""What makes a large batch cheap for the NumPy pass: categorical columns handed over as codes, lookups done once
per distinct value, and the first layer's table rows summed by one sparse product.

A batch of 200,000 records holds a few distinct values per categorical column, so looking each record's value up
in a Python dict (what a single request does) is most of the cost of a batch. A :class:`CodedColumn` holds the
distinct values once and an integer code per record; a lookup maps the distinct values and gathers by code. A
``CodedColumn`` reads as the plain column (``len``, iteration, ``numpy.asarray``), so an op that does not know it
(a text layer, the ``tf.function`` fallback) still gets the records' values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles

MISSING = ""


class CodedColumn:
    """A column of text values as its distinct values and one code per record.

    Args:
        codes: (n,) integer positions into ``values``.
        values: the distinct values (``""`` for a missing value, as the service hands it over).
    """

    def __init__(
        self, codes: np.ndarray, values: list[str], _lookups: dict[Any, np.ndarray] | None = None
    ) -> None:
        self.codes = np.asarray(codes, dtype=np.intp)
        self.values = values if _lookups is not None else list(values)
        # (lookup, offset) -> index of each distinct value, shared with the column's slices: a large batch runs in
        # row blocks, and each block would otherwise look the same distinct values up again.
        self._lookups: dict[Any, np.ndarray] = {} if _lookups is None else _lookups

    @classmethod
    def from_series(cls, values: pd.Series) -> CodedColumn:
        """Codes of a text column; a missing value becomes ``""``, as in :func:`~..model_inputs.to_model_inputs`."""
        codes, distinct = pd.factorize(values, use_na_sentinel=True)
        texts = [str(value) for value in np.asarray(distinct, dtype=object)]
        codes = np.where(codes < 0, len(texts), codes)
        return cls(codes, [*texts, MISSING])

    def __len__(self) -> int:
        return len(self.codes)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        decoded = np.asarray(self.values, dtype=object)[self.codes]
        return decoded if dtype in (None, object) else decoded.astype(dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(np.asarray(self.values, dtype=object)[self.codes].tolist())

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice):
            return CodedColumn(self.codes[item], self.values, self._lookups)
        return self.values[self.codes[item]]


def lookup_index(lookup: Any, column: Any, offset: int = 0) -> np.ndarray:
    """``lookup.index_array(column, offset)``, with a :class:`CodedColumn` looked up once per distinct value."""
    if isinstance(column, CodedColumn):
        distinct = column._lookups.get((lookup, offset))
        if distinct is None:
            # Two threads may both compute it: the same values, and a dict assignment is atomic.
            distinct = column._lookups[(lookup, offset)] = lookup.index_array(column.values, offset)
        return distinct[column.codes]
    return lookup.index_array(column, offset)


def sum_table_rows(table: np.ndarray, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_j weights[:, j] * table[index[:, j]]`` for every row of ``index`` (n, m): one sparse (n, rows) x
    (rows, d) product, which reads each chosen row once instead of writing an (n, m, d) gather or a dense
    (n, rows) matrix."""
    from scipy import sparse  # only batches pay for scipy

    rows, width = index.shape
    selection = sparse.csr_matrix(
        (
            weights.astype(table.dtype, copy=False).ravel(),
            index.ravel(),
            np.arange(0, index.size + 1, width),
        ),
        shape=(rows, table.shape[0]),
    )
    return np.asarray(selection @ table)


def coded_inputs(frame: pd.DataFrame, roles: ColumnRoles) -> dict[str, Any]:
    """Validated records as the NumPy pass takes a batch: numeric columns as float32 arrays (NaN missing),
    categorical columns as :class:`CodedColumn`, text columns as object arrays of str (``""`` missing).

    Args:
        frame: records validated by the serving pipeline (numbers as floats, categories as text).
        roles: resolved column roles.
    """
    inputs: dict[str, Any] = {}
    for column in roles.numeric or []:
        inputs[column] = frame[column].to_numpy(dtype="float32", na_value=np.nan)
    for column in roles.categorical or []:
        inputs[column] = CodedColumn.from_series(frame[column])
    for column in roles.text:
        values = frame[column]
        inputs[column] = np.where(values.isna(), MISSING, values.astype(str)).astype(object)
    return inputs


def decoded(columns: Mapping[str, Any]) -> dict[str, Any]:
    """The columns with every :class:`CodedColumn` as the plain object array it stands for."""
    return {
        name: np.asarray(values, dtype=object) if isinstance(values, CodedColumn) else values
        for name, values in columns.items()
    }
