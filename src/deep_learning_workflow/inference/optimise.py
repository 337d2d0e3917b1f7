"""Compile-time rewrites of a :class:`~.forward.Forward` that make a single record cheap.

Each keeps the outputs, up to float rounding (the parity check of :mod:`.engine` proves it on probe records):

- a lookup and the layers that depend only on its index (one-hot or embedding, pooling ...) become one table row
  per vocabulary index (:class:`~.folded.TabulatedLookup`);
- dropout disappears; batch normalisation and activations fold into the ``Dense`` layer before them;
- ``Dense`` layers reading one tensor (ensemble heads) share one product, and a TabM layer on one record per row
  becomes one ``Dense`` over its members' kernels side by side;
- the heads of a seed ensemble run stacked: one periodic-embedding op, one block-structured ``Dense`` per layer
  and a mean over the members (:mod:`.stacking`);
- the first ``Dense`` layer is folded over the per-column branches that ``Concatenate`` joins
  (:class:`~.folded.FirstLayer`): a categorical column costs a dict look-up, a numeric column a few float
  operations;
- the numeric columns that feed a periodic embedding go through their chains in one op
  (:class:`~.folded.NumericColumns`), on Python floats for one record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import FLOAT
from .families import BatchEnsembleDense, Members
from .first_layer import consumers_of, fold_first_layer, fuse_numeric_columns
from .folded import TabulatedLookup
from .forward import Forward, Step, step_inputs
from .ops import (
    Apply,
    BatchNorm,
    Dense,
    Identity,
    Split,
)
from .stacking import stack_members
from .text import LookupIndex


def _step_inputs(step: Step) -> set[int]:
    return set(step_inputs(step))


def _tabulate_lookups(forward: Forward) -> Forward:
    """Replace each lookup and the layers that depend only on its index by a table per exit tensor."""
    steps = list(forward.steps)
    index = 0
    while index < len(steps):
        step = steps[index]
        if type(step.op) is not LookupIndex:
            index += 1
            continue
        members: list[Step] = []
        known = {step.outputs[0]}
        for later in steps[index + 1 :]:
            if _step_inputs(later) <= known:
                members.append(later)
                known.update(later.outputs)
        if not members:
            index += 1
            continue
        member_ids = {id(m) for m in members}
        outside = [s for s in steps if s is not step and id(s) not in member_ids]
        consumed = set().union(*(_step_inputs(s) for s in outside)) | {forward.output}
        exits = [slot for slot in sorted(known) if slot in consumed]
        depth = max([*step.op.table.values(), step.op.default]) + 1
        values: dict[int, Any] = {step.outputs[0]: np.arange(depth, dtype=np.int64).reshape(-1, 1)}
        for member in members:
            args = [
                [values[s] for s in a] if isinstance(a, list) else values[a] for a in member.args
            ]
            result = (
                member.op(*args)
                if member.mask is None
                else member.op(*args, mask=values[member.mask])
            )
            values[member.outputs[0]] = result
        tables = [np.ascontiguousarray(values[slot]) for slot in exits]
        tabulated = Step(TabulatedLookup(step.op, tables), step.args, None, exits, step.name)
        steps = (
            steps[:index] + [tabulated] + [s for s in steps[index + 1 :] if id(s) not in member_ids]
        )
        index += 1
    return Forward(forward.inputs, steps, forward.output, forward.slots)


def _drop_identities(forward: Forward) -> Forward:
    """Remove inference no-ops (Dropout ...), rewiring their readers to their input."""
    alias: dict[int, int] = {}

    def resolve(slot: int) -> int:
        while slot in alias:
            slot = alias[slot]
        return slot

    steps = []
    for step in forward.steps:
        step.args = [
            [resolve(s) for s in a] if isinstance(a, list) else resolve(a) for a in step.args
        ]
        step.mask = None if step.mask is None else resolve(step.mask)
        if type(step.op) is Identity and len(step.args) == 1 and not isinstance(step.args[0], list):
            alias[step.outputs[0]] = step.args[0]
            continue
        steps.append(step)
    return Forward(forward.inputs, steps, resolve(forward.output), forward.slots)


def _fold_affine(forward: Forward) -> Forward:
    """Fold a BatchNormalization or an Activation into the linear Dense layer that alone feeds it."""
    steps = list(forward.steps)
    changed = True
    while changed:
        changed = False
        consumers = consumers_of(steps)
        for index, step in enumerate(steps):
            op = step.op
            if (
                type(op) is not Dense
                or op.activation_name != "linear"
                or step.outputs[0] == forward.output
            ):
                continue
            readers = consumers.get(step.outputs[0], [])
            if len(readers) != 1:
                continue
            after = readers[0]
            if type(after.op) is BatchNorm:
                bias = op.bias if op.bias is not None else np.zeros(op.kernel.shape[1], dtype=FLOAT)
                folded = Dense(
                    op.kernel * after.op.scale, bias * after.op.scale + after.op.shift, "linear"
                )
            elif type(after.op) is Apply:
                folded = Dense(op.kernel, op.bias, after.op.activation_name)
            else:
                continue
            steps[index] = Step(folded, step.args, None, after.outputs, f"{step.name}+{after.name}")
            steps.remove(after)
            changed = True
            break
    return Forward(forward.inputs, steps, forward.output, forward.slots)


# Activations that act on each unit alone, so Dense layers with one of them can share a matrix product.
_UNITWISE = {
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
}


def _merge_parallel_dense(forward: Forward) -> Forward:
    """``Dense`` layers reading the same tensor (the first layers of an ensemble's heads) become one ``Dense``
    over their side-by-side kernels, split back into each layer's output: one matrix product instead of N, and
    the first-layer fold then applies to it."""
    readers: dict[int, list[Step]] = {}
    for step in forward.steps:
        op = step.op
        if (
            type(op) is Dense
            and len(step.args) == 1
            and not isinstance(step.args[0], list)
            and step.mask is None
            and op.activation_name in _UNITWISE
        ):
            readers.setdefault(step.args[0], []).append(step)
    steps, slots = list(forward.steps), forward.slots
    for slot, group in readers.items():
        activations = {step.op.activation_name for step in group}
        if len(group) < 2 or len(activations) != 1:
            continue
        kernel = np.hstack([step.op.kernel for step in group])
        bias = np.concatenate(
            [
                step.op.bias
                if step.op.bias is not None
                else np.zeros(step.op.kernel.shape[1], dtype=FLOAT)
                for step in group
            ]
        )
        merged_slot, slots = slots, slots + 1
        merged = Step(
            Dense(kernel, bias, activations.pop()),
            [slot],
            None,
            [merged_slot],
            "+".join(s.name for s in group),
        )
        split = Step(
            Split([step.op.kernel.shape[1] for step in group]),
            [merged_slot],
            None,
            [step.outputs[0] for step in group],
            f"split {merged.name}",
        )
        position = min(steps.index(step) for step in group)
        members = {id(step) for step in group}
        steps = [
            *[s for s in steps[:position] if id(s) not in members],
            merged,
            split,
            *[s for s in steps[position:] if id(s) not in members],
        ]
    return Forward(forward.inputs, steps, forward.output, slots)


def _expand_batch_ensembles(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """A TabM layer fed one record per row (2-D) is one ``Dense`` over its members' kernels side by side:
    ``((x * r_i) @ W) * s_i = x @ (r_i[:, None] * W * s_i)``; its output is then cut into the members' axis.
    The first-layer fold then applies to it."""
    if not any(type(step.op) is BatchEnsembleDense for step in forward.steps):
        return forward
    values = forward.trace({name: column[:1] for name, column in probe.items()})
    steps, slots = [], forward.slots
    for step in forward.steps:
        op = step.op
        if (
            type(op) is not BatchEnsembleDense
            or len(step.args) != 1
            or isinstance(step.args[0], list)
            or getattr(values[step.args[0]], "ndim", 0) != 2
            or op.activation_name not in _UNITWISE
        ):
            steps.append(step)
            continue
        kernels = op.r[:, :, None] * op.kernel[None, :, :] * op.s[:, None, :]  # (k, d_in, d_out)
        kernel = kernels.transpose(1, 0, 2).reshape(kernels.shape[1], -1)
        dense_slot, slots = slots, slots + 1
        dense = Dense(kernel, op.bias.reshape(-1), op.activation_name)
        steps.append(Step(dense, step.args, None, [dense_slot], step.name))
        steps.append(Step(Members(op.members), [dense_slot], None, step.outputs, step.name))
    return Forward(forward.inputs, steps, forward.output, slots)


def optimise(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """The compile-time rewrites that make single records cheap (each keeps the outputs, up to float rounding)."""
    forward = _tabulate_lookups(forward)
    forward = _drop_identities(forward)
    forward = _fold_affine(forward)
    forward = _expand_batch_ensembles(forward, probe)
    forward = _merge_parallel_dense(forward)
    forward = stack_members(forward, probe)
    forward = fold_first_layer(forward, probe)
    return fuse_numeric_columns(forward)
