"""Modelling on Telco: the default `kedro run` against a plain script doing the same work, and held-out figures of
the default model and the baselines over several split seeds. Prints two tables.

    .venv/bin/python benchmarks/modelling.py              # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/modelling.py --seeds 2    # a quicker look
    .venv/bin/python benchmarks/modelling.py --quick      # table 2 only, 1 seed, 2 epochs: shows it runs

1. `kedro run` (default pipeline, conf/base) in a temporary copy of the project: wall time and peak memory
   (resident set of the process). Beside it, the same work as one plain script that calls no Kedro: read the CSV,
   coerce `total_charges`, stratified 70/15/15 split, the default model trained with its configured seeds,
   the three baselines, validation metrics.
2. For each of `--seeds` seeds: stratified 70/15/15 split of the clean table with that seed, the default model
   (conf/base parameters, one training seed) and the baselines fitted on train, scored on the test split. Mean ± sd of
   ROC-AUC and PR-AUC. Targets for the default model: ROC-AUC >= 0.835, PR-AUC >= 0.64.

Every answer is checked (both runs exit 0, probabilities of every test row sum to 1, finite scores between 0 and 1,
one row per seed and model); the script exits 1 when one is wrong.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import PROJECT, Checks, copy_project, split_70_15_15, telco_table, test_scores
from common import parameters as project_parameters

BASELINES = ("logistic_regression", "gradient_boosting")


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one command run as a fresh child process."""
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    script = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
        "wall = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(code, wall, peak)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, *command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if output[0] != "0":
        raise RuntimeError(f"{' '.join(command)} failed with exit code {output[0]}")
    return float(output[1]), float(output[2])


def plain_script() -> None:
    """The default workflow's modelling work without Kedro (run as a child process by `main`)."""
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    parameters = project_parameters()
    seed = parameters["seed"]
    params = as_params(parameters["modelling"])
    configured = ColumnRoles(**parameters["columns"])
    frame = telco_table(configured)
    roles = resolve_roles(frame, configured, "telco_churn")
    train, val, _ = split_70_15_15(frame, roles.target, seed)
    for offset in range(params.seeds):
        result = train_model(train, val, roles, params, seed + offset)
        test_scores(
            val[roles.target],
            predict_probabilities(result.model, val, roles),
            result.classes,
            roles.positive_class,
        )
    for name in ("majority_class", *BASELINES):
        build_baseline(name, roles, params, seed).fit(
            train[roles.features], train[roles.target].astype(str)
        )


def _checked_scores(
    test: pd.DataFrame, probabilities, classes: list[str], roles, checks: Checks, what: str
) -> dict[str, float]:
    checks.probabilities(what, probabilities, len(test))
    scores = test_scores(test[roles.target], probabilities, classes, roles.positive_class)
    for name, value in scores.items():
        checks.within(f"{what} {name}", value, 0.0, 1.0)
    return scores


def held_out_figures(seeds: int, checks: Checks, epochs: int | None = None) -> pd.DataFrame:
    """Test-split ROC-AUC and PR-AUC of the default model and the baselines, one row per seed and model.

    ``epochs`` caps ``params:modelling.epochs`` (for a quick run).
    """
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    parameters = project_parameters()
    if epochs is not None:
        parameters["modelling"]["epochs"] = epochs
    params = as_params(parameters["modelling"])
    configured = ColumnRoles(**parameters["columns"])
    frame = telco_table(configured)
    roles = resolve_roles(frame, configured, "telco_churn")
    rows = []
    for seed in range(parameters["seed"], parameters["seed"] + seeds):
        train, val, test = split_70_15_15(frame, roles.target, seed)
        classes = target_classes(train[roles.target])
        result = train_model(train, val, roles, params, seed)
        probabilities = predict_probabilities(result.model, test, roles)
        rows.append(
            {
                "model": "keras (default)",
                "seed": seed,
                **_checked_scores(
                    test, probabilities, classes, roles, checks, f"keras seed {seed}"
                ),
            }
        )
        for name in BASELINES:
            baseline = build_baseline(name, roles, params, seed).fit(
                train[roles.features], train[roles.target].astype(str)
            )
            probabilities = baseline.predict_proba(test[roles.features])
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    **_checked_scores(
                        test, probabilities, classes, roles, checks, f"{name} seed {seed}"
                    ),
                }
            )
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds for the held-out figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="leave out the kedro run timing; 1 split seed, 2 epochs: shows it runs",
    )
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.plain:
        plain_script()
        return 0
    checks = Checks()
    if arguments.quick:
        arguments.seeds = 1
    else:
        _print_run_times()
    figures = held_out_figures(arguments.seeds, checks, 2 if arguments.quick else None)
    checks.count("rows (seeds x models)", len(figures), arguments.seeds * (1 + len(BASELINES)))
    if figures.empty:
        return checks.exit_code()
    summary = figures.groupby("model")[["roc_auc", "pr_auc"]].agg(["mean", "std"])
    print(f"\nTest split, stratified 70/15/15, {arguments.seeds} split seeds (mean ± sd)")
    print(f"{'model':<22}{'ROC-AUC':>18}{'PR-AUC':>18}")
    for model, row in summary.iterrows():
        # One seed has no sd: shown as 0.
        roc = f"{row[('roc_auc', 'mean')]:.3f} ± {np.nan_to_num(row[('roc_auc', 'std')]):.3f}"
        pr = f"{row[('pr_auc', 'mean')]:.3f} ± {np.nan_to_num(row[('pr_auc', 'std')]):.3f}"
        print(f"{model:<22}{roc:>18}{pr:>18}")
    return checks.exit_code()


def _print_run_times() -> None:
    """Table 1: ``kedro run`` and the plain script; either failing raises (the script then exits 1)."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder)
        copy_project(copy)
        kedro_wall, kedro_peak = _timed([sys.executable, "-m", "kedro", "run"], copy)
    plain_wall, plain_peak = _timed([sys.executable, __file__, "--plain"], PROJECT)
    print(f"\n{'run':<34}{'wall s':>10}{'peak MiB':>10}")
    print(f"{'kedro run (default pipeline)':<34}{kedro_wall:>10.1f}{kedro_peak:>10.0f}")
    print(f"{'plain script, same modelling work':<34}{plain_wall:>10.1f}{plain_peak:>10.0f}")
    print(f"(cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    sys.exit(main())
