"""Ops that fold several layers into one at compile time, so a single record costs little.

- :class:`TabulatedLookup`: a lookup and every layer that depends only on its index, one table row per index;
- :class:`FirstLayer`: the first ``Dense`` layer folded over the per-column branches that ``Concatenate`` joins;
- :class:`NumericChains`: numeric columns through their element-wise chains, on arrays or on one record's floats;
- :class:`NumericColumns`: numeric columns through their element-wise chains, side by side (what feeds a periodic
  embedding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .activations import FLOAT, activation, row_activation
from .blocks import BlockProduct
from .optimise_batch import lookup_index, sum_table_rows
from .text import LookupIndex


class NumericChains:
    """Numeric columns' element-wise chains (impute, clip, scale, missing flag): output ``i`` is input column
    ``chain_inputs[i]`` through ``chains[i]``, on arrays for a batch and on Python floats for one record."""

    def __init__(self, chains: list[list[Any]], chain_inputs: list[int]) -> None:
        self.chains = chains
        self.chain_inputs = chain_inputs
        self._scalar_chains = [
            (source, [op.scalar for op in chain])
            for source, chain in zip(chain_inputs, chains, strict=True)
        ]

    def one(self, columns: Sequence[Any]) -> list[float]:
        """Each chain's value for one record (each input column a list or array of one value)."""
        values = []
        for source, chain in self._scalar_chains:
            column = columns[source]
            value = float(column[0] if type(column) is list else column.flat[0])
            for op in chain:
                value = op(value)
            values.append(value)
        return values

    def batch(self, columns: Sequence[Any]) -> list[np.ndarray]:
        """Each chain's (n, 1) float32 values for a batch."""
        arrays = [np.asarray(column, dtype=FLOAT).reshape(-1, 1) for column in columns]
        parts = []
        for source, chain in zip(self.chain_inputs, self.chains, strict=True):
            part = arrays[source]
            for op in chain:
                part = op(part)
            parts.append(part)
        return parts


class TabulatedLookup:
    """A lookup and every layer after it that depends only on its index, precomputed per vocabulary index.

    Calling it maps n values to their indices once and returns one array per exit tensor: ``table[index]``.
    """

    def __init__(self, lookup: LookupIndex, tables: list[np.ndarray]) -> None:
        self.lookup = lookup
        self.tables = tables

    def __call__(self, values: Sequence[Any]) -> tuple[np.ndarray, ...]:
        if len(values) == 1:
            row = self.lookup.indices(values)[0]
            return tuple(table[row : row + 1] for table in self.tables)
        index = lookup_index(self.lookup, values)
        return tuple(table.take(index, axis=0) for table in self.tables)


class FirstLayer:
    """The first ``Dense`` layer folded over the per-column branches feeding it through ``Concatenate``.

    ``Dense(concat(parts)) = activation(bias + sum_i parts_i @ kernel[rows_i])``, so at load time each lookup's
    table is multiplied by its rows of the kernel (one row of ``table`` per vocabulary index), and numeric columns
    keep their element-wise chain (impute, clip, scale, missing flag), computed on Python floats for a single
    record. Other parts (text) arrive computed and are multiplied by their rows. Sums run in float64.

    Called with the raw values of the lookup columns, the raw values of the numeric columns, then the other parts.
    """

    def __init__(
        self,
        lookups: list[tuple[LookupIndex, int]],
        table: np.ndarray,
        chains: list[list[Any]],
        chain_inputs: list[int],
        chain_weights: np.ndarray,
        numeric_inputs: int,
        other_weights: list[np.ndarray],
        bias: np.ndarray,
        activation_name: Any,
    ) -> None:
        self.lookups = lookups
        self.table = np.ascontiguousarray(table, dtype=np.float64)
        self.chains = chains
        self.chain_inputs = chain_inputs
        self.chain_weights = np.ascontiguousarray(chain_weights, dtype=np.float64)
        self.numeric_inputs = numeric_inputs
        # Other parts (text, periodic embeddings) are multiplied at run time; a BlockProduct (the merged members of an
        # ensemble) multiplies its blocks alone.
        self.other_products = [
            w if isinstance(w, BlockProduct) else BlockProduct(w, [(0, w.shape[0], 0, w.shape[1])])
            for w in other_weights
        ]
        self.bias = np.asarray(bias, dtype=np.float64)
        self.activation = activation(activation_name)
        self._row_activation = row_activation(activation_name)
        self._chains = NumericChains(chains, chain_inputs)
        # Single records: one weighted sum over rows of [table; bias; chain weights]: the chosen lookup rows and
        # the bias with weight 1, each numeric part's row with the part's value as weight.
        self._gets = [(lookup.table.get, lookup.default, offset) for lookup, offset in lookups]
        self._rows = np.vstack([self.table, self.bias[None, :], self.chain_weights])
        first = self.table.shape[0]
        self._fixed_rows = list(range(first, first + 1 + len(chains)))
        self._ones = [1.0] * (len(lookups) + 1)
        # Batches: lookups of few categories joined into groups, each with a table of the sums of its members' rows
        # for every combination of their indices, so a row's sparse product reads one table row per group.
        self._groups, group_tables = _lookup_groups(lookups, self.table)
        self._rows32 = np.vstack([*group_tables, self.bias[None, :], self.chain_weights]).astype(
            FLOAT
        )
        first = sum(table.shape[0] for table in group_tables)
        self._batch_fixed_rows = list(range(first, first + 1 + len(chains)))

    row_ready = True

    def __call__(self, *values: Any) -> np.ndarray:
        count = len(self.lookups)
        strings, numbers = values[:count], values[count : count + self.numeric_inputs]
        others = values[count + self.numeric_inputs :]
        first = values[0]
        rows = first.shape[0] if isinstance(first, np.ndarray) else len(first)
        if rows == 1:
            return self._one(strings, numbers, others)
        # As for one record: each row is a weighted sum of rows of [table; bias; chain weights], the chosen lookup
        # rows and the bias with weight 1, each numeric part's row with the part's value; one sparse product.
        groups = len(self._groups)
        index = np.empty((rows, groups + len(self._batch_fixed_rows)), dtype=np.intp)
        scale = np.ones(index.shape, dtype=FLOAT)
        for position, (offset, members) in enumerate(self._groups):
            combined = index[:, position]
            combined.fill(offset)
            for member, stride in members:
                lookup = self.lookups[member][0]
                found = lookup_index(lookup, strings[member])
                combined += found * stride if stride != 1 else found
        index[:, groups:] = self._batch_fixed_rows
        for position, part in enumerate(self._chains.batch(numbers), start=groups + 1):
            scale[:, position] = np.asarray(part).reshape(-1)
        # A batch sums in float32, as the Keras layer does; one record (below) in float64.
        hidden = sum_table_rows(self._rows32, index, scale)
        for part, product in zip(others, self.other_products, strict=True):
            product.add_to(hidden, np.asarray(part, dtype=FLOAT))
        return self.activation(hidden)

    def _one(self, strings: Any, numbers: Any, others: Any) -> np.ndarray:
        return self.row(*strings, *numbers, *[np.asarray(part, dtype=FLOAT)[0] for part in others])[
            None, :
        ]

    def row(self, *values: Any) -> np.ndarray:
        """One record (each lookup and numeric column a list or array of one value, each other part its 1-D
        values) -> the layer's 1-D output.

        A non-finite part is multiplied by the whole merged kernel, so its NaN reaches every member's units; the
        record's mean over members is NaN either way.
        """
        count = len(self.lookups)
        numbers = values[count : count + self.numeric_inputs]
        rows = [
            get(column[0], default) + offset
            for (get, default, offset), column in zip(self._gets, values[:count], strict=True)
        ]
        rows += self._fixed_rows
        weights = self._ones + self._chains.one(numbers)
        hidden = np.dot(weights, self._rows.take(rows, axis=0))
        for part, product in zip(
            values[count + self.numeric_inputs :], self.other_products, strict=True
        ):
            # In float32, as the Keras layer multiplies (and half the memory a float64 kernel would read).
            hidden += part @ product.dense
        return self._row_activation(hidden.astype(FLOAT))


GROUP_ROWS = 256
"""The most rows of a group's table: all combinations of its lookups' indices (192 KB for 192 float32 units)."""


def _lookup_groups(
    lookups: list[tuple[LookupIndex, int]], table: np.ndarray
) -> tuple[list[tuple[int, list[tuple[int, int]]]], list[np.ndarray]]:
    """Consecutive lookups joined while the product of their sizes stays within :data:`GROUP_ROWS`.

    Returns each group's first row in the joined tables with its members (lookup position, index stride), and each
    group's table: row ``sum_j index_j * stride_j`` holds the sum of the members' rows for those indices, summed in
    float64 and rounded once.
    """
    starts = [offset for _, offset in lookups] + [table.shape[0]]
    sizes = [stop - start for start, stop in zip(starts[:-1], starts[1:], strict=True)]
    groups: list[list[int]] = []
    for position, size in enumerate(sizes):
        if groups and np.prod([sizes[m] for m in groups[-1]]) * size <= GROUP_ROWS:
            groups[-1].append(position)
        else:
            groups.append([position])
    layout, tables, first = [], [], 0
    for members in groups:
        combined = np.zeros((1, table.shape[1]))
        for member in members:
            rows = table[starts[member] : starts[member] + sizes[member]]
            combined = (combined[:, None, :] + rows[None, :, :]).reshape(-1, table.shape[1])
        strides = np.cumprod([1, *[sizes[m] for m in reversed(members[1:])]])[::-1].tolist()
        layout.append((first, list(zip(members, strides, strict=True))))
        tables.append(combined)
        first += combined.shape[0]
    return layout, tables


class NumericColumns:
    """Numeric columns through their element-wise chains (impute, clip, scale), joined side by side: the
    ``Concatenate`` of those chains that feeds a periodic embedding.

    One record runs on Python floats, a few float operations a column instead of a NumPy call per op and column; a
    batch runs the ops on arrays.

    Args:
        chains: each output column's element-wise ops, in order.
        chain_inputs: for each output column, the position of the input column it reads.
    """

    def __init__(self, chains: list[list[Any]], chain_inputs: list[int]) -> None:
        self.chains = NumericChains(chains, chain_inputs)

    row_ready = True

    def row(self, columns: list[Any]) -> list[float]:
        """One record's columns (each a list or array of one value) -> its values as Python floats."""
        return self.chains.one(columns)

    def __call__(self, columns: list[Any]) -> np.ndarray:
        first = columns[0]
        rows = first.shape[0] if isinstance(first, np.ndarray) else len(first)
        if rows == 1:
            return np.array([self.chains.one(columns)], dtype=FLOAT)
        return np.concatenate(self.chains.batch(columns), axis=1)
