"""Tuning on Telco: pruning, several workers, and the tuned model on the test split. Prints a table.

    .venv/bin/python benchmarks/tuning.py                # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/tuning.py --trials 10 --worker-trials 6 --seeds 2   # a quicker look
    .venv/bin/python benchmarks/tuning.py --quick    # 3 trials of 2 epochs, 2 per worker, 1 seed: shows it runs

Needs the splits (``kedro run --pipelines data_acquisition,data_processing,splitting``). Uses conf/base parameters
and the tuning pipeline's own study function; studies go to journal files in a temporary folder, so the project's
study is not touched.

1. ``--trials`` TPE trials without pruning, then with the configured pruner (same seed): wall time, best validation
   PR-AUC. Target: pruned <= 50% of the unpruned time, best PR-AUC at most 0.005 lower.
2. One worker vs two worker processes on one journal file: trials per minute. Target: two >= 1.6x one.
3. The tuned model (the pruned study's best trials judged over seeds, as the pipeline does) retrained with
   ``--seeds`` seeds; test ROC-AUC and PR-AUC, mean over seeds. Targets: >= 0.845 and >= 0.655 (logistic regression:
   0.842 / 0.653). The test split is read here only, after the choice is made.

Every answer is checked (each study holds its trials, none failed, finite best values; the workers ran every
trial; the tuned model's probabilities and scores); the script exits 1 when one is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import Checks, saved_splits
from common import parameters as project_parameters


def _study(
    url: str, tuning: dict[str, Any], params: dict[str, Any], frames: dict[str, pd.DataFrame]
) -> Any:
    from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
    from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
    from deep_learning_workflow.pipelines.tuning.nodes import run_study

    storage = OptunaStorageDataset(credentials={"con": url}, heartbeat_interval=10).load()
    return run_study(
        storage,
        gather_tuning_data(
            frames["train"], frames["train_balanced"], frames["val"], params["columns"]
        ),
        params["modelling"],
        params["problem"],
        tuning,
        params["seed"],
    )


def _worker(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    params, frames = project_parameters(), saved_splits()
    import keras  # noqa: F401 - loaded before the barrier, so workers start their trials together

    Path(config["ready"]).touch()
    while not Path(config["go"]).exists():
        time.sleep(0.05)
    _study(config["url"], config["tuning"], params, frames)


def _timed_study(
    url: str, tuning: dict[str, Any], params: dict[str, Any], frames: dict[str, Any]
) -> tuple[float, Any]:
    start = time.perf_counter()
    study = _study(url, tuning, params, frames)
    return time.perf_counter() - start, study


def _workers(folder: Path, count: int, trials: int, tuning: dict[str, Any]) -> tuple[float, int]:
    url = f"journal:///{folder}/workers-{count}.journal"
    settings = {**tuning, "study_name": f"workers-{count}", "n_trials": trials}
    processes, ready = [], []
    for index in range(count):
        config = folder / f"worker-{count}-{index}.json"
        ready.append(folder / f"ready-{count}-{index}")
        go = folder / f"go-{count}"
        config.write_text(
            json.dumps({"url": url, "tuning": settings, "ready": str(ready[-1]), "go": str(go)})
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
        )
    while not all(path.exists() for path in ready):
        if any(p.poll() not in (None, 0) for p in processes):
            sys.exit("a worker failed to start")
        time.sleep(0.05)
    start = time.perf_counter()
    (folder / f"go-{count}").touch()
    if any(p.wait() != 0 for p in processes):
        sys.exit("a worker failed")
    elapsed = time.perf_counter() - start
    import optuna

    from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset

    storage = OptunaStorageDataset(credentials={"con": url}).load()
    study = optuna.load_study(storage=storage.storage, study_name=settings["study_name"])
    return elapsed, study


def _best(study: Any) -> float:
    from deep_learning_workflow.pipelines.tuning.study import completed_trials

    trials = completed_trials(study)
    return float(trials[0].value) if trials else float("nan")


def _check_study(what: str, study: Any, trials: int, checks: Checks) -> None:
    """The study holds ``trials`` complete or pruned trials, none failed, and a finite best value in [0, 1]."""
    states = [trial.state.name for trial in study.trials]
    checks.count(
        f"{what}: complete or pruned trials",
        states.count("COMPLETE") + states.count("PRUNED"),
        trials,
    )
    checks.count(f"{what}: failed trials", states.count("FAIL"), 0)
    checks.within(f"{what}: best value", _best(study), 0.0, 1.0)


def _worker_rows(
    folder: Path, tuning: dict[str, Any], worker_trials: int, checks: Checks
) -> list[tuple[str, str, str]]:
    unpruned_workers = {**tuning, "pruner": {**tuning["pruner"], "name": "none"}}
    one_time, one = _workers(folder, 1, worker_trials, unpruned_workers)
    two_time, two = _workers(folder, 2, 2 * worker_trials, unpruned_workers)
    _check_study("1 worker", one, worker_trials, checks)
    _check_study("2 workers", two, 2 * worker_trials, checks)
    one_done, two_done = len(one.trials), len(two.trials)
    one_rate, two_rate = one_done / one_time * 60, two_done / two_time * 60
    return [
        (
            "1 worker, journal file",
            f"{one_done} trials in {one_time:.0f} s",
            f"{one_rate:.2f} trials/min",
        ),
        (
            "2 workers, journal file",
            f"{two_done} trials in {two_time:.0f} s",
            f"{two_rate:.2f} trials/min ({two_rate / one_rate:.2f}x)",
        ),
    ]


def _report(rows: list[tuple[str, str, str]]) -> None:
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--worker-trials",
        type=int,
        # A trial takes ~3 s: with fewer, the last trial's imbalance between workers dominates the figure.
        default=12,
        help="trials of one worker; two workers run twice as many",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pruner", default=None, help="override params:tuning.pruner.name")
    parser.add_argument(
        "--only",
        choices=("pruning", "workers"),
        help="run one part: the pruning comparison (1.) or the workers' throughput (2.)",
    )
    parser.add_argument("--epochs", type=int, help="most epochs of a trial (params:tuning.epochs)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 trials of 2 epochs, 2 trials per worker, 1 seed: shows it runs",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        _worker(arguments.worker)
        return 0
    if arguments.quick:
        arguments.trials, arguments.worker_trials, arguments.seeds, arguments.epochs = 3, 2, 1, 2
    checks = Checks()

    import optuna

    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
    from deep_learning_workflow.pipelines.tuning.nodes import (
        merge_best_params,
        retrain_top_trials,
        select_best_params,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params, frames = project_parameters(), saved_splits()
    tuning = dict(params["tuning"])
    if arguments.pruner:
        tuning["pruner"] = {**tuning["pruner"], "name": arguments.pruner}
    if arguments.epochs is not None:
        tuning["epochs"] = arguments.epochs
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = {**tuning, "n_trials": arguments.trials}
        if arguments.only == "workers":
            _report(_worker_rows(folder, tuning, arguments.worker_trials, checks))
            return checks.exit_code()
        unpruned_time, unpruned = _timed_study(
            f"journal:///{folder}/unpruned.journal",
            {**base, "study_name": "unpruned", "pruner": {**tuning["pruner"], "name": "none"}},
            params,
            frames,
        )
        pruned_time, pruned = _timed_study(
            f"journal:///{folder}/pruned.journal", {**base, "study_name": "pruned"}, params, frames
        )
        _check_study("unpruned study", unpruned, arguments.trials, checks)
        _check_study("pruned study", pruned, arguments.trials, checks)
        n_pruned = len(pruned.get_trials(states=(optuna.trial.TrialState.PRUNED,)))
        rows += [
            (
                f"{arguments.trials} TPE trials, no pruning",
                f"{unpruned_time:.0f} s",
                f"best val PR-AUC {_best(unpruned):.4f}",
            ),
            (
                f"{arguments.trials} TPE trials, {tuning['pruner']['name']} pruner ({n_pruned} pruned)",
                f"{pruned_time:.0f} s ({pruned_time / unpruned_time:.0%})",
                f"best val PR-AUC {_best(pruned):.4f} ({_best(pruned) - _best(unpruned):+.4f})",
            ),
        ]

        if arguments.only == "pruning":
            _report(rows)
            return checks.exit_code()
        rows += _worker_rows(folder, tuning, arguments.worker_trials, checks)

        judged = {**tuning, "selection": {**tuning["selection"], "seeds": arguments.seeds}}
        candidates = retrain_top_trials(
            pruned,
            gather_tuning_data(
                frames["train"], frames["train_balanced"], frames["val"], params["columns"]
            ),
            params["modelling"],
            params["problem"],
            judged,
            params["seed"],
        )
        best = select_best_params(candidates, params["problem"], judged)
        tuned = merge_best_params(best, params["modelling"])
        scores: dict[str, list[float]] = {"roc_auc": [], "pr_auc": []}
        labels = target_labels(frames["test"][params["columns"]["target"]]).to_numpy()
        for offset in range(arguments.seeds):
            result = train_model(
                frames["train"],
                frames["val"],
                params["columns"],
                tuned,
                params["seed"] + offset,
                fit_on=frames["train_balanced"],
                primary_metric=params["problem"]["primary_metric"],
            )
            probabilities = predict_probabilities(result.model, frames["test"], result.roles)
            what = f"tuned model, seed {params['seed'] + offset}, test"
            checks.probabilities(what, probabilities, len(frames["test"]))
            for name in scores:
                scores[name].append(
                    score(name, labels, probabilities, result.classes, result.roles.positive_class)
                )
                checks.within(f"{what} {name}", scores[name][-1], 0.0, 1.0)
        rows.append(
            (
                f"tuned model (trial {best['trial']}), test, {arguments.seeds} seeds",
                f"ROC-AUC {np.mean(scores['roc_auc']):.4f} ± {np.std(scores['roc_auc']):.4f}",
                f"PR-AUC {np.mean(scores['pr_auc']):.4f} ± {np.std(scores['pr_auc']):.4f}",
            )
        )
    _report(rows)
    print("best parameters:", json.dumps(best["params"]))
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
