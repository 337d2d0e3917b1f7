"""Compile-time rewrites that run the members of a seed ensemble as one network.

A seed ensemble holds one preprocessing and a head per seed; each head repeats the same layers with its own weights.
Run as written, a batch goes through every member's layers one after the other. These rewrites stack them:

- the members' periodic (PLR) embeddings of the shared numeric columns become one op (one cosine, one sine and one
  stacked product for all members), cut back into each member's part by a ``Split``;
- ``Dense`` layers of the members whose inputs are parts of the same tensors (each member's slice of a stacked
  output, the shared encoded columns) become one ``Dense`` over those tensors, with a block-structured kernel
  (zeros where a member does not read a part), and a ``Split`` into the members' outputs; members' softmax heads
  become one linear ``Dense`` followed by a softmax per member;
- ``Average`` over every part of one ``Split`` becomes a mean over the members' axis.

Each rewrite keeps the outputs up to float rounding; the parity check of :mod:`.engine` proves it on probes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import FLOAT
from .blocks import Block
from .families import PeriodicEmbedding
from .forward import Forward, Step, step_inputs
from .ops import Average, Concat, Dense, MemberMean, SegmentSoftmax, Split

_UNITWISE = {"linear", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "elu", "selu", "gelu"}
_UNITWISE |= {"silu", "swish"}


def _widths(forward: Forward, probe: dict[str, list[Any]]) -> dict[int, int]:
    """Slot -> last-axis width of its value, for 2-D values (traced on one probe record)."""
    values = forward.trace({name: column[:1] for name, column in probe.items()})
    return {
        slot: int(value.shape[-1])
        for slot, value in enumerate(values)
        if getattr(value, "ndim", 0) == 2
    }


def _ordered(steps: list[Step], forward: Forward) -> list[Step]:
    """The steps in an order where each runs after the steps it reads from (stable otherwise)."""
    known = {slot for slot, _ in forward.inputs.values()}
    pending, ordered = list(steps), []
    while pending:
        for index, step in enumerate(pending):
            if set(step_inputs(step)) <= known:
                ordered.append(pending.pop(index))
                known.update(step.outputs)
                break
        else:
            raise ValueError("the rewritten steps read values no step makes")
    return ordered


def drop_dead_steps(forward: Forward) -> Forward:
    """Remove steps none of whose outputs is read (after a rewrite left them behind)."""
    steps = list(forward.steps)
    while True:
        read = {slot for step in steps for slot in step_inputs(step)} | {forward.output}
        kept = [step for step in steps if any(slot in read for slot in step.outputs)]
        if len(kept) == len(steps):
            return Forward(forward.inputs, kept, forward.output, forward.slots)
        steps = kept


def merge_periodic(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """Periodic embeddings reading the same tensor (the members' PLR layers) become one op and a ``Split``."""
    widths = _widths(forward, probe)
    readers: dict[int, list[Step]] = {}
    for step in forward.steps:
        if type(step.op) is PeriodicEmbedding and len(step.args) == 1 and step.mask is None:
            readers.setdefault(step.args[0], []).append(step)
    steps, slots = list(forward.steps), forward.slots
    for slot, group in readers.items():
        if len(group) < 2 or not all(step.outputs[0] in widths for step in group):
            continue
        merged_slot, slots = slots, slots + 1
        members = {id(step) for step in group}
        merged = Step(
            PeriodicEmbedding.merged([step.op for step in group]),
            [slot],
            None,
            [merged_slot],
            "+".join(step.name for step in group),
        )
        split = Step(
            Split([widths[step.outputs[0]] for step in group]),
            [merged_slot],
            None,
            [step.outputs[0] for step in group],
            f"split {merged.name}",
        )
        position = min(steps.index(step) for step in group)
        steps = [
            *[s for s in steps[:position] if id(s) not in members],
            merged,
            split,
            *[s for s in steps[position:] if id(s) not in members],
        ]
    return Forward(forward.inputs, steps, forward.output, slots)


def _parts(
    dense: Step, producer: dict[int, Step], consumers: dict[int, list[Step]], widths: dict[int, int]
) -> list[tuple[int, int, int]] | None:
    """The (root slot, first column, width) of each input part of a ``Dense`` step: the parts of a ``Concat`` read
    by it alone, each ``Split`` output traced to its source; None when a width is unknown."""
    (source,) = dense.args
    concat = producer.get(source)
    if (
        concat is not None
        and type(concat.op) is Concat
        and concat.op.axis in (-1, 1)
        and consumers.get(source) == [dense]
    ):
        slots = concat.args[0]
    else:
        slots = [source]
    parts = []
    for slot in slots:
        step = producer.get(slot)
        if step is not None and type(step.op) is Split and len(step.outputs) > 1:
            index = step.outputs.index(slot)
            bounds = step.op.bounds
            parts.append((step.args[0], bounds[index], bounds[index + 1] - bounds[index]))
        elif slot in widths:
            parts.append((slot, 0, widths[slot]))
        else:
            return None
    return parts


def _merged_dense(
    group: list[tuple[Step, list[tuple[int, int, int]]]], widths: dict[int, int]
) -> tuple[list[int], np.ndarray, np.ndarray, list[Block]]:
    """(root slots, kernel, bias, blocks) of one ``Dense`` over the roots equal to the group's layers side by
    side; member ``i``'s block rows are the parts it reads, its columns its outputs."""
    roots: list[int] = []
    for _, parts in group:
        roots += [root for root, _, _ in parts if root not in roots]
    offsets = dict(zip(roots, np.cumsum([0, *[widths[r] for r in roots]]).tolist(), strict=False))
    columns = [step.op.kernel.shape[1] for step, _ in group]
    kernel = np.zeros((offsets[roots[-1]] + widths[roots[-1]], sum(columns)), dtype=FLOAT)
    biases, blocks, column = [], [], 0
    for (step, parts), width in zip(group, columns, strict=True):
        row = 0
        for root, first, size in parts:
            start = offsets[root] + first
            kernel[start : start + size, column : column + width] += step.op.kernel[
                row : row + size
            ]
            blocks.append((start, start + size, column, column + width))
            row += size
        bias = step.op.bias
        biases.append(bias if bias is not None else np.zeros(width, dtype=FLOAT))
        column += width
    return roots, kernel, np.concatenate(biases), blocks


def _dense_groups(
    forward: Forward, probe: dict[str, list[Any]]
) -> tuple[list[list[Any]], dict[int, int]]:
    """Groups of ``Dense`` steps (with their parts) that read parts of the same root tensors, and the slots'
    widths."""
    widths = _widths(forward, probe)
    producer = {slot: step for step in forward.steps for slot in step.outputs}
    consumers: dict[int, list[Step]] = {}
    for step in forward.steps:
        for slot in step_inputs(step):
            consumers.setdefault(slot, []).append(step)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for step in forward.steps:
        op = step.op
        if type(op) is not Dense or len(step.args) != 1 or isinstance(step.args[0], list):
            continue
        if step.mask is not None or step.outputs[0] == forward.output:
            continue
        if op.activation_name not in _UNITWISE and op.activation_name != "softmax":
            continue
        parts = _parts(step, producer, consumers, widths)
        if parts is None:
            continue
        key = (frozenset(root for root, _, _ in parts), op.activation_name)
        groups.setdefault(key, []).append((step, parts))
    return [group for group in groups.values() if len(group) > 1], widths


def merge_member_dense(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """``Dense`` layers reading parts of the same tensors become one ``Dense`` and a ``Split`` (repeated until
    none is left, so each member's next layer merges too)."""
    while True:
        groups, widths = _dense_groups(forward, probe)
        if not groups:
            return forward
        steps, slots = list(forward.steps), forward.slots
        for group in groups:
            roots, kernel, bias, blocks = _merged_dense(group, widths)
            members = [step for step, _ in group]
            name = "+".join(step.name for step in members)
            added = []
            if len(roots) > 1:
                source, slots = slots, slots + 1
                added.append(Step(Concat(-1), [roots], None, [source], f"inputs of {name}"))
            else:
                source = roots[0]
            softmax = members[0].op.activation_name == "softmax"
            merged, slots = slots, slots + 1
            activation = "linear" if softmax else members[0].op.activation_name
            added.append(
                Step(Dense(kernel, bias, activation, blocks), [source], None, [merged], name)
            )
            columns = [step.op.kernel.shape[1] for step in members]
            if softmax:
                added.append(
                    Step(SegmentSoftmax(columns), [merged], None, [slots], f"{name} softmax")
                )
                merged, slots = slots, slots + 1
            outputs = [step.outputs[0] for step in members]
            added.append(Step(Split(columns), [merged], None, outputs, f"split {name}"))
            ids = {id(step) for step in members}
            steps = [step for step in steps if id(step) not in ids] + added
        forward = drop_dead_steps(
            Forward(forward.inputs, _ordered(steps, forward), forward.output, slots)
        )


def merge_member_average(forward: Forward) -> Forward:
    """``Average`` over every part of one ``Split`` of equal widths becomes a mean over the members' axis."""
    producer = {slot: step for step in forward.steps for slot in step.outputs}
    steps = []
    for step in forward.steps:
        if type(step.op) is Average and len(step.args) == 1 and isinstance(step.args[0], list):
            split = producer.get(step.args[0][0])
            bounds = split.op.bounds if split is not None and type(split.op) is Split else None
            if (
                bounds is not None
                and list(step.args[0]) == split.outputs
                and len(set(np.diff(bounds).tolist())) == 1
            ):
                mean = MemberMean(len(split.outputs))
                steps.append(Step(mean, [split.args[0]], None, step.outputs, step.name))
                continue
        steps.append(step)
    return drop_dead_steps(Forward(forward.inputs, steps, forward.output, forward.slots))


def flatten_concats(forward: Forward) -> Forward:
    """A ``Concatenate`` (last axis) of another one read by it alone takes the inner one's parts directly."""
    producer = {slot: step for step in forward.steps for slot in step.outputs}
    readers: dict[int, int] = {}
    for step in forward.steps:
        for slot in step_inputs(step):
            readers[slot] = readers.get(slot, 0) + 1
    for step in forward.steps:
        if type(step.op) is not Concat or step.op.axis not in (-1, 1):
            continue
        parts: list[int] = []
        for slot in step.args[0]:
            inner = producer.get(slot)
            if (
                inner is not None
                and type(inner.op) is Concat
                and inner.op.axis in (-1, 1)
                and readers.get(slot) == 1
                and slot != forward.output
            ):
                parts += inner.args[0]
            else:
                parts.append(slot)
        step.args = [parts]
    return drop_dead_steps(forward)


def stack_members(forward: Forward, probe: dict[str, list[Any]]) -> Forward:
    """Every rewrite of this module, in order."""
    forward = merge_periodic(forward, probe)
    forward = merge_member_dense(forward, probe)
    forward = merge_member_average(forward)
    return flatten_concats(forward)
