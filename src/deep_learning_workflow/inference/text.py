"""Lookups and text: ``StringLookup`` / ``IntegerLookup`` indices and encodings, and ``TextVectorization``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

from .activations import FLOAT, UnsupportedLayer


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
