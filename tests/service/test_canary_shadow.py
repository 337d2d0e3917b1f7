"""Canary (a share of the traffic answered by a second version) and shadow (every request scored by a second
version, logged, never returned), and the report comparing two versions from the log."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from deep_learning_workflow.bundle import read_bundle
from deep_learning_workflow.service.loader import load_version
from deep_learning_workflow.service.prediction_log import read_logged_records
from deep_learning_workflow.service.report import compare_versions, main


@pytest.fixture(scope="module")
def versions(telco_bundle, telco_bundle_b):
    return load_version(telco_bundle), load_version(telco_bundle_b)


def offline(version, record) -> float:
    return version.score(version.validator.validate([record], batch=False)).probability[0]


def offline_batch(version, records) -> list[float]:
    return version.score(version.validator.validate(records, batch=True)).probability


def test_canary_answers_its_share_of_the_traffic(
    serve, telco_bundle, telco_bundle_b, telco_records, versions, tmp_path
):
    primary, canary = versions
    server = serve(
        bundle=str(telco_bundle),
        canary_bundle=str(telco_bundle_b),
        canary_fraction=0.25,
        log_url=f"sqlite:///{tmp_path / 'log.sqlite'}",
    )
    with httpx.Client(base_url=server.url) as http:
        answers = [http.post("/predict", json=record).json() for record in telco_records]
        again = [http.post("/predict", json=record).json() for record in telco_records[:50]]
        metadata = http.get("/metadata").json()
    variants = [a["variant"] for a in answers]
    share = variants.count("canary") / len(variants)
    assert abs(share - 0.25) < 0.07, share
    assert (
        metadata["canary"]["model_version"] == canary.version
        and metadata["canary_fraction"] == 0.25
    )
    for answer, record in zip(answers, telco_records, strict=True):
        version = canary if answer["variant"] == "canary" else primary
        assert answer["model_version"] == version.version
        assert answer["probability"] == offline(version, record)
    # Routing hashes the request, so the same request goes to the same version.
    assert [a["variant"] for a in again] == variants[:50]
    # A routing key overrides the body: one key, one version.
    with httpx.Client(base_url=server.url) as http:
        keyed = {
            http.post("/predict", json=record, headers={"X-Routing-Key": "customer-42"}).json()[
                "variant"
            ]
            for record in telco_records[:20]
        }
    assert len(keyed) == 1
    server.flush_log()
    log = read_logged_records(server.app.state.service.settings.log_url, expand=False)
    assert set(log["variant"]) == {"primary", "canary"}
    assert log.groupby("variant")["model_version"].unique().map(list).to_dict() == {
        "canary": [canary.version],
        "primary": [primary.version],
    }
    report = compare_versions(log)
    assert (report["baseline"], report["candidate"]) == (primary.version, canary.version)
    assert report["versions"][canary.version]["records"] == int((log["variant"] == "canary").sum())
    assert report["paired"]["records"] == 0 and report["paired"]["agreement_rate"] is None


def test_shadow_scores_everything_without_changing_answers(
    serve, telco_bundle, telco_bundle_b, telco_records, versions, tmp_path, capsys
):
    primary, shadow = versions
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    server = serve(bundle=str(telco_bundle), shadow_bundle=str(telco_bundle_b), log_url=log_url)
    records = telco_records[:120]
    with httpx.Client(base_url=server.url) as http:
        singles = [http.post("/predict", json=record).json() for record in records[:60]]
        batch = http.post("/predict", json=records[60:]).json()
        metrics = http.get("/metrics").text
    answers = [s["probability"] for s in singles] + [p["probability"] for p in batch["predictions"]]
    assert {s["model_version"] for s in singles} | {batch["model_version"]} == {primary.version}
    assert {s["variant"] for s in singles} == {"primary"}
    assert answers == [offline(primary, record) for record in records[:60]] + offline_batch(
        primary, records[60:]
    )
    server.flush_log()
    log = read_logged_records(log_url, expand=False)
    shadow_rows = log[log["variant"] == "shadow"]
    assert len(shadow_rows) == len(records) and not shadow_rows["served"].any()
    assert set(shadow_rows["model_version"]) == {shadow.version}
    expected_shadow = [offline(shadow, record) for record in records[:60]] + offline_batch(
        shadow, records[60:]
    )
    order = [(s["request_id"], 0) for s in singles] + [(batch["request_id"], i) for i in range(60)]
    logged_shadow = shadow_rows.set_index(["request_id", "record_index"]).loc[order, "probability"]
    # The shadow scores what accumulated since its last run as one batch: equal up to float rounding.
    np.testing.assert_allclose(logged_shadow.tolist(), expected_shadow, rtol=1e-5)
    assert (
        f'dlw_model_info{{engine="numpy",model_version="{shadow.version}",variant="shadow"}} 1.0'
        in metrics
    )

    report = compare_versions(log)
    assert (report["baseline"], report["candidate"]) == (primary.version, shadow.version)
    served = np.array(answers)
    shadowed = logged_shadow.to_numpy()
    agreement = np.mean((served >= primary.threshold) == (shadowed >= shadow.threshold))
    assert report["paired"]["records"] == len(records)
    assert report["paired"]["agreement_rate"] == pytest.approx(agreement)
    assert report["paired"]["mean_abs_probability_difference"] == pytest.approx(
        np.abs(served - shadowed).mean()
    )
    assert report["versions"][primary.version]["requests"] == 61

    assert main(["compare", "--log-url", log_url, "--json"]) == 0
    assert _printed_json(capsys.readouterr().out)["paired"]["records"] == len(records)
    assert main(["compare", "--log-url", log_url]) == 0
    assert "agreement rate" in capsys.readouterr().out
    assert main(["drift", "--log-url", log_url, "--bundle", str(telco_bundle)]) == 0
    assert "retraining due" in capsys.readouterr().out
    assert read_bundle(telco_bundle).model_version == primary.version


def _printed_json(output: str) -> dict:
    """The JSON document a command printed; log lines of other tests' logging set-up may surround it."""
    start = 0 if output.startswith("{") else output.index("\n{") + 1
    return json.JSONDecoder().raw_decode(output[start:])[0]


def test_report_needs_two_versions(tmp_path, serve, telco_bundle, telco_records, capsys):
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    server = serve(bundle=str(telco_bundle), log_url=log_url)
    httpx.post(f"{server.url}/predict", json=telco_records[0])
    server.flush_log()
    with pytest.raises(ValueError, match="needs rows of both versions"):
        compare_versions(read_logged_records(log_url))
    assert main(["compare", "--log-url", log_url]) == 2
    assert "needs rows of both versions" in capsys.readouterr().err


POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
def test_prediction_log_in_postgresql(serve, telco_bundle, telco_bundle_b, telco_records):
    import uuid

    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES)
        with engine.connect():
            pass
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")
    table = f"predictions_{uuid.uuid4().hex[:8]}"
    try:
        server = serve(
            bundle=str(telco_bundle),
            shadow_bundle=str(telco_bundle_b),
            log_url=POSTGRES,
            log_table=table,
        )
        answer = httpx.post(f"{server.url}/predict", json=telco_records[:5]).json()
        server.flush_log()
        log = read_logged_records(POSTGRES, table)
        assert len(log) == 10 and set(log["request_id"]) == {answer["request_id"]}
        assert log["timestamp"].dt.tz is not None
        assert compare_versions(log)["paired"]["records"] == 5
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
