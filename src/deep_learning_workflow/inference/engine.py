"""The engine choice: one function, :func:`compile_engine`, used by the service, tuning and pruning alike.

It translates the loaded ``.keras`` model into the NumPy fast path (:mod:`.translate`, :mod:`.optimise`) and checks
it against the Keras model on probe records covering what requests can hold (each category, an unseen category,
missing and extreme numbers, text), as a batch and one record at a time. When a layer has no NumPy twin or the
check fails, the model is served through a compiled ``tf.function`` instead, and a warning gives the reason.

TensorFlow is imported only by the fallback; the fast path's ops never import it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .activations import UnsupportedLayer
from .optimise import optimise
from .translate import compile_forward, input_kinds

logger = logging.getLogger(__name__)

PARITY_RTOL = 1e-4
PARITY_ATOL = 1e-6
PROBE_ROWS = 12
EngineName = Literal["auto", "numpy", "tf.function"]
TEXT_PROBES = ["Great product, would BUY again!", "", "terrible... never again", "ok\tfine  stuff"]


@dataclass
class Engine:
    """A compiled forward pass: input columns (n values each) -> (n, k) class probabilities.

    Args:
        forward: the callable.
        name: ``numpy`` (the fast path) or ``tf.function`` (the fallback).
        reason: why the fast path was not used (None when it is).
    """

    forward: Callable[[dict[str, Any]], np.ndarray]
    name: str
    reason: str | None = None


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
        return self._function(model_feed(columns, self.kinds)).numpy()


def model_feed(columns: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Columns as the Keras model takes them: (n, 1) float32 or object arrays."""
    return {
        name: np.asarray(columns[name], dtype=np.float32 if kind == "numeric" else object).reshape(
            -1, 1
        )
        for name, kind in kinds.items()
    }


def column_schema(columns: Mapping[str, Sequence[Any]], roles: Mapping[str, str]) -> dict[str, Any]:
    """A schema like a serving bundle's (role, numeric range, categories) read from real values.

    Args:
        columns: column -> values (floats with NaN missing, or strings with "" missing).
        roles: column -> ``numeric``, ``categorical`` or ``text``.
    """
    schema: dict[str, Any] = {}
    for name, role in roles.items():
        values = list(columns[name])
        spec: dict[str, Any] = {"role": role}
        if role == "numeric":
            finite = [float(v) for v in values if math.isfinite(v)] or [0.0]
            spec.update(min=min(finite), max=max(finite))
        elif role == "categorical":
            spec["categories"] = sorted({str(v) for v in values if v != ""})
        schema[name] = spec
    return schema


def probe_columns(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Input columns covering what requests can hold: each category, unseen and missing values, range ends, text.

    Args:
        schema: column -> ``{"role", "min", "max", "categories"}`` (a serving bundle's schema, or
            :func:`column_schema`); key columns are left out.
    """
    columns: dict[str, list[Any]] = {}
    for column, spec in schema.items():
        role = spec.get("role")
        if role == "numeric":
            low = float(spec.get("min") if spec.get("min") is not None else 0.0)
            high = float(spec.get("max") if spec.get("max") is not None else 1.0)
            span = high - low
            values = [low, high, (low + high) / 2, math.nan, low - span / 2, high + span / 2, 0.0]
        elif role == "categorical":
            values = [*[str(c) for c in spec.get("categories") or []][:8], "", "an unseen category"]
        elif role == "text":
            values = TEXT_PROBES
        else:
            continue
        columns[column] = [values[i % len(values)] for i in range(PROBE_ROWS)]
    return columns


def check_parity(
    model: Any, forward: Any, columns: Mapping[str, list[Any]], kinds: Mapping[str, str]
) -> float:
    """How far ``forward`` strays beyond rtol 1e-4 / atol 1e-6 from the Keras model on the given columns, scored
    as a batch and one row at a time: 0.0 within tolerance, ``inf`` when the NaN patterns differ."""
    expected = np.asarray(model(model_feed(columns, kinds), training=False), dtype=np.float64)
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


def compile_engine(
    model: Any, probe: Mapping[str, list[Any]], engine: EngineName = "auto", label: str = "model"
) -> Engine:
    """The forward pass to serve ``model`` with: the NumPy fast path when it translates and agrees with the model
    on ``probe``, else ``tf.function`` (with a logged reason).

    Args:
        model: the loaded ``.keras`` model (raw columns in, probabilities out).
        probe: column -> probe values for every model input (:func:`probe_columns`).
        engine: ``auto``; ``numpy`` to raise instead of falling back; ``tf.function`` to skip the fast path.
        label: what the warning calls the model (a bundle path ...).

    Raises:
        UnsupportedLayer: with ``engine="numpy"``, naming the layer or the parity gap.
        ValueError: when ``probe`` lacks a model input.
    """
    kinds = input_kinds(model)
    missing = sorted(set(kinds) - set(probe))
    if missing:
        raise ValueError(f"The probe records of {label} lack the model inputs {missing}.")
    probe = {name: list(probe[name]) for name in kinds}
    reason = None
    if engine in {"auto", "numpy"}:
        try:
            forward = optimise(compile_forward(model), probe)
            excess = check_parity(model, forward, probe, kinds)
            if excess > 0:
                raise UnsupportedLayer(
                    f"the NumPy pass differs from the Keras model by {excess:.3g} on probes"
                )
            return Engine(forward, "numpy")
        except Exception as error:  # any failure to compile means: serve through TensorFlow
            if engine == "numpy":
                raise
            reason = str(error) or type(error).__name__
            logger.warning(
                "%s: serving through tf.function, not the NumPy fast path: %s", label, reason
            )
    return Engine(TensorFlowForward(model, kinds), "tf.function", reason)
