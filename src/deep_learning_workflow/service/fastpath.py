"""The model's forward pass in NumPy, for scoring requests without TensorFlow.

:func:`deep_learning_workflow.service.loader.compile_forward` reads the fitted state of every layer of a loaded
``.keras`` model once (weights, vocabularies, scaling values) and turns the model's graph into a :class:`Forward`:
a list of steps over NumPy arrays. Nothing here imports TensorFlow or Keras, so a request never pays for them.

Each op below reproduces, in float32, what the Keras layer of the same kind computes at inference (dropout off,
batch normalisation on its moving statistics). :func:`deep_learning_workflow.service.loader.optimise` then rewrites
the steps so that a single record costs little:

- a lookup and the layers that depend only on its index (one-hot or embedding, pooling ...) become one table row
  per vocabulary index (:class:`TabulatedLookup`);
- dropout disappears; batch normalisation and activations fold into the ``Dense`` layer before them;
- the first ``Dense`` layer is folded over the per-column branches that ``Concatenate`` joins (:class:`FirstLayer`):
  a categorical column costs a dict look-up, a numeric column a few float operations;
- string columns stay Python lists, and a plain chain of layers runs without the slot bookkeeping;
- in a seed ensemble (one preprocessing, several heads joined by ``Average``), the heads' first ``Dense`` layers,
  which all read the same ``Concatenate``, run as one whose kernels sit side by side (:class:`Columns` hands each
  head its share), so the ensemble folds its first layer like a single model.

The parity test (``tests/service/test_fastpath.py``) proves the outputs equal the ``.keras`` model's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

FLOAT = np.float32
# keras.backend.epsilon(): the floor of Normalization's standard deviation.
KERAS_EPSILON = FLOAT(1e-7)


class UnsupportedLayer(ValueError):
    """The model holds a layer (or a setting of one) that the NumPy forward pass does not implement."""


# ---------------------------------------------------------------------------------------------------------------
# Activations (keras.activations, TensorFlow backend, float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    if x.shape[0] == 1 and x.ndim == 2:
        # One record: a few Python floats are cheaper than five NumPy calls.
        row = x[0].tolist()
        top = max(row)
        exps = [math.exp(value - top) for value in row]
        total = sum(exps)
        return np.array([[value / total for value in exps]], dtype=FLOAT)
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return FLOAT(1) / (FLOAT(1) + np.exp(-x))


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, FLOAT(alpha) * np.expm1(np.minimum(x, 0)))


def _selu(x: np.ndarray) -> np.ndarray:
    return FLOAT(1.0507009873554805) * _elu(x, 1.6732632423543772)


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # only models with gelu pay for scipy

    return (FLOAT(0.5) * x * (FLOAT(1) + erf(x / FLOAT(math.sqrt(2.0))))).astype(FLOAT)


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


def activation(name: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The NumPy version of a Keras activation given by its serialised name (None means linear)."""
    if name is None:
        return ACTIVATIONS["linear"]
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    raise UnsupportedLayer(f"activation {name!r}")


# ---------------------------------------------------------------------------------------------------------------
# Ops. Each is called with the values of its input tensors (and a `mask` keyword where Keras passes one).


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


def _integer(value: Any) -> int | None:
    """A float cast to an integer key like TensorFlow's cast (NaN and infinities match no key)."""
    try:
        return int(value)
    except (ValueError, OverflowError):
        return None


class LookupIndex:
    """``StringLookup`` / ``IntegerLookup`` up to the integer index (one OOV bucket at most).

    Input: a list of n values (the (n, 1) column); output: int64 indices of shape (n, 1).
    """

    def __init__(self, table: dict[Any, int], default: int, integer_keys: bool = False) -> None:
        self.table = table
        self.default = default
        self.integer_keys = integer_keys

    def indices(self, values: Sequence[Any]) -> list[int]:
        get, default = self.table.get, self.default
        if self.integer_keys:
            return [
                get(_integer(value), default) for value in np.asarray(values).reshape(-1).tolist()
            ]
        return [get(value, default) for value in values]

    def index_array(self, values: Sequence[Any], offset: int = 0) -> np.ndarray:
        """The indices (plus ``offset``) as an intp array, looked up by a C loop for long columns."""
        if self.integer_keys or len(values) < 16:
            return np.asarray(self.indices(values), dtype=np.intp) + offset
        found = np.fromiter(
            map(self.table.get, values, repeat(self.default)), dtype=np.intp, count=len(values)
        )
        return found + offset if offset else found

    def __call__(self, values: Sequence[Any]) -> np.ndarray:
        return np.asarray(self.indices(values), dtype=np.int64).reshape(-1, 1)


class Encode:
    """The non-``int`` output modes of a lookup: one_hot, multi_hot, count, tf_idf over ``depth`` indices."""

    def __init__(self, mode: str, depth: int, idf: np.ndarray | None = None) -> None:
        if mode not in {"one_hot", "multi_hot", "count", "tf_idf"}:
            raise UnsupportedLayer(f"lookup output_mode {mode!r}")
        if mode == "tf_idf" and idf is None:
            raise UnsupportedLayer("tf_idf lookup without idf weights")
        self.mode, self.depth = mode, depth
        self.idf = None if idf is None else np.asarray(idf, dtype=FLOAT)

    def __call__(self, indices: np.ndarray | list[list[int]]) -> np.ndarray:
        if isinstance(indices, np.ndarray) and indices.ndim == 2 and indices.shape[1] == 1:
            if self.mode == "one_hot":
                out = np.zeros((indices.shape[0], self.depth), dtype=FLOAT)
                out[np.arange(indices.shape[0]), indices[:, 0]] = 1
                return out
            rows: Sequence[Sequence[int]] = indices.tolist()
        else:
            rows = indices
        out = np.zeros((len(rows), self.depth), dtype=FLOAT)
        for row, tokens in enumerate(rows):
            for token in tokens:
                if self.mode == "multi_hot":
                    out[row, token] = 1
                else:
                    out[row, token] += 1
        if self.mode == "tf_idf":
            out = out * self.idf
        return out


_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
# tf.strings.lower without an encoding lower-cases ASCII letters only.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class Vectorize:
    """``TextVectorization`` with the built-in standardisation and splitting."""

    def __init__(
        self,
        *,
        standardize: str | None,
        split: str | None,
        ngrams: tuple[int, ...] | None,
        lookup: LookupIndex,
        output_mode: str,
        sequence_length: int | None,
        encode: Encode | None,
    ) -> None:
        if standardize not in {None, "lower", "strip_punctuation", "lower_and_strip_punctuation"}:
            raise UnsupportedLayer(f"TextVectorization standardize={standardize!r}")
        if split not in {"whitespace", "character"}:
            raise UnsupportedLayer(f"TextVectorization split={split!r}")
        if output_mode != "int" and encode is None:
            raise UnsupportedLayer(f"TextVectorization output_mode={output_mode!r}")
        self.lower = standardize in {"lower", "lower_and_strip_punctuation"}
        self.strip = standardize in {"strip_punctuation", "lower_and_strip_punctuation"}
        self.split = split
        self.ngrams = ngrams
        self.lookup = lookup
        self.output_mode = output_mode
        self.sequence_length = sequence_length
        self.encode = encode

    def tokens(self, text: str) -> list[str]:
        if self.lower:
            text = text.translate(_ASCII_LOWER)
        if self.strip:
            text = _PUNCTUATION.sub("", text)
        if self.split == "whitespace":
            tokens = [token for token in _ASCII_WHITESPACE.split(text) if token]
        else:
            tokens = list(text)
        if self.ngrams:
            tokens = [
                " ".join(tokens[start : start + width])
                for width in self.ngrams
                for start in range(len(tokens) - width + 1)
            ]
        return tokens

    def __call__(self, values: Sequence[str]) -> np.ndarray:
        ids = [self.lookup.indices(self.tokens(value)) for value in values]
        if self.output_mode != "int":
            return self.encode(ids)
        length = self.sequence_length or max((len(row) for row in ids), default=0)
        out = np.zeros((len(ids), length), dtype=np.int64)
        for row, tokens in enumerate(ids):
            tokens = tokens[:length]
            out[row, : len(tokens)] = tokens
        return out


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


class Mean:
    """``Average``: the inputs added in order, divided by their count (as Keras computes it)."""

    def __call__(self, values: list[np.ndarray]) -> np.ndarray:
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total / FLOAT(len(values))


class Dense:
    """``Dense``: activation(x @ kernel + bias)."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, activation_name: Any) -> None:
        self.kernel = np.asarray(kernel, dtype=FLOAT)
        self.bias = None if bias is None else np.asarray(bias, dtype=FLOAT)
        self.activation_name = activation_name or "linear"
        self.activation = activation(activation_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.kernel
        if self.bias is not None:
            out += self.bias
        return self.activation(out)


class Columns:
    """Columns ``start:stop`` of a matrix: one layer's share of several parallel ``Dense`` layers run as one."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.start : self.stop]


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


class TabulatedLookup:
    """A lookup and every layer after it that depends only on its index, precomputed per vocabulary index.

    Calling it maps n values to their indices once and returns one array per exit tensor: ``table[index]``.
    """

    def __init__(self, lookup: LookupIndex, tables: list[np.ndarray]) -> None:
        self.lookup = lookup
        self.tables = tables

    def __call__(self, values: Sequence[Any]) -> tuple[np.ndarray, ...]:
        if len(values) == 1:
            row = self.lookup.indices(values)[0]
            return tuple(table[row : row + 1] for table in self.tables)
        index = self.lookup.index_array(values)
        return tuple(table.take(index, axis=0) for table in self.tables)


class FirstLayer:
    """The first ``Dense`` layer folded over the per-column branches feeding it through ``Concatenate``.

    ``Dense(concat(parts)) = activation(bias + sum_i parts_i @ kernel[rows_i])``, so at load time each lookup's
    table is multiplied by its rows of the kernel (one row of ``table`` per vocabulary index), and numeric columns
    keep their element-wise chain (impute, clip, scale, missing flag), computed on Python floats for a single
    record. Other parts (text) arrive computed and are multiplied by their rows. Sums run in float64.

    Called with the raw values of the lookup columns, the raw values of the numeric columns, then the other parts.
    """

    def __init__(
        self,
        lookups: list[tuple[LookupIndex, int]],
        table: np.ndarray,
        chains: list[list[Any]],
        chain_inputs: list[int],
        chain_weights: np.ndarray,
        numeric_inputs: int,
        other_weights: list[np.ndarray],
        bias: np.ndarray,
        activation_name: Any,
    ) -> None:
        self.lookups = lookups
        self.table = np.ascontiguousarray(table, dtype=np.float64)
        self.chains = chains
        self.chain_inputs = chain_inputs
        self.chain_weights = np.ascontiguousarray(chain_weights, dtype=np.float64)
        self.numeric_inputs = numeric_inputs
        self.other_weights = [np.asarray(w, dtype=np.float64) for w in other_weights]
        self.bias = np.asarray(bias, dtype=np.float64)
        self.activation = activation(activation_name)
        self._scalar_chains = [
            (source, [op.scalar for op in chain])
            for source, chain in zip(chain_inputs, chains, strict=True)
        ]
        # Single records: one weighted sum over rows of [table; bias; chain weights]: the chosen lookup rows and
        # the bias with weight 1, each numeric part's row with the part's value as weight.
        self._gets = [(lookup.table.get, lookup.default, offset) for lookup, offset in lookups]
        self._rows = np.vstack([self.table, self.bias[None, :], self.chain_weights])
        first = self.table.shape[0]
        self._fixed_rows = list(range(first, first + 1 + len(chains)))
        self._ones = [1.0] * (len(lookups) + 1)

    def __call__(self, *values: Any) -> np.ndarray:
        count = len(self.lookups)
        strings, numbers = values[:count], values[count : count + self.numeric_inputs]
        others = values[count + self.numeric_inputs :]
        first = values[0]
        rows = first.shape[0] if isinstance(first, np.ndarray) else len(first)
        if rows == 1:
            return self._one(strings, numbers, others)
        if self.lookups:
            index = np.empty((rows, len(self.lookups)), dtype=np.intp)
            for position, ((lookup, offset), column) in enumerate(
                zip(self.lookups, strings, strict=True)
            ):
                index[:, position] = lookup.index_array(column, offset)
            if self.table.shape[0] <= 4096:
                # A 0/1 matrix times the table sums the same rows, in one BLAS call.
                chosen = np.zeros((rows, self.table.shape[0]))
                chosen[np.arange(rows)[:, None], index] = 1.0
                hidden = chosen @ self.table + self.bias
            else:
                hidden = np.tile(self.bias, (rows, 1))
                for position in range(index.shape[1]):
                    hidden += self.table.take(index[:, position], axis=0)
        else:
            hidden = np.tile(self.bias, (rows, 1))
        if self.chains:
            arrays = [np.asarray(column, dtype=FLOAT).reshape(-1, 1) for column in numbers]
            parts = []
            for source, chain in zip(self.chain_inputs, self.chains, strict=True):
                part = arrays[source]
                for op in chain:
                    part = op(part)
                parts.append(part)
            hidden += np.hstack(parts).astype(np.float64) @ self.chain_weights
        for part, weights in zip(others, self.other_weights, strict=True):
            hidden += np.asarray(part, dtype=np.float64) @ weights
        return self.activation(hidden.astype(FLOAT))

    def _one(self, strings: Any, numbers: Any, others: Any) -> np.ndarray:
        rows = [
            get(column[0], default) + offset
            for (get, default, offset), column in zip(self._gets, strings, strict=True)
        ]
        rows += self._fixed_rows
        weights = self._ones.copy()
        for source, chain in self._scalar_chains:
            column = numbers[source]
            value = float(column[0] if type(column) is list else column.flat[0])
            for op in chain:
                value = op(value)
            weights.append(value)
        hidden = np.dot(weights, self._rows.take(rows, axis=0))
        for part, matrix in zip(others, self.other_weights, strict=True):
            hidden += np.asarray(part, dtype=np.float64)[0] @ matrix
        return self.activation(hidden.astype(FLOAT)[None, :])


# ---------------------------------------------------------------------------------------------------------------


class Step:
    """One op applied to slots of the value list: ``values[outputs] = op(*values[args], mask=values[mask])``.

    ``args`` holds slot numbers, or a list of slot numbers for an op that takes a list (``Concatenate``).
    """

    __slots__ = ("op", "args", "mask", "outputs", "name")

    def __init__(
        self,
        op: Callable[..., Any],
        args: list[int | list[int]],
        mask: int | None,
        outputs: list[int],
        name: str,
    ) -> None:
        self.op, self.args, self.mask, self.outputs, self.name = op, args, mask, outputs, name


def step_inputs(step: Step) -> list[int]:
    """The slots a step reads."""
    used = [s for a in step.args for s in (a if isinstance(a, list) else [a])]
    return used + ([step.mask] if step.mask is not None else [])


class Forward:
    """A compiled forward pass: raw input columns in, class probabilities out.

    Args:
        inputs: feature column -> (slot, kind) with kind "numeric" (float32) or "string".
        steps: the ops in execution order.
        output: the slot of the model's output.
        slots: number of value slots.
    """

    def __init__(
        self, inputs: dict[str, tuple[int, str]], steps: list[Step], output: int, slots: int
    ) -> None:
        self.inputs = inputs
        self.steps = steps
        self.output = output
        self.slots = slots
        self._plan = [self._runner(step) for step in steps]
        consumers: dict[int, list[Any]] = {}
        for step in steps:
            for slot in step_inputs(step):
                consumers.setdefault(slot, []).append(step.op)
        # Numeric columns only a FirstLayer reads stay Python lists (it converts them itself).
        self._numeric = [
            (column, slot, all(isinstance(op, FirstLayer) for op in consumers.get(slot, [])))
            for column, (slot, kind) in inputs.items()
            if kind == "numeric"
        ]
        self._strings = [
            (column, slot) for column, (slot, kind) in inputs.items() if kind != "numeric"
        ]
        self._chain = self._as_chain()

    def _as_chain(self) -> tuple[Any, list[str], list[Any]] | None:
        """(first op, its input columns, the ops after it) when the pass is a FirstLayer on raw columns followed
        by single-input layers: then it runs without the slot machinery."""
        if not self.steps or not isinstance(self.steps[0].op, FirstLayer):
            return None
        by_slot = {slot: column for column, (slot, _) in self.inputs.items()}
        first = self.steps[0]
        if any(isinstance(a, list) or a not in by_slot for a in first.args):
            return None
        previous = first.outputs[0]
        for step in self.steps[1:]:
            if (
                step.mask is not None
                or step.args != [previous]
                or isinstance(step.op, TabulatedLookup)
            ):
                return None
            previous = step.outputs[0]
        if previous != self.output:
            return None
        return first.op, [by_slot[a] for a in first.args], [step.op for step in self.steps[1:]]

    @staticmethod
    def _runner(step: Step) -> Callable[[list[Any]], None]:
        """A closure that runs one step on the value list, specialised to its argument shape."""
        op, outputs, mask = step.op, step.outputs, step.mask
        if any(isinstance(a, list) for a in step.args):
            groups = [a if isinstance(a, list) else [a] for a in step.args]
            flags = [isinstance(a, list) for a in step.args]

            def run_lists(values: list[Any]) -> None:
                args = [
                    [values[s] for s in g] if f else values[g[0]]
                    for g, f in zip(groups, flags, strict=True)
                ]
                values[outputs[0]] = op(*args)

            return run_lists
        if isinstance(op, TabulatedLookup):
            (source,) = step.args

            def run_table(values: list[Any]) -> None:
                for slot, value in zip(outputs, op(values[source]), strict=True):
                    values[slot] = value

            return run_table
        target = outputs[0]
        if len(step.args) == 1 and mask is None:
            (source,) = step.args

            def run_one(values: list[Any]) -> None:
                values[target] = op(values[source])

            return run_one
        args = list(step.args)

        def run(values: list[Any]) -> None:
            if mask is None:
                values[target] = op(*[values[a] for a in args])
            else:
                values[target] = op(*[values[a] for a in args], mask=values[mask])

        return run

    def __call__(self, columns: dict[str, Any]) -> np.ndarray:
        """Class probabilities (n, k) float32.

        Args:
            columns: feature column -> n values: a float32 array or list of floats (NaN for missing) for a numeric
                column, a list of str ("" for missing) for a categorical or text column.
        """
        if self._chain is not None:
            first, names, rest = self._chain
            value = first(*[columns[name] for name in names])
            for op in rest:
                value = op(value)
            return value
        values: list[Any] = [None] * self.slots
        for column, slot, raw in self._numeric:
            values[slot] = (
                columns[column] if raw else np.asarray(columns[column], dtype=FLOAT).reshape(-1, 1)
            )
        for column, slot in self._strings:
            values[slot] = columns[column]
        for run in self._plan:
            run(values)
        return values[self.output]

    def trace(self, columns: dict[str, Any]) -> list[Any]:
        """Every slot's value for these inputs (used at load time to learn the parts' widths)."""
        values: list[Any] = [None] * self.slots
        for column, (slot, kind) in self.inputs.items():
            value = columns[column]
            values[slot] = (
                np.asarray(value, dtype=FLOAT).reshape(-1, 1) if kind == "numeric" else value
            )
        for run in self._plan:
            run(values)
        return values

    def describe(self) -> list[str]:
        """The steps, for logs."""
        return [f"{step.name}: {type(step.op).__name__}" for step in self.steps]
