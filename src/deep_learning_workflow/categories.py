"""Categorical values as the data has them: numbers and text mapped to the category the model learned.

A categorical column reaches the model as text (:func:`deep_learning_workflow.model_inputs.to_model_inputs`), so
the vocabulary of a column whose training values were numbers holds their text: ``"0"`` and ``"1"`` for a 0/1 flag
read as integers, ``"0.0"`` and ``"1.0"`` when missing values made the column float. A client (or a scoring file)
may give the same value as the JSON number ``1``, the string ``"1"``, ``1.0`` or ``true``. The REST service and
batch scoring both map such a value to the learned category through :func:`category_text`, so the two paths agree:

- a string in the vocabulary, or ``None`` (missing: ``""``), stays as it is;
- a number (or a string that reads as one, or a boolean) becomes the first of its spellings the vocabulary holds:
  ``"1"``, then ``"1.0"``, then ``"True"``;
- anything else keeps its plain text (``str(value)``) and is scored as an unseen category.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Set
from typing import Any

import numpy as np

_MISSING_TYPES = {"NAType", "NaTType"}  # pandas' missing markers, without importing pandas


def _spellings(number: float | int | bool) -> list[str]:
    """The texts a number takes in a training column, most likely first."""
    value = float(number)
    if not math.isfinite(value):
        return [str(value)]
    if not value.is_integer():
        return [str(value), repr(float(np.float32(value)))]
    spellings = [str(int(value)), str(value)]
    if value in (0.0, 1.0):  # a flag read as booleans
        spellings += [str(value == 1.0), str(value == 1.0).lower()]
    return spellings


def _as_number(text: str) -> float | None:
    """The number a string spells (``"1"``, ``" 1.0 "``, ``"true"``), or None."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return float(lowered == "true")
    try:
        number = float(lowered)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def category_text(value: Any, categories: Set[str]) -> str | None:
    """The category a raw value stands for, as model input text.

    Args:
        value: a raw value (string, number, boolean, or None / NaN for a missing value).
        categories: the column's learned vocabulary (may be empty: then only the plain text rules apply).

    Returns:
        The text to feed the model ("" for a missing value), or None when the value is no categorical value at
        all (a list, a mapping, an infinite number).
    """
    if value is None or type(value).__name__ in _MISSING_TYPES:
        return ""
    if isinstance(value, str):
        if value in categories or not categories:
            return value
        number = _as_number(value)
        # Only a number-valued vocabulary maps text: "01" stays "01" in a column of codes spelt as text.
        if number is None or not numbers_only(categories):
            return value
        return next((text for text in _spellings(number) if text in categories), value)
    if isinstance(value, bool | int | float | np.number | np.bool_):
        if isinstance(value, float | np.floating) and math.isnan(value):
            return ""
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            return None
        spellings = _spellings(value)
        return next((text for text in spellings if text in categories), spellings[0])
    return None


def numbers_only(categories: Set[str]) -> bool:
    """Whether every category of a vocabulary is the text of a number (the column was numbers in training)."""
    return bool(categories) and all(_as_number(text) is not None for text in categories)


def category_texts(values: Iterable[Any], categories: Set[str]) -> list[str | None]:
    """:func:`category_text` of a whole column, each distinct value converted once."""
    values = list(values)
    try:
        # True, 1 and 1.0 are one key here, and rightly so: they have the same spellings.
        mapping = {value: category_text(value, categories) for value in set(values)}
    except TypeError:  # an unhashable value (a list): convert one by one
        return [category_text(value, categories) for value in values]
    if any(
        value != value for value in mapping
    ):  # NaN is not equal to itself: no dict look-up finds it
        return [category_text(value, categories) for value in values]
    return list(map(mapping.__getitem__, values))
