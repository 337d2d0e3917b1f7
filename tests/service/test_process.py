"""The service as it is started in production: a fresh process, readiness while it loads, SIGTERM with a request
in flight; and bundles that fail verification never become ready."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time

import httpx
import pytest

from deep_learning_workflow.service.prediction_log import read_logged_records
from tests.ports import free_port

from .conftest import start_process
from .test_service import post_head, read_response, send_raw


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result is not None:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


@pytest.mark.slow
def test_process_readiness_and_graceful_sigterm(telco_bundle, telco_records, tmp_path):
    port = free_port()
    config = tmp_path / "service.yml"
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    config.write_text(
        f"bundle: {telco_bundle}\nlog_url: {log_url}\nport: 1\ndrain_seconds: 2\n"
        "body_timeout_seconds: 30\n"
    )
    process = start_process(
        ["--config", str(config), "--port", str(port)], env={"DLW_SERVICE_MAX_BATCH_SIZE": "7"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{url}/livez"), 60, "/livez")
        # TensorFlow takes seconds to import in a fresh process: the service is live but not ready yet.
        loading = httpx.get(f"{url}/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert httpx.post(f"{url}/predict", json=telco_records[0]).json()["error"] == "not_ready"
        wait_for(
            lambda: (r := get(f"{url}/readyz")) is not None and r.status_code == 200 or None,
            180,
            "/readyz",
        )
        assert httpx.post(f"{url}/predict", json=telco_records[0]).status_code == 200
        assert (
            httpx.post(f"{url}/predict", json=telco_records[:8]).json()["error"]
            == "batch_too_large"
        )

        body = json.dumps(telco_records[1]).encode()
        in_flight = send_raw(port, post_head(len(body)) + body[:20])
        with httpx.Client(base_url=url, timeout=10) as keep_alive:
            assert keep_alive.get("/readyz").status_code == 200  # opens a keep-alive connection
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # The drain: still serving, not ready, and every answer closes its connection.
            draining = wait_for(
                lambda: (r := keep_alive.get("/readyz")).status_code == 503 and r or None,
                5,
                "/readyz to answer 503",
            )
            assert draining.json()["status"] == "draining"
            assert draining.headers["connection"] == "close"
            answer = keep_alive.post("/predict", json=telco_records[2])
            assert answer.status_code == 200 and answer.headers["connection"] == "close"
            assert time.monotonic() - signalled < 2.0
        assert process.poll() is None, "the process must wait for the request in flight"
        # After the drain the listener closes.
        wait_for(lambda: None if get(f"{url}/livez") else True, 10, "the listener to close")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        in_flight.sendall(body[20:])
        status, answer = read_response(in_flight)
        in_flight.close()
        assert status == 200
        request_id = json.loads(answer)["request_id"]
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode()
    assert "Traceback" not in output
    # The log is flushed on the way out.
    assert request_id in set(read_logged_records(log_url)["request_id"])


def tamper_model(folder):
    with open(folder / "model.keras", "r+b") as stream:
        stream.seek(100)
        byte = stream.read(1)
        stream.seek(100)
        stream.write(bytes([byte[0] ^ 0xFF]))


def tamper_threshold(folder):
    metadata = json.loads((folder / "bundle.json").read_text())
    metadata["decision_threshold"] = 0.01
    (folder / "bundle.json").write_text(json.dumps(metadata))


def add_file(folder):
    (folder / "extra.py").write_text("print('hello')\n")


def remove_manifest(folder):
    (folder / "manifest.json").unlink()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (tamper_model, "model.keras does not match its sha256"),
        (tamper_threshold, "bundle.json does not match its sha256"),
        (add_file, "extra.py is not listed in the manifest"),
        (remove_manifest, "manifest.json is missing"),
    ],
)
def test_tampered_bundle_never_becomes_ready(
    serve, telco_bundle, telco_records, tmp_path, tamper, reason
):
    folder = tmp_path / "bundle"
    shutil.copytree(telco_bundle, folder)
    tamper(folder)
    server = serve(ready=False, bundle=str(folder), log_url=None)
    state = server.app.state.service
    wait_for(lambda: True if state.status == "failed" else None, 60, "the load to fail")
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/livez").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed" and reason in ready.json()["error"]
        assert http.post("/predict", json=telco_records[0]).json()["error"] == "not_ready"
        assert http.get("/metadata").status_code == 503
        assert "dlw_model_ready 0.0" in http.get("/metrics").text
