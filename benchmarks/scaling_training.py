"""Scaling of training: wall time and peak RSS of the training node, streamed or in memory, by rows.

    .venv/bin/python benchmarks/scaling_training.py [--rows 10000 100000 1000000] [--epochs 3] [--seeds 1]
        [--streaming on|off] [--batch-size 2048]

For each size a Telco-shaped table (``scaling.telco_shaped``: demo rows sampled with replacement, new keys, a
little numeric noise) is written block by block as the training split (70% of the rows) and the validation split
(15%), in row groups of 100,000 rows as the splitting pipeline writes them. A fresh process then runs the modelling
pipeline's training node ``train_seed_models`` on the catalog's split handles (``ParquetSplitDataset``) with the
modelling defaults of conf/base, ``seeds`` and ``epochs`` as given, and ``streaming.min_rows`` at 1 (``--streaming
on``: the split is streamed from Parquet) or above the row count (``off``: loaded into pandas). Its peak RSS is its
own, TensorFlow included. Checked: the run streamed or not as asked, every loss is finite, and the model's
validation PR-AUC beats the base rate by 0.2 (the demo's signal survives); any failure exits non-zero.
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from scaling import BLOCK_ROWS, QUIET, load_average, peak_rss_mb, telco_shaped

PROJECT = Path(__file__).resolve().parents[1]


def write_split(path: Path, rows: int, first_block: int) -> None:
    """``rows`` Telco-shaped rows as one Parquet file, generated block by block (constant memory)."""
    writer = None
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        frame = telco_shaped(min(BLOCK_ROWS, rows - start), seed=first_block + block)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema), row_group_size=BLOCK_ROWS)
    writer.close()


def base_parameters() -> dict:
    parameters = {}
    for name in ("parameters.yml", "parameters_modelling.yml"):
        parameters.update(yaml.safe_load((PROJECT / "conf" / "base" / name).read_text()))
    return parameters


def child(arguments: argparse.Namespace) -> int:
    from deep_learning_workflow.datasets import ParquetSplitDataset
    from deep_learning_workflow.metrics import score
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.preprocessing import as_roles
    from deep_learning_workflow.pipelines.modelling.nodes import train_seed_models

    parameters = base_parameters()
    modelling = parameters["modelling"]
    rows = pq.ParquetFile(arguments.train).metadata.num_rows
    modelling.update(seeds=arguments.seeds, epochs=arguments.epochs)
    modelling["sanity_check"]["enabled"] = False
    if arguments.batch_size:
        modelling["batch_size"] = arguments.batch_size
    modelling["streaming"]["min_rows"] = 1 if arguments.streaming == "on" else rows + 1
    start = time.perf_counter()
    split = ParquetSplitDataset(filepath=str(arguments.train)).load()
    val = ParquetSplitDataset(filepath=str(arguments.val)).load().load()
    model, history, report = train_seed_models(
        split, split, val, parameters["columns"], modelling, parameters["problem"], 42, {}
    )
    seconds = time.perf_counter() - start
    roles = as_roles(parameters["columns"])
    probabilities = predict_probabilities(model, val, roles)
    labels = val[roles.target].astype(str).to_numpy()
    pr_auc = score("pr_auc", labels, probabilities, ["No", "Yes"], "Yes")
    base_rate = float((labels == "Yes").mean())
    problems = []
    if report["streamed"] != (arguments.streaming == "on"):
        problems.append(f"streamed is {report['streamed']}, asked {arguments.streaming}")
    if not np.isfinite(history["history"]["loss"]).all():
        problems.append("a loss is not finite")
    if pr_auc < base_rate + 0.2:
        problems.append(f"validation PR-AUC {pr_auc:.3f} is not base rate {base_rate:.3f} + 0.2")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "pr_auc": pr_auc,
                "epochs_run": len(history["history"]["loss"]),
                "problems": problems,
            }
        )
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="instead of params:modelling.batch_size")
    parser.add_argument("--streaming", choices=["on", "off"], default="on")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--val", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        return child(arguments)
    failures = 0
    print(
        "| rows | training rows | streaming | epochs | wall time | peak RSS | val PR-AUC | load average |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rows in arguments.rows:
        with tempfile.TemporaryDirectory() as folder:
            train, val = Path(folder) / "train.parquet", Path(folder) / "val.parquet"
            write_split(train, int(rows * 0.7), first_block=0)
            write_split(val, int(rows * 0.15), first_block=10_000)
            before = load_average()
            result = subprocess.run(
                [sys.executable, __file__, "--child", "--train", str(train), "--val", str(val)]
                + ["--epochs", str(arguments.epochs), "--seeds", str(arguments.seeds)]
                + ["--streaming", arguments.streaming]
                + (["--batch-size", str(arguments.batch_size)] if arguments.batch_size else []),
                capture_output=True,
                text=True,
                env={
                    **QUIET,
                    "PYTHONPATH": str(PROJECT / "src") + os.pathsep + QUIET.get("PYTHONPATH", ""),
                },
                check=False,
            )
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            failures += 1
            continue
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        failures += bool(measured["problems"])
        print(
            f"| {rows:,} | {int(rows * 0.7):,} | {arguments.streaming} | {measured['epochs_run']} | "
            f"{measured['seconds']:.1f} s | {measured['peak_rss_mb']:,.0f} MB | {measured['pr_auc']:.3f} | "
            f"{before} | {'; '.join(measured['problems'])}",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
