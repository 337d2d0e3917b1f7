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

from deep_learning_workflow.categories import category_text, numbers_only

from .columnar import CATEGORICAL, KINDS, NUMERIC, CategoryCodes, TypedBatch, validate_columns

RangePolicy = Literal["margin", "finite"]
FLOAT32_MAX = 3.4028234663852886e38
MAX_PROBLEMS = 50
COLUMNAR_ROWS = 9
"""Batches of at least this many records are validated column by column (smaller ones record by record)."""


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


def spelling_table(categories: frozenset[str], numbers: bool) -> dict[Any, str]:
    """Raw value -> model input text for the common values of a categorical column, for one dict look-up per
    value: each learned category, ``None`` (missing: ``""``) and, in a column of numbers, each category's number
    (``1``, ``1.0`` and ``True`` are one key, the way :func:`category_text` spells them alike)."""
    table: dict[Any, str] = {text: text for text in categories}
    table[None] = ""
    if numbers:
        for text in categories:
            lowered = text.strip().lower()
            try:
                number = (
                    float(lowered == "true") if lowered in ("true", "false") else float(lowered)
                )
            except ValueError:
                continue
            if math.isfinite(number):
                table.setdefault(number, category_text(number, categories))
    return table


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
        self.spellings = spelling_table(self.categories, self.numbers)

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
        # The column plan of the hot paths: (name, kind, low, high, spellings, learned categories, converter).
        self.plan = [
            (
                checker.name,
                KINDS[checker.kind],
                getattr(checker, "low", None),
                getattr(checker, "high", None),
                getattr(checker, "spellings", None),
                getattr(checker, "categories", None),
                checker.convert,
            )
            for checker in self.checkers
        ]
        self.coding = {
            checker.name: CategoryCodes(checker.spellings, checker.categories)
            for checker in self.checkers
            if isinstance(checker, _Categorical)
        }
        getter = operator.itemgetter(*self.features)
        # itemgetter of one name returns the value itself, of several a tuple: always a tuple here.
        self.getter = getter if len(self.features) > 1 else lambda record: (getter(record),)
        self.typed = TypedBatch(self)

    def decode_batch(self, body: bytes, limit: int) -> tuple[list[Any], Columns] | None:
        """A batch body of :data:`COLUMNAR_ROWS` to ``limit`` valid records, decoded straight into columns; None
        for any other body (the caller then parses it and calls :meth:`validate`, which names the problems)."""
        decoded = self.typed.decode(body)
        if decoded is None or not COLUMNAR_ROWS <= len(decoded[0]) <= limit:
            return None
        records, table = decoded
        converted = validate_columns(self, records, table)
        if converted is None:
            return None
        values, unseen, missing = converted
        return records, Columns(values=values, rows=len(records), unseen=unseen, missing=missing)

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
        elif len(records) >= COLUMNAR_ROWS:
            converted = validate_columns(self, records)
            if converted is not None:
                values, unseen, missing = converted
                return Columns(values=values, rows=len(records), unseen=unseen, missing=missing)
        if columns is not None:
            return columns
        return self._each(records, batch)

    def _each(self, records: list[Any], batch: bool) -> Columns:
        """Record by record: the general pass, which names every problem."""
        values: dict[str, list[Any]] = {checker.name: [] for checker in self.checkers}
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
            for name, _kind, _low, _high, _spellings, categories, convert in self.plan:
                value = record[name]
                converted, problem = convert(value)
                if problem is not None:
                    problems.append(Problem(name, problem, where))
                    continue
                values[name].append(converted)
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
            for name, kind, low, high, spellings, categories, convert in self.plan:
                value = record[name]
                if kind == NUMERIC:
                    if (type(value) is float or type(value) is int) and low <= value <= high:
                        values[name] = [value]
                        continue
                elif kind == CATEGORICAL:
                    text = spellings.get(value)  # a learned category, a number's spelling, or None
                    if text is not None:
                        values[name] = [text]
                        if value is None:
                            missing[name] = 1
                        continue
                converted, problem = convert(value)
                if problem is not None:
                    return None
                values[name] = [converted]
                if value is None:
                    missing[name] = 1
                elif categories is not None and converted not in categories and converted:
                    unseen[name] = 1
        except (KeyError, TypeError):  # a missing field; an unhashable value (a list) as a category
            return None
        return Columns(values=values, rows=1, unseen=unseen, missing=missing)

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
