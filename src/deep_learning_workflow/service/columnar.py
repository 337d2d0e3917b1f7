"""Batch validation, column by column: the records are transposed into per-column lists once, and each column is
checked and converted by C loops (``map``, ``set``, ``list.count``) and NumPy, never a Python loop per record.

Numeric columns become float64 arrays (``null`` -> NaN) with the range checked on the array; categorical columns
map each value through the column's code table (one dict look-up per value in C) to a
:class:`~deep_learning_workflow.inference.optimise_batch.CodedColumn`, so a learned category, a number of a column
learned as numbers (``1``, ``1.0``, ``true``) and ``null`` cost the same, and the model looks each distinct value
up once; only values the table lacks (unseen categories, other spellings) go through the per-value rules. Any problem returns None: the
record-by-record pass of :class:`~.validation.RecordValidator` then names each problem's record and field.
"""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deep_learning_workflow.inference.optimise_batch import MISSING, CodedColumn

if TYPE_CHECKING:
    from .validation import RecordValidator

NUMERIC, CATEGORICAL, TEXT = 0, 1, 2


class CategoryCodes:
    """A categorical column's values as codes: each raw spelling of a learned category (and ``None``) -> the
    position of its model input text in ``texts`` (the learned categories, then ``""`` for missing)."""

    def __init__(self, spellings: dict[Any, str], categories: frozenset[str]) -> None:
        self.texts = [*sorted(categories), MISSING]
        self.learned = len(categories) + 1  # codes from here on are categories training never saw
        self.positions = {text: code for code, text in enumerate(self.texts)}
        self.codes = {raw: self.positions[text] for raw, text in spellings.items()}


KINDS = {"numeric": NUMERIC, "categorical": CATEGORICAL, "text": TEXT}

_NONE = type(None)
_NUMBER_OR_NULL = frozenset({int, float, _NONE})
_TEXT_TYPES = frozenset({str, _NONE})


def validate_columns(
    validator: RecordValidator, records: list[Any], table: list[tuple[Any, ...]] | None = None
) -> tuple[dict[str, Any], dict[str, int], dict[str, int]] | None:
    """The records as input columns, and the counts of unseen and missing values per column; None when any
    record has a problem.

    Args:
        validator: the schema's validator.
        records: decoded JSON records (dicts).
        table: the records' feature columns already transposed (typed records, :class:`TypedBatch`); the records
            are then not read.
    """
    table = _transpose(validator, records) if table is None else table
    if table is None:
        return None
    values: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    missing: dict[str, int] = {}
    for (name, kind, low, high, _spellings, _categories, convert), column in zip(
        validator.plan, table, strict=True
    ):
        if kind == NUMERIC:
            converted = _numeric(column, low, high)
        elif kind == CATEGORICAL:
            converted = _categorical(column, validator.coding[name], convert)
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
    column: tuple[Any, ...], coding: CategoryCodes, convert: Any
) -> tuple[CodedColumn, int, int] | None:
    try:
        codes = np.fromiter(
            map(coding.codes.get, column, repeat(-1)), dtype=np.intp, count=len(column)
        )
    except TypeError:  # an unhashable value (a list, an object)
        return None
    texts, new = coding.texts, 0
    lacking = np.flatnonzero(codes < 0)
    if lacking.size:
        # Values the table lacks: each distinct one through the per-value rules (and refused if invalid).
        texts = list(texts)
        positions = dict(coding.positions)
        found: dict[Any, int] = {}
        for index in lacking.tolist():
            value = column[index]
            code = found.get(value) if type(value) is str else None
            if code is None:
                text, problem = convert(value)
                if problem is not None:
                    return None
                code = positions.get(text)
                if code is None:
                    code = positions[text] = len(texts)
                    texts.append(text)
                if type(value) is str:
                    found[value] = code
            codes[index] = code
            new += code >= coding.learned
    return CodedColumn(codes, texts), column.count(None), new


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


class TypedBatch:
    """A batch body decoded by msgspec straight into typed records of the schema's fields, then transposed.

    orjson's dicts cost more to build, transpose and free than the model costs to score them: a record here is one
    untracked object whose fields msgspec has already type-checked (numbers as floats, categories of a column
    learned as text as strings or null, the other categories and the key as any JSON value), and missing or unknown
    fields fail the decoding. Anything that fails (a malformed body, a type the field does not take, an unknown or
    missing field, NaN) returns None and the caller takes the general path, which names every problem.

    Two decoders take the text categories: one as the learned spellings (``Literal``: msgspec hands back the
    spelling's own string, so no string is made per value and each code look-up finds a cached hash), one as any
    string (a category training never saw). The one that decoded the last batch goes first, so a stream with unseen
    categories settles on the second after one miss; every :attr:`RETRY` batches it tries the first again.

    Args:
        validator: the schema's validator (its column plan and key).
    """

    RETRY = 64

    def __init__(self, validator: RecordValidator) -> None:
        import msgspec

        self._errors = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
        self._decoders = [self._decoder(validator, learned) for learned in (True, False)]
        self._first = 0
        self._since_retry = 0
        self._getters = [attrgetter(f"f{position}") for position in range(len(validator.plan))]

    @staticmethod
    def _decoder(validator: RecordValidator, learned: bool) -> Any:
        """A decoder of a list of records; ``learned``: text categories as their learned spellings only."""
        import msgspec

        fields: list[tuple[Any, ...]] = []
        names: dict[str, str] = {}
        for position, (name, kind, _low, _high, spellings, _categories, _convert) in enumerate(
            validator.plan
        ):
            texts = tuple(raw for raw in spellings or {} if raw is not None)
            if kind == NUMERIC:
                field_type = float | None
            elif kind != CATEGORICAL:
                field_type = str | None
            elif any(type(raw) is not str for raw in texts):
                field_type = Any
            elif learned and texts:
                field_type = Literal[texts] | None
            else:
                field_type = str | None
            fields.append((f"f{position}", field_type))
            names[f"f{position}"] = name
        if validator.key is not None:
            fields.append(("key", Any, None))
            names["key"] = validator.key
        # omit_defaults: a record without the key converts back to a dict without it.
        record = msgspec.defstruct(
            "Record",
            fields,
            forbid_unknown_fields=True,
            gc=False,
            rename=names,
            omit_defaults=True,
        )
        return msgspec.json.Decoder(list[record])

    def decode(self, body: bytes) -> tuple[list[Any], list[tuple[Any, ...]]] | None:
        """The typed records and their feature columns, or None."""
        for attempt in (self._first, 1 - self._first):
            try:
                records = self._decoders[attempt].decode(body)
            except self._errors:
                continue
            self._first = attempt
            if attempt:
                self._since_retry += 1
                if self._since_retry >= self.RETRY:
                    self._first = self._since_retry = 0
            return records, [tuple(map(getter, records)) for getter in self._getters]
        return None


def plain_records(records: Any) -> Any:
    """Records as dicts of JSON values (typed records converted, dicts as they are)."""
    if all(type(record) is dict for record in records):
        return records
    import msgspec

    return msgspec.to_builtins(list(records))
