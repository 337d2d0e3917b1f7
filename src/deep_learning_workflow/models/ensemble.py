"""The seed ensemble: one Keras model averaging the probabilities of several trained heads.

Every seed's preprocessing is adapted on the same training rows, so the ensemble keeps one copy of the
preprocessing layers and feeds their outputs to each seed's head; ``keras.layers.Average`` (named
``probabilities``, the model's output like a single model's) takes the mean of the heads' probabilities. The graph
stays flat: the layers of head ``i`` are copies of the trained ones named ``member<i>_<name>`` (``member1_hidden_1``
...), so the model saves with ``safe_mode=True``, and whatever walks a model's layers (the service's NumPy fast
path, pruning, transfer learning) sees ordinary layers. :func:`member_model` takes one head back out, with its
layers' own names. Keras is imported inside the functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

OUTPUT = "probabilities"
_MEMBER = re.compile(r"^member(\d+)_(.+)$")
# What an ``operation_for`` of :func:`_replay` returns to keep a node's own output tensors.
_KEEP = object()


def member_prefix(index: int) -> str:
    """The name prefix of the layers of member ``index`` (0-based): ``member1_`` for the first."""
    return f"member{index + 1}_"


def _renamed_copy(layer: Any, name: str) -> Any:
    """A new layer of the same kind and configuration as ``layer``, called ``name`` (weights set after building)."""
    return type(layer).from_config({**layer.get_config(), "name": name})


def _replay(
    model: Any,
    values: dict[int, Any],
    operation_for: Callable[[Any], Any | None],
) -> dict[int, Any]:
    """Run ``model``'s graph on new tensors: each node's operation is replaced by ``operation_for(operation)``.

    Args:
        model: a functional Keras model.
        values: id of a tensor of ``model``'s graph -> the tensor standing for it (at least the inputs).
        operation_for: the operation to call for a node, ``_KEEP`` to keep the node's own outputs, or None to
            skip the node (its outputs stay unknown).

    Returns:
        ``values`` extended with the outputs of every node that was run. Copies made by ``operation_for`` get
        the weights of the operation they replace once built.
    """
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(tensor) not in values for tensor in node.input_tensors):
                continue
            operation = operation_for(node.operation)
            if operation is None:
                continue
            if operation is _KEEP:
                values.update({id(tensor): tensor for tensor in node.outputs})
                continue
            args, kwargs = node.arguments.fill_in(values)
            outputs = operation(*args, **kwargs)
            if operation is not node.operation and node.operation.weights:
                operation.set_weights(node.operation.get_weights())
            flat = outputs if isinstance(outputs, list | tuple) else [outputs]
            for tensor, value in zip(node.outputs, flat, strict=True):
                values[id(tensor)] = value
    return values


def build_ensemble(preprocessor: Any, heads: Sequence[Any], name: str = "ensemble") -> Any:
    """One model taking raw records: the shared preprocessing, each head, the mean of their probabilities.

    Args:
        preprocessor: raw records -> the head's inputs (a functional model; its layers are used as they are).
        heads: the trained heads (functional models from the preprocessor's outputs to probabilities), at
            least two, each trained on the outputs of a preprocessing equal to ``preprocessor``.
        name: the model's name.

    Returns:
        An uncompiled functional ``keras.Model`` whose output layer ``probabilities`` averages the heads'.

    Raises:
        ValueError: with fewer than two heads, or a head whose inputs are not the preprocessor's outputs.
    """
    import keras

    if len(heads) < 2:
        raise ValueError(f"An ensemble needs at least two heads, got {len(heads)}.")
    prepared = preprocessor.output
    outputs = []
    for index, head in enumerate(heads):
        struct = head._inputs_struct
        takes = (
            {key: tuple(t.shape[1:]) for key, t in struct.items()}
            if isinstance(struct, Mapping)
            else None
        )
        gives = {key: tuple(t.shape[1:]) for key, t in prepared.items()}
        if takes != gives:
            raise ValueError(
                f"Head {index + 1} takes {takes}, but the preprocessing gives {gives}; the heads must come from "
                "the same configuration."
            )
        prefix = member_prefix(index)
        values = {id(tensor): prepared[key] for key, tensor in struct.items()}
        values = _replay(
            head, values, lambda layer, prefix=prefix: _renamed_copy(layer, prefix + layer.name)
        )
        output = values[id(head.outputs[0])]
        if len(output.shape) == 3:
            # A TabM head gives each of its members' probabilities; the seed's own model averages them first.
            output = keras.layers.GlobalAveragePooling1D(name=prefix + OUTPUT)(output)
        outputs.append(output)
    averaged = keras.layers.Average(name=OUTPUT)(outputs)
    return keras.Model(inputs=preprocessor.input, outputs=averaged, name=name)


def member_count(model: Any) -> int:
    """How many heads ``model`` averages: the number of ``member<i>_`` layer groups, 1 for a single model."""
    members = {
        int(match.group(1)) for layer in model.layers if (match := _MEMBER.match(layer.name))
    }
    return len(members) if members else 1


def is_ensemble(model: Any) -> bool:
    """Whether ``model`` is a seed ensemble built by :func:`build_ensemble`."""
    return member_count(model) > 1


def member_model(model: Any, index: int) -> Any:
    """Member ``index`` (0-based) of an ensemble as a single model: raw records -> that head's probabilities.

    The preprocessing layers are the ensemble's own (shared, not copied); the head's layers are copies with the
    names a single model's layers have (``hidden_1``, ``probabilities`` ...) and the member's weights. A single
    model is returned as it is for index 0.

    Raises:
        ValueError: when ``index`` is not one of the model's members.
    """
    import keras

    count = member_count(model)
    if not 0 <= index < count:
        raise ValueError(f"The model has {count} member(s); there is no member {index + 1}.")
    if not is_ensemble(model):
        return model
    prefix = member_prefix(index)

    def operation_for(layer: Any) -> Any | None:
        match = _MEMBER.match(layer.name)
        if match is None:
            # Preprocessing runs as it is; the ensemble's Average is skipped.
            return None if layer.name == OUTPUT else _KEEP
        if not layer.name.startswith(prefix):
            return None
        return _renamed_copy(layer, layer.name.removeprefix(prefix))

    values = {id(tensor): tensor for tensor in model.inputs}
    values = _replay(model, values, operation_for)
    output = model.get_layer(prefix + OUTPUT).output
    return keras.Model(inputs=model.input, outputs=values[id(output)], name=f"member{index + 1}")


def members(model: Any) -> list[Any]:
    """Every member of ``model`` as a single model (:func:`member_model`); ``[model]`` for a single model."""
    return [member_model(model, index) for index in range(member_count(model))]


def check_shared_preprocessing(states: Sequence[Mapping[str, Any]]) -> None:
    """Check that every seed's fitted preprocessing state is the same (it is fitted on the same rows).

    Raises:
        ValueError: when two states differ, so one shared preprocessing would not be each seed's own.
    """
    for index, state in enumerate(states[1:], start=2):
        if state != states[0]:
            raise ValueError(
                f"The preprocessing fitted for seed model {index} differs from the first one's; the seed models "
                "must be fitted on the same training rows to share one preprocessing in the ensemble."
            )
