"""Hostile requests over real HTTP: every one gets a 4xx JSON error (never a 5xx or plain text), stalled clients
take no service from the others, and what was answered is logged."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from deep_learning_workflow.service.prediction_log import read_logged_records

from .test_service import JSON_HEADERS, assert_error, post_head, read_response, send_raw


def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one answer (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(data)
        received = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ]
            if lengths and len(body) >= lengths[0]:
                break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"[" * 10_000 + b"NaN" + b"]" * 10_000,  # NaN sends it to the stdlib parser
        b'{"a": "\\ud800"' + b"[" * 5_000,
    ],
)
def test_deep_nesting_is_a_400(client, body):
    assert_error(client.post("/predict", content=body, headers=JSON_HEADERS), 400, "malformed_json")


def test_lone_surrogate_in_a_field_name_is_a_422(client, telco_records):
    body = orjson.dumps(telco_records[0])[:-1] + b', "\\ud800x": 1}'
    error = assert_error(
        client.post("/predict", content=body, headers=JSON_HEADERS), 422, "invalid_record"
    )
    assert error["problems"][0]["message"] == "unknown field"


def test_lone_surrogate_in_a_value_is_answered_and_logged(main_server, client, telco_records):
    record = dict(telco_records[0], contract="@@")
    body = orjson.dumps(record).replace(b"@@", b"\\ud800")
    dropped = main_server.app.state.service.metrics.log_dropped._value.get()
    answer = client.post("/predict", content=body, headers=JSON_HEADERS)
    assert answer.status_code == 200
    main_server.flush_log()
    logged = read_logged_records(main_server.log_url, expand=False)
    row = logged[logged["request_id"] == answer.json()["request_id"]]
    assert len(row) == 1 and "\\ud800" in row["record"].iloc[0]
    assert main_server.app.state.service.metrics.log_dropped._value.get() == dropped


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 415),
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "application/json; charset=utf-8"}, 200),
        ({"content-type": "Application/JSON"}, 200),
    ],
)
def test_content_type(client, telco_records, headers, status):
    response = client.post("/predict", content=orjson.dumps(telco_records[0]), headers=headers)
    if status == 200:
        assert response.status_code == 200
    else:
        assert_error(response, status, "unsupported_media_type")


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Type: application/json\r\nContent-Length: -5\r\n",
        b"Content-Type: application/json\r\nContent-Length: abc\r\n",
        b"Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 7\r\n",
        b"Content-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Type: application/json\r\nBad\x00Header: 1\r\nContent-Length: 2\r\n",
        b"Content-Type: application/json\r\nX-Long: "
        + b"a" * 200_000
        + b"\r\nContent-Length: 2\r\n",
    ],
)
def test_broken_headers_get_json_400(main_server, head):
    status, headers, body = raw_exchange(
        main_server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n{}"
    )
    assert 400 <= status < 500
    assert headers["content-type"] == "application/json"
    assert "error" in orjson.loads(body)


def test_stalled_clients_leave_the_service_to_the_others(serve, telco_bundle, telco_records):
    server = serve(bundle=str(telco_bundle), log_url=None, body_timeout_seconds=5.0)
    body = orjson.dumps(telco_records[0])
    # 64 clients send their headers and half the body, then stop.
    stalled = [
        send_raw(server.port, post_head(len(body)) + body[: len(body) // 2]) for _ in range(64)
    ]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            answers = [http.post("/predict", json=record) for record in telco_records[:20]]
            assert [a.status_code for a in answers] == [200] * 20
        # Served while the stalled clients still wait for their answer.
        waiting = 0
        for connection in stalled:
            connection.setblocking(False)
            try:
                connection.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                waiting += 1
            connection.setblocking(True)
        assert waiting == 64
        # The stalled ones are answered 408 once the body timeout passes, and their connections closed.
        for connection in stalled:
            status, _ = read_response(connection)
            assert status == 408
            assert connection.recv(1) == b""
    finally:
        for connection in stalled:
            connection.close()
