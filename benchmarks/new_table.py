"""Five tables the project has never seen, each from file to a trained model and a gate verdict in two commands:
`kedro dlw new-table data/01_raw/<table>.csv --target <column> --env <table>` and `kedro run --env <table>`, with no
file edited. Prints the inferred roles and the verdicts; exits non-zero when a command fails or a run leaves no
verdict.

    .venv/bin/python benchmarks/new_table.py                    # the five tables, full training
    .venv/bin/python benchmarks/new_table.py --tables hmda --epochs 5

Each table runs in its own temporary copy of the project (sources: data/01_raw/README.md). `--epochs` shortens
training through `kedro run --params` (not a file edit).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import copy_project

# Table -> (target, its classes as the shipped file has them).
TABLES = {
    "cells": ("class", ["PS", "WS"]),
    "caravan": ("Purchase", ["No", "Yes"]),
    "hmda": ("deny", ["no", "yes"]),
    "hpc_jobs": ("class", ["F", "L", "M", "VF"]),
    "stackoverflow": ("Remote", ["Not remote", "Remote"]),
}


def kedro(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def run_table(name: str, target: str, classes: list[str], epochs: int | None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        copy_project(project)
        started = time.perf_counter()
        created = kedro(
            project,
            "dlw",
            "new-table",
            f"data/01_raw/{name}.csv",
            "--target",
            target,
            "--env",
            name,
        )
        if created.returncode:
            return {"table": name, "error": f"new-table: {created.stderr[-1500:]}"}
        # The summary's rows: a name and its value, two or more spaces apart.
        rows = [
            re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in created.stdout.splitlines()
        ]
        roles = {row[0]: row[1] for row in rows if len(row) == 2}
        arguments = ["run", "--env", name]
        if epochs:
            arguments += ["--params", f"modelling.epochs={epochs}"]
        run = kedro(project, *arguments)
        seconds = time.perf_counter() - started
        gate_path = project / "data" / name / "08_reporting" / "release_gate.json"
        if run.returncode or not gate_path.exists():
            return {"table": name, "roles": roles, "error": f"kedro run: {run.stderr[-1500:]}"}
        if (project / "data" / "05_model_input").exists():
            return {"table": name, "error": "the run wrote under data/ instead of data/<env>/"}
        gate = json.loads(gate_path.read_text())
        test = json.loads(
            (project / "data" / name / "08_reporting" / "test_metrics.json").read_text()
        )
        if test["classes"] != classes:
            return {"table": name, "error": f"classes {test['classes']}, expected {classes}"}
        metric = gate["primary_metric"]
        baselines = {
            baseline: values["metrics"][metric]["value"]
            for baseline, values in test["baselines"].items()
        }
        best = max(baselines, key=baselines.get)
        return {
            "table": name,
            "roles": roles,
            "verdict": gate["verdict"],
            "failed": gate["failed_checks"],
            "metric": gate["primary_metric"],
            "val": gate["model_value"],
            "test": test["model"]["metrics"][metric]["value"],
            "baseline": f"{best} {baselines[best]:.3f}",
            "seconds": seconds,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--epochs", type=int, default=None)
    arguments = parser.parse_args()
    results = [run_table(name, *TABLES[name], arguments.epochs) for name in arguments.tables]
    errors = 0
    for result in results:
        print(f"\n== {result['table']}")
        for role in (
            "key",
            "target",
            "positive class",
            "numeric",
            "categorical",
            "text",
            "no role",
        ):
            if role in result.get("roles", {}):
                print(f"  {role:<14} {result['roles'][role][:160]}")
        if "error" in result:
            errors += 1
            print(f"  ERROR {result['error']}")
    print(
        "\n| table | verdict | failed checks | metric | validation | test | best baseline (test) | seconds |"
        f"\n|{'---|' * 8}"
    )
    for result in results:
        if "error" in result:
            print(f"| {result['table']} | ERROR | | | | | | |")
            continue
        print(
            f"| {result['table']} | {result['verdict']} | {'; '.join(result['failed']) or '-'} | "
            f"{result['metric']} | {result['val']:.3f} | {result['test']:.3f} | {result['baseline']} | "
            f"{result['seconds']:.0f} |"
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
