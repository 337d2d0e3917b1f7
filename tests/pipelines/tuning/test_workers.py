"""Tuning across processes: workers sharing a PostgreSQL study, a worker killed mid-trial, and `kedro run`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
from deep_learning_workflow.pipelines.tuning.nodes import run_study

from .helpers import MODELLING, PROBLEM, RAW, ROLES, splits, tuning_params

WORKER = Path(__file__).with_name("worker.py")
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KEDRO_DISABLE_TELEMETRY": "1"}


def _start_worker(tmp_path: Path, name: str, **config) -> subprocess.Popen:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path)], stdout=log, stderr=subprocess.STDOUT, env=ENV
    )


def _wait(condition, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _storage(url: str, grace: int):
    return OptunaStorageDataset(
        credentials={"con": url}, heartbeat_interval=1, grace_period=grace
    ).load()


def _postgres_reachable() -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means: skip
        reason = (
            f"PostgreSQL at 127.0.0.1:5432 (database test, user postgres) is unreachable: {error}"
        )
        return reason[:300]
    return None


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_one_postgres_study_up_to_the_cap(tmp_path):
    reason = _postgres_reachable()
    if reason:
        pytest.skip(reason)
    name = f"workers-{uuid.uuid4().hex[:12]}"
    tuning = tuning_params(study_name=name, n_trials=4)
    ready, go = tmp_path / "ready", tmp_path / "go"
    other = _start_worker(
        tmp_path,
        "worker",
        url=POSTGRES,
        heartbeat_interval=1,
        grace_period=20,
        tuning=tuning,
        modelling=MODELLING,
        ready=str(ready),
        go=str(go),
    )
    storage = _storage(POSTGRES, grace=20)
    try:
        frames = splits()
        _wait(ready.exists, other, 180, "the worker started")
        go.touch()
        run_study(
            storage,
            gather_tuning_data(frames["train"], frames["train_balanced"], frames["val"], ROLES),
            MODELLING,
            PROBLEM,
            tuning,
            42,
        )
        assert other.wait(timeout=180) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        trials = optuna.load_study(storage=storage.storage, study_name=name).trials
        assert len(trials) == 4
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        assert len({t.user_attrs["worker"] for t in trials}) == 2
    finally:
        if other.poll() is None:
            other.kill()
        optuna.delete_study(study_name=name, storage=storage.storage)


@pytest.mark.slow
def test_a_killed_worker_trial_fails_and_is_retried_without_redoing_completed_ones(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna/study.db"
    # Long enough trials (many tiny epochs, no pruning or early stopping) to be caught in the middle.
    modelling = {**MODELLING, "epochs": 12, "early_stopping": {"enabled": False}}
    tuning = tuning_params(study_name="fault", n_trials=2, epochs=None, pruner={"name": "none"})
    worker = _start_worker(
        tmp_path,
        "worker",
        url=url,
        heartbeat_interval=1,
        grace_period=2,
        tuning=tuning,
        modelling=modelling,
    )
    storage = _storage(url, grace=2)

    def second_trial_training() -> bool:
        try:
            trials = optuna.load_study(storage=storage.storage, study_name="fault").trials
        except KeyError:
            return False
        return (
            len(trials) == 2
            and trials[1].state == TrialState.RUNNING
            and len(trials[1].intermediate_values) >= 1
        )

    _wait(second_trial_training, worker, 240, "the second trial was training")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    first, killed = optuna.load_study(storage=storage.storage, study_name="fault").trials
    assert first.state == TrialState.COMPLETE and killed.state == TrialState.RUNNING

    frames = splits()
    study = run_study(
        storage,
        gather_tuning_data(frames["train"], frames["train_balanced"], frames["val"], ROLES),
        modelling,
        PROBLEM,
        tuning,
        42,
    )
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert (trials[0].value, trials[0].datetime_complete) == (first.value, first.datetime_complete)
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == killed.number and retry.params == killed.params
    assert retry.user_attrs["worker"] != killed.user_attrs["worker"]


@pytest.mark.slow
def test_kedro_run_tuning_in_the_test_environment(project_path, tmp_path):
    """`kedro run --pipelines splitting,tuning --env test` on a small clean table, in a copy of the project."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(project_path / "pyproject.toml", project)
    shutil.copytree(project_path / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(
        project_path / "src",
        project / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    shutil.copytree(project_path / "data" / "01_raw", project / "data" / "01_raw")
    credentials = yaml.safe_load((project / "conf/base/credentials.yml").read_text()) or {}
    # The embedded default, when the lead's credentials file does not have it yet (its own test checks it).
    credentials.setdefault("tuning_storage", {"con": "sqlite:///data/06_models/optuna/study.db"})
    (project / "conf/base/credentials.yml").write_text(yaml.safe_dump(credentials))
    table = pd.read_csv(RAW)
    sample = (
        table.groupby("churn", group_keys=False)
        .sample(n=200, random_state=0)
        .sample(frac=1.0, random_state=0)
    )
    (project / "data/03_primary").mkdir(parents=True)
    sample.reset_index(drop=True).to_parquet(
        project / "data/03_primary/clean_table.parquet", index=False
    )

    kedro = Path(sys.executable).with_name("kedro")
    result = subprocess.run(
        [str(kedro), "run", "--pipelines", "splitting,tuning", "--env", "test"],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    (best_file,) = (project / "data/08_reporting/best_params.json").glob("*/best_params.json")
    best = json.loads(best_file.read_text())
    assert best["study_name"] == "deep_learning_workflow-test"
    assert best["validation"]["seeds"] == [42]
    # A family's own keys (plr.*, tabm.*) are drawn only by the trials that choose that family.
    space = set(tuning_params()["search_space"])
    assert set(best["params"]) <= space
    assert {key for key in space if not key.startswith(("plr.", "tabm."))} <= set(best["params"])
    assert list((project / "data/06_models/tuned/model.keras").glob("*/model.keras"))
    tuned_gate = json.loads((project / "data/08_reporting/tuned/release_gate.json").read_text())
    assert "passed" in tuned_gate
    assert not (project / "data/08_reporting/tuned/test_metrics.json").exists()
    assert not (project / "data/08_reporting/test_metrics.json").exists()
    storage = OptunaStorageDataset(
        credentials={"con": f"sqlite:///{project}/data/06_models/optuna/study.db"}
    ).load()
    trials = optuna.load_study(
        storage=storage.storage, study_name="deep_learning_workflow-test"
    ).trials
    # Both trials ran to an end: completed, or stopped early by the pruner (a legitimate outcome on 400 rows).
    states = [t.state for t in trials]
    assert len(trials) == 2 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    assert TrialState.COMPLETE in states
    for name in (
        "optimisation_history",
        "parameter_importances",
        "parallel_coordinates",
        "intermediate_values",
    ):
        assert (project / f"data/08_reporting/tuning/{name}.json").exists()
