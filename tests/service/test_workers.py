"""``--workers 2``: two processes answer on one port, /metrics sums them, a killed worker is replaced, and SIGTERM
drains both and loses no log row."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deep_learning_workflow.service.prediction_log import read_logged_records
from tests.ports import free_port

from .conftest import start_process
from .test_process import get, wait_for


def workers_of(parent: int) -> set[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = set()
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in command:
            workers.add(child)
    return workers


def metric(url: str, name: str) -> float:
    """A metric summed over its labels, as /metrics reports it."""
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return sum(
        sample.value for family in families for sample in family.samples if sample.name == name
    )


def post_apart(url: str, bodies: list) -> list[httpx.Response]:
    """Each body on a connection of its own, eight at a time (so both workers get some)."""

    def post(body):
        with httpx.Client(base_url=url, timeout=30) as client:
            return client.post("/predict", json=body)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, bodies))


@pytest.mark.slow
def test_two_workers_share_the_port_sum_their_metrics_and_stop_without_losing_a_row(
    telco_bundle, telco_records, tmp_path
):
    port = free_port()
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    process = start_process(
        [
            "--bundle",
            str(telco_bundle),
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-url",
            log_url,
            "--drain-seconds",
            "2",
            "--log-flush-seconds",
            "0.1",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    try:
        wait_for(lambda: len(workers_of(process.pid)) == 2 or None, 60, "two workers")
        first_workers = workers_of(process.pid)
        # Each worker's request ids carry a prefix of its own: both must answer.
        prefixes: set[str] = set()

        def both_answer():
            ready = get(f"{url}/readyz")
            if ready is None or ready.status_code != 200:
                return None
            for response in post_apart(url, telco_records[:16]):
                if response.status_code == 200:
                    answered.append(response.json()["request_id"])
                    prefixes.add(response.json()["request_id"].split("-")[0])
            return True if len(prefixes) == 2 else None

        wait_for(both_answer, 180, "both workers to answer")
        batches = [telco_records[i : i + 10] for i in range(0, 100, 10)]
        for response in post_apart(url, batches + telco_records[:30]):
            assert response.status_code == 200, response.text
            answered.append(response.json()["request_id"])
        # Counted by whichever worker answered, summed by whichever worker is scraped.
        records = 100 + 30 + sum(1 for r in answered[: -len(batches) - 30])
        for _ in range(3):
            assert metric(url, "dlw_predictions_total") == records
        assert metric(url, "dlw_model_ready") == 1.0
        assert metric(url, "dlw_http_requests_total") >= len(answered)

        # A worker killed from outside is replaced; the service answers throughout.
        victim = min(first_workers)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (w := workers_of(process.pid)) and len(w) == 2 and victim not in w or None,
            60,
            "a replacement worker",
        )
        for response in post_apart(url, telco_records[:8]):
            assert response.status_code == 200
            answered.append(response.json()["request_id"])
        # The dead worker's counts stay in the sums (they happened).
        assert metric(url, "dlw_predictions_total") == records + 8

        process.send_signal(signal.SIGTERM)
        draining = wait_for(
            lambda: (r := get(f"{url}/readyz")) is not None and r.status_code == 503 and r or None,
            5,
            "/readyz to answer 503",
        )
        assert draining.json()["status"] == "draining"
        status = process.wait(90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode()
    assert status == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "was killed (SIGKILL); starting another" in output
    logged = set(read_logged_records(log_url)["request_id"])
    assert set(answered) <= logged
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/livez", timeout=2)


def test_a_worker_count_below_one_is_refused(tmp_path):
    process = start_process(["--workers", "0", "--log-url", "null"])
    assert process.wait(60) == 2
    assert "workers" in process.stdout.read().decode()
