"""A compiled forward pass: the steps of a model's graph over NumPy values, run per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .activations import FLOAT
from .folded import FirstLayer, NumericColumns, TabulatedLookup

ROW_BLOCK = 2048
"""Rows a large batch is run in at a time (the widest values of a block fit in the CPU's cache)."""


def _rows(columns: dict[str, Any]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


class Step:
    """One op applied to slots of the value list: ``values[outputs] = op(*values[args], mask=values[mask])``.

    ``args`` holds slot numbers, or a list of slot numbers for an op that takes a list (``Concatenate``).
    """

    __slots__ = ("op", "args", "mask", "outputs", "name")

    def __init__(
        self,
        op: Callable[..., Any],
        args: list[int | list[int]],
        mask: int | None,
        outputs: list[int],
        name: str,
    ) -> None:
        self.op, self.args, self.mask, self.outputs, self.name = op, args, mask, outputs, name


def step_inputs(step: Step) -> list[int]:
    """The slots a step reads."""
    used = [s for a in step.args for s in (a if isinstance(a, list) else [a])]
    return used + ([step.mask] if step.mask is not None else [])


class Forward:
    """A compiled forward pass: raw input columns in, class probabilities out.

    Args:
        inputs: feature column -> (slot, kind) with kind "numeric" (float32) or "string".
        steps: the ops in execution order.
        output: the slot of the model's output.
        slots: number of value slots.
    """

    def __init__(
        self, inputs: dict[str, tuple[int, str]], steps: list[Step], output: int, slots: int
    ) -> None:
        self.inputs = inputs
        self.steps = steps
        self.output = output
        self.slots = slots
        self._plan = [self._runner(step) for step in steps]
        consumers: dict[int, list[Any]] = {}
        for step in steps:
            for slot in step_inputs(step):
                consumers.setdefault(slot, []).append(step.op)
        # Numeric columns only a FirstLayer or NumericColumns reads stay Python lists (they convert them).
        self._numeric = [
            (
                column,
                slot,
                all(isinstance(op, FirstLayer | NumericColumns) for op in consumers.get(slot, [])),
            )
            for column, (slot, kind) in inputs.items()
            if kind == "numeric"
        ]
        self._strings = [
            (column, slot) for column, (slot, kind) in inputs.items() if kind != "numeric"
        ]
        self._chain = self._as_chain()
        self._record_plan = self._row_plan()

    def _as_chain(self) -> tuple[Any, list[str], list[Any]] | None:
        """(first op, its input columns, the ops after it) when the pass is a FirstLayer on raw columns followed
        by single-input layers: then it runs without the slot machinery."""
        if not self.steps or not isinstance(self.steps[0].op, FirstLayer):
            return None
        by_slot = {slot: column for column, (slot, _) in self.inputs.items()}
        first = self.steps[0]
        if any(isinstance(a, list) or a not in by_slot for a in first.args):
            return None
        previous = first.outputs[0]
        for step in self.steps[1:]:
            if (
                step.mask is not None
                or step.args != [previous]
                or len(step.outputs) != 1
                or isinstance(step.op, TabulatedLookup)
            ):
                return None
            previous = step.outputs[0]
        if previous != self.output:
            return None
        return first.op, [by_slot[a] for a in first.args], [step.op for step in self.steps[1:]]

    def _row_plan(self) -> list[Callable[[list[Any]], None]] | None:
        """One record's plan, when every op can take one record as 1-D values (``op.row``): each op then skips
        the batch path's reshapes, dtype checks and row loops, about half of a small model's time on one record.
        The raw columns go in as they come (lists of one value), so only ops that read them raw may read them."""
        steps = self.steps
        if not steps or not all(getattr(step.op, "row_ready", False) for step in steps):
            return None
        if any(step.mask is not None or len(step.outputs) != 1 for step in steps):
            return None
        if not all(raw for _, _, raw in self._numeric):
            return None
        raw_readers = (FirstLayer, NumericColumns)
        string_slots = {slot for _, slot in self._strings}
        if any(
            not isinstance(step.op, raw_readers) and string_slots.intersection(step_inputs(step))
            for step in steps
        ):
            return None
        return [self._row_runner(step) for step in steps]

    @staticmethod
    def _row_runner(step: Step) -> Callable[[list[Any]], None]:
        row, target = step.op.row, step.outputs[0]
        if len(step.args) == 1 and not isinstance(step.args[0], list):
            (source,) = step.args

            def run_one(values: list[Any]) -> None:
                values[target] = row(values[source])

            return run_one
        groups = [(a, isinstance(a, list)) for a in step.args]

        def run(values: list[Any]) -> None:
            values[target] = row(
                *[[values[s] for s in a] if many else values[a] for a, many in groups]
            )

        return run

    @staticmethod
    def _runner(step: Step) -> Callable[[list[Any]], None]:
        """A closure that runs one step on the value list, specialised to its argument shape."""
        op, outputs, mask = step.op, step.outputs, step.mask
        if any(isinstance(a, list) for a in step.args):
            groups = [a if isinstance(a, list) else [a] for a in step.args]
            flags = [isinstance(a, list) for a in step.args]

            def run_lists(values: list[Any]) -> None:
                args = [
                    [values[s] for s in g] if f else values[g[0]]
                    for g, f in zip(groups, flags, strict=True)
                ]
                values[outputs[0]] = op(*args)

            return run_lists
        if isinstance(op, TabulatedLookup) or len(outputs) > 1:
            # An op with several outputs (a tabulated lookup, a split) returns one value per output slot.
            (source,) = step.args

            def run_table(values: list[Any]) -> None:
                for slot, value in zip(outputs, op(values[source]), strict=True):
                    values[slot] = value

            return run_table
        target = outputs[0]
        if len(step.args) == 1 and mask is None:
            (source,) = step.args

            def run_one(values: list[Any]) -> None:
                values[target] = op(values[source])

            return run_one
        args = list(step.args)

        def run(values: list[Any]) -> None:
            if mask is None:
                values[target] = op(*[values[a] for a in args])
            else:
                values[target] = op(*[values[a] for a in args], mask=values[mask])

        return run

    def __call__(self, columns: dict[str, Any]) -> np.ndarray:
        """Class probabilities (n, k) float32.

        Args:
            columns: feature column -> n values: a float32 array or list of floats (NaN for missing) for a numeric
                column, a list of str ("" for missing) for a categorical or text column.
        """
        rows = _rows(columns)
        if rows <= ROW_BLOCK:
            return self._run(columns)
        # A large batch runs in blocks of rows: each op's values then stay in the CPU cache.
        return np.concatenate(
            [
                self._run(
                    {name: values[start : start + ROW_BLOCK] for name, values in columns.items()}
                )
                for start in range(0, rows, ROW_BLOCK)
            ]
        )

    def _run(self, columns: dict[str, Any]) -> np.ndarray:
        if self._record_plan is not None and _rows(columns) == 1:
            values: list[Any] = [None] * self.slots
            for column, (slot, _) in self.inputs.items():
                values[slot] = columns[column]
            for run in self._record_plan:
                run(values)
            output = values[self.output]
            return np.array([output], dtype=FLOAT) if type(output) is list else output[None, :]
        if self._chain is not None:
            first, names, rest = self._chain
            value = first(*[columns[name] for name in names])
            for op in rest:
                value = op(value)
            return value
        values: list[Any] = [None] * self.slots
        for column, slot, raw in self._numeric:
            values[slot] = (
                columns[column] if raw else np.asarray(columns[column], dtype=FLOAT).reshape(-1, 1)
            )
        for column, slot in self._strings:
            values[slot] = columns[column]
        for run in self._plan:
            run(values)
        return values[self.output]

    def trace(self, columns: dict[str, Any]) -> list[Any]:
        """Every slot's value for these inputs (used at load time to learn the parts' widths)."""
        values: list[Any] = [None] * self.slots
        for column, (slot, kind) in self.inputs.items():
            value = columns[column]
            values[slot] = (
                np.asarray(value, dtype=FLOAT).reshape(-1, 1) if kind == "numeric" else value
            )
        for run in self._plan:
            run(values)
        return values

    def describe(self) -> list[str]:
        """The steps, for logs."""
        return [f"{step.name}: {type(step.op).__name__}" for step in self.steps]
