"""The project's own Keras preprocessing layers.

Each layer is a fixed, element-wise function of one numeric column whose fitted values (learned on the training
split by :func:`deep_learning_workflow.pipelines.modelling.training.fit_preprocessing`) live in the layer's
config, so a saved ``.keras`` model carries them and a NumPy re-implementation can read them from
``model.get_layer(name).get_config()``:

- ``ImputeMissing(fill_value)``: ``where(isnan(x), fill_value, x)``
- ``MissingIndicator()``: ``float32(isnan(x))``
- ``ClipValues(lower, upper)``: ``clip(x, lower, upper)``

Scaling uses keras ``Normalization`` with fixed ``mean``/``variance``: ``(x - mean) / max(sqrt(variance), 1e-7)``
(min-max scaling is the same layer with ``mean = min`` and ``variance = (max - min) ** 2``).

Importing this module registers the layers with Keras; it must be imported before a saved model is loaded, which
:class:`deep_learning_workflow.datasets.KerasModelDataset` and :func:`load_keras_model` guarantee.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "deep_learning_workflow"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImputeMissing(keras.layers.Layer):
    """Replaces NaN with a value learned on the training split (its median or mean)."""

    def __init__(self, fill_value: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fill_value = float(fill_value)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        return ops.where(ops.isnan(inputs), ops.cast(self.fill_value, self.compute_dtype), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MissingIndicator(keras.layers.Layer):
    """1.0 where the value is missing (NaN), else 0.0."""

    def call(self, inputs):
        return ops.cast(ops.isnan(ops.cast(inputs, self.compute_dtype)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipValues(keras.layers.Layer):
    """Clips values to bounds learned on the training split (quantiles), so outliers cannot dominate a unit."""

    def __init__(self, lower: float, upper: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not lower <= upper:
            raise ValueError(f"ClipValues needs lower <= upper, got {lower} > {upper}.")
        self.lower = float(lower)
        self.upper = float(upper)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        return ops.clip(inputs, self.lower, self.upper)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lower": self.lower, "upper": self.upper}


CUSTOM_OBJECTS = {
    f"{PACKAGE}>{layer.__name__}": layer for layer in (ImputeMissing, MissingIndicator, ClipValues)
}
