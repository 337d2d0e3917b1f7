"""Translate a loaded functional Keras model into a :class:`~.forward.Forward` of NumPy steps.

The graph is walked in execution order; each layer becomes its NumPy op(s) from :mod:`.layers` (found by the
layer's registered name), and a functional model used as a layer (a preprocessor, an ensemble member's head) is
inlined. The walk reads the functional graph (``_nodes_by_depth`` and each node's operation, arguments and
outputs), which Keras keeps private; everything a layer holds is read through its public state.

Keras is imported inside the functions: only compiling a model pays for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from .activations import UnsupportedLayer
from .forward import Forward, Step
from .layers import layer_ops
from .ops import AveragePool1D, BatchNorm, Identity, NotEqual

MASKABLE = (AveragePool1D, BatchNorm, Identity)


def input_kinds(model: Any) -> dict[str, str]:
    """Each input column of the model and its kind: ``numeric`` (float, shape (None, 1)) or ``string``.

    Raises:
        UnsupportedLayer: for an input of another dtype or shape.
    """
    struct = model.input
    named = struct.items() if isinstance(struct, Mapping) else [(t.name, t) for t in model.inputs]
    kinds = {}
    for name, tensor in named:
        if tensor.dtype == "string":
            kinds[name] = "string"
        elif "float" in str(tensor.dtype):
            kinds[name] = "numeric"
        else:
            raise UnsupportedLayer(f"input '{name}' of dtype {tensor.dtype}")
        if len(tensor.shape) != 2 or tensor.shape[1] != 1:
            raise UnsupportedLayer(f"input '{name}' of shape {tensor.shape} (expected (None, 1))")
    return kinds


def _is_functional(operation: Any) -> bool:
    import keras

    return isinstance(operation, keras.Model) and hasattr(operation, "_nodes_by_depth")


def _nodes(model: Any) -> Iterator[Any]:
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation and not node.is_input:
                yield node


class _Graph:
    """Steps and value slots collected while walking a model (and the models nested in it)."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.steps: list[Step] = []

    def new_slot(self) -> int:
        return next(self.counter)

    def emit(self, model: Any, scope: dict[int, int]) -> None:
        """Append the steps of ``model``'s graph; ``scope`` maps tensor ids to slots (inputs given)."""
        import keras

        for node in _nodes(model):
            operation = node.operation
            args = list(node.arguments.args)
            kwargs = dict(node.arguments.kwargs)
            if _is_functional(operation):
                self._inline(operation, node, args, scope)
                continue
            if type(operation).__name__ == "NotEqual" and not isinstance(
                operation, keras.layers.Layer
            ):
                ops: list[Any] = [NotEqual(args[1])]  # the mask Embedding(mask_zero=True) records
                args = args[:1]
            else:
                ops = layer_ops(operation, keras.saving.get_registered_name(type(operation)))
            mask_tensor = kwargs.pop("mask", None)
            kwargs.pop("training", None)
            if kwargs:
                raise UnsupportedLayer(f"{operation.name}: call arguments {sorted(kwargs)}")
            current = [self._argument(operation, arg, scope) for arg in args]
            mask = None
            if mask_tensor is not None:
                mask = scope[id(mask_tensor)]
                if not isinstance(ops[0], MASKABLE):
                    raise UnsupportedLayer(f"{operation.name}: masked input")
            if len(node.outputs) != 1:
                raise UnsupportedLayer(f"{operation.name}: {len(node.outputs)} outputs")
            output = scope.setdefault(id(node.outputs[0]), self.new_slot())
            for position, op in enumerate(ops):
                # A layer made of several ops (a lookup and its encoding) chains them through fresh slots.
                target = output if position == len(ops) - 1 else self.new_slot()
                self.steps.append(
                    Step(op, current, mask if position == 0 else None, [target], operation.name)
                )
                current = [target]

    @staticmethod
    def _argument(operation: Any, arg: Any, scope: dict[int, int]) -> int | list[int]:
        if isinstance(arg, list | tuple):
            return [scope[id(tensor)] for tensor in arg]
        if id(arg) in scope:
            return scope[id(arg)]
        raise UnsupportedLayer(f"{operation.name}: constant argument {arg!r}")

    def _inline(self, model: Any, node: Any, args: list[Any], scope: dict[int, int]) -> None:
        """A functional model called as a layer: its graph in a scope of its own, wired to the call's tensors."""
        import keras

        outer = keras.tree.flatten(args[0] if len(args) == 1 else args)
        inner = keras.tree.flatten(model.input)
        if len(outer) != len(inner):
            raise UnsupportedLayer(
                f"{model.name}: called with {len(outer)} inputs, has {len(inner)}"
            )
        nested = {id(i): scope[id(o)] for i, o in zip(inner, outer, strict=True)}
        self.emit(model, nested)
        for outside, inside in zip(node.outputs, model.outputs, strict=True):
            scope[id(outside)] = nested[id(inside)]


def compile_forward(model: Any) -> Forward:
    """Translate a functional Keras model (raw columns in, one probabilities output) into NumPy steps.

    Raises:
        UnsupportedLayer: naming the first layer (or setting) the NumPy pass does not implement.
    """
    if not _is_functional(model):
        raise UnsupportedLayer("not a functional Keras model")
    if len(model.outputs) != 1:
        raise UnsupportedLayer(f"{len(model.outputs)} outputs (expected one probabilities output)")
    graph = _Graph()
    kinds = input_kinds(model)
    struct = model.input
    tensors = struct if isinstance(struct, Mapping) else {t.name: t for t in model.inputs}
    scope: dict[int, int] = {}
    inputs = {}
    for name, kind in kinds.items():
        scope[id(tensors[name])] = slot = graph.new_slot()
        inputs[name] = (slot, kind)
    graph.emit(model, scope)
    return Forward(inputs, graph.steps, scope[id(model.outputs[0])], graph.new_slot())
