"""Load a serving bundle into a :class:`~deep_learning_workflow.service.scoring.ModelVersion`.

This is the only service module that imports TensorFlow/Keras, and only inside its functions, at load time: the
bundle's manifest is verified, the ``.keras`` model loaded, and its graph compiled into the NumPy forward pass of
:mod:`deep_learning_workflow.service.fastpath`. A load-time check compares the compiled pass with the Keras model
on probe records built from the schema (known and unseen categories, missing and extreme numbers, text). When the
model holds a layer the NumPy pass does not implement, or the check fails, the version is served through a
compiled ``tf.function`` instead, and a warning says so.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deep_learning_workflow.bundle import BundleError, read_bundle

from . import fastpath as fp
from .scoring import ModelVersion
from .validation import RangePolicy, RecordValidator

logger = logging.getLogger(__name__)

CUSTOM_LAYERS_MODULE = "deep_learning_workflow.pipelines.modelling.layers"
PARITY_RTOL = 1e-4
PARITY_ATOL = 1e-6


def _numpy(value: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def _lookup_index(layer: Any) -> fp.LookupIndex:
    """The index part of a StringLookup/IntegerLookup, read from the layer's own TF table."""
    if layer.invert:
        raise fp.UnsupportedLayer(f"{layer.name}: inverted lookup")
    if layer.num_oov_indices != 1:
        # 0 OOV indices makes TF fail on unseen values; more than 1 hashes them with FarmHash.
        raise fp.UnsupportedLayer(f"{layer.name}: num_oov_indices={layer.num_oov_indices}")
    layer._ensure_known_vocab_size()
    keys, values = layer.lookup_table.export()
    integer_keys = "int" in str(layer._key_dtype)
    keys = _numpy(keys).tolist()
    if not integer_keys:
        keys = [key.decode("utf-8") if isinstance(key, bytes) else str(key) for key in keys]
    table = dict(zip(keys, (int(v) for v in _numpy(values).tolist()), strict=True))
    if layer.mask_token is not None:
        mask_key = layer._mask_key
        mask_key = mask_key.decode("utf-8") if isinstance(mask_key, bytes) else mask_key
        table[int(mask_key) if integer_keys else str(mask_key)] = int(layer._mask_value)
    return fp.LookupIndex(table, int(layer._default_value), integer_keys=integer_keys)


def _lookup_encode(layer: Any) -> fp.Encode | None:
    if layer.output_mode == "int":
        return None
    if getattr(layer, "sparse", False):
        raise fp.UnsupportedLayer(f"{layer.name}: sparse output")
    depth = layer.max_tokens if layer.pad_to_max_tokens else layer.vocabulary_size()
    idf = _numpy(layer.idf_weights_const) if layer.output_mode == "tf_idf" else None
    return fp.Encode(layer.output_mode, int(depth), idf)


def _translate(operation: Any) -> list[Any]:
    """The NumPy op(s) of one Keras operation; a list is applied as a chain."""
    import keras

    config = operation.get_config() if hasattr(operation, "get_config") else {}
    kind = type(operation).__name__
    if type(operation).__module__ == CUSTOM_LAYERS_MODULE:
        if kind == "ImputeMissing":
            return [fp.Impute(config["fill_value"])]
        if kind == "MissingIndicator":
            return [fp.MissingFlag()]
        if kind == "ClipValues":
            return [fp.Clip(config["lower"], config["upper"])]
        raise fp.UnsupportedLayer(f"{operation.name}: custom layer {kind}")
    layers = keras.layers
    if getattr(operation, "quantization_mode", None) or getattr(operation, "lora_enabled", False):
        raise fp.UnsupportedLayer(f"{operation.name}: quantised or LoRA layer")
    if isinstance(operation, layers.Normalization):
        return [
            fp.Normalize(_numpy(operation.mean), _numpy(operation.variance), bool(operation.invert))
        ]
    if isinstance(operation, layers.StringLookup | layers.IntegerLookup):
        encode = _lookup_encode(operation)
        return [_lookup_index(operation), *([encode] if encode else [])]
    if isinstance(operation, layers.TextVectorization):
        if operation._ragged:
            raise fp.UnsupportedLayer(f"{operation.name}: ragged output")
        if callable(operation._standardize) or callable(operation._split):
            raise fp.UnsupportedLayer(f"{operation.name}: custom standardize/split callable")
        lookup_layer = operation._lookup_layer
        return [
            fp.Vectorize(
                standardize=operation._standardize,
                split=operation._split,
                ngrams=tuple(operation._ngrams) if operation._ngrams else None,
                lookup=_lookup_index(lookup_layer),
                output_mode=operation._output_mode,
                sequence_length=operation._output_sequence_length,
                encode=_lookup_encode(lookup_layer),
            )
        ]
    if isinstance(operation, layers.Embedding):
        return [fp.Embed(_numpy(operation.embeddings))]
    if isinstance(operation, layers.GlobalAveragePooling1D):
        if operation.data_format != "channels_last":
            raise fp.UnsupportedLayer(f"{operation.name}: data_format={operation.data_format}")
        return [fp.AveragePool1D(bool(operation.keepdims))]
    if isinstance(operation, layers.Concatenate):
        return [fp.Concat(int(operation.axis))]
    if isinstance(operation, layers.Average):
        return [fp.Mean()]
    if isinstance(operation, layers.Dense):
        bias = _numpy(operation.bias) if operation.use_bias else None
        return [fp.Dense(_numpy(operation.kernel), bias, config.get("activation"))]
    if isinstance(operation, layers.BatchNormalization):
        if operation.axis not in (-1, len(operation.input.shape) - 1):
            raise fp.UnsupportedLayer(f"{operation.name}: axis={operation.axis}")
        return [
            fp.BatchNorm(
                _numpy(operation.moving_mean),
                _numpy(operation.moving_variance),
                _numpy(operation.gamma) if operation.scale else None,
                _numpy(operation.beta) if operation.center else None,
                float(operation.epsilon),
            )
        ]
    if isinstance(
        operation, layers.Dropout | layers.GaussianDropout | layers.GaussianNoise | layers.Identity
    ):
        return [fp.Identity()]
    if isinstance(operation, layers.Activation):
        return [fp.Apply(config.get("activation"))]
    if isinstance(operation, layers.Flatten):
        return [fp.Flatten()]
    raise fp.UnsupportedLayer(f"{operation.name}: {kind}")


def compile_forward(model: Any) -> fp.Forward:
    """Compile a functional Keras model into the NumPy forward pass.

    Raises:
        UnsupportedLayer: naming the first layer (or setting) the NumPy pass does not implement.
    """
    import keras

    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise fp.UnsupportedLayer("not a functional Keras model")
    if len(model.outputs) != 1:
        raise fp.UnsupportedLayer(
            f"{len(model.outputs)} outputs (expected one probabilities output)"
        )
    counter = itertools.count()
    slots: dict[int, int] = {}

    def slot_of(tensor: Any) -> int:
        if id(tensor) not in slots:
            slots[id(tensor)] = next(counter)
        return slots[id(tensor)]

    struct = model._inputs_struct
    named = struct.items() if isinstance(struct, Mapping) else [(t.name, t) for t in model.inputs]
    inputs: dict[str, tuple[int, str]] = {}
    for name, tensor in named:
        if tensor.dtype == "string":
            kind = "string"
        elif "float" in str(tensor.dtype):
            kind = "numeric"
        else:
            raise fp.UnsupportedLayer(f"input '{name}' of dtype {tensor.dtype}")
        if len(tensor.shape) != 2 or tensor.shape[1] != 1:
            raise fp.UnsupportedLayer(
                f"input '{name}' of shape {tensor.shape} (expected (None, 1))"
            )
        inputs[name] = (slot_of(tensor), kind)

    steps: list[fp.Step] = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            operation = node.operation
            args = list(node.arguments.args)
            kwargs = dict(node.arguments.kwargs)
            if type(operation).__name__ == "NotEqual" and not isinstance(
                operation, keras.layers.Layer
            ):
                ops: list[Any] = [fp.NotEqual(args[1])]
                args = args[:1]
            else:
                ops = _translate(operation)
            mask_tensor = kwargs.pop("mask", None)
            kwargs.pop("training", None)
            if kwargs:
                raise fp.UnsupportedLayer(f"{operation.name}: call arguments {sorted(kwargs)}")
            arg_slots: list[int | list[int]] = []
            for arg in args:
                if isinstance(arg, list | tuple):
                    arg_slots.append([slots[id(t)] for t in arg])
                elif id(arg) in slots:
                    arg_slots.append(slots[id(arg)])
                else:
                    raise fp.UnsupportedLayer(f"{operation.name}: constant argument {arg!r}")
            mask = None
            if mask_tensor is not None:
                mask = slots[id(mask_tensor)]
                if not isinstance(ops[0], fp.AveragePool1D | fp.BatchNorm | fp.Identity):
                    raise fp.UnsupportedLayer(f"{operation.name}: masked input")
            if len(node.outputs) != 1:
                raise fp.UnsupportedLayer(f"{operation.name}: {len(node.outputs)} outputs")
            output = slot_of(node.outputs[0])
            current: list[int | list[int]] = arg_slots
            for position, op in enumerate(ops):
                # A layer made of several ops (a lookup and its encoding) chains them through fresh slots.
                target = output if position == len(ops) - 1 else next(counter)
                steps.append(
                    fp.Step(op, current, mask if position == 0 else None, [target], operation.name)
                )
                current = [target]
    output = slots[id(model.outputs[0])]
    return fp.Forward(inputs, steps, output, next(counter))


def _step_inputs(step: fp.Step) -> set[int]:
    return set(fp.step_inputs(step))


def _consumers(steps: list[fp.Step]) -> dict[int, list[fp.Step]]:
    consumers: dict[int, list[fp.Step]] = {}
    for step in steps:
        for slot in fp.step_inputs(step):
            consumers.setdefault(slot, []).append(step)
    return consumers


def _tabulate_lookups(forward: fp.Forward) -> fp.Forward:
    """Replace each lookup and the layers that depend only on its index by a table per exit tensor."""
    steps = list(forward.steps)
    index = 0
    while index < len(steps):
        step = steps[index]
        if type(step.op) is not fp.LookupIndex:
            index += 1
            continue
        members: list[fp.Step] = []
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
        tabulated = fp.Step(fp.TabulatedLookup(step.op, tables), step.args, None, exits, step.name)
        steps = (
            steps[:index] + [tabulated] + [s for s in steps[index + 1 :] if id(s) not in member_ids]
        )
        index += 1
    return fp.Forward(forward.inputs, steps, forward.output, forward.slots)


def _drop_identities(forward: fp.Forward) -> fp.Forward:
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
        if (
            type(step.op) is fp.Identity
            and len(step.args) == 1
            and not isinstance(step.args[0], list)
        ):
            alias[step.outputs[0]] = step.args[0]
            continue
        steps.append(step)
    return fp.Forward(forward.inputs, steps, resolve(forward.output), forward.slots)


def _fold_affine(forward: fp.Forward) -> fp.Forward:
    """Fold a BatchNormalization or an Activation into the linear Dense layer that alone feeds it."""
    steps = list(forward.steps)
    changed = True
    while changed:
        changed = False
        consumers = _consumers(steps)
        for index, step in enumerate(steps):
            op = step.op
            if (
                type(op) is not fp.Dense
                or op.activation_name != "linear"
                or step.outputs[0] == forward.output
            ):
                continue
            readers = consumers.get(step.outputs[0], [])
            if len(readers) != 1:
                continue
            after = readers[0]
            if type(after.op) is fp.BatchNorm:
                bias = (
                    op.bias if op.bias is not None else np.zeros(op.kernel.shape[1], dtype=fp.FLOAT)
                )
                folded = fp.Dense(
                    op.kernel * after.op.scale, bias * after.op.scale + after.op.shift, "linear"
                )
            elif type(after.op) is fp.Apply:
                folded = fp.Dense(op.kernel, op.bias, after.op.activation_name)
            else:
                continue
            steps[index] = fp.Step(
                folded, step.args, None, after.outputs, f"{step.name}+{after.name}"
            )
            steps.remove(after)
            changed = True
            break
    return fp.Forward(forward.inputs, steps, forward.output, forward.slots)


def _merge_parallel_dense(forward: fp.Forward) -> fp.Forward:
    """Run the ``Dense`` layers that all read one ``Concatenate`` (the first layers of an ensemble's heads) as one
    ``Dense`` with their kernels side by side, each taking its :class:`~.fastpath.Columns` of the result; the one
    layer then folds like a single model's (:func:`_fold_first_layer`)."""
    steps = forward.steps
    consumers = _consumers(steps)
    for concat in steps:
        if type(concat.op) is not fp.Concat or concat.outputs[0] == forward.output:
            continue
        readers = consumers.get(concat.outputs[0], [])
        if len(readers) < 2 or any(
            type(r.op) is not fp.Dense
            or r.args != [concat.outputs[0]]
            or r.op.activation_name in {"softmax", "log_softmax"}
            or r.op.activation_name != readers[0].op.activation_name
            for r in readers
        ):
            continue
        merged_slot = forward.slots
        biases = [
            r.op.bias if r.op.bias is not None else np.zeros(r.op.kernel.shape[1], dtype=fp.FLOAT)
            for r in readers
        ]
        merged = fp.Step(
            fp.Dense(
                np.hstack([r.op.kernel for r in readers]),
                np.concatenate(biases),
                readers[0].op.activation_name,
            ),
            [concat.outputs[0]],
            None,
            [merged_slot],
            "+".join(r.name for r in readers),
        )
        slices, start = [], 0
        for reader in readers:
            stop = start + reader.op.kernel.shape[1]
            slices.append(
                fp.Step(fp.Columns(start, stop), [merged_slot], None, reader.outputs, reader.name)
            )
            start = stop
        first = steps.index(readers[0])
        kept = [s for s in steps if not any(s is r for r in readers)]
        position = kept.index(steps[first - 1]) + 1 if first else 0
        kept = [*kept[:position], merged, *slices, *kept[position:]]
        return fp.Forward(forward.inputs, kept, forward.output, forward.slots + 1)
    return forward


_ELEMENTWISE = (fp.Impute, fp.Clip, fp.MissingFlag, fp.Identity)


def _numeric_chain(
    slot: int, producer: dict[int, fp.Step], consumers: dict[int, list[fp.Step]], numeric: set[int]
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
        if not (isinstance(op, _ELEMENTWISE) or (isinstance(op, fp.Normalize) and op.elementwise)):
            return None
        if current != slot and len(consumers.get(current, [])) != 1:
            return None
        ops.insert(0, op)
        chain_steps.append(step)
        current = step.args[0]
    return current, ops, chain_steps


def _fold_first_layer(forward: fp.Forward, probe: dict[str, list[Any]]) -> fp.Forward:
    """Replace ``Dense(Concatenate(parts))`` by a :class:`FirstLayer` that folds the kernel into the parts."""
    steps = forward.steps
    consumers = _consumers(steps)
    producer = {slot: step for step in steps for slot in step.outputs}
    for dense in steps:
        if (
            type(dense.op) is not fp.Dense
            or len(dense.args) != 1
            or isinstance(dense.args[0], list)
        ):
            continue
        concat = producer.get(dense.args[0])
        if concat is None or type(concat.op) is not fp.Concat or concat.op.axis not in (-1, 1):
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
            and type(step.op) is fp.TabulatedLookup
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
        other_weights.append(rows[position])
    if not lookups and not chains:
        return forward
    width = kernel.shape[1]
    layer = fp.FirstLayer(
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
    step = fp.Step(
        layer,
        [*lookup_args, *numeric_args, *other_args],
        None,
        dense.outputs,
        f"{concat.name}+{dense.name}",
    )
    position = steps.index(concat)
    kept = [s for s in steps[:position] if id(s) not in removed]
    kept += [step] + [s for s in steps[position:] if id(s) not in removed]
    return fp.Forward(forward.inputs, kept, forward.output, forward.slots)


def optimise(forward: fp.Forward, probe: dict[str, list[Any]]) -> fp.Forward:
    """The compile-time rewrites that make single records cheap (each keeps the outputs, up to float rounding)."""
    forward = _tabulate_lookups(forward)
    forward = _drop_identities(forward)
    forward = _fold_affine(forward)
    forward = _merge_parallel_dense(forward)
    return _fold_first_layer(forward, probe)


class TensorFlowForward:
    """The fallback: the Keras model traced once into a ``tf.function`` over (n, 1) input tensors."""

    def __init__(self, model: Any, kinds: Mapping[str, str]) -> None:
        import tensorflow as tf

        self.kinds = dict(kinds)
        signature = {
            name: tf.TensorSpec(
                [None, 1], tf.string if kind != "numeric" else tf.float32, name=name
            )
            for name, kind in self.kinds.items()
        }
        self._function = tf.function(
            lambda inputs: model(inputs, training=False), input_signature=[signature]
        )

    def __call__(self, columns: Mapping[str, Any]) -> np.ndarray:
        feed = {
            name: np.asarray(
                columns[name], dtype=np.float32 if kind == "numeric" else object
            ).reshape(-1, 1)
            for name, kind in self.kinds.items()
        }
        return self._function(feed).numpy()


def probe_columns(validator: RecordValidator, metadata: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Input columns covering what requests can hold: each category, unseen and missing values, range ends, text."""
    schema = metadata["schema"]
    columns: dict[str, list[Any]] = {}
    rows = 12
    for column, kind in validator.kinds.items():
        spec = schema[column]
        if kind == "numeric":
            low = float(spec.get("min") if spec.get("min") is not None else 0.0)
            high = float(spec.get("max") if spec.get("max") is not None else 1.0)
            span = high - low
            values = [low, high, (low + high) / 2, math.nan, low - span / 2, high + span / 2, 0.0]
        elif kind == "categorical":
            values = [*[str(c) for c in spec.get("categories") or []][:8], "", "an unseen category"]
        else:
            values = [
                "Great product, would BUY again!",
                "",
                "terrible... never again",
                "ok\tfine  stuff",
            ]
        columns[column] = [values[i % len(values)] for i in range(rows)]
    return columns


def check_parity(
    model: Any, forward: Any, columns: Mapping[str, list[Any]], kinds: Mapping[str, str]
) -> float:
    """How far ``forward`` strays beyond rtol 1e-4 / atol 1e-6 from the Keras model on the given columns, scored
    as a batch and one row at a time: 0.0 within tolerance, ``inf`` when the NaN patterns differ."""
    feed = {
        name: np.asarray(columns[name], dtype=np.float32 if kind == "numeric" else object).reshape(
            -1, 1
        )
        for name, kind in kinds.items()
    }
    expected = np.asarray(model(feed, training=False), dtype=np.float64)
    actual = np.asarray(forward(dict(columns)), dtype=np.float64)
    rows = len(next(iter(columns.values())))
    single = np.vstack(
        [
            forward({name: column[i : i + 1] for name, column in columns.items()})
            for i in range(rows)
        ]
    )
    actual = np.vstack([actual, single.astype(np.float64)])
    expected = np.vstack([expected, expected])
    if expected.shape != actual.shape or not np.array_equal(np.isnan(expected), np.isnan(actual)):
        return math.inf
    finite = ~np.isnan(expected)
    if not finite.any():
        return 0.0
    excess = np.abs(actual[finite] - expected[finite]) - (
        PARITY_ATOL + PARITY_RTOL * np.abs(expected[finite])
    )
    return float(max(excess.max(), 0.0))


def load_version(
    path: str | Path,
    range_policy: RangePolicy = "margin",
    range_margin: float = 0.5,
    engine: str = "auto",
) -> ModelVersion:
    """Verify a serving bundle's manifest, load its model and compile the fast path.

    Args:
        path: the bundle folder.
        range_policy: numeric range policy of the validator.
        range_margin: its margin.
        engine: ``auto`` (NumPy fast path, ``tf.function`` when the model cannot be compiled), ``numpy`` (fail
            instead of falling back) or ``tf.function``.

    Raises:
        BundleError: when the bundle is missing, tampered with, or its model does not match its metadata.
        UnsupportedLayer: with ``engine="numpy"`` when the model cannot be compiled.
    """
    bundle = read_bundle(path, verify=True)
    validator = RecordValidator(
        bundle.features, bundle.schema, bundle.metadata.get("key"), range_policy, range_margin
    )
    model = bundle.model
    struct = model._inputs_struct
    names = list(struct) if isinstance(struct, Mapping) else [t.name for t in model.inputs]
    if sorted(names) != sorted(bundle.features):
        raise BundleError(
            f"The model of '{path}' takes the inputs {sorted(names)} but bundle.json lists {sorted(bundle.features)}."
        )
    kinds = {
        name: "numeric" if kind == "numeric" else "string" for name, kind in validator.kinds.items()
    }
    forward: Any = None
    chosen = "tf.function"
    if engine in {"auto", "numpy"}:
        try:
            probe = probe_columns(validator, bundle.metadata)
            forward = optimise(compile_forward(model), probe)
            excess = check_parity(model, forward, probe, kinds)
            if excess > 0:
                raise fp.UnsupportedLayer(
                    f"the NumPy pass differs from the Keras model by {excess:.3g} on probes"
                )
            chosen = "numpy"
        except Exception as reason:  # any failure to compile means: serve through TensorFlow
            if engine == "numpy":
                raise
            logger.warning(
                "Model %s: serving through tf.function, not the NumPy fast path: %s", path, reason
            )
            forward = None
    if forward is None:
        forward = TensorFlowForward(model, kinds)
    logger.info("Loaded model version %s from %s (engine: %s).", bundle.model_version, path, chosen)
    return ModelVersion(
        version=bundle.model_version,
        classes=bundle.classes,
        positive_class=bundle.positive_class,
        threshold=bundle.decision_threshold,
        validator=validator,
        forward=forward,
        engine=chosen,
        metadata=bundle.metadata,
        path=str(path),
    )
