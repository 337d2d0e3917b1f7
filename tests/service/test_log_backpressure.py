"""The log under a full queue: requests wait for room and every answered request is logged; the docs' SQL over the
log's one-row-per-request layout gives each record with its prediction."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import sqlalchemy as sa

from deep_learning_workflow.service.prediction_log import read_logged_records

DOCS = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def test_a_full_log_queue_slows_requests_down_instead_of_losing_rows(
    serve, telco_bundle, telco_records, tmp_path
):
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    # Room for 3 waiting records and no timed flush: every request finds the queue full and must wait.
    server = serve(
        bundle=str(telco_bundle), log_url=log_url, log_queue_size=3, log_flush_seconds=30
    )
    bodies = [telco_records[i] for i in range(40)] + [telco_records[i : i + 5] for i in range(20)]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda body: http.post("/predict", json=body), bodies))
        metrics = http.get("/metrics").text
    assert [answer.status_code for answer in answers] == [200] * len(bodies)
    server.flush_log()
    logged = read_logged_records(log_url, expand=False)
    assert set(logged["request_id"]) == {answer.json()["request_id"] for answer in answers}
    assert len(logged) == 40 + 20 * 5
    assert "dlw_prediction_log_dropped_total 0.0" in metrics


def docs_sql() -> str:
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/service.md should hold one SQL example"
    return blocks[0]


def test_the_docs_sql_reads_each_record_and_its_prediction(
    serve, telco_bundle, telco_records, tmp_path
):
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    server = serve(bundle=str(telco_bundle), log_url=log_url)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        single = http.post("/predict", json=telco_records[0]).json()
        batch = http.post("/predict", json=telco_records[1:4]).json()
    server.flush_log()
    engine = sa.create_engine(log_url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(docs_sql()).all()
    finally:
        engine.dispose()
    expected = [(single["request_id"], 0, telco_records[0]["contract"], single["label"])] + [
        (batch["request_id"], i, record["contract"], answer["label"])
        for i, (record, answer) in enumerate(
            zip(telco_records[1:4], batch["predictions"], strict=True)
        )
    ]
    assert [(r.request_id, r.record_index, r.contract, r.label) for r in rows] == expected
    probabilities = [single["probability"]] + [p["probability"] for p in batch["predictions"]]
    assert [r.probability for r in rows] == probabilities
