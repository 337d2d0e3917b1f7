"""From a table file to a served model with `kedro dlw new-table` and `kedro run`, no file edited; a second
environment's failed run leaves the first one's outputs alone (docs/own_data.md)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from tests.conftest import data_state, run_kedro
from tests.own_tables import CLASSES, ODD_NAMES, make_tickets
from tests.service.conftest import ThreadServer

PLAIN_NAMES = {name: name for name in ODD_NAMES}
# Shorter training than conf/base's: the test checks the path from file to service, not the model's quality.
QUICK = "modelling.epochs=8,modelling.seeds=1,evaluation.bootstrap.resamples=50"


def _tree(project, root: str) -> dict:
    return {k: v for k, v in data_state(project).items() if k.startswith(f"{root}/")}


@pytest.mark.slow
@pytest.mark.parametrize(
    "names",
    [
        pytest.param(ODD_NAMES, id="spaces-and-non-ascii"),
        pytest.param(PLAIN_NAMES, id="plain-names"),
    ],
)
def test_a_table_goes_from_file_to_service_in_two_commands(project_copy, names):
    raw = project_copy / "data" / "01_raw"
    make_tickets(500, seed=11).rename(columns=names).to_csv(
        raw / "tickets.csv", sep=";", index=False
    )
    target = names["priority"]

    created = run_kedro(
        project_copy,
        "dlw",
        "new-table",
        "data/01_raw/tickets.csv",
        "--target",
        target,
        "--env",
        "tix",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    assert "kedro run --env tix" in created.stdout
    assert f"text            1: {names['description']}" in created.stdout
    run = run_kedro(project_copy, "run", "--env", "tix", "--params", QUICK)
    assert run.returncode == 0, run.stderr[-3000:]

    root = project_copy / "data" / "tix"
    assert not (project_copy / "data" / "05_model_input").exists()  # nothing under the base root
    metadata = json.loads((root / "06_models" / "model_metadata.json").read_text())
    assert metadata["classes"] == CLASSES
    assert metadata["roles"]["text"] == [names["description"]]
    gate = json.loads((root / "08_reporting" / "release_gate.json").read_text())
    assert gate["verdict"] in {"release", "reject"} and gate["primary_metric"] == "pr_auc"
    assert {c["check"] for c in gate["checks"]} >= {
        f"scenario clearest_{label}_row_is_{label}" for label in CLASSES
    }

    # A second table, whose run fails in modelling after writing its splits, touches nothing of the first.
    before = _tree(project_copy, "data/tix")
    second = make_tickets(300, seed=12).rename(columns=names)
    second[target] = second[target].where(second[target] == "high", "other")
    second.to_parquet(raw / "second.parquet", index=False)
    created = run_kedro(
        project_copy,
        "dlw",
        "new-table",
        "data/01_raw/second.parquet",
        "--target",
        target,
        "--env",
        "two",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    failed = run_kedro(
        project_copy,
        "run",
        "--env",
        "two",
        "--params",
        "modelling.sanity_check.steps=1,modelling.sanity_check.max_loss=0.0001",
    )
    assert failed.returncode != 0
    assert "sanity" in failed.stderr.lower() or "overfit" in failed.stderr.lower()
    two_train = pd.read_parquet(project_copy / "data" / "two" / "05_model_input" / "train.parquet")
    assert set(two_train[target]) == {"high", "other"}
    assert _tree(project_copy, "data/tix") == before

    served = run_kedro(
        project_copy,
        "run",
        "--env",
        "tix",
        "--pipelines",
        "serving",
        "--params",
        "serving.force_export=true",
    )
    assert served.returncode == 0, served.stderr[-3000:]
    predictions = pd.read_parquet(root / "07_model_output" / "predictions.parquet")
    batch = pd.read_parquet(raw / "tix" / "scoring_batch.parquet")
    assert len(predictions) == len(batch)

    from deep_learning_workflow.service.settings import ServiceSettings

    record = {
        names["ticket_id"]: "X1",
        names["plan"]: "enterprise",
        names["hours_open"]: None,
        names["messages"]: 2,
        names["channel"]: None,
        names["description"]: "URGENT: outage, the app is down!",
    }
    settings = ServiceSettings(
        bundle=str(root / "07_model_output" / "serving_bundle"), log_url=None
    )
    with ThreadServer(settings) as server:
        server.wait_ready()
        response = httpx.post(f"{server.url}/predict", json=record, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["label"] in CLASSES
    assert set(answer["probabilities"]) == set(CLASSES)
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_kedro_viz_build_shows_the_environment_of_kedro_env(project_copy):
    import os
    import subprocess
    import sys

    from deep_learning_workflow.new_table.create import create_environment

    table = project_copy / "data" / "01_raw" / "tickets.csv"
    make_tickets(300, seed=5).to_csv(table, index=False)
    create_environment(project_copy, table, "priority", "tix")
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "KEDRO_ENV": "tix"},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    build = project_copy / "build"
    main = json.loads((build / "api" / "main").read_text())
    node = next(node for node in main["nodes"] if node["name"] == "raw_customers")
    details = json.loads((build / "api" / "nodes" / node["id"]).read_text())
    assert details["filepath"].endswith("data/01_raw/tix/table.parquet"), details.get("filepath")
    assert {"description", "priority"} <= set(details["preview"]["columns"])
