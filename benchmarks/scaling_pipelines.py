"""Scaling of the pipelines: wall time and peak RSS of each of data_acquisition, data_processing, splitting,
modelling (1 seed, 3 epochs) and evaluation on Telco-shaped tables of growing size, each pipeline a separate ``kedro run`` in a temporary copy of the project.

    .venv/bin/python benchmarks/scaling_pipelines.py [--rows 10000 100000 1000000]

The table (see ``scaling.telco_shaped``) is the public file of an environment ``scaling`` with the database
source off and ``data_acquisition.dtypes: null``, as a new user's own table would be. Checked: every run succeeds,
and the splits hold every row of the clean table exactly once. Exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from common import copy_project
from scaling import QUIET, telco_shaped

from deep_learning_workflow.environments import (
    TABLE_SPECIFIC_CATALOG,
    TABLE_SPECIFIC_PARAMETERS,
    read_own_config,
)

PIPELINES = ("data_acquisition", "data_processing", "splitting", "modelling", "evaluation")
DEFAULT = "__default__"  # every pipeline of `kedro run` in one process
ENVIRONMENT = {
    "catalog.yml": {
        "raw_customers": {
            "type": "deep_learning_workflow.datasets.atomic.CSVDataset",
            "filepath": "data/01_raw/telco_scaled.csv",
        }
    },
    "parameters.yml": {
        "data_acquisition": {"sources": {"database": {"enabled": False}}, "dtypes": None},
        "modelling": {"seeds": 1, "epochs": 3},
    },
}


def telco_keys(project: Path) -> dict[str, dict]:
    """The table-specific keys of conf/base, which the ``scaling`` environment must set since it reads its own
    table (the Telco-shaped table keeps the demo's columns, so their base values are right)."""
    patterns = {
        "parameters": ["parameters*", "parameters*/**"],
        "catalog": ["catalog*", "catalog*/**"],
    }
    base = {
        kind: read_own_config(project / "conf", "base", globs) for kind, globs in patterns.items()
    }
    parameters: dict = {}
    for key in TABLE_SPECIFIC_PARAMETERS:
        *parents, leaf = key.split(".")
        source, target = base["parameters"], parameters
        for part in parents:
            source, target = source[part], target.setdefault(part, {})
        target[leaf] = source.get(leaf)
    catalog = {name: base["catalog"][name] for name in TABLE_SPECIFIC_CATALOG}
    return {"parameters.yml": parameters, "catalog.yml": catalog}


def merged(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``, nested maps key by key."""
    result = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both else value
    return result


def write_environment(project: Path, rows: int) -> None:
    """The ``scaling`` environment and its table of ``rows`` rows in a project copy."""
    folder = project / "conf" / "scaling"
    folder.mkdir()
    for name, content in merged(telco_keys(project), ENVIRONMENT).items():
        (folder / name).write_text(yaml.safe_dump(content), encoding="utf-8")
    path = project / "data" / "01_raw" / "telco_scaled.csv"
    for start in range(0, rows, 100_000):
        block = telco_shaped(min(100_000, rows - start), seed=start // 100_000)
        block.to_csv(path, mode="a", header=start == 0, index=False)


def run_pipeline(project: Path, pipeline: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, from GNU time) of ``kedro run --env scaling --pipelines <pipeline>``
    (of ``kedro run --env scaling`` for ``__default__``)."""
    start = time.perf_counter()
    run = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "kedro", "run", "--env", "scaling",
         *([] if pipeline == DEFAULT else ["--pipelines", pipeline])],
        cwd=project, capture_output=True, text=True, env=QUIET, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if run.returncode:
        raise RuntimeError(f"{pipeline} failed:\n{run.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    return seconds, int(peak.group(1)) / 1024 if peak else float("nan")


def check_splits(project: Path) -> list[str]:
    clean = pd.read_parquet(
        project / "data" / "03_primary" / "clean_table.parquet", columns=["customer_id"]
    )
    keys = pd.concat(
        pd.read_parquet(
            project / "data" / "05_model_input" / f"{name}.parquet", columns=["customer_id"]
        )
        for name in ("train", "val", "test")
    )["customer_id"]
    if len(keys) != len(clean) or set(keys) != set(clean["customer_id"]) or keys.duplicated().any():
        return [
            f"the splits hold {len(keys)} rows for {len(clean)} clean rows, or not each exactly once"
        ]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--pipelines", nargs="+", default=list(PIPELINES), choices=[*PIPELINES, DEFAULT]
    )
    arguments = parser.parse_args()
    failures = 0
    print(f"{'rows':>11} {'pipeline':>17} {'wall s':>8} {'peak RSS MB':>12}  load")
    for rows in arguments.rows:
        with tempfile.TemporaryDirectory() as folder:
            project = Path(folder)
            copy_project(project)
            write_environment(project, rows)
            for pipeline in arguments.pipelines:
                try:
                    seconds, peak = run_pipeline(project, pipeline)
                except RuntimeError as error:
                    print(f"{rows:>11,} {pipeline:>17} FAILED\n{error}")
                    failures += 1
                    break
                one, five, fifteen = os.getloadavg()
                print(
                    f"{rows:>11,} {pipeline:>17} {seconds:>8.1f} {peak:>12,.0f}  "
                    f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}",
                    flush=True,
                )
            else:
                for problem in check_splits(project):
                    print(f"    WRONG: {problem}")
                    failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
