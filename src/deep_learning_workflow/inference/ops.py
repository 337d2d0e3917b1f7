"""NumPy ops of the Keras layers a project model is made of, each computing in float32 what the layer computes at
inference (dropout off, batch normalisation on its moving statistics).

Each op is called with the values of its input tensors (and a ``mask`` keyword where Keras passes one). The
element-wise numeric ops also have a ``scalar`` method, used by :class:`~.folded.FirstLayer` for one record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import (
    FLOAT,
    KERAS_EPSILON,
    activation,
    row_activation,
    softmax_floats,
    softmax_last,
)
from .blocks import Block, BlockProduct


class Impute:
    """``ImputeMissing``: NaN -> the training fill value."""

    def __init__(self, fill_value: float) -> None:
        self.fill = FLOAT(fill_value)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), self.fill, x)

    def scalar(self, value: float) -> float:
        return float(self.fill) if value != value else value


class MissingFlag:
    """``MissingIndicator``: 1.0 where NaN."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.isnan(x).astype(FLOAT)

    def scalar(self, value: float) -> float:
        return 1.0 if value != value else 0.0


class Clip:
    """``ClipValues``: clip to the training bounds."""

    def __init__(self, lower: float, upper: float) -> None:
        self.lower, self.upper = FLOAT(lower), FLOAT(upper)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(x, self.lower), self.upper)

    def scalar(self, value: float) -> float:
        if value != value:
            return value
        return min(max(value, float(self.lower)), float(self.upper))


class Normalize:
    """``Normalization``: (x - mean) / max(sqrt(variance), epsilon), or its inverse."""

    def __init__(self, mean: np.ndarray, variance: np.ndarray, invert: bool) -> None:
        self.mean = np.asarray(mean, dtype=FLOAT)
        self.scale = np.maximum(np.sqrt(np.asarray(variance, dtype=FLOAT)), KERAS_EPSILON)
        self.invert = invert
        if self.mean.size == 1 and self.scale.size == 1:
            self._mean, self._scale = (
                float(self.mean.reshape(-1)[0]),
                float(self.scale.reshape(-1)[0]),
            )
        else:
            self._mean = self._scale = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=FLOAT)
        if self.invert:
            return self.mean + x * self.scale
        return (x - self.mean) / self.scale

    @property
    def elementwise(self) -> bool:
        return self._mean is not None

    def scalar(self, value: float) -> float:
        if self.invert:
            return self._mean + value * self._scale
        return (value - self._mean) / self._scale


class Embed:
    """``Embedding``: rows of the embedding matrix."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = np.asarray(embeddings, dtype=FLOAT)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return self.embeddings[indices]


class NotEqual:
    """The ``not_equal`` op Keras records for ``Embedding(mask_zero=True)``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.not_equal(x, self.value)


class AveragePool1D:
    """``GlobalAveragePooling1D`` (channels last), masked steps left out like Keras does."""

    def __init__(self, keepdims: bool) -> None:
        self.keepdims = keepdims

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if mask is None:
            return x.mean(axis=1, keepdims=self.keepdims, dtype=FLOAT)
        weights = mask[:, :, None]
        total = np.where(weights, x, FLOAT(0)).sum(axis=1, keepdims=self.keepdims)
        count = weights.sum(axis=1, keepdims=self.keepdims, dtype=FLOAT)
        if count.all():
            return total / count
        # An all-masked sequence (an empty text) is 0 / 0 = NaN in Keras too.
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count


class Concat:
    """``Concatenate``."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def __call__(self, values: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(values, axis=self.axis)


class Dense:
    """``Dense``: activation(x @ kernel + bias); with ``blocks``, the kernel is zero outside them (the merged
    layers of an ensemble's members, :mod:`.stacking`) and only the blocks are multiplied."""

    def __init__(
        self,
        kernel: np.ndarray,
        bias: np.ndarray | None,
        activation_name: Any,
        blocks: list[Block] | None = None,
    ) -> None:
        self.kernel = np.asarray(kernel, dtype=FLOAT)
        self.bias = None if bias is None else np.asarray(bias, dtype=FLOAT)
        self.activation_name = activation_name or "linear"
        self.activation = activation(activation_name)
        self.product = None if blocks is None else BlockProduct(self.kernel, blocks)
        self._row_activation = row_activation(activation_name)
        self._row_kernel = self.kernel if self.product is None else self.product.dense

    row_ready = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.kernel if self.product is None else self.product(x)
        if self.bias is not None:
            out += self.bias
        return self.activation(out)

    def row(self, x: np.ndarray) -> Any:
        """One record's values (1-D) through the layer."""
        out = x @ self._row_kernel
        if self.bias is not None:
            out += self.bias
        return self._row_activation(out)


class BatchNorm:
    """``BatchNormalization`` at inference, computed like ``tf.nn.batch_normalization``."""

    def __init__(
        self,
        moving_mean: np.ndarray,
        moving_variance: np.ndarray,
        gamma: np.ndarray | None,
        beta: np.ndarray | None,
        epsilon: float,
    ) -> None:
        mean = np.asarray(moving_mean, dtype=FLOAT)
        inverse = (
            FLOAT(1) / np.sqrt(np.asarray(moving_variance, dtype=FLOAT) + FLOAT(epsilon))
        ).astype(FLOAT)
        if gamma is not None:
            inverse = inverse * np.asarray(gamma, dtype=FLOAT)
        self.scale = inverse
        self.shift = (
            (np.asarray(beta, dtype=FLOAT) - mean * inverse)
            if beta is not None
            else -mean * inverse
        )

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return x * self.scale + self.shift


class Identity:
    """``Dropout`` at inference (and other no-ops)."""

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return x

    def scalar(self, value: float) -> float:
        return value


class Apply:
    """``Activation``."""

    def __init__(self, activation_name: Any) -> None:
        self.activation_name = activation_name or "linear"
        self.activation = activation(activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.activation(x)


class Flatten:
    """``Flatten``."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


class UnitNorm:
    """``UnitNormalization``: each row scaled to unit L2 length, ``x * min(1 / sqrt(sum(x^2)), 1e12)`` as Keras does."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def __call__(self, x: np.ndarray) -> np.ndarray:
        squares = np.square(x, dtype=FLOAT).sum(axis=self.axis, keepdims=True, dtype=FLOAT)
        with np.errstate(divide="ignore"):
            inverse = np.minimum(FLOAT(1) / np.sqrt(squares), FLOAT(1e12))
        return (x * inverse).astype(FLOAT, copy=False)


class RepeatRows:
    """``RepeatVector(n)``: (rows, f) -> (rows, n, f), each row repeated for the n members of an ensemble."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x[:, None, :], (x.shape[0], self.times, x.shape[1]))


class Average:
    """``Average``: the element-wise mean of its inputs (the heads of a seed ensemble), summed in input order."""

    def __call__(self, values: list[np.ndarray]) -> np.ndarray:
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total / FLOAT(len(values))


class Add:
    """``Add``: the element-wise sum of its inputs."""

    def __call__(self, values: list[np.ndarray]) -> np.ndarray:
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total


class MemberMean:
    """``Average`` of an ensemble's members stacked side by side: (n, members * c) -> (n, c), summed in order."""

    def __init__(self, members: int) -> None:
        self.members = members

    row_ready = True

    def row(self, x: Any) -> list[float]:
        """One record's mean on Python floats (summed in member order, as below): cheaper than four NumPy calls."""
        row = x.tolist() if isinstance(x, np.ndarray) else x
        width = len(row) // self.members
        return [
            sum(row[member * width + column] for member in range(self.members)) / self.members
            for column in range(width)
        ]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 1:
            return np.array([self.row(x[0])], dtype=FLOAT)
        stacked = x.reshape(x.shape[0], self.members, -1)
        total = stacked[:, 0] + stacked[:, 1]
        for member in range(2, self.members):
            total += stacked[:, member]
        return total / FLOAT(self.members)


class SegmentSoftmax:
    """A softmax over each consecutive segment of columns (the members' softmax heads side by side)."""

    def __init__(self, widths: list[int]) -> None:
        self.widths = list(widths)
        self.bounds = np.cumsum([0, *widths]).tolist()

    row_ready = True

    def row(self, x: Any) -> list[float]:
        """One record: each segment's softmax on Python floats, as the softmax activation does for one row."""
        row = x.tolist() if isinstance(x, np.ndarray) else x
        out: list[float] = []
        for start, stop in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            out += softmax_floats(row[start:stop])
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 1:
            return np.array([self.row(x[0])], dtype=FLOAT)
        if len(set(self.widths)) == 1:
            stacked = x.reshape(x.shape[0], len(self.widths), self.widths[0])
            return softmax_last(stacked).reshape(x.shape)
        parts = [
            x[:, start:stop] for start, stop in zip(self.bounds[:-1], self.bounds[1:], strict=True)
        ]
        return np.concatenate([activation("softmax")(part) for part in parts], axis=1)


class Split:
    """Columns of one matrix cut into consecutive parts of the given widths (the heads of merged ``Dense`` layers)."""

    def __init__(self, widths: list[int]) -> None:
        self.bounds = np.cumsum([0, *widths]).tolist()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(
            x[:, start:stop] for start, stop in zip(self.bounds[:-1], self.bounds[1:], strict=True)
        )
