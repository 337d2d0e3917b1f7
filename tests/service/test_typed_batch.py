"""A batch body decoded straight into typed records (msgspec): the same columns, answers and log as the record
path, and every body it cannot take handed to the record path, which names the problem."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from deep_learning_workflow.inference.optimise_batch import CodedColumn
from deep_learning_workflow.service.columnar import plain_records
from deep_learning_workflow.service.prediction_log import read_logged_records

from .test_process import wait_for


@pytest.fixture(scope="module")
def validator(main_server):
    return main_server.app.state.service.primary.validator


def batch_of(telco_records, count: int = 30) -> list[dict]:
    records = [dict(record) for record in telco_records[:count]]
    records[0]["internet_service"] = "Satellite"  # a category training never saw
    records[1]["contract"] = None
    records[2]["tenure"] = None
    records[3]["female"] = "1"  # a 0/1 column as text
    records[4]["customer_id"] = "K-4"
    return records


def as_plain(column):
    return np.asarray(column, dtype=object) if isinstance(column, CodedColumn) else column


def test_a_valid_batch_becomes_the_columns_the_record_path_gives(validator, telco_records):
    records = batch_of(telco_records)
    body = orjson.dumps(records)
    typed, columns = validator.decode_batch(body, limit=50)
    expected = validator.validate(orjson.loads(body), batch=True)
    assert columns.rows == expected.rows == len(records)
    assert columns.unseen == expected.unseen and columns.unseen["internet_service"] == 1
    assert columns.missing == expected.missing
    for name, values in expected.values.items():
        np.testing.assert_array_equal(
            as_plain(columns.values[name]), as_plain(values), err_msg=name
        )
    # The drift window and the shadow read the typed records as the JSON objects they were (numbers as floats).
    plain = plain_records(typed)
    assert plain[4]["customer_id"] == "K-4" and plain[3]["female"] == "1"
    assert plain[0] == {
        key: float(value)
        if key in {"tenure", "monthly_charges", "total_charges"} and value is not None
        else value
        for key, value in records[0].items()
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r.update(tenure=True), "a boolean in a numeric field"),
        (lambda r: r.update(tenure="12"), "text in a numeric field"),
        (lambda r: r.update(contract=3), "a number in a text-only categorical field"),
        (lambda r: r.update(contract={"a": 1}), "an object in a categorical field"),
        (lambda r: r.update(colour="red"), "an unknown field"),
        (lambda r: r.pop("tenure"), "a missing field"),
        (lambda r: r.update(tenure=1e30), "a number out of range"),
    ],
)
def test_a_batch_the_typed_decoder_cannot_take_is_answered_by_the_record_path(
    validator, client, telco_records, change, why
):
    records = batch_of(telco_records, 20)
    change(records[7])
    body = orjson.dumps(records)
    assert validator.decode_batch(body, limit=50) is None, why
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, why
    problem = answer.json()["problems"][0]
    assert problem["record"] == 7, why


def test_bodies_outside_the_typed_path(validator, client, telco_records):
    records = batch_of(telco_records, 60)
    assert validator.decode_batch(orjson.dumps(records[:8]), limit=50) is None  # few records
    assert validator.decode_batch(orjson.dumps(records), limit=50) is None  # above the limit
    assert validator.decode_batch(orjson.dumps(records[0]), limit=50) is None  # one record
    nan = orjson.dumps(records[:20]).replace(b'"tenure":', b'"tenure":NaN,"x":', 1)
    assert validator.decode_batch(nan, limit=50) is None
    too_many = client.post(
        "/predict", content=orjson.dumps(records), headers={"content-type": "application/json"}
    )
    assert too_many.status_code == 413
    answer = client.post(
        "/predict",
        content=json.dumps(records[:20]).replace('"tenure": ', '"tenure": NaN, "t": ', 1),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code in {400, 422}


def test_typed_batches_are_answered_and_logged_as_the_record_path(
    main_server, client, telco_records
):
    records = batch_of(telco_records, 25)
    typed = client.post("/predict", json=records).json()
    # The record path answers the same records one at a time.
    single = [client.post("/predict", json=record).json() for record in records]
    assert [p["probability"] for p in typed["predictions"]] == pytest.approx(
        [s["probability"] for s in single], rel=1e-5, abs=1e-6
    )
    assert [p["label"] for p in typed["predictions"]] == [s["label"] for s in single]

    def logged():
        log = read_logged_records(main_server.log_url)
        rows = log[log["request_id"] == typed["request_id"]]
        return rows if len(rows) == len(records) else None

    rows = wait_for(logged, 10, "the batch's log rows")
    assert rows["internet_service"].tolist() == [r["internet_service"] for r in records]


def test_unseen_categories_switch_to_the_any_string_decoder_and_back(validator, telco_records):

    typed = validator.typed
    clean = orjson.dumps([dict(record) for record in telco_records[:20]])
    unseen = orjson.dumps(batch_of(telco_records, 20))
    typed._first = typed._since_retry = 0
    assert validator.decode_batch(clean, limit=50) is not None and typed._first == 0
    _, columns = validator.decode_batch(unseen, limit=50)
    assert columns.unseen["internet_service"] == 1 and typed._first == 1
    for _ in range(typed.RETRY - 1):
        assert validator.decode_batch(clean, limit=50) is not None
    # The learned spellings are tried first again, and a clean batch then stays with them.
    assert typed._first == 0
    assert validator.decode_batch(clean, limit=50) is not None and typed._first == 0


def hostile_batches(telco_records) -> list[bytes]:
    records = [dict(record) for record in telco_records[:20]]
    body = orjson.dumps(records)
    first_contract = orjson.dumps(records[0]["contract"])
    return [
        body.replace(first_contract, b'"\\ud800"', 1),  # a lone surrogate in a category
        body.replace(b'"tenure":', b'"tenure":1e999,"x":', 1),  # a number no float holds
        body.replace(b'"tenure":', b'"tenure":1,"tenure":', 1),  # a field given twice
        body.replace(b'"contract":', b'"contract":' + b"[" * 5000 + b"]" * 5000 + b',"y":', 1),
        body[:-1]
        + b',{"customer_id":'
        + b"[" * 10000
        + b"]" * 10000
        + b"}]",  # deep nesting in the key
        body.replace(b"},{", b"},\x00{", 1),
    ]


def test_hostile_batch_bodies_get_an_answer_never_a_5xx(client, telco_records):
    for body in hostile_batches(telco_records):
        answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert answer.status_code < 500, answer.text[:300]
        assert "error" in answer.json() or "predictions" in answer.json()
