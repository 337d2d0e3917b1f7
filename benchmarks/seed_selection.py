"""Seeds averaged or picked, and early-stopping patience, on Telco and the benchmark tables. Prints three tables and
exits non-zero when a target is missed or a run fails.

    .venv/bin/python benchmarks/seed_selection.py --benchmark-data DIR               # 3 split seeds
    .venv/bin/python benchmarks/seed_selection.py --benchmark-data DIR --splits 5    # the full measurement
    .venv/bin/python benchmarks/seed_selection.py --benchmark-data DIR --patiences auto  # the default only

For each table (Telco from data/01_raw, cells, caravan, hmda, stackoverflow and hpc_jobs from the folder given by
``--benchmark-data``; hpc_jobs has 4 classes, scored by macro PR-AUC) and each split seed: a stratified 70/15/15
split; the baselines of ``fit_baseline_models``;
the default model (conf/base parameters, so early stopping on a holdout of the training rows) trained with its 3
seeds, once with ``early_stopping.patience: 3`` and once with the default rule (``auto``); ``--patiences auto``
trains the default rule only (target 3 is then not checked). From the same 3 seeds:

- keep-best (``seed_selection: best``): the seed with the best validation PR-AUC;
- average (``seed_selection: average``, the default): the saved ensemble model (mean of the 3 seeds' probabilities).

The advantage of a model over the better baseline (logistic regression or gradient boosting, the better one on each
split) is measured on validation and on test. Validation advantage minus test advantage is the optimism of the
validation figure the release gate sees.

Targets (exit code 1 when missed):
1. averaged over tables, the average model's validation advantage exceeds its test advantage by <= 0.005 PR-AUC;
2. on every table, the average model's mean test PR-AUC is at most 0.005 below keep-best's;
3. on every table, the default patience's mean test PR-AUC (average model) is at most 0.005 below patience 3's;
4. one record through the service's loader (validation + NumPy fast path): the ensemble takes <= 2x a single model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import PROJECT
from common import parameters as project_parameters

TABLES = {
    # name: (file, target, positive class); telco's roles come from conf/base.
    "telco": (None, "churn", "Yes"),
    "cells": ("cells.csv", "class", "WS"),
    "caravan": ("caravan.csv", "Purchase", "Yes"),
    "hmda": ("hmda.csv", "deny", "yes"),
    "stackoverflow": ("stackoverflow.csv", "Remote", "Remote"),
    # Four classes: PR-AUC is the macro average over them.
    "hpc_jobs": ("hpc_jobs.csv", "class", None),
}
PATIENCES = (3, "auto")
TOLERANCE = 0.005
LATENCY_RATIO = 2.0


def load_table(name: str, folder: Path, parameters: dict[str, Any]) -> tuple[pd.DataFrame, Any]:
    """The table and its resolved column roles."""
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles

    file, target, positive = TABLES[name]
    if file is None:
        configured = ColumnRoles(**parameters["columns"])
        frame = pd.read_csv(PROJECT / "data" / "01_raw" / "telco_churn.csv")
        frame["total_charges"] = pd.to_numeric(frame["total_charges"], errors="coerce")
        for column in configured.categorical:
            frame[column] = frame[column].astype(str)
    else:
        frame = pd.read_csv(folder / file)
        configured = ColumnRoles(key="row_id", target=target, positive_class=positive)
    return frame, resolve_roles(frame, configured, name)


def split(frame: pd.DataFrame, target: str, seed: int) -> tuple[pd.DataFrame, ...]:
    from sklearn.model_selection import train_test_split

    train, rest = train_test_split(frame, test_size=0.30, stratify=frame[target], random_state=seed)
    val, test = train_test_split(rest, test_size=0.50, stratify=rest[target], random_state=seed)
    return train, val, test


def pr_auc(
    model_or_probabilities: Any, frame: pd.DataFrame, roles: Any, classes: list[str]
) -> float:
    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score
    from deep_learning_workflow.model_inputs import predict_probabilities

    probabilities = (
        model_or_probabilities
        if isinstance(model_or_probabilities, np.ndarray)
        else predict_probabilities(model_or_probabilities, frame, roles)
    )
    labels = target_labels(frame[roles.target]).to_numpy()
    return float(score("pr_auc", labels, probabilities, classes, roles.positive_class))


def run_split(  # noqa: PLR0913
    table: str,
    frame: pd.DataFrame,
    roles: Any,
    split_seed: int,
    parameters: dict,
    patiences: tuple[Any, ...] = PATIENCES,
) -> list[dict]:
    """Rows for one table and split seed: one per patience, with both selections."""
    import keras

    from deep_learning_workflow.columns import target_classes
    from deep_learning_workflow.models.ensemble import build_ensemble
    from deep_learning_workflow.models.fitting import (
        early_stopping_patience,
        encode_labels,
        train_model,
    )
    from deep_learning_workflow.models.schema import ModellingParams
    from deep_learning_workflow.pipelines.modelling.nodes import fit_baseline_models

    train, val, test = split(frame, roles.target, split_seed)
    classes = target_classes(train[roles.target])
    modelling = parameters["modelling"]
    baselines = fit_baseline_models(train, roles.model_dump(mode="json"), modelling, split_seed)
    baseline = {
        part: max(
            pr_auc(baselines[name].predict_proba(data[roles.features]), data, roles, classes)
            for name in ("logistic_regression", "gradient_boosting")
        )
        for part, data in (("val", val), ("test", test))
    }
    rows: list[dict] = []
    for patience in patiences:
        params = {
            **modelling,
            "early_stopping": {**modelling["early_stopping"], "patience": patience},
        }
        resolved = early_stopping_patience(
            ModellingParams(**params), encode_labels(val[roles.target], classes, "val")
        )
        same = [row for row in rows if row["resolved_patience"] == resolved]
        if same:
            # The rule gives the same patience: the same training, so the same figures.
            rows.append({**same[0], "patience": str(patience)})
            continue
        results = [
            train_model(
                train, val, roles, params, parameters["seed"] + offset, primary_metric="pr_auc"
            )
            for offset in range(modelling["seeds"])
        ]
        seeds = [
            {
                "val": pr_auc(r.model, val, roles, classes),
                "test": pr_auc(r.model, test, roles, classes),
                "best_epoch": r.best_epoch + 1,
            }
            for r in results
        ]
        kept = max(seeds, key=lambda s: s["val"])
        ensemble = build_ensemble(results[0].preprocessor, [r.head for r in results])
        rows.append(
            {
                "table": table,
                "split": split_seed,
                "patience": str(patience),
                "resolved_patience": resolved,
                "best_epochs": [s["best_epoch"] for s in seeds],
                "baseline_val": baseline["val"],
                "baseline_test": baseline["test"],
                "best_val": kept["val"],
                "best_test": kept["test"],
                "average_val": pr_auc(ensemble, val, roles, classes),
                "average_test": pr_auc(ensemble, test, roles, classes),
                "models": (results, ensemble) if table == "telco" else None,
                "train": train if table == "telco" else None,
            }
        )
        keras.backend.clear_session(free_memory=False)
    return rows


def telco_models(
    parameters: dict, rows: list[dict]
) -> tuple[list[Any], Any, pd.DataFrame, pd.DataFrame]:
    """The default Telco seed models and their ensemble (of this run, or trained now on the first split)."""
    from deep_learning_workflow.models.ensemble import build_ensemble
    from deep_learning_workflow.models.fitting import train_model

    frame, roles = load_table("telco", Path(), parameters)
    kept = next((r for r in rows if r["models"] is not None and r["patience"] == "auto"), None)
    train, val, _ = split(frame, roles.target, kept["split"] if kept else parameters["seed"])
    if kept is not None:
        results, ensemble = kept["models"]
    else:
        modelling = parameters["modelling"]
        results = [
            train_model(train, val, roles, modelling, parameters["seed"] + offset)
            for offset in range(modelling["seeds"])
        ]
        ensemble = build_ensemble(results[0].preprocessor, [r.head for r in results])
    return results, ensemble, train, val


def latency(
    single: Any, ensemble: Any, train: pd.DataFrame, columns: dict, records: pd.DataFrame
) -> dict:
    """Median microseconds per record through the service loader's path (validation + forward), each model."""
    from deep_learning_workflow.bundle import write_bundle
    from deep_learning_workflow.fingerprints import model_fingerprint
    from deep_learning_workflow.pipelines.serving.nodes import export_serving_bundle
    from deep_learning_workflow.service.loader import load_version

    timings = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("single", single), ("ensemble", ensemble)):
            gate = {"passed": True, "model_fingerprint": model_fingerprint(model)}
            bundle = export_serving_bundle(
                model, train, {"threshold": 0.5, "positive_class": "Yes"}, gate, columns, {}
            )
            write_bundle(Path(folder) / name, bundle.model, bundle.metadata)
            version = load_version(Path(folder) / name, engine="numpy")
            rows = records[bundle.metadata["features"]]
            payload = rows.astype(object).where(rows.notna(), None).to_dict("records")
            per_round = []
            for _ in range(7):
                start = time.perf_counter()
                for record in payload:
                    version.forward(version.validator.validate([record], batch=False).values)
                per_round.append((time.perf_counter() - start) / len(payload) * 1e6)
            timings[name] = statistics.median(per_round)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=3, help="split seeds per table")
    parser.add_argument(
        "--benchmark-data",
        type=Path,
        required=True,
        help="folder holding cells.csv, caravan.csv, hmda.csv, stackoverflow.csv and hpc_jobs.csv",
    )
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument(
        "--patiences",
        default="3,auto",
        help="early-stopping patiences to train (comma-separated; auto is the default rule); target 3 needs both",
    )
    parser.add_argument(
        "--save",
        type=Path,
        help="append each split's figures to this JSON-lines file as they come; splits already in it are "
        "read back instead of trained again (resume)",
    )
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parameters = project_parameters()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[dict] = []
    if arguments.save is not None and arguments.save.exists():
        # Resume: the splits already measured are read back, not trained again.
        saved = pd.read_json(arguments.save, lines=True).to_dict("records")
        rows = [{**row, "models": None, "train": None} for row in saved]
    patiences = tuple(
        int(value) if value.isdigit() else value for value in arguments.patiences.split(",")
    )
    if "auto" not in patiences:
        parser.error("--patiences must include auto (the default rule, whose seeds are compared)")
    done = {(row["table"], row["split"]) for row in rows}
    failures: list[str] = []
    for table in arguments.tables.split(","):
        frame, roles = load_table(table, arguments.benchmark_data, parameters)
        for split_seed in range(parameters["seed"], parameters["seed"] + arguments.splits):
            if (table, split_seed) in done:
                continue
            try:
                new = run_split(table, frame, roles, split_seed, parameters, patiences)
                rows.extend(new)
                if arguments.save is not None:
                    with arguments.save.open("a") as file:
                        for row in new:
                            kept = {k: v for k, v in row.items() if k not in ("models", "train")}
                            file.write(pd.Series(kept).to_json() + "\n")
            except Exception as error:  # a failed run is reported, and fails the benchmark
                failures.append(f"{table} split {split_seed}: {type(error).__name__}: {error}")
            print(
                f"  done {table} split {split_seed} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    figures = pd.DataFrame(
        [{k: v for k, v in row.items() if k not in ("models", "train")} for row in rows]
    )
    ok = not failures and not figures.empty
    if ok:
        ok = report(figures) and ok
        if "telco" in arguments.tables.split(","):
            results, ensemble, train, val = telco_models(parameters, rows)
            timings = latency(
                results[0].model, ensemble, train, parameters["columns"], val.head(300)
            )
            ratio = timings["ensemble"] / timings["single"]
            print(
                f"\nOne record through the service loader's path (validation + NumPy forward), Telco, median of 7 "
                f"rounds of 300 records:\n  single model {timings['single']:.1f} us, ensemble of "
                f"{len(results)} {timings['ensemble']:.1f} us: {ratio:.2f}x (target <= {LATENCY_RATIO}x)"
            )
            if ratio > LATENCY_RATIO:
                failures.append(f"latency ratio {ratio:.2f} > {LATENCY_RATIO}")
    print(
        f"\nload average: before {load_before:.2f}, after {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})"
    )
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print("FAILED:", failure)
    return 0 if ok and not failures else 1


def report(figures: pd.DataFrame) -> bool:
    """Print the patience and selection tables; False when a target is missed."""
    counts = figures.groupby("table", sort=False)["split"].nunique()
    splits = ", ".join(f"{table} {count}" for table, count in counts.items())
    figures = figures.assign(
        best_epoch_mean=figures["best_epochs"].map(np.mean),
        early=figures["best_epochs"].map(lambda e: sum(x <= 2 for x in e)),
        runs=figures["best_epochs"].map(len),
    )
    ok = True
    print(
        f"\nEarly stopping, split seeds ({splits}) x 3 training seeds (test PR-AUC of the average model)"
    )
    print(
        f"{'table':<15}{'patience':>9}{'resolved':>9}{'best epoch':>11}{'best<=2':>9}{'test PR-AUC':>12}"
    )
    by_patience = {}
    for (table, patience), group in figures.groupby(["table", "patience"], sort=False):
        resolved = "/".join(str(v) for v in sorted(set(group["resolved_patience"])))
        test = group["average_test"].mean()
        by_patience[(table, patience)] = test
        print(
            f"{table:<15}{patience:>9}{resolved:>9}{group['best_epoch_mean'].mean():>11.1f}"
            f"{int(group['early'].sum()):>5}/{int(group['runs'].sum()):<3}{test:>12.4f}"
        )
    for table in figures["table"].unique():
        if (table, "3") not in by_patience:
            continue
        if by_patience[(table, "auto")] < by_patience[(table, "3")] - TOLERANCE:
            print(
                f"MISSED: {table}: patience auto loses more than {TOLERANCE} test PR-AUC to patience 3"
            )
            ok = False
    chosen = figures[figures["patience"] == "auto"]
    rows = []
    print(
        f"\nSeed selection (default patience), advantage over the better baseline, PR-AUC, split seeds: {splits}"
    )
    header = (
        "table",
        "best val",
        "best test",
        "avg val",
        "avg test",
        "test best",
        "test avg",
        "avg wins",
    )
    print(f"{header[0]:<15}" + "".join(f"{h:>11}" for h in header[1:]))
    for table, group in chosen.groupby("table", sort=False):
        row = {
            "best_val": (group["best_val"] - group["baseline_val"]).mean(),
            "best_test": (group["best_test"] - group["baseline_test"]).mean(),
            "average_val": (group["average_val"] - group["baseline_val"]).mean(),
            "average_test": (group["average_test"] - group["baseline_test"]).mean(),
            "test_best": group["best_test"].mean(),
            "test_average": group["average_test"].mean(),
            "wins": int((group["average_test"] > group["baseline_test"]).sum()),
        }
        rows.append(row)
        print(
            f"{table:<15}"
            + "".join(
                f"{row[k]:>+11.4f}"
                for k in ("best_val", "best_test", "average_val", "average_test")
            )
            + f"{row['test_best']:>11.4f}{row['test_average']:>11.4f}{row['wins']:>8}/{len(group)}"
        )
        if row["test_average"] < row["test_best"] - TOLERANCE:
            print(
                f"MISSED: {table}: the average model's test PR-AUC is more than {TOLERANCE} below keep-best's"
            )
            ok = False
    summary = pd.DataFrame(rows).mean()
    gap_best = summary["best_val"] - summary["best_test"]
    gap_average = summary["average_val"] - summary["average_test"]
    print(
        f"{'mean':<15}"
        + "".join(
            f"{summary[k]:>+11.4f}"
            for k in ("best_val", "best_test", "average_val", "average_test")
        )
    )
    print(
        f"\nvalidation minus test advantage, mean over tables: keep-best {gap_best:+.4f}, average "
        f"{gap_average:+.4f} (target for average <= {TOLERANCE})"
    )
    if gap_average > TOLERANCE:
        print(
            "MISSED: the average model's validation advantage is optimistic by more than the target"
        )
        ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
