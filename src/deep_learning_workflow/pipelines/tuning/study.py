"""The Optuna side of tuning: sampler, pruner, search space, one trial, and the loop that shares a study.

Optuna, TensorFlow and Keras are imported inside the functions that use them, so building the pipeline stays cheap.
Training itself is the modelling pipeline's :func:`~deep_learning_workflow.models.fitting.train_model`.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets.optuna_storage import StudyLock, StudyStorage
from deep_learning_workflow.metrics import GREATER_IS_BETTER
from deep_learning_workflow.models.fitting import train_model
from deep_learning_workflow.models.schema import (
    ModellingParams,
    family_of,
    key_used,
    without_unused_sections,
)
from deep_learning_workflow.models.scoring import validation_score
from deep_learning_workflow.parameters import parse

from .objectives import check_objectives, objective_directions
from .schema import Choice, FloatRange, IntRange, PrunerParams, SamplerParams, TuningParams

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


def merge_overrides(modelling: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params:modelling`` with ``overrides`` set; dotted keys (``categorical.encoding``) reach inside.

    The settings block of a family the result does not choose (``plr``, ``tabm``) is left out.
    """
    merged = copy.deepcopy(dict(modelling))
    for path, value in overrides.items():
        parts = path.split(".")
        node = merged
        for part in parts[:-1]:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = value
    return without_unused_sections(merged)


def check_search_space(modelling: Mapping[str, Any], tuning: TuningParams) -> None:
    """Check that every bound and choice of the search space is a valid value of ``params:modelling``.

    Raises:
        ValueError: naming ``tuning.search_space.<key>`` and the value ``params:modelling`` rejects.
    """
    for name, dimension in tuning.search_space.items():
        if isinstance(dimension, Choice):
            values = list(dimension.choices)
        else:
            values = [dimension.low, dimension.high]
        for value in values:
            try:
                # A key of another family is checked with that family chosen.
                overrides = {**family_of(name, modelling), name: value}
                parse(ModellingParams, merge_overrides(modelling, overrides), "modelling")
            except ValueError as error:
                raise ValueError(
                    f"params:tuning.search_space.{name} allows {value!r}, which params:modelling does not "
                    f"accept; narrow the range or the choices.\n{error}"
                ) from None


def _draw_seed(seed: int, number: int, what: str) -> int:
    entropy = [int(seed), int(number), zlib.crc32(what.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _reseed(sampler: Any, seed: int) -> None:
    for part in (sampler, getattr(sampler, "_random_sampler", None)):
        state = getattr(part, "_rng", None)
        if state is not None:
            state.rng.seed(seed)


def make_sampler(params: SamplerParams, seed: int) -> Any:
    """The seeded sampler; each draw is seeded from (seed, trial number, hyperparameter).

    One worker gets the same trials run after run; several workers sharing a study get different trial numbers and
    so do not propose the same hyperparameters (which one fixed seed per worker would do).
    """
    import optuna

    if params.name == "random":
        base: type = optuna.samplers.RandomSampler
        kwargs: dict[str, Any] = {}
    else:
        base = optuna.samplers.TPESampler
        kwargs = {
            "n_startup_trials": params.n_startup_trials,
            "multivariate": params.multivariate,
            "constant_liar": params.constant_liar,
        }

    class TrialSeededSampler(base):
        def sample_relative(
            self, study: Any, trial: Any, search_space: dict[str, Any]
        ) -> dict[str, Any]:
            _reseed(self, _draw_seed(seed, trial.number, "\0relative"))
            return super().sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            _reseed(self, _draw_seed(seed, trial.number, name))
            return super().sample_independent(study, trial, name, distribution)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return TrialSeededSampler(seed=int(seed), **kwargs)


def make_pruner(params: PrunerParams, epochs: int) -> Any:
    """The pruner of ``params:tuning.pruner``; its steps are epochs."""
    import optuna

    if params.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=params.n_startup_trials, n_warmup_steps=params.n_warmup_steps
        )
    if params.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=params.min_resource,
            max_resource=max(epochs, params.min_resource),
            reduction_factor=params.reduction_factor,
        )
    if params.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=params.min_resource, reduction_factor=params.reduction_factor
        )
    return optuna.pruners.NopPruner()


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


def suggest(
    trial: Any, tuning: TuningParams, modelling: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The trial's hyperparameters drawn from the search space.

    The family keys are drawn first; a key of a family the trial does not choose (``plr.*`` for an ``mlp``) is not
    drawn at all, so the sampler learns nothing from a value that played no part.
    """
    values: dict[str, Any] = {}
    first = ("architecture", "tabm.numeric_embedding")
    ordered = sorted(tuning.search_space.items(), key=lambda item: item[0] not in first)
    for name, dimension in ordered:
        if not key_used(name, merge_overrides(modelling or {}, values)):
            continue
        if isinstance(dimension, FloatRange):
            values[name] = trial.suggest_float(
                name, dimension.low, dimension.high, log=dimension.log, step=dimension.step
            )
        elif isinstance(dimension, IntRange):
            values[name] = trial.suggest_int(
                name, dimension.low, dimension.high, step=dimension.step, log=dimension.log
            )
        else:
            values[name] = trial.suggest_categorical(name, list(dimension.choices))
    return values


def pruning_callback(trial: Any, monitor: str) -> Any:
    """optuna-integration's Keras pruning callback, made strict.

    The stock callback only warns when ``monitor`` is missing from the epoch's logs, and then never prunes; here
    a missing metric is an error. An epoch whose loss or metric is not finite is not reported, so a diverging
    trial fails (modelling raises) rather than being counted as pruned. Steps are epochs completed (Keras counts
    from 0), so a pruner's ``min_resource: 1`` judges a trial after exactly one epoch.
    """
    from optuna_integration.tfkeras import TFKerasPruningCallback

    class StrictPruningCallback(TFKerasPruningCallback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            if monitor not in logs:
                raise ValueError(
                    f"The pruning callback watches '{monitor}', which the training logs lack "
                    f"({sorted(logs)}); check params:problem.primary_metric."
                )
            values = [logs[monitor], logs.get("loss", 0.0)]
            if not all(math.isfinite(float(value)) for value in values):
                return
            super().on_epoch_end(epoch + 1, logs)

    return StrictPruningCallback(trial, monitor)


def train_and_score(
    frames: Mapping[str, pd.DataFrame],
    roles: ColumnRoles | Mapping[str, Any],
    params: Mapping[str, Any],
    seed: int,
    metric: str,
    callbacks: list[Any] | None = None,
    after: Callable[[Any], None] | None = None,
) -> tuple[float, int]:
    """Train one model with modelling's trainer and score it on validation.

    Args:
        frames: ``train`` (preprocessing, classes), ``train_balanced`` (the rows the weights are fitted on),
            ``val``.
        roles: ``params:columns``.
        params: the full modelling parameters of this model.
        seed: the model's seed.
        metric: ``params:problem.primary_metric``.
        callbacks: extra Keras callbacks (the pruning callback).
        after: called with the ``TrainingResult`` once scored, while its model lives (a second objective
            measures the model here).

    Returns:
        The validation score and the 0-based best epoch.
    """
    import keras

    # Cleared once, after the model is scored: each clear costs ~0.3 s here, a fair share of a pruned trial.
    try:
        result = train_model(
            frames["train"],
            frames["val"],
            roles,
            params,
            seed,
            fit_on=frames["train_balanced"],
            callbacks=callbacks or [],
            primary_metric=metric,
        )
        value = validation_score(result.model, frames["val"], result.roles, result.classes, metric)
        if after is not None:
            after(result)
        return value, int(result.best_epoch)
    finally:
        # Without the garbage collection free_memory adds (~0.3 s a trial): Python's own collector frees the
        # old graphs as the study goes on.
        keras.backend.clear_session(free_memory=False)


def make_objective(
    frames: Mapping[str, pd.DataFrame],
    roles: Mapping[str, Any],
    modelling: Mapping[str, Any],
    tuning: TuningParams,
    metric: str,
    seed: int,
    cost: Callable[[Any], float] | None = None,
) -> Callable[[Any], float | tuple[float, float]]:
    """The objective of one trial: draw hyperparameters, train with pruning, return the validation metric.

    Every trial trains with the same seed, so trials differ by their hyperparameters only. An exception or a NaN
    fails the trial (Optuna records it FAIL, with the reason in the ``error`` user attribute) and the study goes on.
    With ``cost`` (the second objective, see objectives.py) the trial returns (metric, cost of the trained model)
    and is not pruned: Optuna cannot prune a study with two objectives.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float | tuple[float, float]:
        import optuna

        trial.set_user_attr("worker", worker)
        costs: list[float] = []
        try:
            # The trial's epoch budget first, so that a search space over epochs still wins.
            budget = {"epochs": tuning.epochs} if tuning.epochs is not None else {}
            params = merge_overrides(
                merge_overrides(modelling, budget), suggest(trial, tuning, modelling)
            )
            if cost is None:
                callbacks, after = [pruning_callback(trial, f"val_{metric}")], None
            else:
                callbacks, after = [], lambda result: costs.append(cost(result))
            value, best_epoch = train_and_score(
                frames, roles, params, seed, metric, callbacks, after=after
            )
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:1000])
            raise
        trial.set_user_attr("best_epoch", best_epoch)
        if not math.isfinite(value):
            trial.set_user_attr("error", f"the validation {metric} is not a number")
        return value if cost is None else (value, costs[0])

    return objective


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
    both start the last trial: the count is exact. Optuna's ``MaxTrialsCallback`` stops the loop. A trial left
    running by a dead worker is failed once its heartbeat is stale and queued again with the same
    hyperparameters (see the storage dataset); this worker then runs it. Trials already completed are kept.

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
            open_slots = tuning.n_trials - _count(study, _BUDGET_STATES)
            if open_slots > 0 and _count(study, ("FAIL",)) < max_failed:
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
        if (
            _count(study, _BUDGET_STATES) >= tuning.n_trials
            or _count(study, ("FAIL",)) >= max_failed
        ):
            return


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
