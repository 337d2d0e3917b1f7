"""Scaling benchmark: batch scoring of Telco-shaped tables of growing size; prints rows vs wall time vs peak RSS.

    .venv/bin/python benchmarks/scaling.py [--rows 10000 100000 1000000] [--engines local dask]
        [--chunk-rows 200000] [--bundle data/07_model_output/serving_bundle]

The tables are generated from the Telco demo table: rows sampled with replacement, new keys, a little numeric noise
(tenure +-1 month, charges x (1 +- 1%)), written to Parquet in row groups of 100,000 rows. Each size is scored in
a fresh process (``score_scoring_batch`` then the catalog's atomic publish, exactly as ``kedro run --pipelines
serving --tags scoring`` does), so its peak RSS is its own. Every run is checked: one prediction per input row, in
input order with the input keys, probabilities in [0, 1] summing to 1, labels following the threshold, and the
first 2,000 rows equal to the Keras model's own probabilities within the fast path's parity tolerance; any failure
exits non-zero. Without ``--bundle``, a small model is trained on the demo data first (tests/service/bundles.py).
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
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parents[1]
TELCO = PROJECT / "data" / "01_raw" / "telco_churn.csv"
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KEDRO_DISABLE_TELEMETRY": "1"}
BLOCK_ROWS = 100_000
CHECK_ROWS = 2_000


def telco_shaped(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` Telco-shaped records: demo rows sampled with replacement, new keys, a little numeric noise."""
    source = pd.read_csv(TELCO)
    random = np.random.default_rng(seed)
    frame = source.iloc[random.integers(0, len(source), rows)].reset_index(drop=True)
    frame["customer_id"] = [f"S{seed:03d}{i:09d}" for i in range(rows)]
    frame["tenure"] = np.clip(frame["tenure"] + random.integers(-1, 2, rows), 0, 72)
    for column in ("monthly_charges", "total_charges"):
        frame[column] = (frame[column] * (1 + random.normal(0, 0.01, rows))).round(2)
    return frame


def write_telco_shaped(path: Path, rows: int) -> None:
    """A Telco-shaped Parquet table of ``rows`` rows, generated block by block (constant memory)."""
    writer = None
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        table = pa.Table.from_pandas(
            telco_shaped(min(BLOCK_ROWS, rows - start), seed=block), preserve_index=False
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table.cast(writer.schema))
    writer.close()


def peak_rss_mb(who: str = "self") -> float:
    """Peak RSS of this process, or of its largest finished child process (a Dask worker)."""
    import resource

    target = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    return resource.getrusage(target).ru_maxrss / 1024


def score_once(table: Path, bundle_path: Path, output: Path, engine: str, chunk_rows: int) -> dict:
    """Score ``table`` as the serving pipeline does and publish the predictions to ``output``."""
    from deep_learning_workflow.bundle import read_bundle
    from deep_learning_workflow.datasets.chunked import ChunkedParquetDataset, TableChunksDataset
    from deep_learning_workflow.pipelines.serving.batch_scoring import score_scoring_batch

    bundle = read_bundle(bundle_path, verify=True)
    serving = {"scoring": {"chunk_rows": chunk_rows, "engine": engine}}
    start = time.perf_counter()
    staged, sample = score_scoring_batch(
        TableChunksDataset(filepath=str(table)).load(), bundle, serving
    )
    ChunkedParquetDataset(filepath=str(output)).save(staged)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rows": staged.rows,
        "sample": len(sample),
        "rss": peak_rss_mb(),
        "worker_rss": peak_rss_mb("children"),
    }


def check_predictions(table: Path, bundle_path: Path, output: Path) -> list[str]:
    """What is wrong with the published predictions (nothing: an empty list)."""
    from deep_learning_workflow.bundle import read_bundle
    from deep_learning_workflow.inference.engine import PARITY_ATOL, PARITY_RTOL
    from deep_learning_workflow.model_inputs import predict_probabilities

    bundle = read_bundle(bundle_path, verify=True)
    problems = []
    keys = pq.read_table(table, columns=["customer_id"])["customer_id"]
    predicted = pq.read_table(output, columns=["customer_id", "probability_Yes", "probability_No"])
    if predicted.num_rows != len(keys) or not predicted["customer_id"].equals(keys):
        problems.append(
            f"{predicted.num_rows} predictions for {len(keys)} rows, or keys out of order"
        )
    yes = predicted["probability_Yes"].to_numpy()
    no = predicted["probability_No"].to_numpy()
    if not (np.all((yes >= 0) & (yes <= 1)) and np.allclose(yes + no, 1.0, atol=1e-9)):
        problems.append("probabilities outside [0, 1] or not summing to 1")
    head = pq.ParquetFile(table).read_row_group(0).to_pandas().head(CHECK_ROWS)
    first = pq.ParquetFile(output).read_row_group(0).to_pandas().head(CHECK_ROWS)
    expected = predict_probabilities(bundle.model, head, bundle.roles)[
        :, bundle.classes.index("Yes")
    ]
    if not np.allclose(first["probability_Yes"], expected, rtol=PARITY_RTOL, atol=PARITY_ATOL):
        problems.append("the first rows differ from the Keras model's probabilities")
    labels = np.where(first["probability_Yes"] >= bundle.decision_threshold, "Yes", "No")
    if not (first["label"].to_numpy() == labels).all():
        problems.append("labels do not follow the decision threshold")
    return problems


def child(arguments: argparse.Namespace) -> int:
    result = score_once(
        arguments.table, arguments.bundle, arguments.output, arguments.engine, arguments.chunk_rows
    )
    result["problems"] = check_predictions(arguments.table, arguments.bundle, arguments.output)
    print(json.dumps(result))
    return 0


def demo_bundle(folder: Path) -> Path:
    sys.path.insert(0, str(PROJECT))
    from tests.service.bundles import TELCO_ROLES, build_bundle, telco_frame

    print("No bundle given: training a small demo model on the Telco data ...", flush=True)
    return build_bundle(folder / "bundle", telco_frame(1500), TELCO_ROLES, seed=0)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=["local"], choices=["local", "dask"])
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        return child(arguments)
    failures = 0
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        bundle = arguments.bundle or demo_bundle(folder)
        print(
            f"{'rows':>11} {'engine':>6} {'wall s':>8} {'rows/s':>10} {'peak RSS MB':>12} "
            f"{'worker MB':>10}  load"
        )
        for rows in arguments.rows:
            table = folder / f"telco_{rows}.parquet"
            write_telco_shaped(table, rows)
            for engine in arguments.engines:
                output = folder / f"predictions_{rows}_{engine}.parquet"
                run = subprocess.run(
                    [sys.executable, __file__, "--child", "--table", str(table), "--bundle",
                     str(bundle), "--output", str(output), "--engine", engine,
                     "--chunk-rows", str(arguments.chunk_rows)],
                    capture_output=True, text=True, env=QUIET, check=False,
                )  # fmt: skip
                if run.returncode:
                    print(f"{rows:>11,} {engine:>6} FAILED\n{run.stderr[-2000:]}")
                    failures += 1
                    continue
                result = json.loads(run.stdout.strip().splitlines()[-1])
                print(
                    f"{rows:>11,} {engine:>6} {result['seconds']:>8.1f} "
                    f"{result['rows'] / result['seconds']:>10,.0f} {result['rss']:>12,.0f} "
                    f"{result['worker_rss'] if engine == 'dask' else float('nan'):>10,.0f}  "
                    f"{load_average()}",
                    flush=True,
                )
                for problem in result["problems"]:
                    print(f"    WRONG: {problem}")
                failures += bool(result["problems"])
                output.unlink(missing_ok=True)
            table.unlink()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
