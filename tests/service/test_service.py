"""The REST service over real HTTP on 127.0.0.1: predictions, validation, limits, metrics, the prediction log and
schemathesis fuzzing of its OpenAPI schema."""

from __future__ import annotations

import math
import socket
import time

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from deep_learning_workflow.bundle import read_bundle
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.service.loader import load_version
from deep_learning_workflow.service.prediction_log import read_logged_records

from .bundles import TELCO_ROLES

JSON_HEADERS = {"content-type": "application/json"}


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert "Traceback" not in response.text
    if field is not None:
        assert field in {p["field"] for p in body["problems"]}, body
        assert field in body["message"]
    return body


def send_raw(port: int, data: bytes) -> socket.socket:
    """Open a connection and send bytes without waiting for an answer."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(data)
    return connection


def read_response(connection: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return int(head[9:12]), body


def post_head(length: int) -> bytes:
    return (
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_liveness_readiness_and_metadata(client, telco_bundle):
    assert client.get("/livez").json() == {"status": "alive"}
    bundle = read_bundle(telco_bundle)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_versions"] == {"primary": bundle.model_version}
    metadata = client.get("/metadata").json()
    assert metadata["model_version"] == bundle.model_version
    assert metadata["decision_threshold"] == 0.4
    assert metadata["classes"] == ["No", "Yes"] and metadata["positive_class"] == "Yes"
    assert metadata["features"] == bundle.features
    assert metadata["schema"]["tenure"]["role"] == "numeric"
    assert metadata["engine"] == "numpy"
    assert metadata["limits"]["max_batch_size"] == 50


def test_single_and_batch_predictions_are_the_models(
    client, telco_bundle, telco_rows, telco_records
):
    bundle = read_bundle(telco_bundle)
    expected = predict_probabilities(bundle.model, telco_rows.iloc[:40], bundle.roles)[:, 1]
    singles = [client.post("/predict", json=record).json() for record in telco_records[:40]]
    batch = client.post("/predict", json=telco_records[:40]).json()
    assert [s["model_version"] for s in singles] == [bundle.model_version] * 40
    np.testing.assert_allclose([s["probability"] for s in singles], expected, rtol=1e-5)
    np.testing.assert_allclose(
        [p["probability"] for p in batch["predictions"]], expected, rtol=1e-5
    )
    assert [s["label"] for s in singles] == [
        "Yes" if p >= 0.4 else "No" for p in [s["probability"] for s in singles]
    ]
    assert [p["label"] for p in batch["predictions"]] == [s["label"] for s in singles]
    assert batch["model_version"] == bundle.model_version and batch["variant"] == "primary"
    assert math.isclose(sum(singles[0]["probabilities"].values()), 1.0, rel_tol=1e-6)


def test_unseen_category_and_missing_number_are_scored_and_counted(client, telco_records):
    before = client.get("/metrics").text
    record = {**telco_records[0], "payment_method": "Cryptocurrency", "total_charges": None}
    response = client.post("/predict", json=record)
    assert response.status_code == 200
    assert 0.0 <= response.json()["probability"] <= 1.0
    after = client.get("/metrics").text

    def count(text: str, line: str) -> float:
        return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)

    unseen = 'dlw_unseen_categories_total{column="payment_method"}'
    missing = 'dlw_missing_values_total{column="total_charges"}'
    assert count(after, unseen) == count(before, unseen) + 1
    assert count(after, missing) == count(before, missing) + 1


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"tenure": "12"}, "tenure", "must be a number"),
        ({"tenure": True}, "tenure", "got boolean"),
        ({"contract": 12}, "contract", "must be a string"),
        ({"tenure": 10_000}, "tenure", "outside the accepted range"),
        ({"monthly_charges": -1e9}, "monthly_charges", "outside the accepted range"),
        ({"unknown_column": 1}, "unknown_column", "unknown field"),
    ],
)
def test_invalid_fields_are_named(client, telco_records, change, field, fragment):
    body = assert_error(
        client.post("/predict", json={**telco_records[0], **change}), 422, "invalid_record", field
    )
    assert fragment in body["message"]


def test_missing_field(client, telco_records):
    record = {k: v for k, v in telco_records[0].items() if k != "contract"}
    assert_error(client.post("/predict", json=record), 422, "invalid_record", "contract")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_refused_naming_the_field(client, telco_records, constant):
    record = orjson.dumps({k: v for k, v in telco_records[0].items() if k != "tenure"}).decode()
    body = '{"tenure": ' + constant + ", " + record[1:]
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_record", "tenure")
    assert "finite" in response.json()["message"]


def test_batch_problems_name_the_record(client, telco_records):
    batch = [telco_records[0], {**telco_records[1], "tenure": "x"}, 5]
    body = assert_error(client.post("/predict", json=batch), 422, "invalid_record", "tenure")
    assert [p["record"] for p in body["problems"]] == [1, 2]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"tenure": ', 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"\xff\xfe garbage", 400, "malformed_json"),
        (b"[]", 422, "empty_batch"),
        (b"42", 422, "invalid_body"),
        (b'"a record"', 422, "invalid_body"),
    ],
)
def test_malformed_bodies(client, content, status, code):
    assert_error(client.post("/predict", content=content, headers=JSON_HEADERS), status, code)


def test_batch_over_the_limit(client, telco_records):
    assert_error(client.post("/predict", json=telco_records[:51]), 413, "batch_too_large")
    assert client.post("/predict", json=telco_records[:50]).status_code == 200


def test_body_over_the_size_limit_is_refused_before_it_is_read(main_server):
    # Only the headers are sent: the answer cannot depend on parsing the body.
    connection = send_raw(main_server.port, post_head(10_000_000))
    status, body = read_response(connection)
    connection.close()
    assert status == 413
    assert orjson.loads(body)["error"] == "body_too_large"


def test_chunked_body_over_the_size_limit(client):
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    assert_error(
        client.post("/predict", content=chunks(), headers=JSON_HEADERS), 413, "body_too_large"
    )


def test_non_finite_model_output_is_an_error_response(serve, coverage_bundle):
    server = serve(bundle=str(coverage_bundle), log_url=None)
    record = {
        "review_length": 10.0,
        "product_id": "B0001",
        "review": "",
    }  # Keras itself computes 0 / 0 here
    with httpx.Client(base_url=server.url) as http:
        assert_error(http.post("/predict", json=record), 422, "non_finite_output")
        ok = http.post("/predict", json={**record, "review": "tasty and cheap"})
        assert ok.status_code == 200
        assert (
            'dlw_http_errors_total{handler="/predict",reason="non_finite_output"} 1.0'
            in http.get("/metrics").text
        )


def test_concurrency_limit_answers_503_instead_of_queueing(main_server, client, telco_records):
    state = main_server.app.state.service
    # Requests whose answers are still being sent hold the slots (a slow reader of a large answer does).
    state.in_flight += 4
    try:
        response = client.post("/predict", json=telco_records[0])
        assert_error(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1"
        # Probes and scrapes are not turned away while the service is saturated.
        assert (
            client.get("/readyz").status_code == 200 and client.get("/metrics").status_code == 200
        )
    finally:
        state.in_flight -= 4
    assert client.post("/predict", json=telco_records[0]).status_code == 200


def test_clients_stalled_in_their_body_take_no_slot(main_server, client, telco_records):
    body = orjson.dumps(telco_records[0])
    # Four slow clients (the concurrency limit): headers sent, body not yet.
    slow = [send_raw(main_server.port, post_head(len(body)) + body[:10]) for _ in range(4)]
    time.sleep(0.3)
    assert client.post("/predict", json=telco_records[0]).status_code == 200
    for connection in slow:
        connection.sendall(body[10:])
    statuses = [read_response(connection)[0] for connection in slow]
    for connection in slow:
        connection.close()
    assert statuses == [200] * 4


def test_unknown_paths_and_methods_are_json_errors(client):
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/predict"), 405, "method_not_allowed")


def test_metrics_exposition(client, telco_records, telco_bundle):
    client.post("/predict", json=telco_records[:5])
    client.post("/predict", content=b"{", headers=JSON_HEADERS)
    text = client.get("/metrics").text
    version = read_bundle(telco_bundle).model_version
    for line in (
        'dlw_http_requests_total{handler="/predict",method="POST",status="200"}',
        'dlw_http_requests_total{handler="/predict",method="POST",status="400"}',
        'dlw_http_request_duration_seconds_bucket{handler="/predict",le="0.005"}',
        'dlw_http_errors_total{handler="/predict",reason="malformed_json"}',
        "dlw_model_ready 1.0",
        f'dlw_model_info{{engine="numpy",model_version="{version}",variant="primary"}} 1.0',
        'dlw_predicted_probability_bucket{le="0.5",variant="primary"}',
    ):
        assert line in text, line
    predicted = [line for line in text.splitlines() if line.startswith("dlw_predictions_total{")]
    assert {'label="No"' in line or 'label="Yes"' in line for line in predicted} == {True}
    assert sum(float(line.split()[-1]) for line in predicted) >= 5


def test_prediction_log_and_drift_on_logged_requests(
    main_server, client, telco_records, telco_bundle
):
    from deep_learning_workflow.service.monitoring import logged_drift_report

    response = client.post("/predict", json=telco_records[:30]).json()
    main_server.flush_log()
    log = read_logged_records(main_server.log_url)
    rows = log[log["request_id"] == response["request_id"]].sort_values("record_index")
    assert len(rows) == 30
    assert rows["served"].all() and set(rows["variant"]) == {"primary"}
    assert rows["model_version"].unique().tolist() == [response["model_version"]]
    np.testing.assert_allclose(
        rows["probability"], [p["probability"] for p in response["predictions"]]
    )
    assert rows["contract"].tolist() == [r["contract"] for r in telco_records[:30]]
    assert (rows["latency_ms"] > 0).all()
    report = logged_drift_report(main_server.log_url, str(telco_bundle), settings={"min_rows": 20})
    assert report["rows"] == int(log["served"].sum())
    assert set(report["features"]) == set(TELCO_ROLES.features)
    assert report["enough_rows"]
    # The live gauges run the same computation on the recent window.
    deadline = time.monotonic() + 5
    while "dlw_feature_drift{" not in client.get("/metrics").text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 'dlw_feature_drift{column="tenure",metric="psi"}' in client.get("/metrics").text


def test_openapi_describes_the_record_schema(client, telco_bundle):
    document = client.get("/openapi.json").json()
    record = document["components"]["schemas"]["Record"]
    assert record["required"] == read_bundle(telco_bundle).features
    assert record["additionalProperties"] is False
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body["oneOf"][1]["maxItems"] == 50


def hostile_bodies():
    """JSON of any shape and any text (lone surrogates included, as JSON escapes), nested up to 10,000 deep, and
    bytes that are no JSON at all."""
    from hypothesis import strategies as st

    text = st.text(
        st.characters(categories=["Cs", "L", "N", "P", "S", "Z", "Cc"]), max_size=20
    ) | st.sampled_from(["\ud800", "x\udfff", "\U0001f600", "\x00"])
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=20,
    )
    json_bodies = values.map(lambda value: ascii_json(value))
    nested = st.tuples(st.integers(1, 10_000), st.sampled_from([b"[", b'{"a":'])).map(
        lambda pair: pair[1] * pair[0] + b"1" + (b"]" if pair[1] == b"[" else b"}") * pair[0]
    )
    return json_bodies | nested | st.binary(max_size=200)


def ascii_json(value) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def hostile_headers():
    from hypothesis import strategies as st

    content_types = st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/problem+json",
            "",
            "application/json;;;",
        ]
    )
    names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
        lambda name: name not in {"content-length", "transfer-encoding", "host", "connection"}
    )
    # The client refuses values with surrounding blanks; uvicorn's own parser answers those (test_attacks).
    values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
    return st.tuples(content_types, st.dictionaries(names, values, max_size=5)).map(
        lambda pair: {**pair[1], "content-type": pair[0]}
    )


def fuzz_hostile(operation, base_url: str, statuses: dict[str, list[int]]) -> None:
    """/predict with generated headers (any Content-Type, any extra header) and hostile bodies."""

    @settings(
        max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(), headers=hostile_headers(), body=hostile_bodies())
    def fuzz(case, headers, body):
        with httpx.Client(base_url=base_url, timeout=30) as http:
            response = http.post(case.formatted_path, content=body, headers=headers)
        statuses.setdefault("hostile", []).append(response.status_code)
        assert response.status_code < 500, (headers, body[:200], response.text)
        assert response.headers["content-type"] == "application/json"
        response.json()

    fuzz()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(main_server):
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{main_server.url}/openapi.json")
    checks = [not_a_server_error]
    for name in (
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ):
        checks.append(getattr(schemathesis.checks, name))
    statuses: dict[str, list[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        # Operations without parameters or body have no invalid input to generate.
        modes = [GenerationMode.POSITIVE]
        if operation.body:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @settings(
                max_examples=50,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                response = case.call_and_validate(base_url=main_server.url, checks=checks)
                statuses.setdefault(case.operation.label, []).append(response.status_code)

            fuzz()
        if operation.label == "POST /predict":
            fuzz_hostile(operation, main_server.url, statuses)
    predict = statuses["POST /predict"]
    assert len(predict) >= 60
    assert any(status == 415 for status in statuses["hostile"])
    assert all(400 <= status < 500 or status == 200 for status in statuses["hostile"])
    assert 200 in predict and any(400 <= status < 500 for status in predict)
    assert all(status < 500 for codes in statuses.values() for status in codes)
    assert main_server.app.state.service.ready


def test_loaded_version_matches_the_server(main_server, telco_bundle, telco_records, client):
    version = load_version(telco_bundle)
    scores = version.score(version.validator.validate(telco_records[:10], batch=True))
    served = client.post("/predict", json=telco_records[:10]).json()["predictions"]
    assert [p["probability"] for p in served] == scores.probability
