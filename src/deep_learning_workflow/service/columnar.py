"""Batch validation, column by column: the records are transposed into per-column lists once, and each column is
checked and converted by C loops (``map``, ``set``, ``list.count``) and NumPy, never a Python loop per record.

Numeric columns become float64 arrays (``null`` -> NaN) with the range checked on the array; categorical columns
map each value through the column's spelling table (one dict look-up per value in C), so a learned category, a
number of a column learned as numbers (``1``, ``1.0``, ``true``) and ``null`` cost the same; only values the table
lacks (unseen categories, other spellings) go through the per-value rules. Any problem returns None: the
record-by-record pass of :class:`~.validation.RecordValidator` then names each problem's record and field.
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .validation import RecordValidator

NUMERIC, CATEGORICAL, TEXT = 0, 1, 2
KINDS = {"numeric": NUMERIC, "categorical": CATEGORICAL, "text": TEXT}

_NONE = type(None)
_NUMBER_OR_NULL = frozenset({int, float, _NONE})
_TEXT_TYPES = frozenset({str, _NONE})


def validate_columns(
    validator: RecordValidator, records: list[Any]
) -> tuple[dict[str, Any], dict[str, int], dict[str, int]] | None:
    """The records as input columns, and the counts of unseen and missing values per column; None when any
    record has a problem."""
    table = _transpose(validator, records)
    if table is None:
        return None
    values: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    missing: dict[str, int] = {}
    for (name, kind, low, high, spellings, categories, convert), column in zip(
        validator.plan, table, strict=True
    ):
        if kind == NUMERIC:
            converted = _numeric(column, low, high)
        elif kind == CATEGORICAL:
            converted = _categorical(column, spellings, categories, convert)
        else:
            converted = _text(column)
        if converted is None:
            return None
        values[name], nulls, new = converted
        if nulls:
            missing[name] = nulls
        if new:
            unseen[name] = new
    return values, unseen, missing


def _transpose(validator: RecordValidator, records: list[Any]) -> list[tuple[Any, ...]] | None:
    """One tuple of values per feature column, or None when a record is no object or has other fields."""
    if set(map(type, records)) != {dict}:
        return None
    size, key = len(validator.required), validator.key
    sizes = set(map(len, records))
    if sizes != {size}:
        if key is None or not sizes <= {size, size + 1}:
            return None
        # The records one field longer must hold the key as that field.
        if sum(map(dict.__contains__, records, repeat(key))) != sum(
            map(size.__lt__, map(len, records))
        ):
            return None
    try:
        return list(zip(*map(validator.getter, records), strict=True))
    except KeyError:
        return None


def _numeric(
    column: tuple[Any, ...], low: float, high: float
) -> tuple[np.ndarray, int, int] | None:
    kinds = set(map(type, column))
    if not kinds <= _NUMBER_OR_NULL:
        return None
    try:
        array = np.array(column, dtype=np.float64)  # None becomes NaN
    except OverflowError:
        return None
    nulls = column.count(None) if _NONE in kinds else 0
    absent = np.isnan(array)
    # A NaN that was no null (the stdlib parser reads NaN) is refused, as is any value out of range.
    if int(absent.sum()) != nulls or not (absent | ((array >= low) & (array <= high))).all():
        return None
    return array, nulls, 0


def _categorical(
    column: tuple[Any, ...], spellings: dict[Any, str], categories: frozenset[str], convert: Any
) -> tuple[list[str], int, int] | None:
    try:
        texts = list(map(spellings.get, column))
    except TypeError:  # an unhashable value (a list, an object)
        return None
    new = 0
    if None in texts:
        # Values the table lacks: each distinct one through the per-value rules (and refused if invalid).
        lacking = np.flatnonzero(np.equal(np.array(texts, dtype=object), None))
        found: dict[Any, str] = {}
        for index in lacking.tolist():
            value = column[index]
            text = found.get(value) if type(value) is str else None
            if text is None:
                text, problem = convert(value)
                if problem is not None:
                    return None
                if type(value) is str:
                    found[value] = text
            texts[index] = text
            new += bool(text) and text not in categories
    return texts, column.count(None), new


def _text(column: tuple[Any, ...]) -> tuple[list[str], int, int] | None:
    kinds = set(map(type, column))
    if not kinds <= _TEXT_TYPES:
        return None
    if _NONE not in kinds:
        return list(column), 0, 0
    array = np.array(column, dtype=object)
    nulls = np.equal(array, None)
    array[nulls] = ""
    return array.tolist(), int(nulls.sum()), 0
