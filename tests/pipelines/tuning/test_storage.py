"""The study storage: SQLite, journal file or PostgreSQL from credentials; heartbeats; an exact trial budget."""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
import uuid

import optuna
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner
from optuna.trial import TrialState

from deep_learning_workflow.datasets.optuna_storage import (
    OptunaStorageDataset,
    StudyStorage,
    redact_url,
    scrub,
)
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.tuning.pipeline import create_search_pipeline
from deep_learning_workflow.pipelines.tuning.schema import TuningParams
from deep_learning_workflow.pipelines.tuning.study import run_trials

from .helpers import MODELLING, PROBLEM, ROLES, cheap_study_worker, tuning_params

SENTINEL = "S3ntinel-Pa55w0rd"
UNREACHABLE = f"postgresql+psycopg2://tuner:{SENTINEL}@127.0.0.1:1/optuna"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (UNREACHABLE, "postgresql+psycopg2://tuner:***@127.0.0.1:1/optuna"),
        (
            "postgresql://db.example:5432/x?user=a&password=" + SENTINEL,
            "postgresql://db.example:5432/x?user=a&password=***",
        ),
        ("sqlite:///data/06_models/optuna/study.db", "sqlite:///data/06_models/optuna/study.db"),
        (
            "journal:///data/06_models/optuna/study.journal",
            "journal:///data/06_models/optuna/study.journal",
        ),
    ],
)
def test_urls_are_shown_without_their_password(url, shown):
    assert redact_url(url) == shown
    if SENTINEL in url:
        assert SENTINEL not in scrub(f"could not connect with {url} as tuner/{SENTINEL}", url)


def test_unreachable_storage_fails_clearly_without_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    dataset = OptunaStorageDataset(credentials={"con": UNREACHABLE})
    with pytest.raises(DatasetError) as raised:
        dataset.load()
    message = str(raised.value)
    assert "tuning_storage.con" in message and "127.0.0.1:1" in message and "tuner:***@" in message
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert SENTINEL not in message + repr(dataset) + str(dataset._describe()) + caplog.text


def test_unreachable_storage_stops_the_run_before_any_trial(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    frame = pd.DataFrame({"churn": ["Yes", "No"], "tenure": [1.0, 2.0]})
    catalog = DataCatalog(
        {
            "tuning_storage": OptunaStorageDataset(credentials={"con": UNREACHABLE}),
            **{name: MemoryDataset(frame) for name in ("train", "train_balanced", "val")},
            "params:columns": MemoryDataset(ROLES),
            "params:modelling": MemoryDataset(MODELLING),
            "params:problem": MemoryDataset(PROBLEM),
            "params:tuning": MemoryDataset(tuning_params()),
            "params:seed": MemoryDataset(42),
        }
    )
    with pytest.raises(DatasetError, match="Cannot open the Optuna study storage") as raised:
        SequentialRunner().run(create_search_pipeline(), catalog)
    assert SENTINEL not in str(raised.value) + caplog.text
    assert "Trial" not in caplog.text


def test_missing_url_is_named():
    with pytest.raises(DatasetError, match="tuning_storage.con"):
        OptunaStorageDataset(credentials=None)


def test_sqlite_storage_is_created_under_its_folder_and_reopened(tmp_path):
    path = tmp_path / "06_models" / "optuna" / "study.db"
    dataset = OptunaStorageDataset(credentials={"con": f"sqlite:///{path}"})
    first = dataset.load()
    assert isinstance(first, StudyStorage) and path.exists()
    optuna.create_study(storage=first.storage, study_name="s", direction="maximize")
    again = optuna.load_study(storage=dataset.load().storage, study_name="s")
    assert again.direction.name == "MAXIMIZE"
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(first)


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
def test_journal_trial_without_heartbeat_is_failed_and_queued_again(tmp_path):
    url = f"journal:///{tmp_path}/study.journal"
    storage = OptunaStorageDataset(
        credentials={"con": url}, heartbeat_interval=1, grace_period=1
    ).load()
    study = optuna.create_study(storage=storage.storage, study_name="s")
    alive, dead = study.ask(), study.ask()
    for trial in (alive, dead):
        trial.suggest_float("x", 0.0, 1.0)
    time.sleep(1.3)
    storage.storage.record_heartbeat(alive._trial_id)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert states[alive.number] == TrialState.RUNNING
    assert states[dead.number] == TrialState.FAIL
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params


def test_failed_and_nan_trials_are_recorded_and_the_study_goes_on():
    study = optuna.create_study(direction="maximize")
    settings = parse(TuningParams, tuning_params(n_trials=2, max_failed_trials=3), "tuning")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 0:
            raise ValueError("a broken configuration")
        return math.nan if trial.number == 1 else x

    run_trials(
        study,
        objective,
        settings,
        StudyStorage(study._storage, "memory").lock("s"),
        wait_for_others=False,
    )
    assert [t.state for t in study.trials] == [
        TrialState.FAIL,
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]


def test_failures_stop_the_study_at_max_failed_trials():
    study = optuna.create_study()
    settings = parse(TuningParams, tuning_params(n_trials=5, max_failed_trials=3), "tuning")

    def objective(trial: optuna.Trial) -> float:
        raise ValueError("always")

    run_trials(
        study,
        objective,
        settings,
        StudyStorage(study._storage, "memory").lock("s"),
        wait_for_others=False,
    )
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


@pytest.mark.slow
def test_two_processes_on_a_journal_file_stop_at_exactly_the_trial_budget(tmp_path):
    url, name = f"journal:///{tmp_path}/study.journal", f"budget-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=cheap_study_worker, args=(url, name, 12, 0.05)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    storage = OptunaStorageDataset(credentials={"con": url}).load()
    trials = optuna.load_study(storage=storage.storage, study_name=name).trials
    assert len(trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
