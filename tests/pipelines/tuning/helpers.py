"""Small Telco frames and tuning parameters shared by the tuning tests and their worker processes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[3]
RAW = PROJECT / "data" / "01_raw" / "telco_churn.csv"

# Four features keep each model small, so a trial costs about as much as Keras' graph tracing.
ROLES: dict[str, Any] = {
    "key": "customer_id",
    "target": "churn",
    "positive_class": "Yes",
    "numeric": ["tenure", "monthly_charges"],
    "categorical": ["contract", "internet_service"],
    "text": [],
}
PROBLEM: dict[str, Any] = {"statement": "Who churns?", "primary_metric": "pr_auc"}
MODELLING: dict[str, Any] = {"epochs": 1, "steps_per_execution": 1}


def splits(rows: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Stratified ``train`` (2/3) and ``val`` (1/3) samples of the bundled Telco table; ``train_balanced`` = train."""
    table = pd.read_csv(RAW)
    sample = table.groupby("churn", group_keys=False).sample(
        frac=rows / len(table), random_state=seed
    )
    sample = sample.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut = len(sample) * 2 // 3
    train, val = sample.iloc[:cut].reset_index(drop=True), sample.iloc[cut:].reset_index(drop=True)
    return {"train": train, "train_balanced": train.copy(), "val": val}


def tuning_params(**overrides: Any) -> dict[str, Any]:
    """``params:tuning`` of conf/base with conf/test's overrides, then ``overrides`` (top-level keys replaced)."""
    base = yaml.safe_load((PROJECT / "conf/base/parameters_tuning.yml").read_text())["tuning"]
    test = yaml.safe_load((PROJECT / "conf/test/parameters_tuning.yml").read_text())["tuning"]
    merged = _merge(base, test)
    merged.update(copy.deepcopy(overrides))
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def cheap_study_worker(url: str, study_name: str, n_trials: int, seconds: float) -> None:
    """A worker process whose objective is a quick function of one float: for tests of the trial budget."""
    import os
    import time

    import optuna

    from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
    from deep_learning_workflow.parameters import parse
    from deep_learning_workflow.pipelines.tuning.schema import TuningParams
    from deep_learning_workflow.pipelines.tuning.study import run_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = OptunaStorageDataset(credentials={"con": url}, heartbeat_interval=1).load()
    study = optuna.create_study(storage=storage.storage, study_name=study_name, load_if_exists=True)
    settings = parse(
        TuningParams, tuning_params(study_name=study_name, n_trials=n_trials), "tuning"
    )

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", os.getpid())
        x = trial.suggest_float("x", -1.0, 1.0)
        time.sleep(seconds)
        return x * x

    run_trials(study, objective, settings, storage.lock(study_name))
