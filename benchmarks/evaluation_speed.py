"""Evaluation cost against the number of rows: every evaluation node on Telco-shaped splits of 15,000 and 150,000 rows.

A temporary copy of the project trains the model and the baselines (``kedro run --env test`` up to modelling);
validation and test splits of each size are sampled from the real test split (new keys, numeric values moved by a
little noise). Each node runs once per size; the table prints its seconds. The answers are checked: the test
scores equal scikit-learn's on the same probabilities, every interval holds its value, the m-out-of-n interval of
PR-AUC is as wide as an exact bootstrap of all rows (within 25%), and the gate's comparison agrees with the test
split's difference. A figure that is not a number fails its check. The script exits with 1 when a check fails.

    python benchmarks/evaluation_speed.py
    python benchmarks/evaluation_speed.py --quick    # splits of 3,000 rows only: shows it runs
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import copy_project, parameters
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from deep_learning_workflow.bootstrap import bootstrap_scores, percentile_interval
from deep_learning_workflow.pipelines.evaluation import nodes, release

SIZES = (15_000, 150_000)
QUICK_SIZES = (3_000,)
TARGET_SECONDS = 10.0
WIDTH_TOLERANCE = 0.25
EXACT_RESAMPLES = 200


def _train(project: Path) -> dict:
    """The trained model, baselines, metadata and splits of a ``kedro run --env test`` up to modelling."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--env",
            "test",
            "--to-outputs",
            "model_metadata,baseline_models",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode:
        sys.exit(f"kedro run failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="test") as session:
        catalog = session.load_context().catalog
        return {
            name: catalog.load(name)
            for name in ("model", "baseline_models", "model_metadata", "test", "release_scenarios")
        }


def _telco_shaped(source: pd.DataFrame, rows: int, seed: int, numeric: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = source.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    for column in numeric:
        values = frame[column].astype("float64")
        frame[column] = values + rng.normal(0, 0.01 * np.nanstd(values), rows)
    frame["customer_id"] = [f"B{seed}-{i:07d}" for i in range(rows)]
    return frame


def _timed(table: dict, size: int, name: str, function, *arguments):
    start = time.perf_counter()
    result = function(*arguments)
    table.setdefault(name, {})[size] = time.perf_counter() - start
    return result


def _evaluate(trained: dict, params: dict, size: int, table: dict, problems: list[str]) -> None:
    numeric = trained["model_metadata"]["roles"]["numeric"]
    val = _telco_shaped(trained["test"], size, 1, numeric)
    test = _telco_shaped(trained["test"], size, 2, numeric)
    model, baselines = trained["model"], trained["baseline_models"]
    evaluation, problem, seed = params["evaluation"], params["problem"], params["seed"]
    setup = _timed(
        table,
        size,
        "resolve_evaluation_setup",
        nodes.resolve_evaluation_setup,
        val,
        trained["model_metadata"],
        params["columns"],
    )
    predictions = _timed(
        table, size, "predict_validation", nodes.predict_validation, model, baselines, val, setup
    )
    decision = _timed(
        table,
        size,
        "choose_decision_threshold",
        nodes.choose_decision_threshold,
        predictions,
        evaluation,
        problem,
    )
    validation, baseline_metrics = _timed(
        table,
        size,
        "evaluate_validation",
        nodes.evaluate_validation,
        predictions,
        decision,
        evaluation,
    )
    scenarios = _timed(
        table,
        size,
        "run_release_scenarios",
        release.run_release_scenarios,
        model,
        trained["release_scenarios"],
        decision,
        setup,
    )
    comparisons = _timed(
        table,
        size,
        "compare_with_baselines",
        release.compare_with_baselines,
        predictions,
        decision,
        baseline_metrics,
        evaluation,
        problem,
        seed,
    )
    gate = _timed(
        table,
        size,
        "evaluate_release_gate",
        release.evaluate_release_gate,
        validation,
        comparisons,
        decision,
        scenarios,
        None,
        None,
        evaluation,
        problem,
    )
    result = _timed(
        table,
        size,
        "evaluate_test_split",
        nodes.evaluate_test_split,
        model,
        baselines,
        test,
        setup,
        decision,
        baseline_metrics,
        gate,
        evaluation,
        seed,
    )
    _check(result, test, model, setup, evaluation, seed, size, problems)


def _check(
    result: dict,
    test: pd.DataFrame,
    model,
    setup: dict,
    evaluation: dict,
    seed: int,
    size: int,
    problems: list[str],
) -> None:
    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.model_inputs import predict_probabilities

    probabilities = predict_probabilities(model, test, ColumnRoles(**setup["roles"]))
    truth = (test["churn"] == "Yes").to_numpy()
    expected = {
        "roc_auc": roc_auc_score(truth, probabilities[:, 1]),
        "pr_auc": average_precision_score(truth, probabilities[:, 1]),
        "log_loss": log_loss(truth, probabilities[:, 1]),
    }
    metrics = result["model"]["metrics"]
    for name, value in expected.items():
        # Written so that a NaN on either side fails the check.
        if not abs(metrics[name]["value"] - value) <= 1e-6:
            problems.append(
                f"{size} rows: test {name} {metrics[name]['value']} != scikit-learn {value}"
            )
    for candidate in [metrics, *(b["metrics"] for b in result["baselines"].values())]:
        for name, values in candidate.items():
            if not values["low"] - 1e-9 <= values["value"] <= values["high"] + 1e-9:
                problems.append(f"{size} rows: {name} {values} lies outside its interval")
    exact = bootstrap_scores(
        ["pr_auc"],
        test["churn"].to_numpy(),
        {"model": (probabilities, None)},
        ["No", "Yes"],
        "Yes",
        EXACT_RESAMPLES,
        seed,
    )["model"]["pr_auc"]
    low, high = percentile_interval(exact, evaluation["bootstrap"]["confidence"])
    width, exact_width = metrics["pr_auc"]["high"] - metrics["pr_auc"]["low"], high - low
    print(
        f"{size:,} test rows: PR-AUC {metrics['pr_auc']['value']:.4f}, interval width {width:.4f} "
        f"({result['bootstrap']['method']}); exact bootstrap of all rows ({EXACT_RESAMPLES} resamples) {exact_width:.4f}"
    )
    if not abs(width / exact_width - 1) <= WIDTH_TOLERANCE:
        problems.append(
            f"{size} rows: PR-AUC interval width {width:.4f}, exact bootstrap's {exact_width:.4f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"splits of {QUICK_SIZES[0]:,} rows only"
    )
    sizes = QUICK_SIZES if parser.parse_args().quick else SIZES
    params = parameters("test")
    params["evaluation"]["bootstrap"]["resamples"] = parameters("base")["evaluation"]["bootstrap"][
        "resamples"
    ]
    table: dict[str, dict[int, float]] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        copy_project(project)
        trained = _train(project)
        for size in sizes:
            _evaluate(trained, params, size, table, problems)
    header = f"{'node':<28}" + "".join(f"{f'{size:,} rows (s)':>18}" for size in sizes)
    print(
        f"Evaluation nodes, {params['evaluation']['bootstrap']['resamples']:,} test resamples, "
        f"{params['evaluation']['release_gate']['resamples']:,} gate resamples"
    )
    print(header)
    print("-" * len(header))
    for name, seconds in table.items():
        print(f"{name:<28}" + "".join(f"{seconds[size]:>18.2f}" for size in sizes))
    largest = table["evaluate_test_split"][sizes[-1]]
    print(
        f"evaluate_test_split on {sizes[-1]:,} rows: {largest:.2f} s (target <= {TARGET_SECONDS:g} s: "
        f"{'met' if largest <= TARGET_SECONDS else 'missed'})"
    )
    for problem in problems:
        print(f"WRONG: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
