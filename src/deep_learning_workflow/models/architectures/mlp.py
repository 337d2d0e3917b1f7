"""``mlp``: dense hidden layers (optionally batch-normalised, with dropout) and a softmax output layer."""

from __future__ import annotations

from typing import Any

from deep_learning_workflow.models.schema import ModellingParams

from . import Head


def regularizer(params: ModellingParams) -> Any:
    """The L1/L2 penalty of the dense kernels, or None."""
    import keras

    return keras.regularizers.L1L2(l1=params.l1, l2=params.l2) if params.l1 or params.l2 else None


def dense_stack(params: ModellingParams, n_classes: int) -> list[Any]:
    """``hidden_<i>`` (``batch_norm_<i>``, ``activation_<i>``), ``dropout_<i>`` layers, then ``probabilities``."""
    import keras

    penalty = regularizer(params)
    stack: list[Any] = []
    for index, units in enumerate(params.hidden_units, start=1):
        if params.batch_norm:
            stack.append(
                keras.layers.Dense(
                    units, use_bias=False, kernel_regularizer=penalty, name=f"hidden_{index}"
                )
            )
            stack.append(keras.layers.BatchNormalization(name=f"batch_norm_{index}"))
            stack.append(keras.layers.Activation(params.activation, name=f"activation_{index}"))
        else:
            stack.append(
                keras.layers.Dense(
                    units,
                    activation=params.activation,
                    kernel_regularizer=penalty,
                    name=f"hidden_{index}",
                )
            )
        if params.dropout > 0:
            stack.append(keras.layers.Dropout(params.dropout, name=f"dropout_{index}"))
    stack.append(keras.layers.Dense(n_classes, activation="softmax", name="probabilities"))
    return stack


def chain(layers: list[Any]) -> Any:
    """A callable applying ``layers`` in order."""

    def apply(tensor: Any) -> Any:
        for layer in layers:
            tensor = layer(tensor)
        return tensor

    return apply


def build_head(params: ModellingParams, n_numeric: int, n_classes: int) -> Head:
    """The plain MLP: the scaled numeric values join the other features as they are."""
    return Head(None, chain(dense_stack(params, n_classes)), 1)
