"""The Optuna study: opened or resumed in the shared storage, and the loop that runs trials across workers.

Optuna is imported inside the functions that use it, so building the pipeline stays cheap. One trial is
:mod:`~deep_learning_workflow.pipelines.tuning.trial`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

from deep_learning_workflow.datasets.optuna_storage import StudyLock, StudyStorage
from deep_learning_workflow.metrics import GREATER_IS_BETTER

from .objectives import check_objectives, objective_directions
from .samplers import make_pruner, make_sampler
from .schema import TuningParams

# Trials that hold a place in the budget of params:tuning.n_trials: failed ones do not (a dead worker's trial is
# queued again), so the cap counts trials that produced a result or are producing one.
_BUDGET_STATES = ("COMPLETE", "PRUNED", "RUNNING")
_POLL_SECONDS = 1.0
# How often a worker waiting for other workers' trials says what it is waiting for.
_SAY_EVERY_SECONDS = 10.0
logger = logging.getLogger(__name__)


def direction_of(metric: str) -> str:
    """``maximize`` or ``minimize``: how the study treats ``metric`` (from metrics.GREATER_IS_BETTER)."""
    return "maximize" if GREATER_IS_BETTER[metric] else "minimize"


def open_study(
    storage: StudyStorage, tuning: TuningParams, metric: str, seed: int, epochs: int
) -> Any:
    """Create the study, or load it when it exists (a re-run or another worker resumes it).

    Raises:
        ValueError: when the existing study was created for another metric, direction or second objective.
    """
    import optuna

    study = optuna.create_study(
        storage=storage.storage,
        study_name=tuning.study_name,
        directions=objective_directions(metric, tuning),
        sampler=make_sampler(tuning.sampler, seed),
        pruner=make_pruner(tuning.pruner, epochs),
        load_if_exists=True,
    )
    check_objectives(study, metric, tuning, storage.location)
    warn_sqlite_workers(study, storage.location)
    return study


def _live_and_stale_trials(study: Any) -> tuple[list[Any], set[int]]:
    """The running trials, and the ids of those whose heartbeat is stale (empty without heartbeats)."""
    running = study.get_trials(deepcopy=False, states=_states(("RUNNING",)))
    stale_ids: set[int] = set()
    storage = study._storage
    if running and getattr(storage, "get_heartbeat_interval", lambda: None)():
        stale_ids = set(storage._get_stale_trial_ids(study._study_id))
    return running, stale_ids


def warn_sqlite_workers(study: Any, location: str) -> bool:
    """Warn when a SQLite study already has a trial a live worker is running: SQLite is for one process.

    Returns:
        Whether it warned.
    """
    if not location.startswith("sqlite"):
        return False
    running, stale_ids = _live_and_stale_trials(study)
    live = [trial.number for trial in running if trial._trial_id not in stale_ids]
    if not live:
        return False
    logger.warning(
        "Another worker is running trial(s) %s of study '%s' on the SQLite storage %s. SQLite is for one "
        "process: several workers on it wait on its file lock and may fail with 'database is locked'. For "
        "several workers on one machine use a journal file (tuning_storage con: journal:///path/to/study.log), "
        "across machines PostgreSQL (see conf/base/catalog_tuning.yml). If that worker was killed, its trial is "
        "failed and run again once its heartbeat is stale.",
        live,
        study.study_name,
        location,
    )
    return True


def _states(names: tuple[str, ...]) -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return tuple(TrialState[name] for name in names)


def _fail_stale_trials(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _count(study: Any, names: tuple[str, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=_states(names)))


def run_trials(
    study: Any,
    objective: Callable[[Any], float],
    tuning: TuningParams,
    lock: StudyLock,
    wait_for_others: bool = True,
) -> None:
    """Run trials until the study holds ``n_trials`` (counted over every worker), then wait for the others.

    The count-then-create step runs under ``lock``, shared by the workers, so two workers finishing at once cannot
    both start the last trial. A dead worker's trial is failed once its heartbeat is stale and queued again (see
    the storage dataset); completed trials are kept.

    Args:
        study: the opened study.
        objective: see :func:`make_objective`.
        tuning: ``params:tuning``.
        lock: the storage's lock for this study.
        wait_for_others: wait until no trial runs before returning (only when the storage has heartbeats, which
            end a dead worker's trial).
    """
    import optuna

    max_failed = tuning.max_failed_trials or tuning.n_trials
    cap = optuna.study.MaxTrialsCallback(tuning.n_trials, states=_states(_BUDGET_STATES))

    def lock_and_reap(study: Any, trial: Any) -> None:
        lock.acquire()
        _fail_stale_trials(study)

    def stop_on_failures(study: Any, trial: Any) -> None:
        if _count(study, ("FAIL",)) >= max_failed:
            study.stop()

    def objective_after_unlock(trial: Any) -> float:
        lock.release()
        return objective(trial)

    while True:
        lock.acquire()
        try:
            _fail_stale_trials(study)
            if not _budget_spent(study, tuning.n_trials, max_failed):
                study.optimize(
                    objective_after_unlock,
                    callbacks=[lock_and_reap, cap, stop_on_failures],
                    catch=(Exception,),
                    # The trial's keras.backend.clear_session() has already collected garbage; a second
                    # collection would cost another ~0.3 s a trial.
                    gc_after_trial=False,
                )
        finally:
            lock.release()
        if wait_for_others:
            _wait_for_other_workers(study)
        if _budget_spent(study, tuning.n_trials, max_failed):
            return


def _budget_spent(study: Any, n_trials: int, max_failed: int) -> bool:
    """Whether the study holds ``n_trials`` trials that count, or ``max_failed`` failed ones."""
    return _count(study, _BUDGET_STATES) >= n_trials or _count(study, ("FAIL",)) >= max_failed


def _wait_for_other_workers(study: Any, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until no trial runs, so the selection sees every result; dead workers' trials end by heartbeat.

    Every ``_SAY_EVERY_SECONDS`` it logs which trials it waits for and how long they have run.
    """
    said: float | None = None
    while running := study.get_trials(deepcopy=False, states=_states(("RUNNING",))):
        if said is None or time.monotonic() - said >= _SAY_EVERY_SECONDS:
            logger.info(_waiting_message(study, running))
            said = time.monotonic()
        sleep(_POLL_SECONDS)
        _fail_stale_trials(study)


def _waiting_message(study: Any, running: list[Any]) -> str:
    now = time.time()
    described = [
        f"trial {trial.number} (running for {now - trial.datetime_start.timestamp():.0f} s)"
        if trial.datetime_start
        else f"trial {trial.number}"
        for trial in running[:5]
    ]
    interval = getattr(study._storage, "get_heartbeat_interval", lambda: None)()
    ending = (
        f"A trial whose worker sends no heartbeat (every {interval} s) is failed after the grace period and "
        "run again."
        if interval
        else "Without heartbeats (tuning_storage heartbeat_interval: null) a dead worker's trial is never "
        "ended: stop this worker and fail the trial by hand."
    )
    return (
        f"Waiting for {len(running)} trial(s) of study '{study.study_name}' that other workers are running: "
        f"{', '.join(described)}. {ending}"
    )


def completed_trials(study: Any) -> list[Any]:
    """The completed trials, best metric (the first objective) first."""
    trials = study.get_trials(deepcopy=False, states=_states(("COMPLETE",)))
    maximise = study.directions[0].name == "MAXIMIZE"
    return sorted(trials, key=lambda t: (-t.values[0] if maximise else t.values[0], t.number))


def failure_summary(study: Any, limit: int = 3) -> str:
    """The reasons of the first failed trials, for an error message."""
    failed = study.get_trials(deepcopy=False, states=_states(("FAIL",)))
    reasons = [
        f"trial {t.number}: {t.user_attrs.get('error', 'worker stopped')}" for t in failed[:limit]
    ]
    return "; ".join(reasons) or "no trial ran"
