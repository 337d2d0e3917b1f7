"""Seven tables the project has never seen, each from file to a trained model and a gate verdict in two commands:
`kedro dlw new-table <table> --target <column> --env <table>` and `kedro run --env <table>`, with no file edited.

The five real tables of data/01_raw/README.md, plus two made at run time from `telco_churn.csv`: `odd_names`
(every row, the columns renamed with spaces, punctuation, non-ASCII letters and two names that read the same once
sanitised) and `small` (60 rows drawn with a fixed seed). Each run is checked:

- it either ends with a verdict, or stops before writing anything under its data root (only `data/01_raw/` may
  hold files) with its message shown once on the console and no traceback;
- a released model is not worse on the test split than any baseline by more than the gate's margins
  (`evaluation.release_gate.also_compare`): accuracy at the decision threshold, and log loss.

Prints the inferred roles and a table of verdicts and figures; exits non-zero on any failed check.

    .venv/bin/python benchmarks/new_table.py                    # the seven tables, full training
    .venv/bin/python benchmarks/new_table.py --tables small odd_names --epochs 5
    .venv/bin/python benchmarks/new_table.py --keep /tmp/runs   # also keep each run's reports and console
    .venv/bin/python benchmarks/new_table.py --recheck /tmp/runs   # check kept runs again, without training

Each table runs in its own temporary copy of the project (sources: data/01_raw/README.md). `--epochs` shortens
training and `--seed` changes the splits and the initialisation, through `kedro run --params` (not a file edit).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import copy_project, parameters

# Table -> (target, its classes as the shipped file has them).
TABLES = {
    "cells": ("class", ["PS", "WS"]),
    "caravan": ("Purchase", ["No", "Yes"]),
    "hmda": ("deny", ["no", "yes"]),
    "hpc_jobs": ("class", ["F", "L", "M", "VF"]),
    "stackoverflow": ("Remote", ["Not remote", "Remote"]),
    "odd_names": ("Churn?", ["No", "Yes"]),
    "small": ("churn", ["No", "Yes"]),
}

# Telco's columns under names a spreadsheet user might give them. "Lines (phone)" and "Lines: phone" both read
# "Lines_phone" once sanitised; "Ancienneté" and "€" are not ASCII.
ODD_NAMES = {
    "customer_id": "Customer #",
    "churn": "Churn?",
    "female": "Gender = female",
    "senior_citizen": "Senior citizen (65+)",
    "partner": "Partner",
    "dependents": "Dependents / children",
    "tenure": "Ancienneté (mois)",
    "phone_service": "Lines: phone",
    "multiple_lines": "Lines (phone)",
    "internet_service": "Internet service",
    "online_security": "Online security",
    "online_backup": "Online backup",
    "device_protection": "Device protection",
    "tech_support": "Tech support",
    "streaming_tv": "Streaming: TV",
    "streaming_movies": "Streaming: movies",
    "contract": "Contract — term",
    "paperless_billing": "Paperless billing?",
    "payment_method": "Payment method",
    "monthly_charges": "Monthly charges (€)",
    "total_charges": "Total charges (€)",
}
SMALL_ROWS = 60
SMALL_SEED = 20


def generate_tables(raw: Path) -> None:
    """Write ``odd_names.csv`` and ``small.csv`` into ``raw``, both from ``telco_churn.csv`` in ``raw``."""
    telco = pd.read_csv(raw / "telco_churn.csv")
    telco.rename(columns=ODD_NAMES).to_csv(raw / "odd_names.csv", index=False)
    telco.sample(n=SMALL_ROWS, random_state=SMALL_SEED).to_csv(raw / "small.csv", index=False)


def kedro(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def written_outputs(project: Path) -> list[str]:
    """Files a run wrote under ``data/`` (anything outside ``data/01_raw``)."""
    data = project / "data"
    return sorted(
        path.relative_to(data).as_posix()
        for path in data.rglob("*")
        if path.is_file() and path.relative_to(data).parts[0] != "01_raw"
    )


def failure_message(console: str) -> str | None:
    """The message a failed command ends with: its last line that names an error, without a log prefix."""
    for line in reversed(console.strip().splitlines()):
        if re.search(r"Error|error:|must|stop", line):
            return re.sub(r"^.*?(\w+Error: )", r"\1", line.strip())
    return None


def run_commands(
    project: Path, name: str, target: str, epochs: int | None, seed: int | None
) -> dict:
    """new-table and kedro run in ``project``; what they printed, wrote and returned."""
    table = project / "data" / "01_raw" / f"{name}.csv"
    created = kedro(project, "dlw", "new-table", str(table), "--target", target, "--env", name)
    record = {"new_table": created.stdout + created.stderr, "new_table_code": created.returncode}
    if created.returncode:
        record["stopped_at"] = "new-table"
        return record
    arguments = ["run", "--env", name]
    overrides = [f"modelling.epochs={epochs}"] * bool(epochs) + [f"seed={seed}"] * (
        seed is not None
    )
    if overrides:
        arguments += ["--params", ",".join(overrides)]
    run = kedro(project, *arguments)
    record |= {"run": run.stdout + run.stderr, "run_code": run.returncode}
    if run.returncode:
        record["stopped_at"] = "kedro run"
    return record


def run_table(
    name: str, target: str, epochs: int | None, seed: int | None, keep: Path | None
) -> dict:
    """One table in a temporary copy of the project; the record :func:`check_run` reads (also kept on disk)."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        copy_project(project)
        generate_tables(project / "data" / "01_raw")
        started = time.perf_counter()
        record = {"table": name, "target": target}
        record |= run_commands(project, name, target, epochs, seed)
        record["seconds"] = time.perf_counter() - started
        record["rows"] = len(pd.read_csv(project / "data" / "01_raw" / f"{name}.csv"))
        record["written"] = written_outputs(project)
        reports = project / "data" / name / "08_reporting"
        for report in ("release_gate", "test_metrics"):
            path = reports / f"{report}.json"
            record[report] = json.loads(path.read_text()) if path.exists() else None
        if (project / "conf" / name).exists():
            gate = parameters(name, project)["evaluation"]["release_gate"]
            record["margins"] = {"primary": gate["margin"], **gate["also_compare"]}
        if keep is not None and (project / "data" / name).exists():
            # The splits, models and reports, to look into a failed check without training again.
            shutil.copytree(project / "data" / name, keep / name, dirs_exist_ok=True)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    return record


def best_baseline(metrics: dict[str, dict], metric: str, greater: bool) -> tuple[str, float]:
    """The baseline with the best value of ``metric`` among ``{baseline: {metric: value}}``."""
    values = {name: scores[metric] for name, scores in metrics.items()}
    best = (max if greater else min)(values, key=values.get)
    return best, values[best]


def check_stop(record: dict) -> list[str]:
    """A stopped run wrote nothing under its data root and showed one message, once."""
    problems = []
    if record["written"]:
        problems.append(f"stopped at {record['stopped_at']} but wrote {record['written'][:5]}")
    console = record.get("run", record["new_table"])
    message = failure_message(console)
    if message is None:
        problems.append(f"stopped at {record['stopped_at']} without an error message")
    else:
        shown = console.count(message[:60])
        if shown != 1:
            problems.append(f"the message is shown {shown} times on the console: {message[:100]}")
    if "Traceback (most recent call last)" in console or "│" in console:
        problems.append("the console shows a traceback (it belongs in info.log)")
    return problems


def check_release(record: dict, classes: list[str]) -> list[str]:
    """A released model is not worse than any baseline on test accuracy or log loss by more than the margins."""
    gate, test, margins = record["release_gate"], record["test_metrics"], record["margins"]
    if gate is None or test is None:
        return ["the run succeeded but wrote no release_gate.json or test_metrics.json"]
    problems = []
    if test["classes"] != classes:
        problems.append(f"classes {test['classes']}, expected {classes}")
    model = {name: value["value"] for name, value in test["model"]["metrics"].items()}
    counted = test["model"]["at_threshold"]["accuracy"]
    if abs(model["accuracy"] - counted) > 1e-9:
        problems.append(
            f"test accuracy {model['accuracy']:.4f} is not that of the decisions at the threshold {counted:.4f}"
        )
    if gate["verdict"] != "release":
        return problems
    for baseline, values in test["baselines"].items():
        accuracy = values["metrics"]["accuracy"]["value"]
        log_loss = values["metrics"]["log_loss"]["value"]
        if model["accuracy"] < accuracy - margins["accuracy"]:
            problems.append(
                f"released, but test accuracy {model['accuracy']:.4f} < {baseline} {accuracy:.4f} - margin "
                f"{margins['accuracy']}"
            )
        if model["log_loss"] > log_loss + margins["log_loss"]:
            problems.append(
                f"released, but test log loss {model['log_loss']:.4f} > {baseline} {log_loss:.4f} + margin "
                f"{margins['log_loss']}"
            )
    return problems


def check_run(record: dict, classes: list[str]) -> dict:
    """The table's row of figures and the problems found (none when every check holds)."""
    row = {"table": record["table"], "rows": record["rows"], "seconds": record["seconds"]}
    if "stopped_at" in record:
        console = record.get("run", record["new_table"])
        return row | {
            "verdict": f"stopped ({record['stopped_at']})",
            "message": failure_message(console),
            "problems": check_stop(record),
        }
    problems = check_release(record, classes)
    gate, test = record["release_gate"], record["test_metrics"]
    if gate is None or test is None:
        return row | {"verdict": "no verdict", "problems": problems}
    metric = gate["primary_metric"]
    greater = metric not in ("log_loss", "brier")
    validation = {
        c["baseline"]: {metric: c["baseline_value"]}
        for c in gate["comparisons"]
        if c["metric"] == metric
    }
    tested = {
        name: {key: value["value"] for key, value in values["metrics"].items()}
        for name, values in test["baselines"].items()
    }
    model = {key: value["value"] for key, value in test["model"]["metrics"].items()}
    figures = {}
    for label, values, key, better in (
        ("val", validation, metric, greater),
        ("test", tested, metric, greater),
        ("accuracy", tested, "accuracy", True),
        ("log loss", tested, "log_loss", False),
    ):
        name, value = best_baseline(values, key, better)
        mine = gate["model_value"] if label == "val" else model[key]
        figures[label] = f"{mine:.3f} vs {value:.3f} ({name})"
    return row | {
        "verdict": gate["verdict"],
        "failed": gate["failed_checks"],
        "metric": metric,
        "figures": figures,
        "problems": problems,
    }


def print_results(records: list[dict], checked: list[dict]) -> None:
    for record, result in zip(records, checked, strict=True):
        print(f"\n== {result['table']} ({result['rows']} rows): {result['verdict']}")
        summary = [line.strip() for line in record["new_table"].splitlines() if "  " in line]
        for line in summary[1:10]:
            print(f"  {line[:150]}")
        if result.get("failed"):
            print(f"  failed gate checks: {'; '.join(result['failed'])}")
        if result.get("message"):
            print(f"  message: {result['message'][:300]}")
        for problem in result["problems"]:
            print(f"  CHECK FAILED: {problem}")
    print(
        "\n| table | rows | verdict | metric | val: model vs best baseline | test: model vs best baseline | "
        "test accuracy | test log loss | check | seconds |"
        f"\n|{'---|' * 10}"
    )
    for result in checked:
        figures = result.get("figures", {})
        cells = [figures.get(key, "") for key in ("val", "test", "accuracy", "log loss")]
        print(
            f"| {result['table']} | {result['rows']} | {result['verdict']} | {result.get('metric', '')} | "
            f"{' | '.join(cells)} | {'FAILED' if result['problems'] else 'OK'} | {result['seconds']:.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None, help="params:seed of the runs")
    parser.add_argument(
        "--keep", type=Path, default=None, help="folder to keep each run's record in"
    )
    parser.add_argument(
        "--recheck", type=Path, default=None, help="check the records kept in a folder"
    )
    arguments = parser.parse_args()
    if arguments.recheck:
        records = [
            json.loads((arguments.recheck / f"{name}.json").read_text())
            for name in arguments.tables
            if (arguments.recheck / f"{name}.json").exists()
        ]
    else:
        records = []
        for name in arguments.tables:
            records.append(
                run_table(name, TABLES[name][0], arguments.epochs, arguments.seed, arguments.keep)
            )
            print(f"{name}: {records[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    checked = [check_run(record, TABLES[record["table"]][1]) for record in records]
    print_results(records, checked)
    return 1 if any(result["problems"] for result in checked) or not records else 0


if __name__ == "__main__":
    sys.exit(main())
