"""Every model family and both baselines on seven tables, over several split seeds. Prints one table and whether the
default family's targets hold; exits non-zero when a model fails or a score is not a number.

    .venv/bin/python benchmarks/model_families.py                          # 7 tables x 5 splits, hours on 2 cores
    .venv/bin/python benchmarks/model_families.py --splits 2 --families plr_mlp --save runs.jsonl
    .venv/bin/python benchmarks/model_families.py --tables reviews --families mlp --save runs.jsonl  # resumes

Tables: Telco (roles of conf/base), the food reviews (conf/reviews) and the five tables of data/01_raw/README.md
(cells, caravan, hmda, hpc_jobs, stackoverflow), whose environment -- roles, positive class, text settings -- is
inferred by the project's ``new-table`` (``create_environment`` in a temporary copy of the configuration; the model
trains on the rows it keeps, without the held-back scoring batch). For each table and split seed
``params:seed + 0 .. --splits - 1``, a stratified 70/15/15 split, then:

- each family of ``--families`` (the table's ``params:modelling`` with ``architecture`` changed, the other
  family's section dropped) trained as the modelling pipeline trains the saved model: ``train_seed_models``, a
  model per training seed ``split seed + 0 .. modelling.seeds - 1``, their probabilities averaged in one model.
  ``plr_mlp`` needs numeric columns: on a table without any it is not run;
- logistic regression and gradient boosting, as ``fit_baseline_models`` builds them, on the same training rows.

Per table and model: validation and test PR-AUC (the positive class's; macro over the classes for hpc_jobs), mean
± sd over split seeds; ``wins``: splits where the model's test PR-AUC beats that of the table's best baseline (the
one with the higher mean test PR-AUC) on the same split; training seconds (all seeds); weights; single-record
latency in ms through the service's fast path (``compile_engine`` as the tuning latency objective builds it, the
fastest block median of ``tuning.trade_off.latency``; ``*`` marks the ``tf.function`` fallback), for a baseline
the median of one ``predict_proba`` call per record.

Per model also the test ROC-AUC (one-vs-rest macro for hpc_jobs). Targets: Telco's default over the split seeds,
mean test PR-AUC >= 0.67 and ROC-AUC >= 0.85; for each table's default family (its environment's
``modelling.architecture``: conf/base's, ``mlp`` for the reviews, which have no numeric column): mean test PR-AUC
at least the best baseline's on >= 5 of the 7 tables, and within 0.01 of it on the others.

``optimism``: the model's mean validation advantage over the best baseline minus its mean test advantage, over the
paired splits; the summary gives its mean over tables for the default family (target <= 0.005: the validation
figures the release gate compares are not selected on validation).

``best epoch``: the training runs' mean best epoch; ``at end``: runs whose best epoch was their last, so stopped
by ``modelling.epochs`` while still improving on the holdout.

``--save FILE`` appends each model's figures of a split to a JSON-lines file as they come; rows already in it are
read back instead of trained again, so several runs (other tables, other families) add up to one table.
``--variant NAME --set KEY=VALUE ...`` trains the families with dotted ``params:modelling`` keys changed (e.g.
``--variant q --set numeric.scaling=quantile``); its rows are ``<family>+<NAME>`` and never the default.
Set ``OMP_NUM_THREADS=1`` on a shared machine: gradient boosting's thread pool otherwise spins under load and its
single-record latency measures the contention.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from common import PROJECT, split_70_15_15, telco_table
from common import parameters as project_parameters
from new_table import TABLES as NEW_TABLES

RAW = PROJECT / "data" / "01_raw"
# The five real tables of data/01_raw/README.md; new_table.py also makes two from Telco at run time.
TABLES = ("telco", "reviews", *(name for name in NEW_TABLES if (RAW / f"{name}.csv").exists()))
FAMILIES = ("mlp", "plr_mlp", "tabm")
BASELINES = ("logistic_regression", "gradient_boosting")
WINS_NEEDED = 5
MARGIN = 0.01
OPTIMISM = 0.005
TELCO_PR_AUC = 0.67
TELCO_ROC_AUC = 0.85


@dataclass(frozen=True)
class Table:
    """A benchmark table: its rows, resolved roles and merged parameters."""

    name: str
    frame: pd.DataFrame
    roles: Any
    parameters: dict[str, Any]

    @property
    def default_family(self) -> str:
        return str(self.parameters["modelling"]["architecture"])


def load_table(name: str) -> Table:
    """The table's rows, roles and parameters: conf/base, conf/reviews, or an environment new-table infers."""
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles

    if name == "telco":
        parameters = project_parameters()
        frame = telco_table(ColumnRoles(**parameters["columns"]))
    elif name == "reviews":
        parameters = project_parameters("reviews")
        frame = pd.read_csv(RAW / "food_reviews.csv")
    else:
        from deep_learning_workflow.new_table.create import create_environment

        with tempfile.TemporaryDirectory() as folder:
            project = Path(folder)
            shutil.copytree(
                PROJECT / "conf", project / "conf", ignore=shutil.ignore_patterns("local")
            )
            created = create_environment(project, RAW / f"{name}.csv", NEW_TABLES[name][0], name)
            parameters = project_parameters(name, project)
            frame = pd.read_parquet(project / created.paths.table)
    roles = resolve_roles(frame, ColumnRoles(**parameters["columns"]), name)
    return Table(name, frame, roles, parameters)


def checked_scores(
    probabilities: np.ndarray,
    labels: pd.Series,
    classes: list[str],
    roles: Any,
    what: str,
    metric: str = "pr_auc",
) -> float:
    """``metric`` of ``probabilities``; ValueError when they are not finite probabilities or the score is not."""
    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score

    probabilities = np.asarray(probabilities, dtype="float64")
    if not np.isfinite(probabilities).all() or not np.allclose(
        probabilities.sum(axis=1), 1.0, atol=1e-4
    ):
        raise ValueError(f"{what}: probabilities are not finite or do not sum to 1")
    value = score(
        metric, target_labels(labels).to_numpy(), probabilities, classes, roles.positive_class
    )
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what}: {metric} is {value}")
    return float(value)


def test_figures(
    probabilities: np.ndarray, test: pd.DataFrame, classes: list[str], roles: Any, what: str
) -> dict[str, float]:
    """Test PR-AUC and ROC-AUC (macro over the classes beyond two), each checked."""
    return {
        "test": checked_scores(probabilities, test[roles.target], classes, roles, what),
        "test_roc": checked_scores(
            probabilities, test[roles.target], classes, roles, what, "roc_auc"
        ),
    }


def latency_settings() -> Any:
    from deep_learning_workflow.parameters import parse
    from deep_learning_workflow.pipelines.tuning.schema import LatencyParams

    return parse(LatencyParams, project_parameters()["tuning"]["trade_off"]["latency"], "latency")


def keras_latency(model: Any, val: pd.DataFrame, roles: Any) -> tuple[float, str]:
    """Milliseconds per single record through the engine the service would choose, and that engine's name."""
    from deep_learning_workflow.inference import (
        engine_for_rows,
        single_records,
        time_single_records,
    )

    settings = latency_settings()
    engine = engine_for_rows(model, val, roles, label="model_families")
    timing = time_single_records(
        engine.forward, single_records(val, roles), blocks=settings.repeats, calls=settings.calls
    )
    return timing.best_block_ms, engine.name


def baseline_latency(pipeline: Any, val: pd.DataFrame, roles: Any) -> float:
    """Milliseconds per single-row ``predict_proba`` of a fitted baseline (the median over one call per record)."""
    from deep_learning_workflow.inference import time_single_records
    from deep_learning_workflow.inference.records import LATENCY_RECORDS

    features = val[roles.features]
    rows = [features.iloc[[i]] for i in range(min(LATENCY_RECORDS, len(features)))]
    # One block of one call per record: a scikit-learn call takes milliseconds, enough to time without repeats.
    return time_single_records(pipeline.predict_proba, rows).best_block_ms


def with_overrides(modelling: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``modelling`` with each dotted key of ``overrides`` set (``numeric.scaling`` -> ``modelling.numeric.scaling``)."""
    result = json.loads(json.dumps(modelling))
    for path, value in overrides.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return result


def model_name(family: str, variant: str | None) -> str:
    return f"{family}+{variant}" if variant else family


def family_rows(  # noqa: PLR0913
    table: Table,
    split_seed: int,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    families: list[str],
    epochs: int | None,
    done: set[tuple[str, int, str]],
    variant: tuple[str | None, dict[str, Any]] = (None, {}),
) -> list[dict[str, Any]]:
    """One row per family of ``families`` not yet in ``done``, trained as the modelling pipeline trains.

    ``variant`` names a set of dotted ``params:modelling`` overrides; its rows are ``<family>+<name>``.
    """
    import keras

    from deep_learning_workflow.columns import target_classes
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.schema import without_unused_sections
    from deep_learning_workflow.pipelines.modelling.nodes import train_seed_models
    from deep_learning_workflow.pipelines.tuning.objectives import count_parameters

    train, val, test = splits
    roles = table.roles
    classes = target_classes(train[roles.target])
    rows = []
    label, overrides = variant
    for family in families:
        name = model_name(family, label)
        if (table.name, split_seed, name) in done or (family == "plr_mlp" and not roles.numeric):
            continue
        modelling = with_overrides(
            {**table.parameters["modelling"], "architecture": family}, overrides
        )
        if epochs:
            modelling["epochs"] = epochs
        started = time.perf_counter()
        model, _, seed_report = train_seed_models(
            train,
            train,
            val,
            roles.model_dump(mode="json"),
            without_unused_sections(modelling),
            table.parameters["problem"],
            split_seed,
            {"enabled": False},
        )
        seconds = time.perf_counter() - started
        what = f"{table.name} split {split_seed} {name}"
        milliseconds, engine = keras_latency(model, val, roles)
        rows.append(
            {
                "table": table.name,
                "split": split_seed,
                "model": name,
                "default": family == table.default_family and label is None,
                "val": checked_scores(
                    predict_probabilities(model, val, roles),
                    val[roles.target],
                    classes,
                    roles,
                    what,
                ),
                **test_figures(
                    predict_probabilities(model, test, roles), test, classes, roles, what
                ),
                "seconds": seconds,
                "parameters": int(count_parameters(model)),
                "latency_ms": milliseconds,
                "engine": engine,
                "best_epochs": [run["best_epoch"] for run in seed_report["seeds"]],
                "epochs_run": [run["epochs_run"] for run in seed_report["seeds"]],
            }
        )
        keras.backend.clear_session(free_memory=False)
    return rows


def baseline_rows(
    table: Table, split_seed: int, splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> list[dict[str, Any]]:
    """One row per baseline, each built and fitted as ``fit_baseline_models`` does."""
    from deep_learning_workflow.columns import target_classes, target_labels
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    train, val, test = splits
    roles = table.roles
    classes = target_classes(train[roles.target])
    params = as_params(table.parameters["modelling"])
    rows = []
    for name in BASELINES:
        started = time.perf_counter()
        pipeline = build_baseline(name, roles, params, split_seed).fit(
            train[roles.features], target_labels(train[roles.target])
        )
        seconds = time.perf_counter() - started
        what = f"{table.name} split {split_seed} {name}"
        figures = {
            "val": checked_scores(
                pipeline.predict_proba(val[roles.features]), val[roles.target], classes, roles, what
            ),
            **test_figures(
                pipeline.predict_proba(test[roles.features]), test, classes, roles, what
            ),
        }
        rows.append(
            {
                "table": table.name,
                "split": split_seed,
                "model": name,
                "default": False,
                **figures,
                "seconds": seconds,
                "parameters": 0,
                "latency_ms": baseline_latency(pipeline, val, roles),
                "engine": "sklearn",
            }
        )
    return rows


def best_baselines(figures: pd.DataFrame) -> dict[str, str]:
    """Table -> the baseline with the higher mean test PR-AUC."""
    baselines = figures[figures.model.isin(BASELINES)]
    means = baselines.groupby(["table", "model"])["test"].mean()
    return {table: means[table].idxmax() for table in baselines.table.unique()}


def _mean_sd(values: pd.Series) -> str:
    if values.isna().any():  # rows saved before the figure was recorded
        return "-"
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {sd:.3f}"


def print_table(figures: pd.DataFrame) -> None:
    best = best_baselines(figures)
    print(
        f"\n{'table':<14}{'model':<27}{'splits':>7}{'val PR-AUC':>16}{'test PR-AUC':>16}{'test ROC-AUC':>16}"
        f"{'wins':>7}{'train s':>9}{'weights':>9}{'ms/record':>11}{'optimism':>10}{'best epoch':>11}"
        f"{'at end':>8}"
    )
    for (table, model), group in figures.groupby(["table", "model"], sort=False):
        wins, optimism = "-", "-"
        if model not in BASELINES and table in best:
            reference = figures[(figures.table == table) & (figures.model == best[table])]
            paired = group.merge(reference, on="split", suffixes=("", "_baseline"))
            wins = f"{int((paired.test > paired.test_baseline).sum())}/{len(paired)}"
            optimism = f"{_optimism(paired):+.4f}"
        name = f"{model}{' (default)' if group['default'].any() else ''}"
        name += " (best)" if best.get(table) == model else ""
        slow = "*" if (group.engine == "tf.function").any() else ""
        print(
            f"{table:<14}{name:<27}{len(group):>7}{_mean_sd(group.val):>16}{_mean_sd(group.test):>16}"
            f"{_mean_sd(group.test_roc):>16}{wins:>7}{group.seconds.mean():>9.1f}{int(group.parameters.mean()):>9}"
            f"{group.latency_ms.mean():>10.3f}{slow:1}{optimism:>10}{_epochs(group)}"
        )


def _epochs(group: pd.DataFrame) -> str:
    """Mean best epoch over the training runs, and the runs whose best epoch was their last (cut by the cap)."""
    if (
        "best_epochs" not in group or group.best_epochs.isna().any()
    ):  # a baseline, or rows saved before
        return f"{'-':>11}{'-':>8}"
    best = [epoch for epochs in group.best_epochs for epoch in epochs]
    run = [epochs for runs in group.epochs_run for epochs in runs]
    at_end = sum(b == r for b, r in zip(best, run, strict=True))
    return f"{np.mean(best):>11.1f}{f'{at_end}/{len(best)}':>8}"


def _optimism(paired: pd.DataFrame) -> float:
    """Mean validation advantage over the baseline minus mean test advantage, over the paired splits."""
    return float(
        (paired.val - paired.val_baseline).mean() - (paired.test - paired.test_baseline).mean()
    )


def check_targets(figures: pd.DataFrame) -> None:
    """Print whether the default family's mean test PR-AUC holds against the best baseline, per table and overall."""
    best = best_baselines(figures)
    print("\nDefault family against the best baseline, mean test PR-AUC:")
    differences = {}
    for table in TABLES:
        default = figures[(figures.table == table) & figures["default"]]
        if default.empty or table not in best:
            print(f"  {table:<14} not measured")
            continue
        reference = figures[(figures.table == table) & (figures.model == best[table])]
        differences[table] = default.test.mean() - reference.test.mean()
        print(
            f"  {table:<14} {default.model.iloc[0]} {default.test.mean():.4f} - {best[table]} "
            f"{reference.test.mean():.4f} = {differences[table]:+.4f} over {len(default)} split(s)"
        )
    optimism = {}
    for table in differences:
        default = figures[(figures.table == table) & figures["default"]]
        reference = figures[(figures.table == table) & (figures.model == best[table])]
        optimism[table] = _optimism(
            default.merge(reference, on="split", suffixes=("", "_baseline"))
        )
    print(
        "  validation advantage over the best baseline minus test advantage (optimism), mean over "
        f"{len(optimism)} tables: {np.mean(list(optimism.values())):+.4f} (target <= {OPTIMISM})"
    )
    telco = figures[(figures.table == "telco") & figures["default"]]
    if not telco.empty:
        pr, roc = telco.test.mean(), telco.test_roc.mean()
        holds = pr >= TELCO_PR_AUC and roc >= TELCO_ROC_AUC
        print(
            f"  telco defaults over {len(telco)} split(s): test PR-AUC {pr:.4f} (target >= {TELCO_PR_AUC}), "
            f"ROC-AUC {roc:.4f} (target >= {TELCO_ROC_AUC}) -> {'HOLDS' if holds else 'MISSED'}"
        )
    at_least = sum(value >= 0 for value in differences.values())
    within = all(value >= -MARGIN for value in differences.values())
    verdict = "HOLDS" if at_least >= WINS_NEEDED and within else "MISSED"
    if len(differences) < len(TABLES):
        verdict = f"NOT CHECKED ({len(differences)} of {len(TABLES)} tables measured)"
    print(
        f"  target: >= best baseline on >= {WINS_NEEDED} of {len(TABLES)} tables: {at_least}; "
        f"within {MARGIN} on the others: {'yes' if within else 'no'} -> {verdict}"
    )


def read_saved(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(arguments: argparse.Namespace) -> tuple[pd.DataFrame, list[str]]:
    """The figures of every (table, split, model) asked for, saved ones read back; and the failures."""
    rows = read_saved(arguments.save)
    done = {(row["table"], row["split"], row["model"]) for row in rows}
    failures = []
    started = time.perf_counter()
    for name in arguments.tables:
        table = load_table(name)
        first = int(table.parameters["seed"])
        for split_seed in range(first, first + arguments.splits):
            splits = split_70_15_15(table.frame, table.roles.target, split_seed)
            new = []
            for family in arguments.families:
                try:
                    new += family_rows(
                        table,
                        split_seed,
                        splits,
                        [family],
                        arguments.epochs,
                        done,
                        (arguments.variant, arguments.overrides),
                    )
                except Exception as error:  # a failed model is reported and fails the benchmark
                    failures.append(
                        f"{name} split {split_seed} {family}: {type(error).__name__}: {error}"
                    )
            try:
                if any((name, split_seed, b) not in done for b in BASELINES):
                    new += baseline_rows(table, split_seed, splits)
            except Exception as error:
                failures.append(
                    f"{name} split {split_seed} baselines: {type(error).__name__}: {error}"
                )
            rows += new
            if arguments.save is not None:
                with arguments.save.open("a") as file:
                    file.writelines(json.dumps(row) + "\n" for row in new)
            print(
                f"  done {name} split {split_seed} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    figures = pd.DataFrame(rows)
    if not figures.empty and "test_roc" not in figures:
        figures["test_roc"] = np.nan
    return figures, failures


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated tables")
    parser.add_argument("--splits", type=int, default=5, help="split seeds per table")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    parser.add_argument("--epochs", type=int, default=None, help="override modelling.epochs")
    parser.add_argument(
        "--save", type=Path, default=None, help="JSON-lines file to append to / resume"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted params:modelling key (value read as YAML); needs --variant",
    )
    parser.add_argument(
        "--variant", default=None, help="name of the --set overrides; rows are <family>+<variant>"
    )
    arguments = parser.parse_args()
    arguments.tables = [name for name in arguments.tables.split(",") if name]
    arguments.families = [name for name in arguments.families.split(",") if name]
    for kind, chosen, known in (
        ("tables", arguments.tables, TABLES),
        ("families", arguments.families, FAMILIES),
    ):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            parser.error(f"unknown {kind} {unknown}; choose from {list(known)}")
    if arguments.splits < 1:
        parser.error("--splits must be at least 1")
    if bool(arguments.set) != bool(arguments.variant):
        parser.error("--set and --variant go together")
    arguments.overrides = {}
    for item in arguments.set:
        key, separator, value = item.partition("=")
        if not separator:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        arguments.overrides[key] = yaml.safe_load(value)
    return arguments


def main() -> int:
    arguments = parse_arguments()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = os.getloadavg()
    started = time.perf_counter()
    figures, failures = run(arguments)
    if figures.empty:
        failures.append("no figures")
    else:
        print_table(figures)
        if (figures.engine == "tf.function").any():
            print("(* timed through the tf.function fallback, not the NumPy fast path)")
        check_targets(figures)
    load_after = os.getloadavg()
    print(
        f"\nload average (1, 5, 15 min): before {', '.join(f'{v:.2f}' for v in load_before)}; after "
        f"{', '.join(f'{v:.2f}' for v in load_after)} (cores: {os.cpu_count()}); wall "
        f"{time.perf_counter() - started:.0f} s"
    )
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
