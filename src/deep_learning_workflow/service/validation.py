"""Request validation from a serving bundle's input schema, in plain Python (no pydantic on the hot path).

A record is a JSON object with exactly the model's feature columns (the key column may be given too, and is only
logged). Per column:

- numeric: a JSON number or ``null`` (a missing value: the model imputes it). NaN and Infinity are refused.
  Range policy ``margin`` (default) refuses values further than ``margin`` x (training max - training min) outside
  the training range; ``finite`` accepts any finite value that fits in float32.
- categorical: a string, or ``null`` (missing). Columns that were integers (or booleans, or floats) in the training
  table also take JSON numbers (booleans) and convert them the way :func:`deep_learning_workflow.model_inputs.to_model_inputs`
  turns the training column into strings (``1`` -> ``"1"``). A category never seen in training is accepted: the
  model maps it to its out-of-vocabulary bucket, and the service counts it.
- text: a string or ``null``.

Problems are reported per record and field, so a client can fix its request.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from deep_learning_workflow.categories import category_text, category_texts, numbers_only

RangePolicy = Literal["margin", "finite"]
_NUMBER_OR_NULL = frozenset({int, float, type(None)})
_STRING = {str}
_DICT = {dict}
_NUMBER = frozenset({int, float})
_CATEGORICAL_TYPES = frozenset({str, int, float, bool, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})


def _is_float(value: Any) -> bool:
    return type(value) is float


FLOAT32_MAX = 3.4028234663852886e38
MAX_PROBLEMS = 50


@dataclass
class Problem:
    """One thing wrong with a request: which record (None for a single-record request), which field, what."""

    field: str | None
    message: str
    record: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "field": self.field, "message": self.message}


@dataclass
class Columns:
    """Validated records as the model's input columns, plus what the service counts."""

    values: dict[str, list[Any]]
    rows: int
    unseen: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


class InvalidRecords(ValueError):
    """The request's records do not match the input schema."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the records")
        self.problems = problems


def _python_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


class _Numeric:
    kind = "numeric"

    def __init__(
        self, name: str, spec: Mapping[str, Any], policy: RangePolicy, margin: float
    ) -> None:
        self.name = name
        low, high = -FLOAT32_MAX, FLOAT32_MAX
        if policy == "margin" and spec.get("min") is not None and spec.get("max") is not None:
            lower, upper = float(spec["min"]), float(spec["max"])
            span = upper - lower if upper > lower else max(abs(upper), 1.0)
            low, high = (
                max(lower - margin * span, -FLOAT32_MAX),
                min(upper + margin * span, FLOAT32_MAX),
            )
        self.low, self.high = low, high

    def convert(self, value: Any) -> tuple[Any, str | None]:
        kind = type(value)
        if kind is float or kind is int:
            if self.low <= value <= self.high:
                return float(value), None
            if kind is float and not math.isfinite(value):
                return (
                    None,
                    f"must be a finite number, got {value!r} (NaN and Infinity are not accepted)",
                )
            return (
                None,
                f"{value!r} is outside the accepted range [{self.low:.6g}, {self.high:.6g}]",
            )
        if value is None:
            return math.nan, None
        return None, f"must be a number or null, got {_python_type(value)}"


class _Categorical:
    kind = "categorical"

    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        self.name = name
        self.categories = frozenset(str(c) for c in spec.get("categories") or [])
        dtype = str(spec.get("dtype") or "")
        # Numbers in training (ints, floats, booleans, or their text after cleaning): JSON numbers are welcome.
        self.numbers = dtype.startswith(
            ("int", "uint", "Int", "UInt", "float", "Float", "bool")
        ) or numbers_only(self.categories)

    def convert(self, value: Any) -> tuple[Any, str | None]:
        kind = type(value)
        if kind is str:
            return category_text(value, self.categories), None
        if value is None:
            return "", None
        if self.numbers and (
            kind is bool or kind is int or (kind is float and math.isfinite(value))
        ):
            return category_text(value, self.categories), None
        expected = "a string, a number or null" if self.numbers else "a string or null"
        return None, f"must be {expected}, got {_python_type(value)}"


class _Text:
    kind = "text"

    def __init__(self, name: str) -> None:
        self.name = name

    def convert(self, value: Any) -> tuple[Any, str | None]:
        if type(value) is str:
            return value, None
        if value is None:
            return "", None
        return None, f"must be a string or null, got {_python_type(value)}"


class RecordValidator:
    """Checks raw records against a bundle's schema and turns them into the model's input columns.

    Args:
        features: the model's input columns, in order.
        schema: the bundle's ``schema`` block (column -> role, dtype, min/max or categories).
        key: the record key column, accepted and ignored by the model (may be None).
        range_policy: ``margin`` or ``finite`` (see the module docstring).
        range_margin: the margin, as a multiple of the training range.
    """

    def __init__(
        self,
        features: list[str],
        schema: Mapping[str, Mapping[str, Any]],
        key: str | None = None,
        range_policy: RangePolicy = "margin",
        range_margin: float = 0.5,
    ) -> None:
        missing = [column for column in features if column not in schema]
        if missing:
            raise ValueError(f"The bundle schema has no entry for the feature columns {missing}.")
        self.features = list(features)
        self.key = key
        self.checkers: list[_Numeric | _Categorical | _Text] = []
        for column in features:
            spec = schema[column]
            role = spec.get("role")
            if role == "numeric":
                self.checkers.append(_Numeric(column, spec, range_policy, range_margin))
            elif role == "categorical":
                self.checkers.append(_Categorical(column, spec))
            elif role == "text":
                self.checkers.append(_Text(column))
            else:
                raise ValueError(
                    f"Feature column '{column}' has the unknown role {role!r} in the bundle schema."
                )
        self.allowed = frozenset([*features, *([key] if key else [])])
        self.required = frozenset(features)
        self.kinds = {checker.name: checker.kind for checker in self.checkers}
        self._fast = [
            (
                checker.name,
                checker.kind == "numeric",
                getattr(checker, "low", None),
                getattr(checker, "high", None),
                checker.categories if checker.kind == "categorical" else None,
                checker.convert,
            )
            for checker in self.checkers
        ]
        getter = operator.itemgetter(*self.features)
        # itemgetter of one name returns the value itself, of several a tuple: always a tuple here.
        self._getter = getter if len(self.features) > 1 else lambda record: (getter(record),)

    def validate(self, records: list[Any], batch: bool) -> Columns:
        """The records as input columns.

        Args:
            records: decoded JSON records.
            batch: whether the request held a list (problems then name the record's position).

        Raises:
            InvalidRecords: listing every problem (up to 50).
        """
        columns = None
        if len(records) == 1:
            columns = self._one(records[0])
        elif len(records) > 8:
            columns = self._columns(records)
        if columns is not None:
            return columns
        values: dict[str, list[Any]] = {checker.name: [] for checker in self.checkers}
        plan = [(*fast, values[fast[0]].append) for fast in self._fast]
        problems: list[Problem] = []
        unseen: dict[str, int] = {}
        missing: dict[str, int] = {}
        allowed, required = self.allowed, self.required
        for index, record in enumerate(records):
            where = index if batch else None
            if type(record) is not dict:
                problems.append(
                    Problem(
                        None, f"a record must be a JSON object, got {_python_type(record)}", where
                    )
                )
                continue
            if record.keys() - allowed or not required <= record.keys():
                problems.extend(
                    Problem(name, "unknown field", where)
                    for name in sorted(record.keys() - allowed)
                )
                problems.extend(
                    Problem(name, "missing field", where)
                    for name in sorted(required - record.keys())
                )
                continue
            for name, numeric, low, high, categories, convert, append in plan:
                value = record[name]
                kind = type(value)
                # The common cases inline; anything else goes through the column's converter.
                if numeric:
                    if (kind is float or kind is int) and low <= value <= high:
                        append(value)
                        continue
                elif kind is str and (categories is None or value in categories):
                    append(value)
                    continue
                converted, problem = convert(value)
                if problem is not None:
                    problems.append(Problem(name, problem, where))
                    continue
                append(converted)
                if value is None:
                    missing[name] = missing.get(name, 0) + 1
                elif categories is not None and converted not in categories and converted:
                    unseen[name] = unseen.get(name, 0) + 1
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            raise InvalidRecords(problems[:MAX_PROBLEMS])
        return Columns(values=values, rows=len(records), unseen=unseen, missing=missing)

    def _one(self, record: Any) -> Columns | None:
        """A single valid record, without the bookkeeping of the general pass (None: let it name the problem)."""
        if type(record) is not dict:
            return None
        size = len(self.required)
        if len(record) != size and not (
            self.key is not None and len(record) == size + 1 and self.key in record
        ):
            return None
        values: dict[str, list[Any]] = {}
        unseen: dict[str, int] = {}
        missing: dict[str, int] = {}
        try:
            for name, numeric, low, high, categories, convert in self._fast:
                value = record[name]
                kind = type(value)
                if numeric:
                    if (kind is float or kind is int) and low <= value <= high:
                        values[name] = [value]
                        continue
                elif kind is str and (categories is None or value in categories):
                    values[name] = [value]
                    continue
                converted, problem = convert(value)
                if problem is not None:
                    return None
                values[name] = [converted]
                if value is None:
                    missing[name] = 1
                elif categories is not None and converted not in categories and converted:
                    unseen[name] = 1
        except KeyError:
            return None
        return Columns(values=values, rows=1, unseen=unseen, missing=missing)

    def _columns(self, records: list[Any]) -> Columns | None:
        """Column by column, for batches: the same checks, run by C loops. None when any record has a problem
        (the record-by-record pass then names it)."""
        if set(map(type, records)) != _DICT:
            return None
        size, key = len(self.required), self.key
        sizes = set(map(len, records))
        if sizes != {size}:
            if key is None or not sizes <= {size, size + 1}:
                return None
            if not all(key in record for record in records if len(record) > size):
                return None
        try:
            table = list(zip(*map(self._getter, records), strict=True))
        except KeyError:
            return None
        values: dict[str, Any] = {}
        unseen: dict[str, int] = {}
        missing: dict[str, int] = {}
        for (name, numeric, low, high, categories, _convert), column in zip(
            self._fast, table, strict=True
        ):
            kinds = set(map(type, column))
            if numeric:
                if not kinds <= _NUMBER_OR_NULL:
                    return None
                try:
                    array = np.array(column, dtype=np.float64)  # None becomes NaN
                except OverflowError:
                    return None
                nulls = column.count(None) if type(None) in kinds else 0
                absent = np.isnan(array)
                if (
                    int(absent.sum()) != nulls
                    or not (absent | ((array >= low) & (array <= high))).all()
                ):
                    return None
                values[name] = array
                if nulls:
                    missing[name] = nulls
                continue
            if categories is not None and kinds == _STRING and categories.issuperset(column):
                values[name] = column  # the common case: every value a learned category
                continue
            if kinds - _CATEGORICAL_TYPES or (categories is None and kinds - _TEXT_TYPES):
                return None
            if categories is not None and not kinds <= _TEXT_TYPES:
                checker = self.checkers[self.features.index(name)]
                if not checker.numbers or (
                    float in kinds and not all(map(math.isfinite, filter(_is_float, column)))
                ):
                    return None
            if type(None) in kinds:
                missing[name] = column.count(None)
            if categories is None:
                column = [text if text is not None else "" for text in column]
            else:
                column = category_texts(column, categories)
            values[name] = column
            if categories is not None:
                new = set(column) - categories - {""}
                if new:
                    unseen[name] = sum(column.count(value) for value in new)
        return Columns(values=values, rows=len(records), unseen=unseen, missing=missing)

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one record, for the OpenAPI document."""
        properties: dict[str, Any] = {}
        for checker in self.checkers:
            if isinstance(checker, _Numeric):
                number: dict[str, Any] = {"type": "number"}
                if checker.low > -FLOAT32_MAX:
                    number["minimum"] = checker.low
                if checker.high < FLOAT32_MAX:
                    number["maximum"] = checker.high
                properties[checker.name] = {"anyOf": [number, {"type": "null"}]}
            elif isinstance(checker, _Categorical):
                options: list[dict[str, Any]] = [{"type": "string"}, {"type": "null"}]
                if checker.numbers:
                    options[1:1] = [{"type": "number"}, {"type": "boolean"}]
                properties[checker.name] = {"anyOf": options}
                if checker.categories:
                    properties[checker.name]["examples"] = sorted(checker.categories)[:20]
            else:
                properties[checker.name] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        if self.key:
            properties[self.key] = {
                "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
            }
        return {
            "type": "object",
            "properties": properties,
            "required": list(self.features),
            "additionalProperties": False,
        }
