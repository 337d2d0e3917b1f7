"""The wheel: ``kedro package``, installed in a fresh virtual environment, runs the serving pipeline and the service."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pandas as pd
import pytest

from deep_learning_workflow.bundle import read_bundle

from .packaging import (
    PACKAGE,
    UPSTREAM_PIPELINES,
    conf_tarball_members,
    install_packaged_project,
    run_packaged,
    start_service,
)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """The installed wheel, with the upstream pipelines' outputs made by the wheel itself (``--env test``)."""
    project = install_packaged_project(tmp_path_factory.mktemp("wheel"))
    run_packaged(project, "--env", "test", "--pipelines", ",".join(UPSTREAM_PIPELINES))
    return project


@pytest.mark.slow
def test_wheel_runs_the_serving_pipeline_and_serves_the_bundle(packaged):
    members = conf_tarball_members(packaged.conf_tarball)
    assert (
        "conf/base/parameters_serving.yml" in members and "conf/base/catalog_serving.yml" in members
    )
    assert not any(name.startswith("conf/local/") and name.endswith(".yml") for name in members)
    location = subprocess.run(
        [str(packaged.python), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=packaged.env,
        cwd=packaged.run_dir,
    ).stdout
    assert str(packaged.python.parents[1]) in location  # the wheel, not the source tree

    # The test environment's tiny model may miss the release gate; the test env forces the export and says so.
    run_packaged(packaged, "--env", "test", "--pipelines", "serving")

    data = packaged.run_dir / "data"
    bundle = read_bundle(data / "07_model_output" / "serving_bundle")
    gate = json.loads((data / "08_reporting" / "release_gate.json").read_text())
    assert bundle.metadata["release_gate"]["passed"] is gate["passed"]
    assert (
        bundle.metadata["versions"]["deep_learning_workflow"] == packaged.wheel.name.split("-")[1]
    )
    assert 0.0 <= bundle.decision_threshold <= 1.0
    assert [
        name for name in bundle.schema if bundle.schema[name]["role"] != "key"
    ] == bundle.features

    batch = pd.read_csv(data / "01_raw" / "scoring_batch.csv")
    predictions = pd.read_parquet(data / "07_model_output" / "predictions.parquet")
    assert predictions[bundle.metadata["key"]].tolist() == batch[bundle.metadata["key"]].tolist()
    assert set(predictions["label"]) <= set(bundle.classes)
    assert predictions["probability"].between(0, 1).all()
    assert (predictions["model_version"] == bundle.model_version).all()
    drift = json.loads((data / "08_reporting" / "drift_report.json").read_text())
    assert drift["rows"] == len(batch) and set(drift["features"]) == set(bundle.features)

    first = batch.iloc[0]
    record = {
        name: None
        if pd.isna(first[name])
        else float(first[name])
        if bundle.schema[name]["role"] == "numeric"
        else str(first[name])
        for name in bundle.features
    }
    with start_service(packaged, data / "07_model_output" / "serving_bundle") as base_url:
        request = urllib.request.Request(
            f"{base_url}/predict",
            data=json.dumps(record).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    assert answer["model_version"] == bundle.model_version
    expected = predictions.loc[0, "probability"]
    assert answer["probability"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
