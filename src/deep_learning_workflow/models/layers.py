"""The project's own Keras layers: fixed preprocessing of numeric columns and the trainable layers of the families.

Each preprocessing layer is a fixed, element-wise function of one numeric column whose fitted values (learned on the training
split by :func:`deep_learning_workflow.models.preprocessing.fit_preprocessing`) live in the layer's
config, so a saved ``.keras`` model carries them and a NumPy re-implementation can read them from
``model.get_layer(name).get_config()``:

- ``ImputeMissing(fill_value)``: ``where(isnan(x), fill_value, x)``
- ``MissingIndicator()``: ``float32(isnan(x))``
- ``ClipValues(lower, upper)``: ``clip(x, lower, upper)``
- ``QuantileNormal(knots, scores)``: ``interp(x, knots, scores)`` (linear between knots, flat outside them)

Scaling uses keras ``Normalization`` with fixed ``mean``/``variance``: ``(x - mean) / max(sqrt(variance), 1e-7)``
(min-max scaling is the same layer with ``mean = min`` and ``variance = (max - min) ** 2``).

The trainable layers keep their maths in ``call`` and their settings in a plain config, so a NumPy
re-implementation needs only ``get_config()`` and ``get_weights()``:

- ``PeriodicEmbedding`` (``plr_mlp``, Gorishniy et al. 2022), on ``x`` of shape (rows, n):
  ``v = 2 * pi * frequencies[j] * x[:, j]`` (k values per column j), ``e_j = relu([cos v, sin v] @ kernel[j] +
  bias[j])``, output ``concat_j e_j`` of shape (rows, n * d). Weights ``frequencies (n, k)``, ``kernel (n, 2k, d)``,
  ``bias (n, d)``; with ``lite`` one linear map is shared by the columns: ``kernel (2k, d)``, ``bias (d,)``.
- ``EnsembleDense`` (``tabm``, BatchEnsemble), on ``x`` of shape (rows, members, f): member i computes
  ``activation(((x_i * r_i) @ kernel) * s_i + bias_i)``. Weights ``kernel (f, units)`` shared, ``r (members, f)``,
  ``s (members, units)``, ``bias (members, units)``.
- ``MemberHeads`` (``tabm``): member i's own output layer, ``softmax(x_i @ kernel[i] + bias[i])``, shape
  (rows, members, classes). Weights ``kernel (members, f, classes)``, ``bias (members, classes)``.

Importing this module registers the layers with Keras; it must be imported before a saved model is loaded, which
:class:`deep_learning_workflow.datasets.KerasModelDataset` and :func:`load_keras_model` guarantee.
"""

from __future__ import annotations

import math
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileNormal(keras.layers.Layer):
    """Maps a value to a normal score through its rank among the training values (a quantile transform).

    ``knots`` are distinct training quantiles in increasing order and ``scores`` the standard-normal quantile of
    each knot's mid rank; between knots the score is interpolated linearly, outside them it is the end score. A
    skewed or heavy-tailed column comes out about standard normal, the preprocessing Gorishniy et al. use for
    MLPs; a column of few distinct values maps each value to the normal score of its mid rank.
    """

    def __init__(self, knots: list[float], scores: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        knots, scores = [float(k) for k in knots], [float(s) for s in scores]
        if not knots or len(knots) != len(scores):
            raise ValueError(
                f"QuantileNormal needs as many scores as knots (at least one), got {len(knots)} knots and "
                f"{len(scores)} scores."
            )
        if any(b <= a for a, b in zip(knots, knots[1:], strict=False)):
            raise ValueError("QuantileNormal needs strictly increasing knots.")
        self.knots, self.scores = knots, scores

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        result = ops.full_like(inputs, self.scores[0])
        if len(self.knots) == 1:
            return result
        # A sum of clipped ramps, one per interval between knots: piecewise linear, flat outside the knots.
        starts = ops.convert_to_tensor(self.knots[:-1], dtype=self.compute_dtype)
        widths = ops.convert_to_tensor(
            [b - a for a, b in zip(self.knots, self.knots[1:], strict=False)], self.compute_dtype
        )
        rises = ops.convert_to_tensor(
            [b - a for a, b in zip(self.scores, self.scores[1:], strict=False)], self.compute_dtype
        )
        ramps = ops.clip((inputs - starts) / widths, 0.0, 1.0)
        return result + ops.sum(ramps * rises, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "knots": self.knots, "scores": self.scores}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PeriodicEmbedding(keras.layers.Layer):
    """Periodic embeddings of n numeric columns: learned frequencies, cos/sin, a linear map per column, ReLU."""

    def __init__(
        self,
        n_features: int,
        frequencies: int,
        embedding_dim: int,
        sigma: float,
        lite: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_features = int(n_features)
        self.frequencies = int(frequencies)
        self.embedding_dim = int(embedding_dim)
        self.sigma = float(sigma)
        self.lite = bool(lite)

    def build(self, input_shape):
        n, k, d = self.n_features, self.frequencies, self.embedding_dim
        bound = 1.0 / math.sqrt(2 * k)
        linear = keras.initializers.RandomUniform(-bound, bound)
        self.frequency = self.add_weight(
            shape=(n, k),
            initializer=keras.initializers.RandomNormal(0.0, self.sigma),
            name="frequencies",
        )
        self.kernel = self.add_weight(
            shape=(2 * k, d) if self.lite else (n, 2 * k, d), initializer=linear, name="kernel"
        )
        self.bias = self.add_weight(
            shape=(d,) if self.lite else (n, d), initializer=linear, name="bias"
        )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        angles = 2.0 * math.pi * ops.expand_dims(inputs, -1) * self.frequency
        periodic = ops.concatenate([ops.cos(angles), ops.sin(angles)], axis=-1)
        if self.lite:
            linear = ops.matmul(periodic, self.kernel)
        else:
            linear = ops.einsum("bnf,nfd->bnd", periodic, self.kernel)
        embedded = ops.relu(linear + self.bias)
        return ops.reshape(embedded, (-1, self.n_features * self.embedding_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_features * self.embedding_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "n_features": self.n_features,
            "frequencies": self.frequencies,
            "embedding_dim": self.embedding_dim,
            "sigma": self.sigma,
            "lite": self.lite,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class EnsembleDense(keras.layers.Layer):
    """A Dense layer shared by k members, each with its own input and output scaling and its own bias."""

    def __init__(
        self,
        units: int,
        members: int,
        activation: str | None = None,
        random_signs: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.members = int(members)
        self.activation_name = activation
        self.activation = keras.activations.get(activation)
        self.random_signs = bool(random_signs)

    def build(self, input_shape):
        features = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(features, self.units), initializer="glorot_uniform", name="kernel"
        )
        # The first layer's input adapters start at random signs so the members differ from the first step
        # (TabM); the others start at 1.
        self.r = self.add_weight(
            shape=(self.members, features),
            initializer=_random_signs if self.random_signs else "ones",
            name="r",
        )
        self.s = self.add_weight(shape=(self.members, self.units), initializer="ones", name="s")
        self.bias = self.add_weight(
            shape=(self.members, self.units), initializer="zeros", name="bias"
        )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        return self.activation(ops.matmul(inputs * self.r, self.kernel) * self.s + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "members": self.members,
            "activation": self.activation_name,
            "random_signs": self.random_signs,
        }


def _random_signs(shape: Any, dtype: Any = None) -> Any:
    return ops.sign(keras.random.uniform(shape, -1.0, 1.0, dtype=dtype or "float32"))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MemberHeads(keras.layers.Layer):
    """One softmax output layer per member: (rows, members, f) -> (rows, members, classes)."""

    def __init__(self, classes: int, members: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classes = int(classes)
        self.members = int(members)

    def build(self, input_shape):
        features = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(self.members, features, self.classes),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.members, self.classes), initializer="zeros", name="bias"
        )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        return ops.softmax(ops.einsum("bmf,mfc->bmc", inputs, self.kernel) + self.bias, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, self.classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "classes": self.classes, "members": self.members}


@keras.saving.register_keras_serializable(package=PACKAGE)
def mean_member_crossentropy(y_true, y_pred):
    """Cross-entropy of each member's probabilities (rows, members, classes), averaged over the members."""
    y_true = ops.cast(y_true, y_pred.dtype)
    if len(y_pred.shape) == 3:
        y_true = ops.expand_dims(y_true, 1)
    picked = ops.sum(y_true * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)
    return -ops.mean(picked, axis=-1) if len(y_pred.shape) == 3 else -picked


def is_dense(layer: Any) -> bool:
    """Whether a layer is a dense map of its inputs (``Dense``, ``EnsembleDense``, ``MemberHeads``)."""
    return isinstance(layer, keras.layers.Dense | EnsembleDense | MemberHeads)


CUSTOM_OBJECTS = {
    f"{PACKAGE}>{layer.__name__}": layer
    for layer in (
        ImputeMissing,
        MissingIndicator,
        ClipValues,
        PeriodicEmbedding,
        EnsembleDense,
        MemberHeads,
    )
}
