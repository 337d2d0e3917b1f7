"""The model families on Telco against the baselines, over several split seeds. Prints one table.

    .venv/bin/python benchmarks/telco_families.py              # about 15 minutes on 2 busy cores
    .venv/bin/python benchmarks/telco_families.py --seeds 2 --families mlp,plr_mlp

For each split seed `params:seed + 0 .. --seeds - 1`: a stratified 70/15/15 split of the Telco table, then each
family trained on train with conf/base's `params:modelling` (only `architecture` changed; one training seed, the
split seed; early stopping on validation), and the logistic regression and gradient boosting baselines of
`params:modelling.baselines` fitted on the same rows. Validation and test PR-AUC and test ROC-AUC, mean ± sd;
`val wins`: seeds where the family's validation PR-AUC beats the better baseline's; training seconds and
trainable parameters per family. Exits non-zero when a score is not a number or a probability row does not sum
to 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from common import parameters as project_parameters
from common import split_70_15_15, telco_table, test_scores

FAMILIES = {
    "mlp": {"architecture": "mlp"},
    "plr_mlp": {"architecture": "plr_mlp"},
    "tabm": {"architecture": "tabm"},
    "tabm_plr": {"architecture": "tabm", "tabm": {"numeric_embedding": "plr"}},
}
BASELINES = ("logistic_regression", "gradient_boosting")


def _family_params(modelling: dict[str, Any], family: str) -> dict[str, Any]:
    """conf/base's ``params:modelling`` with the family's architecture, without the sections it does not use."""
    params = {key: value for key, value in modelling.items() if key not in ("architecture", "tabm")}
    if family in ("mlp", "tabm"):
        params.pop("plr", None)
    tabm = {**modelling.get("tabm", {}), **FAMILIES[family].get("tabm", {})}
    return {**params, **FAMILIES[family], **({"tabm": tabm} if family.startswith("tabm") else {})}


def _checked(probabilities: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(probabilities).all() or not np.allclose(
        probabilities.sum(axis=1), 1.0, atol=1e-4
    ):
        raise SystemExit(f"{what}: probabilities are not finite or do not sum to 1")
    return probabilities


def _row(  # noqa: PLR0913
    model: str,
    seed: int,
    predict: Any,
    splits: tuple[pd.DataFrame, pd.DataFrame],
    classes: list[str],
    roles: Any,
    seconds: float,
    weights: int,
) -> dict[str, Any]:
    val, test = splits
    val_scores = test_scores(
        val[roles.target], _checked(predict(val), model), classes, roles.positive_class
    )
    test_figures = test_scores(
        test[roles.target], _checked(predict(test), model), classes, roles.positive_class
    )
    return {
        "model": model,
        "seed": seed,
        "val_pr_auc": val_scores["pr_auc"],
        "test_pr_auc": test_figures["pr_auc"],
        "test_roc_auc": test_figures["roc_auc"],
        "seconds": seconds,
        "parameters": weights,
    }


def run(seeds: int, families: list[str]) -> pd.DataFrame:
    """One row per split seed and model: val/test PR-AUC, test ROC-AUC, training seconds, parameters."""
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    parameters = project_parameters()
    configured = ColumnRoles(**parameters["columns"])
    frame = telco_table(configured)
    roles = resolve_roles(frame, configured, "telco_churn")
    base = as_params(parameters["modelling"])
    rows = []
    for seed in range(parameters["seed"], parameters["seed"] + seeds):
        train, val, test = split_70_15_15(frame, roles.target, seed)
        classes = target_classes(train[roles.target])

        for family in families:
            params = as_params(_family_params(parameters["modelling"], family))
            started = time.perf_counter()
            result = train_model(train, val, roles, params, seed)
            seconds = time.perf_counter() - started
            weights = int(sum(np.prod(w.shape) for w in result.model.trainable_weights))
            predict = lambda frame_, model=result.model: predict_probabilities(model, frame_, roles)  # noqa: E731
            rows.append(_row(family, seed, predict, (val, test), classes, roles, seconds, weights))
            print(f"seed {seed} {family}: {rows[-1]}", file=sys.stderr, flush=True)
        for name in BASELINES:
            started = time.perf_counter()
            baseline = build_baseline(name, roles, base, seed).fit(
                train[roles.features], train[roles.target].astype(str)
            )
            seconds = time.perf_counter() - started
            predict = lambda frame_, b=baseline: b.predict_proba(frame_[roles.features])  # noqa: E731
            rows.append(_row(name, seed, predict, (val, test), classes, roles, seconds, 0))
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    arguments = parser.parse_args()
    families = [name for name in arguments.families.split(",") if name]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    load = os.getloadavg()[0]
    figures = run(arguments.seeds, families)
    if figures[["val_pr_auc", "test_pr_auc", "test_roc_auc"]].isna().any().any():
        raise SystemExit("a score is not a number")
    best_baseline = figures[figures.model.isin(BASELINES)].groupby("seed")["val_pr_auc"].max()
    print(f"\nTelco, stratified 70/15/15, {arguments.seeds} split seeds (mean ± sd)")
    header = (
        f"{'model':<22}{'val PR-AUC':>16}{'test PR-AUC':>16}{'test ROC-AUC':>16}{'val wins':>10}"
    )
    print(header + f"{'train s':>10}{'params':>10}")
    for model, group in figures.groupby("model", sort=False):
        cells = [
            f"{group[c].mean():.3f} ± {group[c].std(ddof=1) if len(group) > 1 else 0.0:.3f}"
            for c in ("val_pr_auc", "test_pr_auc", "test_roc_auc")
        ]
        wins = (
            f"{int((group.set_index('seed')['val_pr_auc'] > best_baseline).sum())}/{len(group)}"
            if model not in BASELINES
            else "-"
        )
        print(
            f"{model:<22}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}{wins:>10}"
            f"{group['seconds'].mean():>10.1f}{int(group['parameters'].mean()):>10}"
        )
    print(
        f"(cores: {os.cpu_count()}, load average at start: {load:.2f}, at end: {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
