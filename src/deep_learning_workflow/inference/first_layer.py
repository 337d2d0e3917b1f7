"""The first-layer fold: ``Dense(Concatenate(parts))`` becomes a :class:`~.folded.FirstLayer`.

``Dense(concat(parts)) = activation(bias + sum_i parts_i @ kernel[rows_i])``: each tabulated lookup's table is
multiplied by its rows of the kernel once, numeric columns keep their element-wise chain (impute, clip, scale,
missing flag), and other parts (text) are multiplied by their rows at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .folded import FirstLayer, NumericColumns, TabulatedLookup
from .forward import Forward, Step, step_inputs
from .ops import Clip, Concat, Dense, Identity, Impute, MissingFlag, Normalize
from .quantile import QuantileScore


def consumers_of(steps: list[Step]) -> dict[int, list[Step]]:
    """Slot -> the steps that read it."""
    consumers: dict[int, list[Step]] = {}
    for step in steps:
        for slot in step_inputs(step):
            consumers.setdefault(slot, []).append(step)
    return consumers


_ELEMENTWISE = (Impute, Clip, MissingFlag, Identity, QuantileScore)


def _numeric_chain(
    slot: int, producer: dict[int, Step], consumers: dict[int, list[Step]], numeric: set[int]
):
    """The element-wise ops from a numeric input to ``slot`` (and their steps), or None."""
    ops, chain_steps, current = [], [], slot
    while current not in numeric:
        step = producer.get(current)
        if (
            step is None
            or step.mask is not None
            or len(step.args) != 1
            or isinstance(step.args[0], list)
        ):
            return None
        op = step.op
        if not (isinstance(op, _ELEMENTWISE) or (isinstance(op, Normalize) and op.elementwise)):
            return None
        if current != slot and len(consumers.get(current, [])) != 1:
            return None
        ops.insert(0, op)
        chain_steps.append(step)
        current = step.args[0]
    return current, ops, chain_steps


def fold_first_layer(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """Replace ``Dense(Concatenate(parts))`` by a :class:`FirstLayer` that folds the kernel into the parts."""
    steps = forward.steps
    consumers = consumers_of(steps)
    producer = {slot: step for step in steps for slot in step.outputs}
    for dense in steps:
        if type(dense.op) is not Dense or len(dense.args) != 1 or isinstance(dense.args[0], list):
            continue
        concat = producer.get(dense.args[0])
        if concat is None or type(concat.op) is not Concat or concat.op.axis not in (-1, 1):
            continue
        if consumers.get(concat.outputs[0]) == [dense] and concat.outputs[0] != forward.output:
            break
    else:
        return forward
    values = forward.trace({name: column[:1] for name, column in probe.items()})
    parts = concat.args[0]
    if any(getattr(values[slot], "ndim", 0) != 2 for slot in parts):
        return forward
    kernel = dense.op.kernel.astype(np.float64)
    rows, offset = [], 0
    for slot in parts:
        width = values[slot].shape[-1]
        rows.append(kernel[offset : offset + width])
        offset += width
    if offset != kernel.shape[0]:
        return forward
    numeric = {slot for slot, kind in forward.inputs.values() if kind == "numeric"}
    strings = {slot for slot, kind in forward.inputs.values() if kind != "numeric"}
    removed: set[int] = {id(concat), id(dense)}
    lookups, tables, lookup_args, table_rows = [], [], [], 0
    chains, chain_inputs, chain_rows, numeric_args = [], [], [], []
    other_args, other_weights = [], []
    done: set[int] = set()
    for position, slot in enumerate(parts):
        if position in done:
            continue
        step = producer.get(slot)
        if (
            step is not None
            and type(step.op) is TabulatedLookup
            and step.args[0] in strings
            and all(consumers.get(exit_slot) == [concat] for exit_slot in step.outputs)
        ):
            folded = np.zeros((step.op.tables[0].shape[0], kernel.shape[1]))
            for exit_slot, table in zip(step.outputs, step.op.tables, strict=True):
                for where, part in enumerate(parts):
                    if part == exit_slot:
                        folded += table.reshape(table.shape[0], -1).astype(np.float64) @ rows[where]
                        done.add(where)
            lookups.append((step.op.lookup, table_rows))
            tables.append(folded)
            table_rows += folded.shape[0]
            lookup_args.append(step.args[0])
            removed.add(id(step))
            continue
        chain = (
            _numeric_chain(slot, producer, consumers, numeric)
            if values[slot].shape[-1] == 1
            else None
        )
        if (
            chain is not None
            and consumers.get(slot) == [concat]
            or (chain is not None and slot in numeric)
        ):
            source, ops, chain_steps = chain
            if source not in numeric_args:
                numeric_args.append(source)
            chains.append(ops)
            chain_inputs.append(numeric_args.index(source))
            chain_rows.append(rows[position])
            removed.update(id(s) for s in chain_steps)
            continue
        other_args.append(slot)
        start = sum(row.shape[0] for row in rows[:position])
        product = dense.op.product
        other_weights.append(
            product.rows(start, start + rows[position].shape[0])
            if product is not None
            else rows[position]
        )
    if not lookups and not chains:
        return forward
    width = kernel.shape[1]
    layer = FirstLayer(
        lookups=lookups,
        table=np.vstack(tables) if tables else np.zeros((0, width)),
        chains=chains,
        chain_inputs=chain_inputs,
        chain_weights=np.vstack(chain_rows) if chain_rows else np.zeros((0, width)),
        numeric_inputs=len(numeric_args),
        other_weights=other_weights,
        bias=dense.op.bias if dense.op.bias is not None else np.zeros(width),
        activation_name=dense.op.activation_name,
    )
    step = Step(
        layer,
        [*lookup_args, *numeric_args, *other_args],
        None,
        dense.outputs,
        f"{concat.name}+{dense.name}",
    )
    position = steps.index(concat)
    kept = [s for s in steps[:position] if id(s) not in removed]
    kept += [step] + [s for s in steps[position:] if id(s) not in removed]
    return Forward(forward.inputs, kept, forward.output, forward.slots)


def fuse_numeric_columns(forward: Forward) -> Forward:
    """Replace a ``Concatenate`` of numeric columns' element-wise chains (the input of a periodic embedding) by
    one :class:`NumericColumns` op on the raw columns."""
    steps = list(forward.steps)
    numeric = {slot for slot, kind in forward.inputs.values() if kind == "numeric"}
    for concat in list(steps):
        if type(concat.op) is not Concat or concat.op.axis not in (-1, 1):
            continue
        consumers = consumers_of(steps)
        producer = {slot: step for step in steps for slot in step.outputs}
        parts = concat.args[0]
        chains = [_numeric_chain(slot, producer, consumers, numeric) for slot in parts]
        if any(
            chain is None or (slot not in numeric and consumers.get(slot) != [concat])
            for slot, chain in zip(parts, chains, strict=True)
        ):
            continue
        sources = list(dict.fromkeys(source for source, _, _ in chains))
        fused = NumericColumns(
            [ops for _, ops, _ in chains], [sources.index(source) for source, _, _ in chains]
        )
        removed = {id(step) for _, _, chain_steps in chains for step in chain_steps}
        step = Step(fused, [sources], None, concat.outputs, concat.name)
        steps = [step if s is concat else s for s in steps if id(s) not in removed]
    return Forward(forward.inputs, steps, forward.output, forward.slots)
