"""Request validation from a bundle schema, without a server."""

from __future__ import annotations

import math

import pytest

from deep_learning_workflow.service.columnar import validate_columns
from deep_learning_workflow.service.validation import InvalidRecords, RecordValidator

SCHEMA = {
    "customer_id": {"role": "key", "dtype": "str"},
    "tenure": {"role": "numeric", "dtype": "int64", "min": 0.0, "max": 72.0},
    "female": {"role": "categorical", "dtype": "int64", "categories": ["0", "1"]},
    "score": {"role": "categorical", "dtype": "float64", "categories": ["1.0", "2.5"]},
    "paperless": {"role": "categorical", "dtype": "bool", "categories": ["False", "True"]},
    "contract": {
        "role": "categorical",
        "dtype": "str",
        "categories": ["Month-to-month", "One year"],
    },
    "note": {"role": "text", "dtype": "str"},
}
FEATURES = ["tenure", "female", "score", "paperless", "contract", "note"]
GOOD = {
    "tenure": 12,
    "female": "1",
    "score": 2.5,
    "paperless": True,
    "contract": "One year",
    "note": "hi",
}


def validator(**kwargs) -> RecordValidator:
    return RecordValidator(FEATURES, SCHEMA, key="customer_id", **kwargs)


def problems(record, **kwargs) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidRecords) as caught:
        validator(**kwargs).validate([record], batch=False)
    return [(p.field, p.message) for p in caught.value.problems]


def test_valid_record_becomes_model_columns():
    columns = validator().validate(
        [GOOD, {**GOOD, "tenure": None, "female": 0, "score": 1, "note": None}], batch=True
    )
    assert columns.values["tenure"][0] == 12 and math.isnan(columns.values["tenure"][1])
    assert columns.values["female"] == ["1", "0"]
    assert columns.values["score"] == ["2.5", "1.0"]
    assert columns.values["paperless"] == ["True", "True"]
    assert columns.values["note"] == ["hi", ""]
    assert columns.missing == {"tenure": 1, "note": 1}
    assert columns.unseen == {}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("female", 1, "1"),
        ("female", 1.0, "1"),
        ("female", "1.0", "1"),
        ("female", True, "1"),
        ("score", 1, "1.0"),
        ("score", "2.5", "2.5"),
        ("paperless", 1, "True"),
        ("paperless", "false", "False"),
        ("contract", "One year", "One year"),
    ],
)
def test_values_as_the_data_has_them_map_to_the_learned_category(field, value, expected):
    for records in ([{**GOOD, field: value}], [{**GOOD, field: value}] * 12):
        columns = validator().validate(records, batch=True)
        assert list(columns.values[field]) == [expected] * len(records)
        assert columns.unseen == {}


def test_a_number_never_learned_is_an_unseen_category():
    columns = validator().validate([{**GOOD, "female": 1.5}], batch=False)
    assert columns.values["female"] == ["1.5"]
    assert columns.unseen == {"female": 1}


def test_key_column_is_accepted_and_ignored():
    columns = validator().validate([{**GOOD, "customer_id": "C1"}], batch=False)
    assert "customer_id" not in columns.values


def test_unseen_categories_are_accepted_and_counted():
    record = {**GOOD, "contract": "Ten years", "female": 7, "paperless": None}
    columns = validator().validate([record, {**GOOD, "contract": "Ten years"}], batch=True)
    assert columns.values["contract"] == ["Ten years", "Ten years"]
    assert columns.unseen == {"contract": 2, "female": 1}
    assert columns.missing == {"paperless": 1}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tenure", "12", "must be a number or null, got string"),
        ("tenure", True, "must be a number or null, got boolean"),
        ("tenure", [1], "must be a number or null, got array"),
        ("tenure", math.nan, "must be a finite number"),
        ("tenure", math.inf, "must be a finite number"),
        ("tenure", -math.inf, "must be a finite number"),
        ("tenure", 200, "outside the accepted range [-36, 108]"),
        ("tenure", -37.5, "outside the accepted range"),
        ("female", [1], "must be a string, a number or null, got array"),
        ("female", math.inf, "must be a string, a number or null, got number"),
        ("contract", 3, "must be a string or null, got integer"),
        ("contract", {"a": 1}, "must be a string or null, got object"),
        ("score", math.nan, "must be a string, a number or null, got number"),
        ("note", 5, "must be a string or null, got integer"),
    ],
)
def test_wrong_values_name_the_field(field, value, message):
    found = problems({**GOOD, field: value})
    assert len(found) == 1
    assert found[0][0] == field
    assert message in found[0][1]


def test_range_policy_finite_accepts_far_values_but_not_overflow():
    columns = validator(range_policy="finite").validate([{**GOOD, "tenure": 1e6}], batch=False)
    assert columns.values["tenure"] == [1e6]
    assert (
        "outside the accepted range"
        in problems({**GOOD, "tenure": 1e39}, range_policy="finite")[0][1]
    )


def test_margin_is_a_multiple_of_the_training_range():
    assert validator(range_margin=0.0).validate([{**GOOD, "tenure": 72}], batch=False).rows == 1
    assert problems({**GOOD, "tenure": 72.5}, range_margin=0.0)[0][0] == "tenure"


def test_missing_and_unknown_fields():
    record = {k: v for k, v in GOOD.items() if k != "note"} | {"colour": "red", "size": 3}
    assert problems(record) == [
        ("colour", "unknown field"),
        ("size", "unknown field"),
        ("note", "missing field"),
    ]


def test_batch_problems_name_the_record():
    with pytest.raises(InvalidRecords) as caught:
        validator().validate([GOOD, "not a record", {**GOOD, "tenure": "x"}], batch=True)
    found = [(p.record, p.field) for p in caught.value.problems]
    assert found == [(1, None), (2, "tenure")]


def test_problems_are_capped():
    with pytest.raises(InvalidRecords) as caught:
        validator().validate([{"x": 1}] * 100, batch=True)
    assert len(caught.value.problems) == 50


def test_json_schema_of_a_record():
    schema = validator().json_schema()
    assert schema["required"] == FEATURES
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tenure"]["anyOf"][0] == {
        "type": "number",
        "minimum": -36.0,
        "maximum": 108.0,
    }
    assert {"type": "number"} in schema["properties"]["female"]["anyOf"]
    assert {"type": "number"} not in schema["properties"]["contract"]["anyOf"]
    assert "customer_id" in schema["properties"]


def test_schema_must_cover_the_features():
    with pytest.raises(ValueError, match="no entry for the feature columns"):
        RecordValidator([*FEATURES, "age"], SCHEMA)


def test_batches_of_every_size_give_the_same_columns():
    records = [
        {
            **GOOD,
            "tenure": float(i % 70),
            "female": i % 2,
            "contract": ["One year", "Decade"][i % 2],
        }
        for i in range(20)
    ]
    whole = validator().validate(records, batch=True)
    assert whole.unseen == {"contract": 10}
    for size in (1, 2, 9, 20):
        part = validator().validate(records[:size], batch=True)
        for name in FEATURES:
            assert list(part.values[name]) == list(whole.values[name])[:size]


def test_a_single_feature_batch():
    single = RecordValidator(["tenure"], SCHEMA)
    columns = single.validate([{"tenure": float(i)} for i in range(12)], batch=True)
    assert list(columns.values["tenure"]) == [float(i) for i in range(12)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenure", "3"),
        ("tenure", math.nan),
        ("tenure", True),
        ("female", [1]),
        ("contract", 3),
        ("tenure", 1e9),
    ],
)
def test_long_batches_name_the_bad_record(field, value):
    records = [dict(GOOD, female=i % 2) for i in range(20)]
    records[15] = {**records[15], field: value}
    with pytest.raises(InvalidRecords) as caught:
        validator().validate(records, batch=True)
    assert [(p.record, p.field) for p in caught.value.problems] == [(15, field)]


def test_the_columnar_pass_agrees_with_the_record_by_record_pass():
    forms = [
        {"female": 1, "score": 1, "paperless": 1, "contract": "One year"},
        {"female": "1.0", "score": "2.5", "paperless": "false", "contract": "Decade"},
        {"female": True, "score": 2.5, "paperless": None, "contract": None, "note": None},
        {"female": 1.5, "score": "1", "paperless": False, "contract": "Decade", "tenure": None},
        {"female": None, "score": 7, "paperless": "True", "contract": "Month-to-month"},
    ]
    records = [{**GOOD, **forms[i % len(forms)], "customer_id": f"C{i}"} for i in range(40)]
    records[3].pop("customer_id")  # the key is optional, record by record
    check = validator()
    assert validate_columns(check, records) is not None  # the batch takes the columnar pass
    columnar = check.validate(records, batch=True)
    each = check._each(records, batch=True)
    for name in FEATURES:
        assert list(map(str, columnar.values[name])) == list(map(str, each.values[name])), name
    assert (columnar.missing, columnar.unseen) == (each.missing, each.unseen)
    assert columnar.unseen == {"female": 8, "score": 8, "contract": 16}
    assert columnar.missing == {
        "female": 8,
        "paperless": 8,
        "contract": 8,
        "note": 8,
        "tenure": 8,
    }
