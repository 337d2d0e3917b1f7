"""Float32 constants, the error of the NumPy engine, and Keras activations in NumPy (TensorFlow backend semantics).

Nothing in :mod:`deep_learning_workflow.inference` outside the translator and the engine's fallback imports
TensorFlow or Keras, so a request scored by the fast path never pays for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import ndtr

FLOAT = np.float32
# keras.backend.epsilon(): the floor of Normalization's standard deviation.
KERAS_EPSILON = FLOAT(1e-7)


class UnsupportedLayer(ValueError):
    """The model holds a layer (or a setting of one) that the NumPy forward pass does not implement."""


# ---------------------------------------------------------------------------------------------------------------
# Activations (keras.activations, TensorFlow backend, float32)


def softmax_floats(values: list[float]) -> list[float]:
    """The softmax of a few Python floats (one record's logits): cheaper than five NumPy calls."""
    top = max(values)
    exps = [math.exp(value - top) for value in values]
    total = sum(exps)
    return [value / total for value in exps]


# Up to this many classes the softmax's max and sum over the last axis run as element-wise passes over its columns:
# NumPy's reductions along a short last axis cost an inner loop per row (6x slower for two classes), and below 8
# values its sum adds them in order, as the passes do, so the result is the same to the bit.
_NARROW = 7


def softmax_last(x: np.ndarray) -> np.ndarray:
    """The softmax over the last axis of a batch (a new array)."""
    width = x.shape[-1]
    if width > _NARROW:
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        shifted /= shifted.sum(axis=-1, keepdims=True)
        return shifted
    top = x[..., 0].copy()
    for column in range(1, width):
        np.maximum(top, x[..., column], out=top)
    shifted = x - top[..., None]
    np.exp(shifted, out=shifted)
    total = shifted[..., 0].copy()
    for column in range(1, width):
        total += shifted[..., column]
    shifted /= total[..., None]
    return shifted


def _softmax(x: np.ndarray) -> np.ndarray:
    if x.shape[0] == 1 and x.ndim == 2:
        return np.array([softmax_floats(x[0].tolist())], dtype=FLOAT)
    return softmax_last(x)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return FLOAT(1) / (FLOAT(1) + np.exp(-x))


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, FLOAT(alpha) * np.expm1(np.minimum(x, 0)))


def _selu(x: np.ndarray) -> np.ndarray:
    return FLOAT(1.0507009873554805) * _elu(x, 1.6732632423543772)


# erfc(u) = poly(t) exp(-u^2) with t = 1 / (1 + p u), u >= 0 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7,
# below float32's resolution of GELU's output): a few NumPy passes instead of scipy's erf, which costs most of a
# large batch's forward pass. With q = erfc(|x| / sqrt(2)) / 2, GELU(x) = x Phi(x) = (x + |x|) / 2 - |x| q for either
# sign of x, so no np.where (a slow pass) is needed; every pass but the first writes in place.
_ERF_P = 0.3275911
_ERF_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
_HALF_A = tuple(FLOAT(a / 2) for a in _ERF_A)  # the 1/2 of q folded into the polynomial
_BLOCK = (
    1 << 16
)  # values per block: the temporaries of a block stay in the CPU cache (4x faster than 1 << 18)


def _gelu_block(x: np.ndarray, out: np.ndarray) -> None:
    magnitude = np.abs(x)
    t = magnitude * FLOAT(_ERF_P / math.sqrt(2.0))
    t += FLOAT(1)
    np.reciprocal(t, out=t)
    q = t * _HALF_A[0]
    for a in _HALF_A[1:]:
        q += a
        q *= t
    np.square(x, out=t)
    t *= FLOAT(-0.5)
    np.exp(t, out=t)
    q *= t
    q *= magnitude
    np.add(x, magnitude, out=out)
    out *= FLOAT(0.5)
    out -= q


def _gelu_row(x: np.ndarray) -> np.ndarray:
    # One record: GELU(x) = x Phi(x) with scipy's normal CDF, two calls instead of the polynomial's dozen passes
    # (slower per value, 5x on large arrays). Batches of any size keep the polynomial, so a record's score in a
    # batch does not depend on how many records came with it.
    return x * ndtr(x)


def _gelu(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=FLOAT)
    if x.ndim and x.shape[0] == 1:
        return _gelu_row(x)
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    for start in range(0, flat.size, _BLOCK):
        _gelu_block(flat[start : start + _BLOCK], out[start : start + _BLOCK])
    return out.reshape(x.shape)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, FLOAT(0)),
    "relu6": lambda x: np.clip(x, FLOAT(0), FLOAT(6)),
    "leaky_relu": lambda x: np.where(x >= 0, x, FLOAT(0.2) * x),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda x: np.clip(x + FLOAT(3), FLOAT(0), FLOAT(6)) / FLOAT(6),
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "elu": _elu,
    "selu": _selu,
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "softplus": lambda x: np.logaddexp(FLOAT(0), x),
    "softsign": lambda x: x / (FLOAT(1) + np.abs(x)),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(np.logaddexp(FLOAT(0), x)),
}


# One record's values as a 1-D array: the element-wise activations as they are; softmax on Python floats (a list).
ROW_ACTIVATIONS: dict[str, Callable[[np.ndarray], Any]] = ACTIVATIONS | {
    "gelu": _gelu_row,
    "softmax": lambda x: softmax_floats(x.tolist()),
}


def row_activation(name: Any) -> Callable[[np.ndarray], Any]:
    """An activation for one record's 1-D values (its name already accepted by :func:`activation`)."""
    return ROW_ACTIVATIONS["linear" if name is None else name]


def activation(name: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The NumPy version of a Keras activation given by its serialised name (None means linear)."""
    if name is None:
        return ACTIVATIONS["linear"]
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    raise UnsupportedLayer(f"activation {name!r}")
