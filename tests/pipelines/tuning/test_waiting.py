"""A worker that waits for other workers' trials says so; a second worker on a SQLite study is warned about."""

from __future__ import annotations

import logging
import time

import optuna
import pytest
from optuna.trial import TrialState

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
from deep_learning_workflow.pipelines.tuning import study as study_module

pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize",
    "ignore::optuna.exceptions.ExperimentalWarning",
)


def open_storage(url: str, grace: int = 2):
    return OptunaStorageDataset(
        credentials={"con": url}, heartbeat_interval=1, grace_period=grace
    ).load()


def test_waiting_for_a_dead_workers_trial_is_reported_until_it_ends(tmp_path, caplog, monkeypatch):
    storage = open_storage(f"journal:///{tmp_path}/study.journal", grace=3)
    study = optuna.create_study(storage=storage.storage, study_name="s")
    dead = study.ask()  # a trial whose worker never sends a heartbeat
    monkeypatch.setattr(study_module, "_SAY_EVERY_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger=study_module.__name__)

    started = time.monotonic()
    study_module._wait_for_other_workers(study)

    assert time.monotonic() - started >= 2  # it waited for the grace period
    assert study.trials[dead.number].state == TrialState.FAIL
    said = [r.getMessage() for r in caplog.records if r.name == study_module.__name__]
    assert len(said) >= 3
    assert all(f"trial {dead.number} (running for" in message for message in said)
    assert "heartbeat (every 1 s)" in said[0]


def test_a_second_worker_on_a_sqlite_study_is_warned(tmp_path, caplog):
    storage = open_storage(f"sqlite:///{tmp_path}/study.db", grace=60)
    study = optuna.create_study(storage=storage.storage, study_name="s")
    running = study.ask()
    storage.storage.record_heartbeat(running._trial_id)

    assert study_module.warn_sqlite_workers(study, storage.location)

    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"running trial(s) [{running.number}]" in message
    assert "journal file" in message and "PostgreSQL" in message


def test_a_lone_worker_or_a_journal_study_is_not_warned(tmp_path):
    sqlite = open_storage(f"sqlite:///{tmp_path}/study.db")
    lone = optuna.create_study(storage=sqlite.storage, study_name="s")
    assert not study_module.warn_sqlite_workers(lone, sqlite.location)

    journal = open_storage(f"journal:///{tmp_path}/study.journal")
    shared = optuna.create_study(storage=journal.storage, study_name="s")
    journal.storage.record_heartbeat(shared.ask()._trial_id)
    assert not study_module.warn_sqlite_workers(shared, journal.location)
